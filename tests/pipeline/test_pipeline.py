"""The whole chain through the one command, offline: `python -m pipeline --emulate` on a tiny model (moto_server,
the local container serving the deployed archive, the API answering from that endpoint), then every record's
links, and the checks that the emulation relaxes refusing that same (all but random) model when strict."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("moto")

from core import probes  # noqa: E402
from core import records  # noqa: E402
from pipeline.run import main  # noqa: E402

LINKS = {"prepare": [], "ingest": ["prepare"], "train": ["ingest"], "evaluate": ["train"], "gate": ["evaluate"],
         "deploy": ["gate", "train"], "monitor": ["deploy"]}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pipeline")
    assert main(["--emulate", "--out", str(out), "--emulate-rows", "160"]) == 0
    return out


def test_the_emulated_run_completes_and_every_record_links_the_previous(run, monkeypatch):
    monkeypatch.setenv("PIPELINE_OUT", str(run))
    docs = {step: records.read(step) for step in records.STEPS}  # each read also checks its inputs are unchanged
    for step, previous in LINKS.items():
        assert sorted(docs[step]["inputs"]) == sorted(previous), step
        for name in previous:
            assert Path(docs[step]["inputs"][name]["record"]) == records.record_path(name), (step, name)
    prepared, ingested = docs["prepare"]["outputs"], docs["ingest"]["outputs"]
    assert ingested["dataset_dir"] == prepared["dataset_dir"] and ingested["manifest_uri"].startswith("s3://")
    train = docs["train"]["outputs"]
    assert train["status"] == "Completed" and train["manifest"] == ingested["manifest_uri"]
    assert Path(train["model_dir"], "adapter_config.json").is_file()
    # one model through the chain: the one trained is the one evaluated, gated, deployed and answering the API
    version = docs["evaluate"]["outputs"]["model"]["version"]
    assert docs["evaluate"]["outputs"]["model"]["backend"] == "transformers"
    assert docs["gate"]["outputs"]["candidate"]["version"] == version and docs["gate"]["outputs"]["passed"]
    assert docs["deploy"]["outputs"]["artifact_version"] == version
    monitor = docs["monitor"]["outputs"]
    assert monitor["checks"]["endpoint_status"]["status"] == "ok"
    assert monitor["checks"]["api_answers_from_deployed_model"]["status"] == "ok"
    assert {a["model"]["version"] for a in monitor["api_answers"]} == {docs["deploy"]["outputs"]["served_version"]}
    summary = json.loads((run / "pipeline.json").read_text())
    assert summary["status"] == "completed" and len(summary["relaxed_checks"]) == 3


def test_the_strict_checks_refuse_the_emulated_model(run, monkeypatch):
    """What --emulate relaxes, applied to the model it trained (a tiny random model after two steps)."""
    from core.settings import Settings
    from deployment import model_deployment as md
    from core.llm_inference import LabelScorer, render_response
    from deployment.local_server import start_in_thread
    from monitoring.model_monitoring import check_probe_answer
    from training.model_evaluation import gate

    monkeypatch.setenv("PIPELINE_OUT", str(run))
    report = json.loads(Path(records.read("evaluate")["outputs"]["report"]).read_text())
    verdict = gate(report, None, Settings(_env_file=None))  # the shipped thresholds
    assert not verdict["passed"] and any("GATE_MIN_MACRO_F1" in r for r in verdict["reasons"])

    scorer = LabelScorer.from_dir(records.read("train")["outputs"]["model_dir"],
                                  base_model=records.read("train")["outputs"]["base_model"])
    answer = render_response(scorer.score(list(probes.TEXTS)), scorer.version)
    assert probes.failures(answer["predictions"])  # the labelled probes
    assert check_probe_answer(json.dumps(answer).encode()).status == "fail"  # the monitoring probe
    for name, value in (("AWS_ACCESS_KEY_ID", "emulated"), ("AWS_SECRET_ACCESS_KEY", "emulated")):
        monkeypatch.setenv(name, value)  # the client signs its requests, even to the local container
    server, url = start_in_thread(scorer)
    try:  # the deploy smoke test, through the API's client and the local container
        with pytest.raises(md.DeploymentError, match="labelled probe"):
            md.smoke_test("algospeak-emulated", "us-east-1", url, expect_harmful=True)
    finally:
        server.shutdown()
        server.server_close()


def test_a_stale_gate_and_a_missing_model_are_refused(run, tmp_path, monkeypatch, capsys):
    import shutil

    from deployment import model_deployment as md
    from training import model_evaluation as ev

    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("mlflow.db", "container", "base-model*"))
    monkeypatch.setenv("PIPELINE_OUT", str(copy))
    # records name absolute paths of the original run: point the copy's at itself
    for path in copy.glob("*/record.json"):
        path.write_text(path.read_text().replace(str(run), str(copy)))
    for step in records.STEPS:  # re-link (the rewrite changed every checksum)
        doc = json.loads(records.record_path(step).read_text())
        for link in doc["inputs"].values():
            link["sha256"] = records.sha256_file(link["record"])
        records.record_path(step).write_text(json.dumps(doc, indent=2))

    args = Namespace(gate=None, force=False, training_job=None, model_artifact=None, model_dir=None)
    md.inputs_from_records(args)  # consistent: the gate and the model it judged
    train = records.record_path("train")
    doc = json.loads(train.read_text())
    doc["outputs"]["job_name"] += "-retrained"  # a new training run after the evaluation
    train.write_text(json.dumps(doc))
    args = Namespace(gate=None, force=False, training_job=None, model_artifact=None, model_dir=None)
    with pytest.raises(md.DeploymentError, match="stale"):
        md.inputs_from_records(args)

    shutil.rmtree(doc["outputs"]["model_dir"].replace(str(run), str(copy)), ignore_errors=True)
    doc["outputs"]["model_dir"] = str(copy / "training" / "model")
    train.write_text(json.dumps(doc))
    shutil.rmtree(copy / "training" / "model", ignore_errors=True)
    capsys.readouterr()
    assert ev.main(["--gate", "--data", str(copy / "prepared" / "test.jsonl"), "--no-mlflow",
                    "--out", str(tmp_path / "e")]) == 1
    err = capsys.readouterr().err
    assert "names no local model directory" in err and err.count("\n") == 1
