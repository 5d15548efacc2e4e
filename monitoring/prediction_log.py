"""The prediction log: one row per moderated text, written off the request path.

    log = PredictionLog.from_settings()   # PREDICTION_LOG_URL; empty disables it
    log.start()                           # app start-up: create the table, start the writer thread
    log.record(result)                    # per result: enqueue and return at once
    log.close()                           # shutdown: write everything still queued

`record` puts the result on a bounded queue; one writer thread inserts batches in a transaction. When the
queue is full `record` blocks up to `put_timeout` seconds (back-pressure) and only then drops the record,
counting it (`stats()["dropped"]`, the `algospeak_prediction_log_dropped_total` metric) and logging a
warning. A failed insert is retried with back-off before its records are counted as dropped.

Any SQLAlchemy URL works; SQLite (the default) is opened in WAL mode so readers (the `status` command,
drift detection) never block the writer. The text is stored only as an HMAC-SHA256 under a secret key
(`TEXT_HASH_KEY`; the column keeps its old name, `text_sha256`) unless `log_text` is on: equal texts share a
digest, but a digest cannot be tested against guesses without the key. Without a key (development, tests) a
random one is made for the process, with a warning: digests then match only within one run. The features
drift detection needs (length, character classes, label, scores, techniques...) are always kept.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from core.labels import LABELS
from core.result import ModerationResult
from monitoring import MonitoringInputError, metrics
from monitoring.features import (
    char_stats,
    disagrees,
    entry_ids_of,
    normalize_label,
    techniques_of,
    text_hmac,
)

log = logging.getLogger(__name__)

metadata = MetaData()
predictions = Table(
    "predictions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False, index=True),  # Unix seconds (UTC) when record() was called
    Column("request_id", String(128)),
    Column("text_sha256", String(64), nullable=False),  # HMAC-SHA256 of the text under TEXT_HASH_KEY
    Column("text", Text),  # only with log_text
    Column("normalized_text", Text),  # only with log_text
    Column("text_length", Integer, nullable=False),
    Column("normalized_length", Integer),
    *(Column(f"n_{c}", Integer, nullable=False) for c in ("alpha", "digit", "upper", "space", "punct", "other", "non_ascii")),
    Column("label", String(32), nullable=False),
    Column("raw_label", String(32)),
    Column("disagreement", Boolean, nullable=False),
    Column("algospeak_detected", Boolean, nullable=False),
    Column("confidence", Float),
    Column("scores", Text),  # JSON object label -> probability
    Column("categories", Text),  # JSON list of the flagged harm categories (core.categories); null before they existed
    Column("techniques", Text),  # JSON list, distinct, in match order
    Column("entry_ids", Text),  # JSON list of pattern-database entry ids
    Column("n_matches", Integer, nullable=False),
    Column("backend", String(64)),
    Column("model_version", String(128)),
    Column("pattern_db_version", String(64)),
    Column("stage1_status", String(64)),
    Column("stage2_status", String(64)),
    Column("mock_mode", Boolean),
    Column("latency_ms", Float),
)

# Durable mode: how far each write-ahead journal has been copied into `predictions`, updated in the same
# transaction as the rows it covers, so a replay after a crash neither loses nor repeats a record.
journal_positions = Table(
    "prediction_log_journal",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("position", Integer, nullable=False),
)

_STOP = object()


def add_missing_columns(engine) -> list[str]:
    """Add the table's nullable columns that an older log lacks (create_all makes missing tables, never missing
    columns), so a log written before a column existed keeps working; returns the columns added."""
    from sqlalchemy import inspect, text

    present = {c["name"] for c in inspect(engine).get_columns(predictions.name)}
    added = []
    with engine.begin() as conn:
        for column in predictions.columns:
            if column.name not in present and column.nullable and not column.primary_key:
                kind = column.type.compile(dialect=engine.dialect)
                conn.execute(text(f'ALTER TABLE {predictions.name} ADD COLUMN "{column.name}" {kind}'))
                added.append(column.name)
    if added:
        log.info("prediction log: added column(s) %s to %s", ", ".join(added), predictions.name)
    return added


def to_row(
    result: ModerationResult | Mapping[str, Any], *, ts: float, log_text: bool, hash_key: bytes | None = None
) -> dict[str, Any]:
    """The table row for one moderation result (`core.result.ModerationResult`; results read back from JSONL
    files may be partial or use older label names, so every field is read leniently). Raises ValueError for a
    result without a usable label. `hash_key`: the text's digest key (None: this process's random key)."""
    get = result.get
    text = get("original_text")
    if not isinstance(text, str):
        raise ValueError("result has no original_text")
    label = get("classification")
    if label not in _LABELS:  # the moderator's own results skip the lenient parsing
        label = normalize_label(label)
        if label is None:
            raise ValueError(f"result has no known classification: {get('classification')!r}")
    raw_label = get("raw_classification")
    if raw_label is not None and raw_label not in _LABELS:
        raw_label = normalize_label(raw_label)
    normalized = get("normalized_text")
    normalized = normalized if isinstance(normalized, str) else None
    matches = get("matches") or []
    model = get("model")
    model = model if isinstance(model, Mapping) else {}
    scores = get("scores")
    confidence = get("confidence")
    latency = get("latency_ms")
    techniques = techniques_of(matches) if matches else []
    stats = char_stats(text)
    mock_mode = get("mock_mode")
    request_id = get("request_id")
    return {
        "ts": ts,
        "request_id": str(request_id)[:128] if request_id is not None else None,
        "text_sha256": text_hmac(text, hash_key or _process_key()),
        "text": text if log_text else None,
        "normalized_text": normalized if log_text else None,
        "text_length": stats["length"],
        "normalized_length": len(normalized) if normalized is not None else None,
        "n_alpha": stats["alpha"],
        "n_digit": stats["digit"],
        "n_upper": stats["upper"],
        "n_space": stats["space"],
        "n_punct": stats["punct"],
        "n_other": stats["other"],
        "n_non_ascii": stats["non_ascii"],
        "label": label,
        "raw_label": raw_label,
        "disagreement": disagrees(label, raw_label),
        "algospeak_detected": bool(get("algospeak_detected") or techniques),
        "confidence": float(confidence) if isinstance(confidence, (int, float)) else None,
        "scores": _json({k: float(v) for k, v in scores.items()}) if isinstance(scores, Mapping) and scores else None,
        "categories": _json([c for c in flagged if isinstance(c, str)]) if isinstance(flagged := get("flagged_categories"), list) else None,
        "techniques": _json(techniques) if techniques else "[]",
        "entry_ids": _json(entry_ids_of(matches)) if matches else "[]",
        "n_matches": len(matches) if isinstance(matches, list) else 0,
        "backend": _short(model.get("backend"), 64),
        "model_version": _short(model.get("version"), 128),
        "pattern_db_version": _short(get("pattern_db_version"), 64),
        "stage1_status": _short(get("stage1_status"), 64),
        "stage2_status": _short(get("stage2_status"), 64),
        "mock_mode": bool(mock_mode) if mock_mode is not None else None,
        "latency_ms": float(latency) if isinstance(latency, (int, float)) else None,
    }


_LABELS = frozenset(LABELS)
_PROCESS_KEY: bytes | None = None


def _process_key() -> bytes:
    """A random key for this process, for a log opened without TEXT_HASH_KEY (said once, as a warning)."""
    global _PROCESS_KEY
    if _PROCESS_KEY is None:
        _PROCESS_KEY = os.urandom(32)
        log.warning("prediction log: TEXT_HASH_KEY is not set; text digests use a random key for this process "
                    "only (set it to compare digests across restarts; production requires it)")  # fmt: skip
    return _PROCESS_KEY


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _short(value: Any, n: int) -> str | None:
    return None if value is None else str(value)[:n]


def make_engine(url: str, *, must_exist: bool = False) -> Engine:
    """An engine for a prediction-log URL; SQLite gets WAL, a busy timeout and its folder created.

    With `must_exist` a SQLite file that is not there raises MonitoringInputError instead of being created.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise MonitoringInputError(f"not a database URL: {url!r} (e.g. sqlite:///predictions.db)") from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database)
            if must_exist and not path.is_file():
                raise MonitoringInputError(f"no prediction log at {path} (pass --db with an existing log)")
            path.parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    try:
        engine = create_engine(url, future=True, **kwargs)
    except (ArgumentError, ImportError, SQLAlchemyError) as exc:
        raise MonitoringInputError(f"cannot open prediction log {url!r}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes; WAL keeps it consistent
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class PredictionLog:
    """Asynchronous, batched, lossless-by-default writer of moderation results (see the module docstring)."""

    def __init__(
        self,
        url: str | None,
        *,
        log_text: bool = False,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        put_timeout: float = 2.0,
        max_retries: int = 5,
        hash_key: bytes | str | None = None,
        journal_dir: str | Path | None = None,
        journal_fsync: bool = True,
    ) -> None:
        self.url = url or None
        self.log_text = log_text
        if isinstance(hash_key, str):
            hash_key = hash_key.encode("utf-8")
        self.hash_key: bytes = hash_key or (_process_key() if self.url else b"")
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.linger = min(0.05, flush_interval)
        self.put_timeout = put_timeout
        self.max_retries = max_retries
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, queue_size))
        self._engine: Engine | None = None
        self._schema_ready = False
        self._compiled: Any = None  # the INSERT compiled for this engine's dialect, on first write
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._written = 0
        self._dropped: dict[str, int] = {}
        self._last_drop_warning = 0.0
        self.journal_dir = Path(journal_dir) if journal_dir and self.url else None
        self.journal_fsync = journal_fsync
        self._journal: _Journal | None = None
        self._wake = threading.Event()

    @classmethod
    def from_settings(cls, settings: Any = None, **kwargs: Any) -> PredictionLog:
        if settings is None:
            from core.settings import get_settings

            settings = get_settings()
        return cls(
            settings.prediction_log_url,
            log_text=settings.log_text,
            queue_size=settings.prediction_log_queue_size,
            hash_key=settings.text_hash_key.get_secret_value() if settings.text_hash_key else None,
            journal_dir=getattr(settings, "prediction_log_journal_dir", None),
            journal_fsync=getattr(settings, "prediction_log_journal_fsync", True),
            **kwargs,
        )

    @property
    def enabled(self) -> bool:
        return self.url is not None

    # ------------------------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Create the table if needed and start the writer thread. Idempotent; a no-op when disabled."""
        if not self.enabled:
            return
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._engine = make_engine(self.url)  # type: ignore[arg-type]
            self._ensure_schema()  # failures are retried by the writer
            if self.journal_dir is not None:
                self._journal = _Journal(self.journal_dir, self.journal_fsync)
            run = self._run if self._journal is None else self._run_journal
            self._thread = threading.Thread(target=run, name="prediction-log-writer", daemon=True)
            self._thread.start()
            atexit.register(self.close)

    def record(self, result: ModerationResult | Mapping[str, Any]) -> bool:
        """Queue one result for writing; True when queued. Blocks at most `put_timeout` when the queue is full."""
        if not self.enabled:
            return False
        if self._closed:
            self._drop("closed")
            return False
        if self._thread is None:
            self.start()
        if self._journal is not None:
            return self.record_many([result]) == 1
        try:
            self._queue.put((time.time(), dict(result)), timeout=self.put_timeout)
        except queue.Full:
            self._drop("queue_full")
            return False
        return True

    def record_many(self, results: list[Mapping[str, Any]]) -> int:
        """Queue several results; the number queued. In durable mode they are in the journal (one write, one
        fsync) when this returns."""
        if self._journal is None:
            if self._thread is None and self.enabled and not self._closed:
                self.start()
            if self._journal is None:
                return sum(self.record(r) for r in results)
        if self._closed:
            self._drop("closed", len(results))
            return 0
        now = time.time()
        lines = []
        for result in results:
            try:
                lines.append(orjson.dumps(to_row(result, ts=now, log_text=self.log_text, hash_key=self.hash_key)))
            except Exception as exc:
                log.warning("prediction log: unusable result (%s)", exc)
                self._drop("invalid")
        if not lines:
            return 0
        try:
            self._journal.append(b"\n".join(lines) + b"\n", len(lines))
        except OSError as exc:  # a full or failing disk: counted, and moderation goes on
            log.error("prediction log: cannot write the journal %s (%s)", self._journal.path, exc)
            self._drop("journal_error", len(lines))
            return 0
        self._wake.set()
        return len(lines)

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything queued so far is written (or dropped); False on timeout."""
        if self._journal is not None:
            return self._journal.wait_copied(self._journal.appended, timeout)
        if self._thread is None:
            return self._queue.unfinished_tasks == 0
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, stop the writer and release the database. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        atexit.unregister(self.close)
        if thread is not None and self._journal is not None:
            self._wake.set()
            thread.join(timeout)
            if thread.is_alive():  # the database is stuck: the journal stays for the next start's replay
                log.error("prediction log: writer still busy after %.0fs; the journal %s is kept", timeout,
                          self._journal.path)  # fmt: skip
            else:
                self._journal.close(self)
        elif thread is not None:
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                log.error("prediction log: writer did not drain the queue within %.0fs", timeout)
            thread.join(timeout)
            if thread.is_alive():
                log.error("prediction log: writer still busy after %.0fs; %d records unwritten",
                          timeout, self._queue.qsize())
                return
            # Records that raced with close() landed behind the stop marker: write them here.
            leftovers = []
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    leftovers.append(item)
                self._queue.task_done()
            if leftovers:
                self._write_items(leftovers)
        if self._engine is not None:
            self._engine.dispose()
        metrics.LOG_QUEUE.set(0)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            dropped = dict(self._dropped)
            written = self._written
        queued = self._queue.qsize() if self._journal is None else self._journal.appended - self._journal.copied
        return {"written": written, "dropped": sum(dropped.values()), "dropped_by_reason": dropped,
                "queued": queued, "enabled": self.enabled, "durable": self._journal is not None}

    # ------------------------------------------------------------------------------------------- internals

    def _drop(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + n
            now = time.monotonic()
            warn = now - self._last_drop_warning > 10.0
            if warn:
                self._last_drop_warning = now
        metrics.LOG_DROPPED.labels(reason=reason).inc(n)
        if warn or reason != "queue_full":
            log.warning("prediction log: dropped %d record(s) (%s); total dropped %s", n, reason, self._dropped)

    def _ensure_schema(self) -> None:
        if self._schema_ready or self._engine is None:
            return
        try:
            metadata.create_all(self._engine)
            add_missing_columns(self._engine)
            self._schema_ready = True
        except SQLAlchemyError as exc:
            log.warning("prediction log: cannot create table yet (%s); will retry", exc)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self.flush_interval)
            except queue.Empty:
                continue
            items: list[Any] = []
            n_got = 1
            if first is _STOP:
                stopping = True
            else:
                items.append(first)
                if self._queue.qsize() < self.batch_size:
                    # Linger briefly so records arrive in batches: one transaction (and one wake-up of this
                    # thread, which competes with the server for the GIL) per batch, not per request.
                    time.sleep(self.linger)
            while len(items) < self.batch_size:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                n_got += 1
                if item is _STOP:
                    stopping = True
                else:
                    items.append(item)
            try:
                if items:
                    self._write_items(items)
            except Exception:  # the writer must survive anything; the count says what was lost
                log.exception("prediction log: unexpected writer error")
                self._drop("write_error", len(items))
            finally:
                for _ in range(n_got):
                    self._queue.task_done()
                metrics.LOG_QUEUE.set(self._queue.qsize())

    # ------------------------------------------------------------------------------------- durable mode

    def _run_journal(self) -> None:
        """The writer in durable mode: first the journals of stopped processes, then this process's journal, copied
        into the database as it grows; a database that fails is retried on the next round (the journal keeps it)."""
        journal = self._journal
        assert journal is not None
        try:
            self._replay_orphans()
        except Exception:
            log.exception("prediction log: replaying old journals failed; they stay for the next start")
        while True:
            stopping = self._closed
            if not stopping:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                if self.linger and not self._closed:
                    time.sleep(self.linger)  # records arriving together share a transaction
            try:
                while data := journal.pending():
                    if not self._copy(journal.name, journal.position, data):
                        break
                    journal.advance(data)
                if not stopping:
                    journal.maybe_rotate(self)
            except Exception:  # the writer must survive anything; the journal still holds the records
                log.exception("prediction log: unexpected journal writer error")
            metrics.LOG_QUEUE.set(journal.appended - journal.copied)
            if stopping:
                return

    def _copy(self, name: str, start: int, data: bytes) -> bool:
        """Insert the journal lines `data` (which begin at byte `start` of journal `name`) and move the journal's
        position past them, in one transaction. False when the database keeps failing (nothing is lost)."""
        rows = []
        for line in data.split(b"\n")[:-1]:
            try:
                rows.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                self._drop("journal_corrupt")

        def work(conn) -> None:
            if rows:
                self._insert(conn, rows)
            done = conn.execute(journal_positions.update().where(journal_positions.c.name == name)
                                .values(position=start + len(data)))  # fmt: skip
            if done.rowcount == 0:
                conn.execute(journal_positions.insert().values(name=name, position=start + len(data)))

        failure = self._transaction(work, len(rows), quit_when_closed=True)
        if failure is not None:
            log.error("prediction log: copying journal %s failed %d times (%s); it is kept and retried", name, *failure)
        return failure is None

    def _transaction(self, work, n_rows: int, *, quit_when_closed: bool = False) -> tuple[int, Exception] | None:
        """Run `work(connection)` in one transaction, retried with backoff (0.1 s doubling to 2 s) on database
        errors, at most max_retries more times (after one retry once the log is closing, with
        `quit_when_closed`); on success count `n_rows` written. None on success, else (attempts, last error)."""
        delay = 0.1
        for attempt in range(self.max_retries + 1):
            try:
                self._ensure_schema()
                assert self._engine is not None
                with self._engine.begin() as conn:
                    work(conn)
                with self._lock:
                    self._written += n_rows
                metrics.LOG_WRITTEN.inc(n_rows)
                return None
            except SQLAlchemyError as exc:
                if attempt == self.max_retries or quit_when_closed and self._closed and attempt >= 1:
                    return attempt + 1, exc
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")  # the last attempt returns

    def _journal_position(self, name: str) -> int:
        self._ensure_schema()
        assert self._engine is not None
        with self._engine.connect() as conn:
            found = conn.execute(select(journal_positions.c.position).where(journal_positions.c.name == name)).scalar()
        return int(found or 0)

    def _forget_journal(self, name: str) -> None:
        try:
            assert self._engine is not None
            with self._engine.begin() as conn:
                conn.execute(journal_positions.delete().where(journal_positions.c.name == name))
        except SQLAlchemyError as exc:  # a stale position of a deleted journal is harmless
            log.warning("prediction log: cannot forget journal %s (%s)", name, exc)

    def _replay_orphans(self) -> None:
        """Copy what journals left by stopped (or killed) processes still hold, then delete them. A journal whose
        process lives is locked and skipped; a torn last line (a write the crash cut short) was never answered."""
        import fcntl

        assert self.journal_dir is not None and self._journal is not None
        for path in sorted(self.journal_dir.glob("journal-*.jsonl")):
            if path.name == self._journal.name:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live process's journal
                if os.fstat(fd).st_nlink == 0:
                    continue  # another process replayed it meanwhile
                position, size, copied = self._journal_position(path.name), os.fstat(fd).st_size, 0
                while position < size:
                    data = os.pread(fd, min(size - position, _READ_BYTES), position)
                    data = data[: data.rfind(b"\n") + 1]
                    if not data:
                        break
                    if not self._copy(path.name, position, data):
                        raise RuntimeError(f"the database refused the records of {path.name}")
                    position += len(data)
                    copied += data.count(b"\n")
                path.unlink()
                self._forget_journal(path.name)
                log.warning("prediction log: %d record(s) recovered from %s, left by a stopped process", copied, path.name)
            finally:
                os.close(fd)

    def _insert(self, conn: Any, rows: list[dict[str, Any]]) -> None:
        """One executemany through the driver, with the statement compiled once for this database: the
        per-row work SQLAlchemy's generic insert does (bind processing, parameter dicts) costs more than the
        insert itself, and this thread shares the GIL with the request path."""
        if self._compiled is None:
            self._compiled = predictions.insert().compile(dialect=conn.dialect, column_keys=list(rows[0]))
        compiled = self._compiled
        if compiled.positional:
            order = compiled.positiontup
            conn.exec_driver_sql(compiled.string, [tuple(row[k] for k in order) for row in rows])
        else:
            conn.exec_driver_sql(compiled.string, rows)

    def _write_items(self, items: list[tuple[float, dict]]) -> None:
        rows = []
        for ts, result in items:
            try:
                rows.append(to_row(result, ts=ts, log_text=self.log_text, hash_key=self.hash_key))
            except Exception as exc:
                log.warning("prediction log: unusable result (%s)", exc)
                self._drop("invalid")
        if not rows:
            return
        failure = self._transaction(lambda conn: self._insert(conn, rows), len(rows))
        if failure is not None:
            log.error("prediction log: insert failed %d times (%s)", *failure)
            self._drop("write_error", len(rows))


_READ_BYTES = 4 << 20
_ROTATE_BYTES = 16 << 20


class _Journal:
    """This process's write-ahead journal: one JSON row per line, appended (and fsynced) before the answer is sent.
    Named journal-<pid>-<random>.jsonl in the journal folder and locked (flock) while the process lives, so other
    processes replay it only once it is dead. Once everything in it is in the database and it has grown past
    16 MB, a new one is started and the old one deleted."""

    def __init__(self, folder: Path, fsync: bool) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.fsync = fsync
        self.lock = threading.Lock()
        self.copied_changed = threading.Condition()
        self.appended = 0  # records appended by this process
        self.copied = 0  # ... of which in the database
        self._open_new()

    def _open_new(self) -> None:
        import fcntl
        import uuid

        name = f"journal-{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
        draft = self.folder / f".{name}.new"  # locked before it gets a name other processes look for
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(draft, self.folder / name)
        if self.fsync:
            dir_fd = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self.name, self.path, self.fd = name, self.folder / name, fd
        self.read_fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        self.size = 0  # bytes appended
        self.position = 0  # bytes copied into the database

    def append(self, data: bytes, records: int) -> None:
        with self.lock:
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(self.fd, view) :]
                if self.fsync:
                    os.fdatasync(self.fd)
            except OSError:
                os.ftruncate(self.fd, self.size)  # no torn line in the middle for the next record to follow
                raise
            self.size += len(data)
            self.appended += records

    def pending(self) -> bytes:
        """Complete lines not yet in the database (at most _READ_BYTES of them)."""
        with self.lock:
            size = self.size
        if size <= self.position:
            return b""
        data = os.pread(self.read_fd, min(size - self.position, _READ_BYTES), self.position)
        return data[: data.rfind(b"\n") + 1]

    def advance(self, data: bytes) -> None:
        self.position += len(data)
        with self.copied_changed:
            self.copied += data.count(b"\n")
            self.copied_changed.notify_all()

    def wait_copied(self, records: int, timeout: float | None) -> bool:
        with self.copied_changed:
            return self.copied_changed.wait_for(lambda: self.copied >= records, timeout)

    def maybe_rotate(self, plog: PredictionLog) -> None:
        if self.size < _ROTATE_BYTES:
            return
        with self.lock:
            if self.position != self.size:
                return
            old = (self.name, self.path, self.fd, self.read_fd)
            self._open_new()
        self._retire(*old, plog)

    def _retire(self, name: str, path: Path, fd: int, read_fd: int, plog: PredictionLog) -> None:
        path.unlink(missing_ok=True)
        plog._forget_journal(name)
        os.close(read_fd)
        os.close(fd)  # releases the lock

    def close(self, plog: PredictionLog) -> None:
        """Delete the journal when all of it is in the database; otherwise keep it for the next start's replay."""
        with self.lock:
            left = self.appended - self.copied
            if left:
                log.error("prediction log: %d record(s) not yet in the database stay in %s; they are replayed at "
                          "the next start", left, self.path)  # fmt: skip
                os.close(self.read_fd)
                os.close(self.fd)
                return
            self._retire(self.name, self.path, self.fd, self.read_fd, plog)


