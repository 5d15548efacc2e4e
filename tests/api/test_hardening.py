"""Issue 13 over HTTP: nothing a client sends or a slow dependency does freezes the server or slips harm past it."""

from core.labels import LABELS
from normalizer.decode import Budget

ISSUE_UNIT = "4.l.i.k.l.3.$.0.a.$.1.o.4.l.a.@.i.i.!.o.o.0.6.|.1.!.|.|.4.t.t.t.3.!.!.!.o.7.@.t zz "


def test_control_characters_do_not_hide_algospeak(client):
    """Finding 6: 'go un\\u0001alive yourself' was safe with no algospeak; 'k\\u0000ill yourself' lost severity."""
    body = client.post("/moderate", json={"text": "go un\u0001alive yourself"}).json()
    assert body["algospeak_detected"] and body["normalized_text"] == "go kill yourself"
    visible = client.post("/moderate", json={"text": "go unalive yourself"}).json()
    assert body["normalized_classification"] == visible["normalized_classification"]  # the same reading
    hidden = client.post("/moderate", json={"text": "k\u0000ill yourself"}).json()
    plain = client.post("/moderate", json={"text": "kill yourself"}).json()
    assert hidden["normalized_text"] == "kill yourself"
    assert hidden["normalized_classification"] == plain["classification"]
    assert LABELS.index(hidden["classification"]) >= LABELS.index(plain["classification"])


def test_the_spaced_leet_input_answers_promptly(client):
    """Finding 1: at 5,000 characters (this server's limit) the issue's input took about 19 s; now milliseconds."""
    text = (ISSUE_UNIT * 100)[:5_000]
    response = client.post("/moderate", json={"text": text})
    assert response.status_code == 200
    assert response.json()["stage1_status"] == "ok"
    assert response.elapsed.total_seconds() < 2


def test_a_degraded_normalization_is_reported(client, monkeypatch):
    monkeypatch.setattr(Budget, "for_text", staticmethod(lambda length: Budget(0)))
    body = client.post("/moderate", json={"text": "k 1 l l them all"}).json()
    assert body["stage1_status"] == "degraded"
    assert body["normalized_text"] == "k 1 l l them all"


# ---------------------------------------------------------------------------------------------- nothing on the loop
import queue  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402

from core.settings import DEFAULT_PATTERN_DB, Settings  # noqa: E402
from moderator import Moderator  # noqa: E402
from normalizer.reload import ReloadingNormalizer  # noqa: E402
from tests.api.conftest import LiveServer  # noqa: E402
from tests.scripted import Tagged  # noqa: E402


def _distinct_spaced_runs(size: int, seed: int) -> str:
    import random

    rng = random.Random(seed)
    runs = []
    while sum(map(len, runs)) < size:
        runs.append(".".join(rng.choices("aeiloqstkd0134567@$!|+*", k=40)) + " zz ")
    return "".join(runs)[:size]


def _health_while(client: httpx.Client, busy: threading.Thread, min_polls: int = 5) -> list[float]:
    """/health latencies (seconds) measured while `busy` runs."""
    latencies = []
    busy.start()
    time.sleep(0.05)
    while busy.is_alive() or len(latencies) < min_polls:
        started = time.perf_counter()
        response = client.get("/health")
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200
        time.sleep(0.01)
    busy.join()
    return latencies


