"""The prediction log keeps every record: under concurrent load, through a restart, and says when it cannot."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import create_engine, insert

from core.settings import Settings
from monitoring import MonitoringInputError
from monitoring.features import text_hmac, text_sha256
from monitoring.prediction_log import PredictionLog, predictions, read_records, to_row
from tests.monitoring import synth


def _result(i: int, text: str = "hello there") -> dict:
    return {"request_id": f"req-{i}", "original_text": f"{text} {i}", "classification": "safe",
            "scores": {"safe": 0.9}, "confidence": 0.9, "stage2_status": "ok"}


@pytest.mark.slow
def test_concurrent_writers_lose_nothing(tmp_path):
    url = f"sqlite:///{tmp_path}/log.db"
    # Two logs on one file (two API workers), each with a queue much smaller than the load, so producers
    # hit back-pressure and must wait rather than drop.
    logs = [PredictionLog(url, queue_size=32, batch_size=50, put_timeout=10.0) for _ in range(2)]
    for log in logs:
        log.start()
    threads, per_thread = 16, 300
    refused = []

    def produce(t: int) -> None:
        log = logs[t % 2]
        for i in range(per_thread):
            if not log.record(_result(t * per_thread + i)):
                refused.append(i)

    workers = [threading.Thread(target=produce, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for log in logs:
        log.close()

    assert refused == []
    assert sum(log.stats()["written"] for log in logs) == threads * per_thread
    assert sum(log.stats()["dropped"] for log in logs) == 0
    rows = read_records(url).records
    assert sorted(r["request_id"] for r in rows) == sorted(f"req-{i}" for i in range(threads * per_thread))


def test_records_persist_through_restart(tmp_path):
    url = f"sqlite:///{tmp_path}/sub/dir/log.db"  # the folder is created
    first = PredictionLog(url)
    first.start()
    for i in range(250):
        first.record(_result(i))
    first.close()  # no flush before close: close itself must write what is queued

    second = PredictionLog(url)
    second.start()
    for i in range(250, 400):
        second.record(_result(i))
    second.close()

    rows = read_records(url).records
    assert [r["request_id"] for r in rows] == [f"req-{i}" for i in range(400)]
    # A record after close is refused and counted, not silently lost.
    assert second.record(_result(999)) is False
    assert second.stats()["dropped_by_reason"] == {"closed": 1}


def test_flush_makes_records_readable_while_running(tmp_path):
    url = f"sqlite:///{tmp_path}/log.db"
    log = PredictionLog(url)
    log.start()
    for i in range(50):
        log.record(_result(i))
    assert log.flush(timeout=10)
    assert len(read_records(url).records) == 50  # a reader sees them while the writer holds the file
    log.close()


@pytest.mark.slow
def test_full_queue_blocks_briefly_then_counts_the_drop(tmp_path):
    path = tmp_path / "log.db"
    url = f"sqlite:///{path}"
    log = PredictionLog(url, queue_size=4, batch_size=2, put_timeout=0.3)
    log.start()
    # Another process holds the database: the writer's insert waits, so the queue fills up.
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    start = time.monotonic()
    outcomes = [log.record(_result(i)) for i in range(10)]
    elapsed = time.monotonic() - start
    accepted = sum(outcomes)
    assert outcomes[0] and not all(outcomes)
    assert elapsed >= 0.3  # it waited before giving up
    dropped = log.stats()["dropped_by_reason"]["queue_full"]
    assert dropped == 10 - accepted
    blocker.execute("ROLLBACK")
    blocker.close()
    log.close()
    assert log.stats()["written"] == accepted
    assert len(read_records(url).records) == accepted


def test_text_is_hashed_unless_log_text(tmp_path):
    rows = synth.results(40, seed=11, shifted=True)
    for log_text in (False, True):
        url = f"sqlite:///{tmp_path}/log-{log_text}.db"
        log = PredictionLog(url, log_text=log_text)
        for r in rows:
            log.record(r)  # record() starts the writer when start() was not called
        log.close()
        stored = read_records(url).records
        assert len(stored) == len(rows)
        for got, sent in zip(stored, rows):
            assert got["text_sha256"] == text_hmac(sent["original_text"], log.hash_key)
            assert got["text_sha256"] != text_sha256(sent["original_text"])  # keyed: not the plain SHA-256
            assert got["text"] == (sent["original_text"] if log_text else None)
            assert got["text_length"] == len(sent["original_text"])
            assert got["label"] == sent["classification"]
            assert got["techniques"] == list(dict.fromkeys(t for m in sent["matches"] for t in m["techniques"]))
            assert got["entry_ids"] == [m["entry_id"] for m in sent["matches"]]
            assert got["disagreement"] == (sent["raw_classification"] not in (None, sent["classification"]))
    leet = next(r for r in stored if "k1ll" in (r["text"] or ""))
    assert leet["n_digit"] >= 1


def test_unusable_results_are_counted_and_do_not_stop_the_writer(tmp_path):
    url = f"sqlite:///{tmp_path}/log.db"
    log = PredictionLog(url)
    log.start()
    log.record({"classification": "safe"})  # no text
    log.record({"original_text": "x", "classification": "purple"})  # unknown label
    log.record(_result(1))
    log.close()
    assert log.stats()["dropped_by_reason"] == {"invalid": 2}
    assert [r["request_id"] for r in read_records(url).records] == ["req-1"]


def test_disabled_log_does_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    log = PredictionLog.from_settings(Settings(prediction_log_url=""))
    log.start()
    assert log.enabled is False
    assert log.record(_result(1)) is False
    log.close()
    assert list(tmp_path.iterdir()) == []


def test_corrupted_rows_are_skipped_and_counted(tmp_path):
    url = f"sqlite:///{tmp_path}/log.db"
    log = PredictionLog(url)
    for i in range(5):
        log.record(_result(i))
    log.close()
    engine = create_engine(url)
    bad = to_row(_result(5), ts=time.time(), log_text=False) | {"label": "bogus"}
    broken_json = to_row(_result(6), ts=time.time(), log_text=False) | {"techniques": "[not json"}
    with engine.begin() as conn:
        conn.execute(insert(predictions), [bad, broken_json])
    engine.dispose()
    result = read_records(url)
    assert len(result.records) == 5 and result.bad_rows == 2
    assert any("bogus" in p for p in result.problems)


def test_time_window_and_missing_log(tmp_path):
    url = f"sqlite:///{tmp_path}/log.db"
    engine = create_engine(url)
    from monitoring.prediction_log import metadata

    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(predictions), [to_row(_result(i), ts=1000.0 + i, log_text=False) for i in range(10)])
    engine.dispose()
    assert [r["request_id"] for r in read_records(url, since=1003, until=1006).records] == ["req-3", "req-4", "req-5"]
    assert [r["request_id"] for r in read_records(url, limit=2).records] == ["req-8", "req-9"]
    with pytest.raises(MonitoringInputError, match="no prediction log"):
        read_records(f"sqlite:///{tmp_path}/missing.db")
    assert not (tmp_path / "missing.db").exists()  # reading never creates a log
