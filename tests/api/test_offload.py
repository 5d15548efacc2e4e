"""Moderation of long texts in child processes (MODERATION_PROCESSES, api/offload.py): the same answers as on
threads, short texts never wait for a long batch, a child that dies costs no request and is replaced, and
pattern-database edits reach the child."""

import json
import os
import shutil
import signal
import time

import pytest

from core.settings import DEFAULT_PATTERN_DB, Settings
from moderator import Moderator
from tests.api.conftest import LiveServer

LONG = 1_000  # MODERATION_PROCESS_MIN_CHARS here
TEXTS = ["time to unal1ve myself " * 50, "go un\u0001alive yourself", "have a nice day", "@ss " * 300, "s.u.i.c.i.d.e"]


@pytest.fixture(scope="module")
def offloaded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("offload")
    db = folder / "patterns.json"
    shutil.copy(DEFAULT_PATTERN_DB, db)
    settings = Settings(environment="test", pattern_db_path=db, pattern_db_reload_seconds=0.05, prediction_log_url="",
                        moderation_processes=1, moderation_process_min_chars=LONG, _env_file=None)  # fmt: skip
    server = LiveServer(settings)
    with server as client:
        yield server, client, settings, db


def _comparable(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("request_id", "latency_ms")}


@pytest.mark.slow
def test_moderation_runs_in_a_child_process_and_answers_as_on_threads(offloaded):
    server, client, settings, _ = offloaded
    processes = server.app.state.processes
    assert processes is not None and len(processes.pids()) == 1 and os.getpid() not in processes.pids()
    here = Moderator.from_settings(settings)  # the same moderation in this process
    try:
        expected = [json.loads(_rendered(r)) for r in here.moderate_batch(TEXTS, [str(i) for i in range(len(TEXTS))])]
        batch = client.post("/moderate/batch", json={"texts": TEXTS}).json()["results"]
        assert [_comparable(r) for r in batch] == [_comparable(r) for r in expected]
        single = client.post("/moderate", json={"text": TEXTS[0]}).json()
        assert _comparable(single) == _comparable(expected[0])
        normalized = client.post("/normalize", json={"text": TEXTS[3]}).json()
        reference = here.normalizer.current().normalize(TEXTS[3]).as_dict(settings.max_matches_per_text)
        assert {k: v for k, v in normalized.items() if k != "request_id"} == reference
        assert normalized["matches_omitted"] == 200  # capped in the child: the answer stays bounded
    finally:
        here.normalizer.close()


def _rendered(result) -> bytes:
    import orjson

    return orjson.dumps(result)


@pytest.mark.slow
def test_a_killed_moderation_process_costs_no_request_and_is_replaced(offloaded):
    """A child killed from outside (a SIGTERM to the server's whole process group, as systemd's default stop sends,
    or the OOM killer): the request it held is sent to the new child, not answered 503."""
    server, client, _, _ = offloaded
    processes = server.app.state.processes
    long = "go k1ll yourself " * 100
    assert client.post("/moderate", json={"text": long}).status_code == 200
    (child,) = processes.pids()
    os.kill(child, signal.SIGKILL)
    answered = client.post("/moderate", json={"text": long}, timeout=120)  # a new child starts and answers
    assert answered.status_code == 200 and answered.json()["algospeak_detected"]
    assert client.get("/health").status_code == 200
    (replacement,) = processes.pids()
    assert replacement != child


@pytest.mark.slow
def test_a_job_that_kills_its_moderation_process_twice_gets_a_503(offloaded):
    """The one retry is all: a text that crashed its child crashes the next one too, and the caller is told."""
    from moderator import ModerationUnavailable

    server, client, _, _ = offloaded
    processes = server.app.state.processes
    with pytest.raises(ModerationUnavailable, match="moderation process died"):
        processes._call(os._exit, 3)  # the child dies, and so does the one it is sent to next
    long = "go k1ll yourself " * 100
    assert client.post("/moderate", json={"text": long}, timeout=120).status_code == 200  # and a third serves


@pytest.mark.slow
def test_a_pattern_database_edit_reaches_the_moderation_process(offloaded):
    _, client, _, db = offloaded
    document = json.loads(db.read_text(encoding="utf-8"))
    db.write_text(json.dumps(document | {"version": "7.7.7"}), encoding="utf-8")
    deadline = time.monotonic() + 60
    long = "k1ll " * 300
    while client.post("/normalize", json={"text": long}).json()["pattern_db_version"] != "7.7.7":
        assert time.monotonic() < deadline, "the child still normalizes with the old database"
        time.sleep(0.1)
    assert client.post("/moderate", json={"text": long}).json()["pattern_db_version"] == "7.7.7"


@pytest.mark.slow
def test_short_texts_do_not_wait_for_a_long_batch(offloaded):
    """The child moderates one job at a time: a short text queued behind a batch of worst-case 20,000-character
    texts would wait seconds (normal traffic fell to 2 req/s under attack when every text went to the child)."""
    import threading

    import httpx

    from bench.bench_worst_case import family_texts

    server, client, _, _ = offloaded
    batch = [family_texts("lookalike_mix", 20_000, seed) for seed in range(16)]
    done = threading.Event()

    def long_batch() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=300) as other:
            assert other.post("/moderate/batch", json={"texts": batch}).status_code == 200
        done.set()

    worker = threading.Thread(target=long_batch)
    worker.start()
    time.sleep(0.5)
    short = []
    for text in ["go k1ll yourself", "have a nice day", "unal1ve"]:
        started = time.perf_counter()
        assert client.post("/moderate", json={"text": text}).status_code == 200
        assert client.post("/moderate/batch", json={"texts": [text, text]}).status_code == 200
        short.append(time.perf_counter() - started)
    assert not done.is_set(), "the long batch finished before the short requests: nothing was measured"
    worker.join()
    assert max(short) < 1.0, short
