"""The whole Stage 2 path on one machine: API -> SagemakerClassifier (boto3) -> local container -> the tiny
model, over real HTTP; and the container contract itself (/ping, /invocations)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from fastapi.testclient import TestClient

from core.categories import CATEGORIES
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
        # the category field comes back through the endpoint: the more of the two readings, flagged at 0.5
        normalized, original = (scorer.score([body[k]])[0].categories for k in ("normalized_text", "original_text"))
        assert body["categories"] == pytest.approx({c: round(max(normalized[c], original[c]), 6) for c in CATEGORIES},
                                                   abs=2e-6)
        by_classifier = [c for c, found in body["category_evidence"].items() if "classifier" in found]
        assert by_classifier == ([] if body["classification"] == "safe" else
                                 [c for c in CATEGORIES if body["categories"][c] >= 0.5])
        assert api.get("/ready").json()["classifier"]["backend"] == "sagemaker"


def test_cli_refuses_a_missing_model_dir(tmp_path, capsys):
    assert local_server.main(["--model-dir", str(tmp_path / "absent")]) == 1
    assert "does not exist" in capsys.readouterr().err


class _Broken:
    """A model that fails every request (a CUDA error, a bad artifact...)."""

    version = "broken-v1"

    def score(self, texts):
        from classifiers.base import ClassifierError

        raise ClassifierError("CUDA error: device-side assert triggered")


def test_a_failing_model_is_answered_as_the_hugging_face_toolkit_does_and_opens_the_breaker(monkeypatch):
    """The toolkit answers 400 when the handler raises, so SageMaker reports ModelError OriginalStatusCode 400: the
    client does not retry it, but three in a row open the breaker (the moderator then stops waiting on it)."""
    from classifiers.base import ClassifierError
    from classifiers.sagemaker import SagemakerClassifier

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    server, url = local_server.start_in_thread(_Broken())
    try:
        status, body = post(f"{url}/invocations", json.dumps({"inputs": ["a"]}).encode())
        assert status == 400 and "CUDA error" in body["message"]
        client = SagemakerClassifier("algospeak-stage2", endpoint_url=url, max_retries=2, breaker_failures=3,
                                     backoff_base=0.0)
        for _ in range(3):
            with pytest.raises(ClassifierError, match="OriginalStatusCode 400"):
                client.classify(["a"])
        assert client.invocations == 3 and client.breaker.state == "open"
    finally:
        server.shutdown()
        server.server_close()
