"""The sagemaker backend against a fake runtime that times out, throttles, fails and answers garbage: every
fault is survived (retried, or answered by the fallback and said so, or a 503) and none is answered "safe"."""

from __future__ import annotations

import json
from typing import Any
import threading
import time

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


@pytest.mark.parametrize("fault", ["throttle", "error500", "model500"])
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
    assert sorted(len(r) for r in runtime.requests) == [1, 3, 3]  # sent concurrently: arrival order varies


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


def test_bodies_are_utf8_and_split_by_bytes(runtime):
    """64 texts of 20,000 CJK characters or emoji: escaped as \\uXXXX in one body that was ~15 MB, over
    SageMaker's 6 MB limit. Each body now stays within SAGEMAKER_MAX_PAYLOAD_BYTES and every text arrives, in order."""
    texts = [f"{i:02d} \u6740\u4eba " + "\U0001F480" * 19_995 for i in range(64)]  # ~80 kB each in UTF-8
    client = client_for(runtime, read_timeout=5.0, concurrency=1)
    assert client.max_payload_bytes == 5_000_000
    assert client.classify(texts) == [SCORES] * 64
    assert len(runtime.requests) > 1 and max(runtime.body_sizes) <= 5_000_000
    assert [t for request in runtime.requests for t in request] == texts
    assert sum(runtime.body_sizes) < 4 * sum(len(t) for t in texts)  # UTF-8, not 12-byte escaped surrogate pairs


def test_byte_budget_and_count_limit_both_split(runtime):
    client = client_for(runtime, max_payload_bytes=1000, batch_max_texts=4, concurrency=1)
    texts = ["\u00e9" * 200] * 5 + ["x"] * 6
    assert len(client.classify(texts)) == 11
    # two 402-byte texts fit in 1000 bytes, three do not; then the count limit (4) cuts the short ones
    assert [len(r) for r in runtime.requests] == [2, 2, 4, 3]
    assert max(runtime.body_sizes) <= 1000
    body = json.dumps({"inputs": texts[:2]}, ensure_ascii=False).encode("utf-8")
    assert runtime.body_sizes[0] == len(body)


def test_a_text_over_the_byte_budget_is_an_error_before_any_call(runtime):
    client = client_for(runtime, max_payload_bytes=1000)
    with pytest.raises(ClassifierError, match=r"\d+-byte request body, over the 1000-byte limit"):
        client.classify(["ok", "\u6740" * 400])
    assert runtime.requests == [] and client.breaker.state == "closed"


def test_lone_surrogates_still_make_valid_json(runtime):
    client = client_for(runtime)
    assert client.classify(["bad \ud800 half", "caf\u00e9"]) == [SCORES, SCORES]
    assert runtime.requests == [["bad \ud800 half", "caf\u00e9"]]


@pytest.mark.parametrize("fault", ["refuse", "garbage"])
def test_non_retriable_failures_do_not_open_the_breaker(runtime, fault):
    runtime.default = fault
    client = client_for(runtime, breaker_failures=3)
    for _ in range(6):
        with pytest.raises(ClassifierError) as info:
            client.classify(["a"])
        assert "circuit breaker" not in str(info.value)
    assert len(runtime.requests) == 6 and client.breaker.state == "closed"
    runtime.default = "ok"
    assert client.classify(["a"]) == [SCORES]


def test_a_refused_half_open_trial_hands_the_trial_back(runtime):
    now = [0.0]
    runtime.default = "throttle"
    client = client_for(runtime, max_retries=0)
    client.breaker = CircuitBreaker(2, 30.0, clock=lambda: now[0])
    for _ in range(2):
        with pytest.raises(ClassifierError):
            client.classify(["a"])
    assert client.breaker.state == "open"
    now[0] = 31.0
    runtime.default = "refuse"
    with pytest.raises(ClassifierError, match="refused"):
        client.classify(["a"])
    assert client.breaker.state == "half-open" and not client.breaker.trial_in_flight
    runtime.default = "ok"
    assert client.classify(["a"]) == [SCORES] and client.breaker.state == "closed"


def test_a_deterministic_model_error_is_not_retried(runtime):
    runtime.script = ["nonfinite"]
    client = client_for(runtime, max_retries=3)
    with pytest.raises(ClassifierError, match="non-finite"):
        client.classify(["a"])
    assert runtime.served == ["nonfinite"] and len(runtime.requests) == 1


