"""The sagemaker backend against a fake runtime that times out, throttles, fails and answers garbage: every
fault is survived (retried, or answered by the fallback and said so, or a 503) and none is answered "safe"."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from classifiers.base import ClassifierError
from classifiers.sagemaker import CircuitBreaker, SagemakerClassifier
from core.labels import LABELS
from core.settings import Settings
from tests.deployment.fake_runtime import SCORES, FakeRuntime

pytest.importorskip("boto3")


@pytest.fixture
def runtime(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    fake = FakeRuntime(delay=1.0)
    yield fake
    fake.close()


def client_for(runtime: FakeRuntime, **overrides) -> SagemakerClassifier:
    options = dict(endpoint_url=runtime.url, read_timeout=0.3, connect_timeout=0.5, max_retries=2,
                   backoff_base=0.0, breaker_failures=3, breaker_reset_seconds=60)
    return SagemakerClassifier("stage2", **{**options, **overrides})


def settings_for(runtime: FakeRuntime, policy: str = "embedded") -> Settings:
    return Settings(classifier_backend="sagemaker", sagemaker_endpoint_name="stage2", aws_endpoint_url=runtime.url,
                    sagemaker_timeout_seconds=0.3, sagemaker_max_retries=1, sagemaker_backoff_base_seconds=0.0,
                    fallback_policy=policy, pattern_db_reload_seconds=0, prediction_log_url=None)


@pytest.mark.parametrize("fault", ["timeout", "throttle", "error500", "model500"])
def test_transient_faults_are_retried(runtime, fault):
    runtime.script = [fault, fault]
    client = client_for(runtime)
    assert client.classify(["a", "b"]) == [SCORES, SCORES]
    assert runtime.served[:3] == [fault, fault, "ok"]
    assert client.version == "fake-v1" and client.breaker.state == "closed"


@pytest.mark.parametrize("fault", ["garbage", "wrong_count", "nan", "refuse"])
def test_bad_answers_are_errors_and_not_retried(runtime, fault):
    runtime.script = [fault]
    client = client_for(runtime)
    with pytest.raises(ClassifierError):
        client.classify(["a", "b"])
    assert len(runtime.requests) == 1


def test_persistent_failure_gives_up_after_the_retries(runtime):
    runtime.default = "error500"
    client = client_for(runtime, max_retries=2)
    with pytest.raises(ClassifierError, match="after 3 attempts"):
        client.classify(["a"])
    assert len(runtime.requests) == 3


def test_circuit_breaker_opens_then_lets_one_trial_through(runtime):
    now = [0.0]
    runtime.default = "throttle"
    client = client_for(runtime, max_retries=0)
    client.breaker = CircuitBreaker(3, 30.0, clock=lambda: now[0])
    for _ in range(3):
        with pytest.raises(ClassifierError):
            client.classify(["a"])
    assert client.breaker.state == "open"
    with pytest.raises(ClassifierError, match="circuit breaker open"):
        client.classify(["a"])
    assert len(runtime.requests) == 3  # the open breaker did not call
    now[0] = 31.0
    runtime.default = "ok"
    assert client.classify(["a"]) == [SCORES]  # the half-open trial succeeds and closes it
    assert client.breaker.state == "closed"
    runtime.default = "throttle"
    now[0] = 100.0
    client.breaker.failures = 2
    with pytest.raises(ClassifierError):
        client.classify(["a"])
    assert client.breaker.state == "open"


def test_large_batches_are_split(runtime):
    client = client_for(runtime, batch_max_texts=3)
    assert len(client.classify([str(i) for i in range(7)])) == 7
    assert [len(r) for r in runtime.requests] == [3, 3, 1]


def test_concurrent_calls_are_merged_into_one_invocation(runtime):
    client = client_for(runtime, batch_wait_ms=100)
    results: dict[int, list] = {}
    barrier = threading.Barrier(4)

    def call(i: int) -> None:
        barrier.wait()
        results[i] = client.classify([f"text {i}", f"more {i}"])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(len(results[i]) == 2 for i in range(4))
    assert len(runtime.requests) < 4 and sum(len(r) for r in runtime.requests) == 8
    for texts in runtime.requests:  # each caller's texts stay together, in order
        assert all(texts[j].split()[-1] == texts[j + 1].split()[-1] for j in range(0, len(texts), 2))


@pytest.mark.parametrize("fault", ["timeout", "throttle", "error500", "garbage", "nan", "wrong_count"])
def test_the_api_never_answers_a_failure_as_plain_safe(runtime, fault):
    from main import create_app

    runtime.default = fault
    with TestClient(create_app(settings_for(runtime, "embedded"))) as api:
        answer = api.post("/moderate", json={"text": "have a lovely day"})
        assert answer.status_code == 200
        body = answer.json()
        assert body["stage2_status"] == "fallback:embedded"
        assert body["model"]["backend"] == "embedded" and body["mock_mode"] is True
    with TestClient(create_app(settings_for(runtime, "error"))) as api:
        answer = api.post("/moderate", json={"text": "have a lovely day"})
        assert answer.status_code == 503


def test_the_api_answers_through_the_endpoint_when_it_is_healthy(runtime):
    from main import create_app

    with TestClient(create_app(settings_for(runtime))) as api:
        body = api.post("/moderate/batch", json={"texts": ["have a lovely day", "go k1ll yourself"]}).json()
        assert [r["stage2_status"] for r in body["results"]] == ["ok", "ok"]
        assert body["results"][0]["model"] == {"backend": "sagemaker", "version": "fake-v1"}
        assert body["results"][0]["classification"] == "safe" and set(body["results"][0]["scores"]) == set(LABELS)
        assert api.get("/ready").status_code == 200