@pytest.mark.slow
def test_health_answers_within_50ms_while_the_worst_input_is_moderated(client, server_settings):
    """The issue's worst inputs at this server's limits (16 texts of 5,000 characters), again and again, while
    /health is polled: before, moderation ran on the event loop and /health waited for all of it."""
    texts = [(ISSUE_UNIT * 100)[: server_settings.max_text_chars]] * 8
    texts += [_distinct_spaced_runs(server_settings.max_text_chars, seed) for seed in range(8)]
    port = client.base_url.port
    done = []

    def moderate_worst() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as other:
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                response = other.post("/moderate/batch", json={"texts": texts})
                assert response.status_code == 200
                done.append(response.elapsed.total_seconds())

    latencies = _health_while(client, threading.Thread(target=moderate_worst))
    assert done, "the worst input was never moderated"
    assert len(latencies) >= 5
    # Percentiles, not the maximum: four worker threads share the GIL with the loop (a switch every 5 ms), so on a
    # busy 2-core machine a poll waits a few interpreter slices (measured: p50 about 22 ms, p90 about 35 ms).
    # Moderating on the loop (the old code) holds a poll behind a 150-250 ms batch: p50 near 75 ms or more.
    ordered = sorted(latencies)
    p50, p90 = ordered[len(ordered) // 2], ordered[int(0.9 * (len(ordered) - 1))]
    assert p50 < 0.050 and p90 < 0.100, (
        f"/health p50 {p50 * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms "
        f"over {len(ordered)} polls (batches took {done})")


class BlackHole(Tagged):
    """A Stage 2 that never answers until released (a silent endpoint)."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)

    def classify(self, texts):
        self.entered.release()
        self.release.wait(30)
        return super().classify(texts)


@pytest.fixture
def black_hole(tmp_path):
    settings = Settings(
        environment="test", pattern_db_path=DEFAULT_PATTERN_DB, pattern_db_reload_seconds=0,
        prediction_log_url=f"sqlite:///{tmp_path / 'log.db'}", moderation_workers=2, moderation_queue_size=2,
        _env_file=None,
    )  # fmt: skip
    classifier = BlackHole()
    moderator = Moderator(ReloadingNormalizer(DEFAULT_PATTERN_DB, 0), classifier, settings)
    server = LiveServer(settings, moderator)
    with server as c:
        try:
            yield server, c, classifier
        finally:
            classifier.release.set()


@pytest.mark.slow
def test_a_black_hole_endpoint_neither_freezes_health_nor_queues_without_bound(black_hole):
    server, client, classifier = black_hole
    answers: queue.Queue = queue.Queue()

    def post(text: str) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=60) as other:
            answers.put(other.post("/moderate/batch", json={"texts": [text]}))

    stuck = [threading.Thread(target=post, args=(f"text {i}",)) for i in range(2)]
    for t in stuck:
        t.start()
    assert classifier.entered.acquire(timeout=10) and classifier.entered.acquire(timeout=10)
    # Both workers wait on the endpoint; the queue (2) is full: more work is refused at once, with Retry-After.
    started = time.perf_counter()
    refused = client.post("/moderate", json={"text": "one more"})
    assert time.perf_counter() - started < 1.0
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert "busy" in refused.json()["detail"]
    assert client.post("/moderate/batch", json={"texts": ["and more"]}).status_code == 503
    # The loop is free: /health answers at once although every worker is stuck.
    latencies = []
    for _ in range(20):
        t = time.perf_counter()
        assert client.get("/health").status_code == 200
        latencies.append(time.perf_counter() - t)
    assert max(latencies) < 0.050, latencies
    classifier.release.set()
    for t in stuck:
        t.join(30)
    assert [answers.get().status_code for _ in stuck] == [200, 200]
    assert client.post("/moderate", json={"text": "after the storm"}).status_code == 200


@pytest.mark.slow
def test_a_full_prediction_log_queue_drops_and_counts_instead_of_blocking(client, monkeypatch):
    """Finding 4: with the log's queue full, every record waited 2 s on the loop (43.7 s for one 64-text batch)."""
    import monitoring.prediction_log as prediction_log
    from monitoring.metrics import LOG_DROPPED

    real_put = queue.Queue.put

    def always_full(self, item, block=True, timeout=None):
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], dict):
            if not block or timeout is not None and timeout <= 0:
                raise queue.Full
            time.sleep(timeout or 2.0)  # what a blocking put would cost
            raise queue.Full
        return real_put(self, item, block, timeout)

    monkeypatch.setattr(prediction_log.queue.Queue, "put", always_full)
    before = LOG_DROPPED.labels(reason="queue_full")._value.get()
    started = time.perf_counter()
    response = client.post("/moderate/batch", json={"texts": [f"text {i}" for i in range(16)]})
    elapsed = time.perf_counter() - started
    monkeypatch.undo()
    assert response.status_code == 200
    assert elapsed < 1.0, f"{elapsed:.1f} s"
    assert LOG_DROPPED.labels(reason="queue_full")._value.get() - before == 16
    metrics = client.get("/metrics").text
    assert 'algospeak_prediction_log_dropped_total{reason="queue_full"}' in metrics


# ---------------------------------------------------------------------------------------------- point 8
import json  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402

from tests.scripted import SAFE, down  # noqa: E402

KEY = "k" * 24


def test_405_says_which_methods_are_allowed(client):
    response = client.get("/moderate")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert client.post("/health").headers["allow"] == "GET"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"])
