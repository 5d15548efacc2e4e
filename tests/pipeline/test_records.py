"""Step records (core/records.py): written with their inputs' checksums, read back only when they are the
step's own and their inputs have not changed since."""

from __future__ import annotations

import json

import pytest

from core import records


def test_a_record_links_its_inputs_and_reads_back(tmp_path):
    first = records.write("prepare", {"dataset_dir": str(tmp_path)}, root=tmp_path)
    second = records.write("ingest", {"manifest_uri": "s3://b/m.json"}, {"prepare": first}, root=tmp_path)
    doc = records.read("ingest", root=tmp_path)
    assert doc["inputs"]["prepare"] == {"record": str(first), "sha256": records.sha256_file(first)}
    assert doc["outputs"]["manifest_uri"] == "s3://b/m.json" and doc["_path"] == str(second)
    assert doc["versions"]["python"] and doc["step"] == "ingest"


def test_missing_wrong_and_stale_records_are_one_line_refusals(tmp_path):
    with pytest.raises(records.RecordError, match="no train record .* run `python -m pipeline --from train`"):
        records.read("train", root=tmp_path)
    first = records.write("prepare", {}, root=tmp_path)
    with pytest.raises(records.RecordError, match="is not a ingest record"):
        records.read("ingest", path=first)
    records.write("ingest", {}, {"prepare": first}, root=tmp_path)
    doc = json.loads(first.read_text())
    doc["outputs"]["records"] = 1  # the preparation ran again after ingestion
    first.write_text(json.dumps(doc))
    with pytest.raises(records.RecordError) as err:
        records.read("ingest", root=tmp_path)
    assert "is stale" in str(err.value) and "\n" not in str(err.value)


def test_require_file_refuses_a_missing_artifact(tmp_path):
    records.write("train", {"model_dir": str(tmp_path / "gone")}, root=tmp_path)
    with pytest.raises(records.RecordError, match="model .* is missing"):
        records.require_file(records.read("train", root=tmp_path), "model_dir", "model")


def test_records_go_where_pipeline_out_says(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_OUT", str(tmp_path))
    assert records.record_path("deploy") == tmp_path / "deploy" / "record.json"
    with pytest.raises(ValueError, match="unknown step"):
        records.record_path("nope")


def test_the_gate_step_stops_the_run_with_the_gates_reasons(tmp_path, monkeypatch):
    """What `python -m pipeline --emulate --strict` ends with for a random model: the gate step's reasons."""
    from argparse import Namespace

    from pipeline import run

    monkeypatch.setenv("PIPELINE_OUT", str(tmp_path))
    evaluate = records.write("evaluate", {"report": "r.json"})
    records.write("gate", {"passed": False, "reasons": ["macro-F1 0.1300 is below the minimum 0.6000"],
                           "candidate": {"backend": "transformers", "version": "x"}}, {"evaluate": evaluate})
    ctx = run.Context(Namespace(), tmp_path, emulate=True)
    with pytest.raises(run.PipelineError, match="the gate failed: macro-F1 0.1300 is below the minimum"):
        run.step_gate(ctx)
    assert run.main(["--emulate", "--from", "train"]) == 1  # an emulated run starts empty: from prepare only