# ------------------------------------------------------------------------------------------------ reading


@dataclass
class ReadResult:
    records: list[dict[str, Any]]
    bad_rows: int = 0
    problems: list[str] = field(default_factory=list)


def _as_ts(value: float | datetime | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    return float(value)


def read_records(
    url: str,
    *,
    since: float | datetime | None = None,
    until: float | datetime | None = None,
    limit: int | None = None,
) -> ReadResult:
    """Rows of the log in [since, until), oldest first, the most recent `limit` when set.

    Rows that cannot be decoded (unknown label, broken JSON) are skipped and counted in `bad_rows`.
    Raises MonitoringInputError when the log is missing or unreadable.
    """
    engine = make_engine(url, must_exist=True)
    try:
        stmt = select(predictions)
        if (lo := _as_ts(since)) is not None:
            stmt = stmt.where(predictions.c.ts >= lo)
        if (hi := _as_ts(until)) is not None:
            stmt = stmt.where(predictions.c.ts < hi)
        if limit is not None:
            stmt = stmt.order_by(predictions.c.ts.desc(), predictions.c.id.desc()).limit(limit)
        else:
            stmt = stmt.order_by(predictions.c.ts, predictions.c.id)
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
    except SQLAlchemyError as exc:
        msg = str(exc.orig if getattr(exc, "orig", None) is not None else exc).splitlines()[0]
        raise MonitoringInputError(f"cannot read prediction log {url!r}: {msg}") from None
    finally:
        engine.dispose()
    if limit is not None:
        rows.reverse()
    out = ReadResult(records=[])
    for row in rows:
        try:
            out.records.append(_decode(row))
        except (ValueError, TypeError) as exc:
            out.bad_rows += 1
            if len(out.problems) < 5:
                out.problems.append(f"row {row.get('id')}: {exc}")
    return out


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    if row.get("label") not in LABELS:
        raise ValueError(f"unknown label {row.get('label')!r}")
    if row.get("raw_label") is not None and row["raw_label"] not in LABELS:
        raise ValueError(f"unknown raw label {row['raw_label']!r}")
    if not isinstance(row.get("text_length"), int) or row["text_length"] < 0:
        raise ValueError("bad text_length")
    for key in ("scores", "techniques", "entry_ids"):
        value = row.get(key)
        row[key] = json.loads(value) if value else ({} if key == "scores" else [])
    if not isinstance(row["techniques"], list) or not isinstance(row["scores"], dict):
        raise ValueError("bad techniques/scores JSON")
    if row.get("categories") is not None:  # null: logged before categories existed (unknown, not "none")
        row["categories"] = json.loads(row["categories"])
        if not isinstance(row["categories"], list):
            raise ValueError("bad categories JSON")
    return row