def test_utf16_and_utf32_bodies_are_refused(client, encoding):
    body = json.dumps({"text": "go k1ll yourself"}).encode(encoding)
    response = client.post("/moderate", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "not UTF-8" in response.json()["detail"]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_a_utf16_body_is_known_by_its_byte_order_mark_alone(client, encoding):
    """A byte order mark and CJK text: no NUL byte in the first four bytes, still UTF-16, still refused as such."""
    body = "\ufeff中文中文".encode(encoding)
    assert b"\x00" not in body[:4]
    response = client.post("/moderate", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "not UTF-8" in response.json()["detail"]


def test_a_text_plain_body_gets_a_message_naming_the_content_type(client):
    response = client.post("/moderate", content=b'{"text": "hello"}', headers={"content-type": "text/plain"})
    assert response.status_code == 422
    assert "application/json" in response.json()["detail"] and "text/plain" in response.json()["detail"]


def test_real_endpoints_keep_their_metric_label_after_random_paths(client):
    for i in range(80):
        client.get(f"/no-such-path-{i}")
    client.get("/health")
    metrics = client.get("/metrics").text
    assert 'path="/health"' in metrics and 'path="other"' in metrics
    assert "no-such-path" not in metrics


@pytest.fixture
def guarded(tmp_path):
    """A server with an API key, a SageMaker-like Stage 2 that fails with its URL, no fallback, and a database
    copy that the test breaks."""
    db = tmp_path / "patterns.json"
    shutil.copy(DEFAULT_PATTERN_DB, db)
    settings = Settings(environment="test", api_key=KEY, pattern_db_path=db, pattern_db_reload_seconds=0.01,
                        prediction_log_url="", fallback_policy="error", body_read_timeout_seconds=0.5,
                        _env_file=None)  # fmt: skip
    classifier = down("Could not connect to the endpoint URL: https://runtime.sagemaker.eu-west-1.amazonaws.com/"
                      "endpoints/prod-moderation-7/invocations")  # fmt: skip
    moderator = Moderator(ReloadingNormalizer(db, 0.01), classifier, settings)
    server = LiveServer(settings, moderator)
    with server as c:
        yield server, c, db
    moderator.normalizer.close()


def test_ready_shows_details_only_with_the_key_and_never_paths_or_urls(guarded):
    server, client, db = guarded
    db.write_text("{ not json", encoding="utf-8")
    deadline = time.monotonic() + 10
    while client.get("/ready", headers={"X-API-Key": KEY}).json().get("pattern_db_error") is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    anonymous = client.get("/ready")
    assert anonymous.status_code == 503
    assert anonymous.json() == {"status": "not ready"}  # no paths, no endpoint name, no versions
    detailed = client.get("/ready", headers={"X-API-Key": KEY}).json()
    assert "not valid JSON" in detailed["pattern_db_error"] and "patterns.json" in detailed["pattern_db_error"]
    text = json.dumps(detailed)
    assert str(db.parent) not in text and "amazonaws.com" not in text and "<url>" in detailed["reason"]
    # A 503 from moderation names the failure but not the internal endpoint URL.
    failed = client.post("/moderate", json={"text": "hello"}, headers={"X-API-Key": KEY})
    assert failed.status_code == 503
    assert "amazonaws.com" not in failed.text and "Could not connect" in failed.json()["detail"]


@pytest.mark.slow
def test_an_incomplete_body_is_not_held_open(guarded):
    server, _, _ = guarded
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(b"POST /moderate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"X-API-Key: " + KEY.encode() + b"\r\nContent-Length: 100\r\n\r\n{\"text\": ")  # fmt: skip
        started = time.monotonic()
        answer = raw.recv(4096)
        assert b" 408 " in answer.split(b"\r\n")[0]
        assert time.monotonic() - started < 5


def test_a_flood_of_ready_probes_the_classifier_one_call_at_a_time(tmp_path):
    settings = Settings(environment="test", pattern_db_path=DEFAULT_PATTERN_DB, pattern_db_reload_seconds=0,
                        prediction_log_url="", _env_file=None)  # fmt: skip
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def slow_probe():
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.2)
        with lock:
            in_flight[0] -= 1
        return [dict(SAFE)]

    classifier = Tagged(probe=slow_probe)
    server = LiveServer(settings, Moderator(ReloadingNormalizer(DEFAULT_PATTERN_DB, 0), classifier, settings))
    with server:
        def ready(_):
            with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as c:
                return c.get("/ready").status_code

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=20) as pool:
            codes = list(pool.map(ready, range(20)))
    assert codes == [200] * 20
    assert most[0] == 1
    assert sum(1 for call in classifier.calls if call == ["readiness probe"]) < 20


def test_answers_are_bounded_matches_capped_with_a_count_of_the_rest(client, server_settings):
    """Finding 3: a 2 MB request of '@ss ' answered with 122.8 MB of matches. Now at most MAX_MATCHES_PER_TEXT
    matches per text come back, with the number left out; the normalized text is still complete."""
    text = ("@ss " * 2_000)[: server_settings.max_text_chars]
    body = client.post("/moderate/batch", json={"texts": [text] * 4}).json()
    cap = server_settings.max_matches_per_text
    for result in body["results"]:
        assert len(result["matches"]) == cap
        assert result["matches_omitted"] == text.count("@ss") - cap
        assert "@ss" not in result["normalized_text"]
    normalized = client.post("/normalize", json={"text": text}).json()
    assert len(normalized["matches"]) == cap and normalized["matches_omitted"] == text.count("@ss") - cap
    small = client.post("/moderate", json={"text": "go k1ll yourself"}).json()
    assert small["matches_omitted"] == 0 and len(small["matches"]) == 1
