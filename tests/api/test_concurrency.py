"""Concurrent /moderate calls each get their own answer (the micro-batcher merges them into one classifier
call and must hand every result back to its own caller); /moderate/batch keeps input order; /ready follows
the classifier's probe and is not fooled by malformed scores.

A real server (uvicorn in a thread) with a deterministic classifier whose scores depend on the text alone.
"""

from __future__ import annotations

import asyncio
import math
import re

import httpx
import pytest

from classifiers.base import ClassifierError
from core.labels import LABELS
from core.settings import DEFAULT_PATTERN_DB, Settings
from moderator import Moderator
from normalizer.reload import ReloadingNormalizer
from tests.api.conftest import LiveServer
from tests.scripted import Tagged, tagged_scores

N = 100


@pytest.fixture(scope="module")
def served():
    settings = Settings(
        environment="test", pattern_db_path=DEFAULT_PATTERN_DB, pattern_db_reload_seconds=0, prediction_log_url="",
        max_batch_size=64, _env_file=None,
    )  # fmt: skip
    classifier = Tagged(delay=0.02)  # a slow call lets concurrent requests pile up and be merged
    moderator = Moderator(ReloadingNormalizer(DEFAULT_PATTERN_DB, 0), classifier, settings)
    server = LiveServer(settings, moderator)
    with server as client:
        yield server, client, classifier


def _text(i: int) -> str:
    # Every third text is coded, so merged batches also hold (normalized, original) pairs.
    return f"post {i} HARM{i} go k1ll yourself" if i % 3 == 0 else f"post {i} HARM{i} see you later"


def _expect(body: dict, i: int) -> None:
    scores = tagged_scores(i)
    label = LABELS[i % 4]
    assert body["original_text"] == _text(i)
    assert body["classification"] == label, (i, body)
    assert body["scores"][label] == pytest.approx(scores[label], abs=1e-6)
    assert body["stage2_status"] == "ok"
    if i % 3 == 0:
        assert body["normalized_text"] == f"post {i} HARM{i} go kill yourself"
        assert body["raw_classification"] == label


def _requests_per_call(classifier: Tagged) -> list[int]:
    return [len({m.group(1) for t in call for m in re.finditer(r"HARM(\d+)", t)}) for call in classifier.calls]


def test_concurrent_calls_each_get_their_own_result(served):
    server, _, classifier = served
    classifier.calls.clear()

    async def fire() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=N, max_keepalive_connections=N)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=60, limits=limits) as client:
            return await asyncio.gather(
                *(client.post("/moderate", json={"text": _text(i)}, headers={"X-Request-ID": f"req-{i}"}) for i in range(N))
            )

    responses = asyncio.run(fire())
    for i, response in enumerate(responses):
        assert response.status_code == 200, response.text
        body = response.json()
        assert response.headers["x-request-id"] == body["request_id"] == f"req-{i}"
        _expect(body, i)
    # The point of the test: the batcher did merge requests (otherwise it checked nothing about merging).
    assert max(_requests_per_call(classifier)) > 1, _requests_per_call(classifier)
    assert sum(_requests_per_call(classifier)) == N


def test_concurrent_calls_from_threads_each_get_their_own_result(served):
    from concurrent.futures import ThreadPoolExecutor

    server, _, classifier = served
    classifier.calls.clear()

    def one(i: int) -> dict:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=60) as client:
            response = client.post("/moderate", json={"text": _text(i)})
            assert response.status_code == 200, response.text
            return response.json()

    with ThreadPoolExecutor(max_workers=50) as pool:
        bodies = list(pool.map(one, range(50)))
    for i, body in enumerate(bodies):
        _expect(body, i)


def test_batch_results_are_in_input_order(served):
    _, client, _ = served
    order = [7, 2, 9, 0, 13, 4, 11, 6, 1, 12, 3, 8, 5, 10, 15, 14]
    response = client.post("/moderate/batch", json={"texts": [_text(i) for i in order]}, headers={"X-Request-ID": "b1"})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == len(order)
    for k, (i, body) in enumerate(zip(order, results)):
        assert body["request_id"] == f"b1-{k}"
        _expect(body, i)


# ---------------------------------------------------------------------------------------------- /ready
def _raise():
    raise ClassifierError("endpoint timed out after 5.0 s")


def test_ready_when_the_probe_answers(served):
    _, client, classifier = served
    classifier.probe = None
    response = client.get("/ready")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"


def test_not_ready_when_the_probe_fails(served):
    _, client, classifier = served
    classifier.probe = _raise
    try:
        response = client.get("/ready")
    finally:
        classifier.probe = None
    assert response.status_code == 503
    assert response.json()["status"] == "not ready"
    assert "timed out" in response.json()["reason"]
    assert client.get("/ready").status_code == 200  # and ready again once it answers


GOOD = {"safe": 0.7, "potentially_harmful": 0.1, "harmful": 0.1, "extremely_harmful": 0.1}


@pytest.mark.parametrize(
    "answer",
    [
        [dict.fromkeys(LABELS, 0.5)],  # sums to 2
        [{"safe": 0.8, "potentially_harmful": 0.1, "harmful": 0.1}],  # a label missing
        [{**GOOD, "spam": 0.0}],  # an extra label
        [{"safe": 1.5, "potentially_harmful": -0.5, "harmful": 0.0, "extremely_harmful": 0.0}],  # sums to 1, not probabilities
        [{"safe": math.nan, "potentially_harmful": 0.1, "harmful": 0.1, "extremely_harmful": 0.1}],
        [dict(GOOD), dict(GOOD)],  # two answers for one probe
        [],
        "ok",
    ],
    ids=["sum-2", "missing", "extra", "negative", "nan", "two-answers", "empty", "not-a-list"],
)
def test_ready_is_not_fooled_by_malformed_scores(served, answer):
    _, client, classifier = served
    classifier.probe = lambda: answer
    try:
        response = client.get("/ready")
    finally:
        classifier.probe = None
    assert response.status_code == 503, response.text
    assert response.json()["status"] == "not ready"
