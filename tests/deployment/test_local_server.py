"""The whole Stage 2 path on one machine: API -> SagemakerClassifier (boto3) -> local container -> the tiny
model, over real HTTP; and the container contract itself (/ping, /invocations)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from fastapi.testclient import TestClient

from core.labels import LABELS
from core.settings import Settings
from deployment import local_server


@pytest.fixture(scope="module")
def container(scorer):
    server, url = local_server.start_in_thread(scorer)
    yield url
    server.shutdown()
    server.server_close()


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_container_contract(container, scorer):
    with urllib.request.urlopen(f"{container}/ping", timeout=10) as answer:
        assert answer.status == 200 and json.loads(answer.read())["model_version"] == scorer.version
    status, body = post(f"{container}/invocations", json.dumps({"inputs": ["a", "bb bb"]}).encode())
    assert status == 200 and len(body["predictions"]) == 2 and body["labels"] == list(LABELS)
    expected = [p.scores for p in scorer.score(["a", "bb bb"])]
    assert [p["scores"] for p in body["predictions"]] == expected
    assert post(f"{container}/invocations", b"nope")[0] == 400
    assert post(f"{container}/invocations", b'{"inputs": "a"}', "text/csv")[0] == 400
    assert post(f"{container}/nowhere", b"{}")[0] == 404


def test_api_to_client_to_container_end_to_end(container, scorer, monkeypatch):
    from main import create_app

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = Settings(classifier_backend="auto", sagemaker_endpoint_name="algospeak-stage2",
                        aws_endpoint_url=container, fallback_policy="error", pattern_db_reload_seconds=0,
                        prediction_log_url=None)
    with TestClient(create_app(settings)) as api:
        answer = api.post("/moderate", json={"text": "time to unal1ve myself"})
        assert answer.status_code == 200
        body = answer.json()
        assert body["stage2_status"] == "ok" and body["mock_mode"] is False
        assert body["model"] == {"backend": "sagemaker", "version": scorer.version}
        assert body["normalized_text"] != body["original_text"] and body["raw_scores"] is not None
        normalized, original = (scorer.score([body[k]])[0].scores for k in ("normalized_text", "original_text"))
        assert body["raw_scores"] == pytest.approx({k: round(v, 6) for k, v in original.items()}, abs=2e-6)
        chosen = original if body["classification"] == body["raw_classification"] != body["normalized_classification"] else normalized
        assert body["scores"] == pytest.approx({k: round(v, 6) for k, v in chosen.items()}, abs=2e-6)
        assert api.get("/ready").json()["classifier"]["backend"] == "sagemaker"


def test_cli_refuses_a_missing_model_dir(tmp_path, capsys):
    assert local_server.main(["--model-dir", str(tmp_path / "absent")]) == 1
    assert "does not exist" in capsys.readouterr().err
