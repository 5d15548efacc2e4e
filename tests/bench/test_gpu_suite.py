"""bench/gpu_suite.py, issue 17's prepared GPU run: its arithmetic, its orchestration, and the dry run on the CPU
(every section end to end on the tiny random Qwen2) with the JSON checked for every figure."""

import json
import shutil
import tarfile

import pytest

from bench import gpu_suite as gs
from core.labels import LABELS

# ------------------------------------------------------------------------------------------------ arithmetic


def test_t4_projection_compute_bound_by_hand():
    # one pass: 2.6 TFLOP at 65 TFLOP/s x 0.5 = 0.08 s; 6.4 GB at 320 GB/s = 0.02 s -> 0.08 s for 4 texts
    got = gs.t4_projection(batch=4, passes=[(2.6e12, 6.4e9)], efficiency=0.5, peak_memory_gib=10.0,
                           price_per_hour=0.736)
    assert got["batch_seconds"] == pytest.approx(0.08)
    assert got["texts_per_s"] == pytest.approx(50.0)
    assert got["cost_per_million_texts_usd"] == pytest.approx(0.736 / 3600 / 50 * 1e6)  # 4.0889 USD
    assert got["cost_per_million_texts_usd"] == pytest.approx(4.08889, rel=1e-5)
    assert got["fits_memory"] is True
    assert gs.t4_projection(batch=4, passes=[(2.6e12, 6.4e9)], efficiency=0.5, peak_memory_gib=15.0)["fits_memory"] is False
    assert gs.t4_projection(batch=4, passes=[(2.6e12, 6.4e9)], efficiency=0.5, peak_memory_gib=None)["fits_memory"] is None


def test_t4_projection_memory_bound_decoding_by_hand():
    # prefill: max(1e12 / 32.5e12, 6.4e9 / 320e9) = 0.0307692 s; a decoding step: max(3.1e-4, 0.02) = 0.02 s
    got = gs.t4_projection(batch=1, passes=[(1e12, 6.4e9), (1e10, 6.4e9)], efficiency=0.5, peak_memory_gib=7.0)
    assert got["batch_seconds"] == pytest.approx(1 / 32.5 + 0.02)
    assert got["texts_per_s"] == pytest.approx(1 / (1 / 32.5 + 0.02))
    with pytest.raises(ValueError):
        gs.t4_projection(batch=1, passes=[(1.0, 1.0)], efficiency=0.0, peak_memory_gib=None)


def test_epoch_projection_by_hand():
    # 65e12 x 0.25 / 2e10 = 812.5 tokens/s; 1e7 tokens -> 12,307.7 s = 3.4188 h -> 2.5162 USD at 0.736/h
    got = gs.project_epoch_t4(1e7, 2e10, 0.25, price_per_hour=0.736)
    assert got["t4_tokens_per_s"] == pytest.approx(812.5)
    assert got["hours"] == pytest.approx(1e7 / 812.5 / 3600)
    assert got["cost_usd"] == pytest.approx(1e7 / 812.5 / 3600 * 0.736)


def test_flop_counts_match_the_published_qwen25_3b():
    pytest.importorskip("transformers")
    from transformers import Qwen2Config

    from training import base_models

    dims = gs.model_dims(Qwen2Config(**base_models._COMMON, **base_models.SHAPES["qwen2.5-3b"]))
    assert gs.total_params(dims) == pytest.approx(3.09e9, rel=0.01)  # Qwen2.5-3B: 3.09B parameters
    assert gs.linear_params(dims) == pytest.approx(2.77e9, rel=0.01)  # 2.77B of them outside the embedding
    seq = 190
    attn = dims["heads"] * dims["head_dim"]
    one = gs.one_pass_flops(dims, seq)
    assert one == 2 * gs.linear_params(dims) * seq + 2 * dims["layers"] * seq**2 * attn + 2 * dims["hidden"] * dims["vocab"]
    # generating costs the prefill plus one decoding step per further token
    assert gs.generate_flops(dims, seq, 1) == one
    assert gs.generate_flops(dims, seq, 6) > one + 5 * 2 * gs.linear_params(dims)
    passes = gs.serving_passes(dims, "generate_and_parse", 8, seq, 6)
    assert len(passes) == 6 and passes[0][0] == 8 * one
    assert passes[-1][1] > passes[0][1]  # the KV cache adds bytes to every decoding step
    # LoRA on a frozen base with gradient checkpointing: about 6 FLOPs per linear weight per token
    per_token = gs.train_flops_per_token(dims, 512, 16)
    assert 6 * gs.linear_params(dims) < per_token < 8 * gs.total_params(dims)


