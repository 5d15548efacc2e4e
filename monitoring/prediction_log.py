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

_STOP = object()


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
            self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
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
        try:
            self._queue.put((time.time(), dict(result)), timeout=self.put_timeout)
        except queue.Full:
            self._drop("queue_full")
            return False
        return True

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything queued so far is written (or dropped); False on timeout."""
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
        if thread is not None:
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
        return {"written": written, "dropped": sum(dropped.values()), "dropped_by_reason": dropped,
                "queued": self._queue.qsize(), "enabled": self.enabled}

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
        delay = 0.1
        for attempt in range(self.max_retries + 1):
            try:
                self._ensure_schema()
                assert self._engine is not None
                with self._engine.begin() as conn:
                    self._insert(conn, rows)
                with self._lock:
                    self._written += len(rows)
                metrics.LOG_WRITTEN.inc(len(rows))
                return
            except SQLAlchemyError as exc:
                if attempt == self.max_retries:
                    log.error("prediction log: insert failed %d times (%s)", attempt + 1, exc)
                    self._drop("write_error", len(rows))
                    return
                time.sleep(delay)
                delay = min(delay * 2, 2.0)


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
    return row

