"""Issue 13: the durable prediction log (PREDICTION_LOG_JOURNAL_DIR). A server killed with SIGKILL loses no record
of a request it answered; without the journal, what was queued is gone."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from core.settings import ROOT
from monitoring.prediction_log import PredictionLog
from tests.api.conftest import _free_port, descendants, kill_all, wait_gone


def _request_ids(db: Path) -> list[str]:
    with sqlite3.connect(db, timeout=30) as conn:
        return [r[0] for r in conn.execute("select request_id from predictions")]


@pytest.mark.parametrize("durable", [True, False], ids=["journal", "no-journal"])
def test_a_killed_server_loses_no_answered_record_with_the_journal(tmp_path, durable):
    db, journal = tmp_path / "log.db", tmp_path / "journal"
    port = _free_port()
    env = {**os.environ, "PORT": str(port), "PREDICTION_LOG_URL": f"sqlite:///{db}", "PATTERN_DB_RELOAD_SECONDS": "0",
           "ENVIRONMENT": "test", "LOG_LEVEL": "WARNING", "TEXT_HASH_KEY": "k" * 32,
           "PREDICTION_LOG_JOURNAL_DIR": str(journal) if durable else ""}  # fmt: skip
    server = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--workers", "1"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    answered: list[str] = []
    below: list[int] = []
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(base + "/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.3)
        # Another process holds the database's write lock: the server's writer cannot commit anything, so every
        # record is either in the server's memory or (durable) in its journal when the server is killed.
        blocker = sqlite3.connect(db, timeout=30, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                for i in range(20):
                    response = client.post("/moderate", json={"text": f"time to unalive myself {i}"},
                                           headers={"X-Request-ID": f"acked-{i}"})  # fmt: skip
                    assert response.status_code == 200
                    answered.append(f"acked-{i}")
                batch = client.post("/moderate/batch", json={"texts": ["a", "b", "c"]}, headers={"X-Request-ID": "b"})
                assert batch.status_code == 200
                answered += ["b-0", "b-1", "b-2"]
            below = descendants(server.pid)  # its moderation child (api/offload.py) and multiprocessing's helper
            assert below
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=30)
            # Killed outright, the server cannot stop its child: the child notices (api/lifeline.py) and exits,
            # instead of holding a moderator's memory forever (one leaked per crash of a supervised server).
            assert not wait_gone(below, 20), "processes outlived their killed server"
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)
        kill_all(below)

    # The next start (here: the log alone, as the server's start-up opens it) replays what the dead one left.
    plog = PredictionLog(f"sqlite:///{db}", journal_dir=journal if durable else None, hash_key="k" * 32)
    plog.start()
    plog.close()
    logged = _request_ids(db)
    if durable:
        assert sorted(logged) == sorted(answered)  # every answered record, each once
        assert not list(journal.glob("journal-*"))  # replayed and deleted
    else:
        assert logged == []  # all of it was still queued in memory: lost


def _result(i: int) -> dict:
    return {"request_id": f"req-{i}", "original_text": f"hello {i}", "classification": "safe",
            "scores": {"safe": 0.9}, "confidence": 0.9, "stage2_status": "ok"}  # fmt: skip


def test_a_replayed_journal_is_copied_once_and_a_torn_last_line_is_ignored(tmp_path):
    """A journal left by a dead process is copied once at the next start, however often the start is repeated;
    the half-written line a crash can leave at its end (a record never acknowledged) is skipped."""
    import orjson

    from monitoring.prediction_log import _Journal, to_row

    db, journal = tmp_path / "log.db", tmp_path / "journal"
    dead = _Journal(journal, fsync=False)
    rows = [orjson.dumps(to_row(_result(i), ts=1.0, log_text=False, hash_key=b"k" * 16)) for i in range(5)]
    dead.append(b"\n".join(rows) + b"\n", 5)
    dead.append(b'{"ts": 1.0, "request_id": "torn"', 0)
    os.close(dead.read_fd)
    os.close(dead.fd)  # the process is gone: its lock with it
    for _ in range(2):
        again = PredictionLog(f"sqlite:///{db}", journal_dir=journal)
        again.start()
        again.close()
    assert sorted(_request_ids(db)) == [f"req-{i}" for i in range(5)]
    assert not list(journal.glob("journal-*"))


def test_a_live_processs_journal_is_left_alone(tmp_path):
    db, journal = tmp_path / "log.db", tmp_path / "journal"
    live = PredictionLog(f"sqlite:///{db}", journal_dir=journal, flush_interval=30)
    live.start()
    other = PredictionLog(f"sqlite:///{db}", journal_dir=journal)
    other.start()
    other.close()
    assert len(list(journal.glob("journal-*"))) == 1  # the live one's, not replayed nor deleted
    live.record(_result(1))
    live.close()
    assert _request_ids(db) == ["req-1"]


def test_the_durable_log_writes_and_cleans_up_in_normal_use(tmp_path):
    db, journal = tmp_path / "log.db", tmp_path / "journal"
    plog = PredictionLog(f"sqlite:///{db}", journal_dir=journal)
    plog.start()
    assert plog.record(_result(0)) and plog.record_many([_result(i) for i in range(1, 50)]) == 49
    assert plog.flush(10)
    assert len(_request_ids(db)) == 50 and plog.stats()["queued"] == 0 and plog.stats()["durable"]
    plog.close()
    assert not list(journal.iterdir())