def test_the_deadline_stops_the_retries(runtime):
    """A throttling endpoint with many retries left: the call gives up at the deadline, not after every retry."""
    runtime.default = "throttle"
    client = client_for(runtime, max_retries=20, deadline_seconds=1.0, backoff_base=0.3, backoff_max=0.3)
    started = time.monotonic()
    with pytest.raises(ClassifierError, match="^deadline of 1s"):
        client.classify(["a"])
    elapsed = time.monotonic() - started
    assert elapsed < 1.0 + 0.3 + 0.5, elapsed  # at most the deadline plus the attempt in flight
    assert 2 <= len(runtime.requests) < 21  # not every retry


def test_the_deadline_stops_the_chunks(runtime):
    runtime.default, runtime.delay = "timeout", 0.2  # slow but within the read timeout: every chunk succeeds
    client = client_for(runtime, read_timeout=2.0, batch_max_texts=1, deadline_seconds=0.5, concurrency=1)
    started = time.monotonic()
    with pytest.raises(ClassifierError, match="^deadline of 0.5s.*texts classified"):
        client.classify([str(i) for i in range(20)])
    assert time.monotonic() - started < 0.5 + 0.2 + 0.5
    assert 2 <= len(runtime.requests) <= 5 and client.breaker.failures == 0


def test_the_deadline_makes_the_api_fall_back(runtime):
    from main import create_app

    runtime.default = "timeout"
    settings = settings_for(runtime).model_copy(update={"sagemaker_max_retries": 20, "sagemaker_deadline_seconds": 1.0})
    with TestClient(create_app(settings)) as api:
        started = time.monotonic()
        body = api.post("/moderate", json={"text": "have a lovely day"}).json()
        assert body["stage2_status"] == "fallback:embedded"
        assert time.monotonic() - started < 3.0


def test_the_new_settings_reach_the_client(runtime):
    settings = Settings(sagemaker_endpoint_name="stage2", aws_endpoint_url=runtime.url,
                        sagemaker_max_payload_bytes=123_456, sagemaker_deadline_seconds=2.5)
    client = SagemakerClassifier.from_settings(settings)
    assert (client.max_payload_bytes, client.deadline_seconds) == (123_456, 2.5)
    defaults = Settings()
    assert (defaults.sagemaker_max_payload_bytes, defaults.sagemaker_deadline_seconds) == (5_000_000, 10.0)


# --------------------------------------------------------------------------------------------- real failures


def test_a_read_timeout_is_not_retried_and_counts_toward_the_breaker(runtime):
    """The invocation may still be running on the endpoint's one worker: a retry would queue a second copy."""
    runtime.default = "timeout"  # answers after 1 s, past the 0.3 s read timeout
    client = client_for(runtime, max_retries=3, breaker_failures=2)
    with pytest.raises(ClassifierError, match="read timeout"):
        client.classify(["a"])
    assert len(runtime.requests) == 1 and client.breaker.failures == 1
    with pytest.raises(ClassifierError):
        client.classify(["a"])
    assert client.breaker.state == "open"


@pytest.mark.parametrize("fault", ["model400", "nonfinite"])
def test_a_model_failing_every_request_opens_the_breaker(runtime, fault):
    """The Hugging Face toolkit answers 400 when the handler raises (a ModelError with OriginalStatusCode 400):
    not retried, but a model that fails every request must open the breaker so the moderator stops waiting on it."""
    runtime.default = fault
    client = client_for(runtime, max_retries=3, breaker_failures=3)
    for _ in range(3):
        with pytest.raises(ClassifierError, match="the model failed on this request"):
            client.classify(["a"])
    assert len(runtime.requests) == 3  # none retried
    with pytest.raises(ClassifierError, match="circuit breaker open"):
        client.classify(["a"])
    assert len(runtime.requests) == 3


def test_the_chunks_of_one_call_are_in_flight_together_and_come_back_in_order(runtime):
    """8 invocations with 4 in flight: the fake endpoint sees 4 requests at once (it holds each until 4 have
    arrived), and the answers are put back in the order of the texts."""
    runtime.gate = threading.Barrier(4, timeout=5)
    client = client_for(runtime, read_timeout=5.0, batch_max_texts=2, concurrency=4)
    texts = [f"text {i}" for i in range(16)]
    runtime.echo = True
    scores = client.classify(texts)
    assert len(runtime.requests) == 8 and runtime.gate.broken is False
    assert [s["safe"] for s in scores] == [SCORES["safe"] + i / 1000 for i in range(16)]


