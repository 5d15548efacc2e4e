"""Drift detection finds a real shift with the right reasons, stays quiet on an unshifted window, and
turns bad input into one clear line and exit status 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monitoring import MonitoringInputError
from monitoring.drift_detection import DriftConfig, binned, detect_drift, main, psi
from monitoring.new_terms import PatternIndex
from monitoring.sources import load_window, parse_capture_record
from tests.monitoring import synth


def alerts(report) -> set[str]:
    return {c.name for c in report.checks if c.status == "alert"}


def test_psi_hand_worked():
    # Two bins, 50/50 -> 80/20: (0.8-0.5)ln(0.8/0.5) + (0.2-0.5)ln(0.2/0.5) = 0.1410 + 0.2749
    assert psi(np.array([50.0, 50.0]), np.array([80.0, 20.0])) == pytest.approx(0.4159, abs=1e-4)
    assert psi(np.array([10.0, 30.0]), np.array([20.0, 60.0])) == pytest.approx(0.0)
    # Quantile bins of a zero-inflated share keep zero apart from the rest.
    _edges, ref, cur = binned(np.zeros(100), np.array([0.0] * 90 + [0.1] * 10), bins=10)
    assert ref.tolist() == [100, 0] and cur.tolist() == [90, 10]


def test_shift_from_training_data_is_detected_with_reasons(data):
    reference = load_window(str(data["train"]))
    patterns = PatternIndex.load(data["patterns"])

    report = detect_drift(reference, load_window(str(data["shifted"])), patterns=patterns)
    assert report.status == "alert"
    assert alerts(report) == {"text_length", "labels", "new_terms"}
    length = report.check("text_length")
    assert length.stats["current_median"] > 2 * length.stats["reference_median"]
    labels = report.check("labels")
    assert labels.stats["current_shares"]["harmful"] > labels.stats["reference_shares"]["harmful"] + 0.15
    assert set(synth.PLANTED) <= set(report.check("new_terms").stats["terms"])
    # Checks the training data cannot support are skipped with the reason, not guessed.
    assert report.check("normalizer_hit_rate").status == "skipped"
    assert "reference" in report.check("normalizer_hit_rate").reason

    quiet = detect_drift(reference, load_window(str(data["same"])), patterns=patterns)
    assert quiet.status == "ok", quiet.reasons
    assert quiet.reasons == []


def test_shift_between_log_periods_covers_normalizer_signals(data):
    reference = load_window(data["log_ref"])
    report = detect_drift(reference, load_window(data["log_shifted"]))
    found = alerts(report)
    assert {"text_length", "labels", "normalizer_hit_rate", "technique_leetspeak", "disagreement"} <= found
    assert report.check("technique_leetspeak").stats["reference"] == 0.0
    assert report.check("disagreement").stats["delta"] > 0.05
    assert report.check("new_terms").status == "skipped"  # no pattern database passed

    quiet = detect_drift(reference, load_window(data["log_same"]))
    assert quiet.status == "ok", quiet.reasons


def test_cli_writes_report_and_exit_status(data, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["--reference", str(data["train"]), "--current", str(data["shifted"]),
                 "--patterns", str(data["patterns"]), "--out", str(out)])
    assert code == 1
    printed = capsys.readouterr().out
    assert "ALERT" in printed and "text length" in printed and "label mix" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "alert" and len(report["reasons"]) == 3
    assert {"text_length.png", "labels.png", "char_classes.png", "report.md", "new_terms.json"} <= {
        p.name for p in out.iterdir()}
    assert (out / "text_length.png").read_bytes()[:4] == b"\x89PNG"
    assert "zoinked" in (out / "report.md").read_text()

    code = main(["--reference", str(data["train"]), "--current", str(data["same"]), "--out", str(out),
                 "--no-plots", "--patterns", str(data["patterns"])])
    assert code == 0
    # Thresholds are flags: with every bar out of reach, the same shift passes.
    code = main(["--reference", data["log_ref"], "--current", data["log_shifted"], "--out", str(out),
                 "--no-plots", "--psi-alert", "100", "--psi-warn", "100", "--rate-delta-alert", "1",
                 "--rate-delta-warn", "1", "--new-terms-alert", "0"])
    assert code == 0
    assert json.loads((out / "report.json").read_text())["status"] == "ok"


def test_a_base_install_without_scipy_says_which_extra(data, tmp_path, capsys, monkeypatch):
    import sys

    for name in [n for n in sys.modules if n == "scipy" or n.startswith("scipy.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "scipy", None)  # import scipy -> ModuleNotFoundError, as without the extra
    code = main(["--reference", str(data["train"]), "--current", str(data["shifted"]), "--out", str(tmp_path),
                 "--no-plots", "--patterns", str(data["patterns"])])
    err = capsys.readouterr().err
    assert code == 2 and "--extra monitoring" in err and err.count("\n") == 1 and "Traceback" not in err


def test_hashed_log_skips_text_checks_with_the_reason(data):
    report = detect_drift(load_window(data["log_ref"]), load_window(data["log_hashed"]),
                          patterns=PatternIndex.load(data["patterns"]))
    check = report.check("new_terms")
    assert check.status == "skipped" and "LOG_TEXT" in check.reason
    assert "text_length" in alerts(report)  # length and character classes come from logged statistics


def test_capture_files_local_and_s3(data, tmp_path, aws_env):
    rows = synth.results(200, seed=31, shifted=True)
    folder = tmp_path / "capture" / "2024" / "05"
    folder.mkdir(parents=True)
    (folder / "a.jsonl").write_text("\n".join(synth.capture_lines(rows[:100], encoding="BASE64")) + "\n")
    (folder / "b.jsonl").write_text("\n".join(synth.capture_lines(rows[100:], encoding="JSON")) + "\n")
    window = load_window(str(tmp_path / "capture"))
    assert len(window) == 200 and window.has_text and window.has_labels
    assert sorted(s.text for s in window.samples) == sorted(r["original_text"] for r in rows)
    assert {s.label for s in window.samples} == {r["classification"] for r in rows}

    import boto3

    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=aws_env)
    s3.create_bucket(Bucket="capture-bucket")
    for f in folder.iterdir():
        s3.put_object(Bucket="capture-bucket", Key=f"datacapture/ep/AllTraffic/2024/05/{f.name}",
                      Body=f.read_bytes())
    remote = load_window("s3://capture-bucket/datacapture/ep/")
    assert len(remote) == 200
    report = detect_drift(load_window(str(data["train"])), remote, patterns=PatternIndex.load(data["patterns"]))
    assert {"text_length", "labels", "new_terms"} <= alerts(report)

    with pytest.raises(MonitoringInputError, match="no capture files"):
        load_window("s3://capture-bucket/nothing-here/")


def test_capture_record_shapes():
    import base64

    def record(inp, out, encoding="JSON", input_type="application/json"):
        enc = (lambda x: base64.b64encode(x.encode()).decode()) if encoding == "BASE64" else (lambda x: x)
        return {"captureData": {
            "endpointInput": {"data": enc(inp), "encoding": encoding, "observedContentType": input_type},
            "endpointOutput": {"data": enc(out), "encoding": encoding}}}

    # A bare string in, a text-classification pipeline's top-k list out.
    [s] = parse_capture_record(record(json.dumps("you are an idiot"), json.dumps(
        [[{"label": "harmful", "score": 0.7}, {"label": "safe", "score": 0.3}]])))
    assert (s.text, s.label, s.confidence) == ("you are an idiot", "harmful", 0.7)
    # CSV in (one text per line), labels out, base64.
    samples = parse_capture_record(record("first text\nsecond text", json.dumps(["safe", "harmful"]), "BASE64",
                                          input_type="text/csv"))
    assert [(s.text, s.label) for s in samples] == [("first text", "safe"), ("second text", "harmful")]
    with pytest.raises(ValueError, match="2 inputs but 1 outputs"):
        parse_capture_record(record(json.dumps({"inputs": ["a", "b"]}), json.dumps({"label": "safe"})))
    with pytest.raises(ValueError, match="base64"):
        parse_capture_record({"captureData": {"endpointInput": {"data": "%%%", "encoding": "BASE64"}}})


@pytest.mark.parametrize("case", ["missing", "empty", "garbage", "bad_capture", "too_few", "no_log", "bad_url",
                                  "bad_time"])
def test_bad_input_is_one_line_and_exit_2(case, data, tmp_path, capsys):
    current = str(data["same"])
    extra: list[str] = []
    if case == "missing":
        current = str(tmp_path / "nope.jsonl")
    elif case == "empty":
        (tmp_path / "empty.jsonl").write_text("")
        current = str(tmp_path / "empty.jsonl")
    elif case == "garbage":
        (tmp_path / "garbage.jsonl").write_bytes(b"\x00\xff not json\n{\"text\": 5}\n[1, 2]\n")
        current = str(tmp_path / "garbage.jsonl")
    elif case == "bad_capture":
        (tmp_path / "cap").mkdir()
        (tmp_path / "cap" / "x.jsonl").write_text(json.dumps({"captureData": {"endpointInput": {
            "data": "!!!", "encoding": "BASE64"}}}) + "\n")
        current = str(tmp_path / "cap")
    elif case == "too_few":
        synth.write_results_jsonl(tmp_path / "few.jsonl", synth.results(5, seed=1))
        current = str(tmp_path / "few.jsonl")
    elif case == "no_log":
        current = f"sqlite:///{tmp_path}/absent.db"
    elif case == "bad_url":
        current = "notadb://x/y"
    elif case == "bad_time":
        extra = ["--current-start", "last tuesday"]
    code = main(["--reference", str(data["train"]), "--current", current, "--out", str(tmp_path / "out"),
                 "--patterns", str(data["patterns"]), "--no-plots", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_corrupted_log_rows_are_reported(data, tmp_path):
    import shutil

    from sqlalchemy import create_engine, text

    path = tmp_path / "log.db"
    shutil.copy(data["log_same"].removeprefix("sqlite:///"), path)
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE predictions SET label = 'garbled' WHERE id % 10 = 0"))
        conn.execute(text("UPDATE predictions SET techniques = '{oops' WHERE id % 10 = 1"))
    engine.dispose()
    window = load_window(f"sqlite:///{path}")
    assert window.bad_rows == 100 and len(window) == 400
    report = detect_drift(load_window(data["log_ref"]), window, DriftConfig())
    quality = report.check("data_quality")
    assert quality.status == "warn" and "100 unreadable rows" in quality.reason


def test_embedding_drift_with_a_model_and_skipped_without(data, tmp_path):
    vocab = {w: i for i, w in enumerate([*synth.SAFE_WORDS, *synth.HARM_WORDS, "zoinked", "pew", "k1ll"])}

    def embed(texts: list[str]) -> np.ndarray:
        # A stand-in embedding model: bag of words over the synthetic vocabulary.
        out = np.zeros((len(texts), len(vocab) + 1))
        for i, t in enumerate(texts):
            for w in t.lower().replace(".", " ").replace("!", " ").replace("?", " ").split():
                out[i, vocab.get(w, len(vocab))] += 1
        return out

    reference = load_window(str(data["train"]))
    shifted = detect_drift(reference, load_window(str(data["shifted"])), embedder=embed)
    same = detect_drift(reference, load_window(str(data["same"])), embedder=embed)
    assert shifted.check("embedding").status == "alert" and shifted.check("embedding").stats["domain_auc"] > 0.8
    assert same.check("embedding").status == "ok" and abs(same.check("embedding").stats["domain_auc"] - 0.5) < 0.1

    # Asking for a model that cannot be loaded (not installed, or offline) skips the check, nothing more.
    code = main(["--reference", str(data["train"]), "--current", str(data["same"]), "--out", str(tmp_path),
                 "--no-plots", "--patterns", str(data["patterns"]), "--embedding-model", "no/such-model"])
    check = next(c for c in json.loads((tmp_path / "report.json").read_text())["checks"] if c["name"] == "embedding")
    assert code == 0 and check["status"] == "skipped"