def test_card_peaks():
    assert gs.datasheet_peak_tflops("NVIDIA H100 80GB HBM3") == 989.4
    assert gs.datasheet_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert gs.datasheet_peak_tflops("NVIDIA H200") == 989.4
    assert gs.datasheet_peak_tflops("Tesla T4") == 65.0
    assert gs.datasheet_peak_tflops("Some Other Card") is None


# ------------------------------------------------------------------------------------------------ orchestration


def test_a_missing_package_stops_the_run_with_one_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(gs.REQUIRED, "no_such_module_for_gpu_suite", ("no-such-dist", gs.SECTIONS))
    code = gs.main(["--dry-run", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")])
    assert code == 2
    doc = json.loads((tmp_path / "out" / gs.RESULT_NAME).read_text())
    assert doc["sections"] == {}
    assert "no-such-dist (serving, qlora, finetune)" in doc["error"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gpu_suite: stopped before any section: missing")


def test_a_project_module_that_cannot_import_stops_the_run(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(gs.SECTION_MODULES, "serving", ("module_that_imports_a_missing_package",))
    fake = tmp_path / "module_that_imports_a_missing_package.py"
    fake.write_text("import package_not_on_this_machine\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code = gs.main(["--dry-run", "--sections", "serving", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "w")])
    sys.modules.pop("module_that_imports_a_missing_package", None)
    assert code == 2
    doc = json.loads((tmp_path / "out" / gs.RESULT_NAME).read_text())
    assert "package_not_on_this_machine (imported by module_that_imports_a_missing_package: serving)" in doc["error"]


def test_budget_skips_a_section_and_a_process_past_its_limit_is_stopped(tmp_path):
    out = tmp_path / "out"
    code = gs.main(["--dry-run", "--out", str(out), "--work", str(tmp_path / "work"), "--sections", "_probe,serving",
                    "--isolate", "process", "--probe-sleep", "30", "--grace-s", "1", "--budget-s", "3"])
    assert code == 0
    doc = json.loads((out / gs.RESULT_NAME).read_text())
    probe = doc["sections"]["_probe"]
    assert probe["status"] == "timed_out" and probe["pid"] > 0  # what it wrote before the kill is kept
    assert probe["seconds"] < 10
    serving = doc["sections"]["serving"]
    assert serving["status"] == "skipped" and serving["reason"].startswith("time budget")
    assert any(n.startswith("serving skipped: time budget") for n in doc["notes"])
    assert "probe: running" in (out / gs.LOG_NAME).read_text()


def test_section_budgets_leave_room_for_later_sections():
    plan = gs.Plan(mode="gpu", device="cuda", out="o", work="w", data=None, gguf=None,
                   sections=list(gs.SECTIONS), budget_s=420, isolate="process",
                   section_budget_s={"serving": 110, "qlora": 120, "finetune": 240},
                   section_min_s={"serving": 40, "qlora": 60, "finetune": 90})
    assert gs.section_budget(plan, 0, 420) == 110
    assert gs.section_budget(plan, 0, 200) == 50  # 200 - 60 - 90
    assert gs.section_budget(plan, 0, 100) == 40  # its minimum: the later sections will be skipped
    assert gs.section_budget(plan, 1, 300) == 120
    assert gs.section_budget(plan, 2, 123) == 123  # the last section gets what is left


def test_gguf_parts_are_joined_and_checked(tmp_path):
    import hashlib

    blob = bytes(range(256)) * 100
    carried = tmp_path / "gpu_b"
    (carried / "data").mkdir(parents=True)
    parts = [blob[:10000], blob[10000:]]
    manifest = {"name": "fake-for-gpu-suite.gguf", "size": len(blob), "sha256": hashlib.sha256(blob).hexdigest(),
                "parts": [{"name": f"fake-for-gpu-suite.gguf.part{i + 1}", "size": len(b)} for i, b in enumerate(parts)]}
    (carried / "gguf_manifest.json").write_text(json.dumps(manifest))
    (carried / "fake-for-gpu-suite.gguf.part2").write_bytes(parts[1])
    plan = gs.Plan(mode="gpu", device="cuda", out=str(tmp_path / "out"), work=str(tmp_path / "work"),
                   data=str(carried / "data"), gguf=None, sections=["finetune"], budget_s=1, section_budget_s={},
                   section_min_s={}, isolate="none")
    path, why = gs.locate_gguf(plan, print)
    assert path is None and "park" in why  # part 1 was never parked on this machine
    (carried / "fake-for-gpu-suite.gguf.part1").write_bytes(parts[0])
    path, why = gs.locate_gguf(plan, print)
    assert why == "joined from carried parts" and path.read_bytes() == blob
    path.unlink()
    (carried / "fake-for-gpu-suite.gguf.part1").write_bytes(parts[0][::-1])
    path, why = gs.locate_gguf(plan, print)
    assert path is None and "sha256" in why


# ------------------------------------------------------------------------------------------------ the dry run


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory, qwen_tokenizer_dir):
    pytest.importorskip("peft")
    pytest.importorskip("bitsandbytes")
    root = tmp_path_factory.mktemp("gpu_suite")
    data, work, out = root / "data", root / "work", root / "out"
    data.mkdir()
    rows = gs.synthetic_rows(48)
    _write(data / "train.jsonl", rows[:24])
    _write(data / "validation.jsonl", rows[24:32])
    _write(data / "test.jsonl", rows[32:] + [{**rows[40], "text": rows[40]["text"] + " v", "parent_id": "x"}])
    _write(data / "test_unseen.jsonl", rows[32:40])
    shutil.copytree(qwen_tokenizer_dir, work / "qwen25-tokenizer")  # built once per test session
    code = gs.main(["--dry-run", "--data", str(data), "--work", str(work), "--out", str(out)])
    return code, out, json.loads((out / gs.RESULT_NAME).read_text())


def test_dry_run_runs_every_section(dry_run):
    code, out, doc = dry_run
    assert code == 0
    assert doc["mode"] == "dry-run" and "not a speed or quality figure" in doc["label"]
    assert {name: s["status"] for name, s in doc["sections"].items()} == {
        "serving": "ok", "qlora": "ok", "finetune": "ok"}
    log = (out / gs.LOG_NAME).read_text()
    for section in gs.SECTIONS:
        assert f"{section}: ok in" in log
    assert doc["packages"]["torch"] and doc["packages"]["bitsandbytes"]
    assert set(doc["targets"]) >= {"one_pass_vs_generate_fp16_batch32", "one_pass_share_of_fp16_peak_batch128",
                                   "qlora_seq512_within_15gib"}


def test_dry_run_serving_figures(dry_run):
    _, _, doc = dry_run
    serving = doc["sections"]["serving"]
    assert serving["text_tokens"] == 96 and serving["prompt_tokens"] > 96
    points = serving["points"]
    plan = doc["plan"]
    assert len(points) == len(plan["serving_dtypes"]) * len(plan["batch_sizes"]) * 2
    for p in points:
        assert p["texts_per_s"] > 0 and 0 < p["batch_p50_ms"] <= p["batch_p99_ms"]
        assert "peak_memory_gib" in p and "peak_reserved_gib" in p  # None on a CPU
        assert p["model_gflops_per_text"] > 0 and p["achieved_tflops"] > 0
        assert p["share_of_measured_matmul"] > 0
    for dtype in plan["serving_dtypes"]:
        for batch in plan["batch_sizes"]:
            one, gen = (next(p for p in points if (p["dtype"], p["batch"], p["method"]) == (dtype, batch, m))
                        for m in ("one_pass", "generate_and_parse"))
            assert one["ms_per_text"] < gen["ms_per_text"], (dtype, batch)  # one pass is cheaper per text
            assert serving["speedup"][dtype][str(batch)] == pytest.approx(one["texts_per_s"] / gen["texts_per_s"], rel=1e-3)
            assert one["model_gflops_per_text"] < gen["model_gflops_per_text"]
    t4 = serving["t4_projection"]
    assert t4["price"]["usd_per_hour"] == gs.G4DN_XLARGE_USD_PER_HOUR and 0 < t4["efficiency"] <= 1
    assert len(t4["rows"]) == len(plan["batch_sizes"]) * 2
    for row in t4["side_by_side"]:
        assert row["one_pass_usd_per_million"] > 0
        assert row["cost_ratio"] > 1  # generate-and-parse costs more per text on the T4 too


def test_dry_run_qlora_figures(dry_run):
    _, _, doc = dry_run
    q = doc["sections"]["qlora"]
    assert q["steps_done"] == q["steps_planned"] == doc["plan"]["qlora_steps"]
    assert q["tokens_per_s"] > 0 and q["achieved_tflops"] > 0 and q["model_gflops_per_token"] > 0
    assert q["example_tokens_mean"] == pytest.approx(q["seq"], abs=3)  # examples fill the sequence
    assert "peak_memory_gib" in q and "peak_reserved_gib" in q and "fits" in q
    assert "--quantization" in q["train_script_argv"] and "nf4" in q["train_script_argv"]
    assert q["epoch_data"]["examples"] == 24 and q["epoch_data"]["tokens"] > 0
    assert q["t4_epoch"]["hours"] > 0 and q["t4_epoch"]["cost_usd"] > 0
    assert q["t4_epoch"]["cost_usd"] == pytest.approx(q["t4_epoch"]["hours"] * gs.G4DN_XLARGE_USD_PER_HOUR, rel=1e-3)


def test_dry_run_finetune_evaluates_and_brings_the_adapter_back(dry_run):
    _, out, doc = dry_run
    f = doc["sections"]["finetune"]
    assert f["training"]["steps"] >= 1 and f["training"]["epoch_fraction"] == pytest.approx(1.0)
    assert f["data"]["train"]["rows"] == 8  # the dry run's cut
    assert set(f["evaluation"]) == {"test_unseen_by_embedded", "test_all"}
    assert f["evaluation"]["test_all"]["rows"] == 12  # the dry run's cut (the augmented variant is past it)
    assert f["evaluation"]["test_unseen_by_embedded"]["rows"] == 8
    for ev in f["evaluation"].values():
        summary = ev["summary"]
        for key in ("macro_f1", "quadratic_weighted_kappa", "ece", "variant_recall_without_normalizer",
                    "variant_recall_with_normalizer", "false_alarm_rate"):
            assert key in summary
        assert 0 <= summary["macro_f1"] <= 1 and ev["speed"]["texts_per_second"] > 0
        assert set(ev["per_label_f1"]) <= set(LABELS)
    assert f["adapter_files"] == [gs.ADAPTER_ARCHIVE]
    with tarfile.open(out / gs.ADAPTER_ARCHIVE) as tar:
        names = set(tar.getnames())
    for name in ("adapter_config.json", "adapter_model.safetensors", "labels.json", "training_config.json",
                 "eval/test_all.json", "eval/test_all.md", "eval/test_unseen_by_embedded.json"):
        assert f"finetune_adapter/{name}" in names