def test_concurrent_callers_from_threads_share_the_connection_pool(runtime):
    """Once the API calls the client off the event loop: 16 threads classify at once, each gets its own answer,
    and the connection pool holds a connection per thread (no urllib3 'pool is full' discards)."""
    import logging

    runtime.echo = True
    client = client_for(runtime, read_timeout=5.0, concurrency=4)
    discarded = []
    handler = logging.Handler()
    handler.emit = lambda record: discarded.append(record.getMessage()) if "pool is full" in record.getMessage() else None
    logging.getLogger("urllib3.connectionpool").addHandler(handler)
    results: dict[int, list] = {}
    barrier = threading.Barrier(16)

    def call(i: int) -> None:
        barrier.wait()
        results[i] = client.classify([f"text {i}"])

    try:
        threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        logging.getLogger("urllib3.connectionpool").removeHandler(handler)
    assert all(results[i][0]["safe"] == SCORES["safe"] + i / 1000 for i in range(16))
    assert discarded == []


def test_recommended_settings_come_from_the_load_test():
    from classifiers.sagemaker import recommended_settings

    load = {"method": {"texts_per_invocation": 64}, "sustainable_at_concurrency": 2,
            "steps": [{"concurrency": 1, "latency_p99_ms": 2100.0}, {"concurrency": 2, "latency_p99_ms": 2900.0}]}
    settings = recommended_settings(load)
    assert settings["SAGEMAKER_BATCH_MAX_TEXTS"] == 64 and settings["SAGEMAKER_CONCURRENCY"] == 2
    assert settings["SAGEMAKER_TIMEOUT_SECONDS"] == 8.7 < 60
    assert settings["SAGEMAKER_DEADLINE_SECONDS"] >= settings["SAGEMAKER_TIMEOUT_SECONDS"]
    slow = recommended_settings({**load, "steps": [{"concurrency": 2, "latency_p99_ms": 40_000.0}]})
    assert slow["SAGEMAKER_TIMEOUT_SECONDS"] == 55.0  # under SageMaker's own 60 s


def test_defaults_are_sized_for_a_t4():
    """256 texts at 32 per invocation, 4 in flight, 8 s read timeout: the old 64 texts and 5 s timeout made a
    256-text batch 8 sequential calls that always passed the 10 s deadline on a T4."""
    defaults = Settings()
    assert defaults.sagemaker_batch_max_texts == 32 and defaults.sagemaker_concurrency == 4
    assert 5 < defaults.sagemaker_timeout_seconds < 60


def test_ready_reports_stage2_from_the_breaker_without_invoking_the_endpoint(runtime):
    """A fleet of API pods probed every few seconds must not each invoke the endpoint, nor all go not-ready while
    the fallback can answer: /ready reads the breaker."""
    from main import create_app

    for policy, status_when_open in (("embedded", 200), ("error", 503)):
        runtime.requests.clear()
        with TestClient(create_app(settings_for(runtime, policy))) as api:
            for _ in range(5):
                assert api.get("/ready").status_code == 200
            assert runtime.requests == []  # no invocation per probe
            classifier = api.app.state.moderator.classifier
            for _ in range(classifier.breaker.failures_to_open):
                classifier.breaker.failure()
            answer = api.get("/ready")
            assert answer.status_code == status_when_open, (policy, answer.json())
            assert runtime.requests == []


def test_a_slow_endpoint_does_not_hold_up_the_api(runtime):
    """The real client, the real app: while /moderate waits on an endpoint that has not answered, /health and
    /ready answer and another /moderate/batch is accepted; then the endpoint answers and the first request gets it."""
    from main import create_app

    runtime.hold = threading.Event()
    settings = settings_for(runtime).model_copy(update={"sagemaker_timeout_seconds": 20.0,
                                                        "sagemaker_deadline_seconds": 30.0})
    with TestClient(create_app(settings)) as api:
        answers: dict[str, Any] = {}
        slow = threading.Thread(target=lambda: answers.update(
            first=api.post("/moderate", json={"text": "have a lovely day"})))
        slow.start()
        for _ in range(2000):  # until the endpoint holds the request
            if runtime.requests:
                break
            time.sleep(0.005)
        assert runtime.requests, "the request never reached the endpoint"
        assert api.get("/health").status_code == 200
        assert api.get("/ready").status_code == 200
        assert slow.is_alive() and "first" not in answers  # still waiting on the endpoint
        runtime.hold.set()
        slow.join(timeout=30)
        assert answers["first"].status_code == 200
        assert answers["first"].json()["stage2_status"] == "ok"
