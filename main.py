"""The moderation API (FastAPI).

    uv run python main.py                      # http://127.0.0.1:8000, docs at /docs
    curl -s localhost:8000/moderate -H 'content-type: application/json' -d '{"text": "time to unalive myself"}'

Endpoints: POST /moderate, POST /moderate/batch, POST /normalize, GET /health, GET /ready, GET /metrics.
With no SageMaker endpoint configured the server runs offline: Stage 2 is the embedded classifier shipped in
models/, the start-up log says so, and every response carries "mock_mode": true.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.lifeline import on_parent_exit
from core.result import Match, ModerationResult
from core.settings import Settings, get_settings

log = logging.getLogger("api")


# ---------------------------------------------------------------------------------------------- schemas
# At least one visible character: not whitespace, not a control or invisible formatting character.
VISIBLE = (
    r"[^\s\x00-\x1f\x7f-\x9f\xad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
    r"\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]"
)

_VISIBLE_RE = re.compile(VISIBLE)


class ModerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"text": "time to unalive myself"}]})
    text: StrictStr = Field(
        description="The text to moderate (UTF-8, not empty or only whitespace).",
        json_schema_extra={"minLength": 1, "pattern": VISIBLE},
    )


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[StrictStr] = Field(
        description="Texts to moderate; results come back in the same order.",
        json_schema_extra={"minItems": 1, "items": {"type": "string", "minLength": 1, "pattern": VISIBLE}},
    )


class BatchResult(BaseModel):
    results: list[ModerationResult]


class NormalizeResult(BaseModel):
    request_id: str
    original_text: str
    normalized_text: str
    algospeak_detected: bool
    matches: list[Match] = Field(description="the first MAX_MATCHES_PER_TEXT matches")
    matches_omitted: int = Field(0, description="matches beyond MAX_MATCHES_PER_TEXT, not listed")
    pattern_db_version: str


class ErrorOut(BaseModel):
    detail: Any
    request_id: str | None = None


class Overloaded(Exception):
    """Every worker is busy and the queue is full: the client should retry shortly (503 with Retry-After)."""


class WorkerPool:
    """Where the heavy work runs: normalizing, classifying, prediction-log records and rendering the JSON answer.

    A thread pool with a bounded queue. The event loop only parses requests and hands jobs over, so `/health`
    answers within milliseconds however slow a text, a batch or the Stage 2 endpoint is. `pending` counts jobs
    running or waiting (it is changed on the event loop only, and a job counts until its thread is done with it,
    even when its client went away); a job beyond `capacity` is refused with Overloaded.
    """

    def __init__(self, workers: int, capacity: int):
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="moderation")
        self.capacity = capacity
        self.pending = 0

    @property
    def full(self) -> bool:
        return self.pending >= self.capacity

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.pending >= self.capacity:
            raise Overloaded(f"{self.pending} jobs are running or waiting")
        loop = asyncio.get_running_loop()
        self.pending += 1
        future = self.executor.submit(fn, *args)
        future.add_done_callback(lambda _: _call_soon(loop, self._done))
        return await asyncio.wrap_future(future)

    def _done(self) -> None:
        self.pending -= 1

    def close(self) -> None:
        self.executor.shutdown(wait=True)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    try:
        loop.call_soon_threadsafe(callback)
    except RuntimeError:  # the loop is closed (shutdown): nothing left to count
        pass


class MicroBatcher:
    """Moderates concurrent single-text requests together: one classifier call per loop turn, not per request.

    A request queues its text and waits; the first one schedules a flush for the event loop's next turn, by
    which time the other requests that arrived together have queued theirs. No timer: a lone request waits for
    nobody. The batch itself runs on the worker pool (`work(texts, request_ids)` returns one rendered answer
    per text), never on the event loop.
    """

    def __init__(self, work: Callable[[list[str], list[str]], list[Any]], pool: WorkerPool, max_batch: int,
                 heavy: Callable[[str], bool] | None = None):
        self.work = work
        self.pool = pool
        self.max_batch = max_batch
        self.heavy = heavy  # texts that are batched apart (long ones, moderated in a child process)
        self.pending: list[tuple[str, str, asyncio.Future]] = []
        self.scheduled = False
        self.running: set[asyncio.Task] = set()

    async def submit(self, text: str, request_id: str) -> Any:
        if self.pool.full:
            raise Overloaded(f"{self.pool.pending} jobs are running or waiting")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append((text, request_id, future))
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self.pending = self.pending[: self.max_batch], self.pending[self.max_batch :]
        self.scheduled = bool(self.pending)
        if self.pending:
            asyncio.get_running_loop().call_soon(self._flush)
        live = [item for item in batch if not item[2].done()]  # a client that went away is skipped
        parts = [live]
        if self.heavy is not None:  # short texts never wait for a long one's batch
            parts = [[i for i in live if not self.heavy(i[0])], [i for i in live if self.heavy(i[0])]]
        for part in parts:
            if part:
                task = asyncio.ensure_future(self._run(part))
                self.running.add(task)
                task.add_done_callback(self.running.discard)

    async def _run(self, live: list[tuple[str, str, asyncio.Future]]) -> None:
        try:
            results = await self.pool.run(self.work, [t for t, _, _ in live], [r for _, r, _ in live])
        except Exception as exc:  # every waiting request gets the failure (ModerationUnavailable, Overloaded -> 503)
            for _, _, future in live:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), result in zip(live, results):
            if not future.done():
                future.set_result(result)


# ---------------------------------------------------------------------------------------------- middleware
_GOOD_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class BodyTooLarge(Exception):
    pass


# JSON in UTF-16 or UTF-32 (which Python's json would quietly accept): a NUL in the first 4 bytes or a UTF-16 BOM.
def _not_utf8(first_chunk: bytes) -> bool:
    return b"\x00" in first_chunk[:4] or first_chunk[:2] in (b"\xff\xfe", b"\xfe\xff")


_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"]+", re.IGNORECASE)
_PATH = re.compile(r"(?<![\w.])(?:[A-Za-z]:)?(?:[\\/][^\s\\/'\":;,]+)+[\\/]([^\s\\/'\":;,]+)")


def scrub(message: str) -> str:
    """An error message for clients: URLs (internal endpoints) and absolute paths (only the file name stays) out."""
    return _PATH.sub(r"\1", _URL.sub("<url>", message))


class RequestContext:
    """Pure ASGI middleware: request id in and out, body-size limit (413), request metrics, one log line."""

    def __init__(self, app, max_body_bytes: int, known_paths: set[str] | None = None, read_timeout: float = 30.0):
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Metrics label a request by its route; any other path is "other", so random URLs cannot crowd real
        # endpoints out of the capped label set.
        self.known_paths = known_paths
        self.read_timeout = read_timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from monitoring.metrics import observe_request

        started = time.perf_counter()
        incoming = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode("latin-1")
        request_id = incoming if _GOOD_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status_holder = {"status": 500, "started": False}
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        limit = self.max_body_bytes

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        received = 0

        body_done = False
        # One deadline for the whole body, from the request's start: a client trickling a byte at a time must not
        # hold a connection (and its buffer) forever by resetting a per-chunk timer.
        deadline = asyncio.get_running_loop().time() + self.read_timeout

        async def limited_receive():
            nonlocal received, body_done
            if body_done:
                return await receive()
            try:  # a client that stops sending half-way does not hold a connection (and its memory) forever
                async with asyncio.timeout_at(deadline):  # no task per message, as wait_for made
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    408, f"the request body did not arrive within {self.read_timeout:g} s", headers={"Connection": "close"}
                ) from None
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                if received == 0 and chunk and _not_utf8(chunk):
                    raise HTTPException(422, "the request body is not UTF-8 (UTF-16 and UTF-32 are not accepted)")
                received += len(chunk)
                if received > limit:
                    raise BodyTooLarge
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        try:
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise BodyTooLarge
            await self.app(scope, limited_receive, send_with_id)
        except BodyTooLarge:
            if status_holder["started"]:
                raise
            response = JSONResponse(
                {"detail": f"request body is larger than the {limit}-byte limit", "request_id": request_id},
                status_code=413,
            )
            await response(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            path = scope.get("path", "")
            if self.known_paths is not None and path not in self.known_paths:
                path = "other"
            observe_request(path, status_holder["status"], seconds)
            log.info(
                "request_id=%s method=%s path=%s status=%s ms=%.2f",
                request_id, scope.get("method"), scope.get("path"), status_holder["status"], seconds * 1000,
            )  # fmt: skip


# ---------------------------------------------------------------------------------------------- app
def request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id") or uuid.uuid4().hex


async def _request_id(request: Request) -> str:  # the dependency: async, so no worker-thread hop (see require_key)
    return request_id(request)


RequestId = Annotated[str, Depends(_request_id)]


def create_app(settings: Settings | None = None, moderator=None) -> FastAPI:
    """The application. `moderator` may be given (tests); otherwise it is built from settings at start-up."""
    settings = settings or get_settings()
    if settings.pattern_db_last_good_path is None and moderator is None:
        # A server process or moderation child that starts during a broken edit serves the last good database
        # (normalizer.reload): every process of this server keeps and finds the copy at the same place.
        from normalizer.reload import default_last_good

        settings = settings.model_copy(update={"pattern_db_last_good_path": default_last_good(settings.pattern_db_path)})

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from moderator import Moderator
        from monitoring.prediction_log import PredictionLog

        app.state.moderator = moderator or Moderator.from_settings(settings)
        app.state.pool = WorkerPool(settings.moderation_workers, settings.moderation_queue_size)
        # Moderation in child processes (api/offload.py), unless a moderator object was handed in (tests).
        processes = settings.moderation_processes
        if processes is None:
            processes = 1 if app.state.moderator.mock_mode else 0
        app.state.processes = None
        if moderator is None and processes > 0:
            from api.offload import ModerationProcesses

            app.state.processes = ModerationProcesses(settings, processes)
            pids = await asyncio.get_running_loop().run_in_executor(None, app.state.processes.start)
            log.info("moderating in %d child process(es): %s", processes, pids)
        app.state.offloaded = offload_rule(settings, app.state.processes)
        moderate_batch = split_by_length(app.state.moderator, app.state.processes, app.state.offloaded)
        # put_timeout=0: a full log queue drops the record and counts it (algospeak_prediction_log_dropped_total),
        # it never makes a worker, let alone the event loop, wait for the database.
        app.state.prediction_log = PredictionLog.from_settings(settings, put_timeout=0.0)
        app.state.prediction_log.start()

        def moderate_rendered(texts: list[str], ids: list[str]) -> list[bytes]:  # on a worker thread
            return [orjson.dumps(r) for r in record(app, moderate_batch(texts, ids))]

        app.state.moderate_rendered = moderate_rendered
        app.state.batcher = MicroBatcher(moderate_rendered, app.state.pool, settings.max_batch_size,
                                         app.state.offloaded)
        app.state.started = time.time()
        # What the first requests would otherwise import on the event loop (tens of milliseconds each without .pyc
        # files, a stall /health saw at the start of an attack): anyio's thread backend (sync dependencies and
        # endpoints run there) and the multi-process metrics collector.
        import anyio.to_thread
        from prometheus_client import multiprocess  # noqa: F401

        await anyio.to_thread.run_sync(lambda: None)
        # The vocabulary and the automaton are large and live forever: move them out of the collector's way,
        # so full collections stay short and do not show up as latency spikes.
        gc.collect()
        gc.freeze()
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)  # the loop is not starved by a long text
        # A worker of `main.py --workers N` whose supervisor was killed outright shuts down as on SIGTERM instead of
        # serving the inherited port on its own (api/lifeline.py); a server run directly has no such parent. This
        # relies on uvicorn owning SIGTERM in the worker's main thread (graceful: requests answered, log drained).
        on_parent_exit(lambda: os.kill(os.getpid(), signal.SIGTERM))
        m = app.state.moderator
        if m.mock_mode:
            log.warning(
                "OFFLINE MODE: Stage 2 is the embedded classifier %s (no SAGEMAKER_ENDPOINT_NAME set); "
                "every response carries mock_mode=true",
                m.classifier.version,
            )
        log.info("pattern database %s, classifier %s %s", m.normalizer.current().version, m.classifier.name, m.classifier.version)
        yield
        sys.setswitchinterval(switch_interval)
        app.state.pool.close()
        if app.state.processes is not None:
            app.state.processes.close()
        app.state.prediction_log.close()
        if moderator is None and hasattr(m.normalizer, "close"):
            m.normalizer.close()  # the reload thread of the moderator built here

    app = FastAPI(
        title="Algospeak-aware moderation",
        version="0.1.0",
        description="Stage 1 decodes coded language (algospeak); Stage 2 labels the text "
        "safe / potentially_harmful / harmful / extremely_harmful.",
        lifespan=lifespan,
        responses={413: {"model": ErrorOut}, 422: {"model": ErrorOut}},
    )
    known_paths: set[str] = set()  # filled below, once the routes exist
    app.add_middleware(RequestContext, max_body_bytes=settings.max_body_bytes, known_paths=known_paths,
                       read_timeout=settings.body_read_timeout_seconds)  # fmt: skip
    _document_limits(app, settings)

    def has_key(request: Request) -> bool:
        if settings.api_key is None:
            return True
        given = request.headers.get("x-api-key") or ""
        auth = request.headers.get("authorization") or ""
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:]
        return hmac.compare_digest(given.encode(), settings.api_key.encode())

    # Dependencies are `async def`: FastAPI runs a plain `def` dependency on a worker thread, two thread hand-offs
    # per request for a dictionary look-up (a quarter of the event loop's time under load, bench_api --baseline).
    async def require_key(request: Request) -> None:
        if not has_key(request):
            raise HTTPException(401, "missing or wrong API key (send it as X-API-Key)")

    auth = [Depends(require_key)]

    def check_text(text: str, where: str = "text") -> None:
        if not _VISIBLE_RE.search(text):  # the same rule the OpenAPI schema states
            raise HTTPException(422, f"{where} is empty or only whitespace or invisible characters")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise HTTPException(422, f"{where} is not valid Unicode: a lone surrogate at position {exc.start}") from None
        if len(text) > settings.max_text_chars:
            raise HTTPException(422, f"{where} has {len(text)} characters; the limit is {settings.max_text_chars}")

    def record(app: FastAPI, results: list[ModerationResult]) -> list[ModerationResult]:  # worker thread; never blocks
        from monitoring import metrics

        metrics.observe_batch(results)
        app.state.prediction_log.record_many(results)  # durable mode: in the journal before the answer is sent
        return results

    @app.post("/moderate", response_model=ModerationResult, dependencies=auth, responses={503: {"model": ErrorOut}})
    async def moderate(body: ModerateRequest, request: Request, rid: RequestId) -> Any:
        """Normalize and classify one text."""
        check_text(body.text)
        with unavailable_is_503():
            rendered = await request.app.state.batcher.submit(body.text, rid)
        return Response(rendered, media_type="application/json")

    @app.post("/moderate/batch", response_model=BatchResult, dependencies=auth, responses={503: {"model": ErrorOut}})
    async def moderate_batch(body: BatchRequest, request: Request, rid: RequestId) -> Any:
        """Normalize and classify many texts in one call; results are in the order of `texts`."""
        if not body.texts:
            raise HTTPException(422, "texts is empty")
        if len(body.texts) > settings.max_batch_size:
            raise HTTPException(422, f"{len(body.texts)} texts; the limit is {settings.max_batch_size} per batch")
        for i, text in enumerate(body.texts):
            check_text(text, f"texts[{i}]")
        ids = [f"{rid}-{i}" for i in range(len(body.texts))]
        moderate_rendered = request.app.state.moderate_rendered

        def work() -> bytes:  # on a worker thread: moderation, logging and the (possibly large) JSON answer
            return b'{"results":[' + b",".join(moderate_rendered(body.texts, ids)) + b"]}"

        with unavailable_is_503():
            rendered = await request.app.state.pool.run(work)
        return Response(rendered, media_type="application/json")

    @app.post("/normalize", response_model=NormalizeResult, dependencies=auth)
    async def normalize(body: ModerateRequest, request: Request, rid: RequestId) -> Any:
        """Stage 1 alone: decode algospeak and report every match."""
        check_text(body.text)
        normalizer = request.app.state.moderator.normalizer.current()
        processes, offloaded = request.app.state.processes, request.app.state.offloaded

        def work() -> bytes:
            if offloaded is not None and offloaded(body.text):  # as /moderate
                result = processes.normalize(body.text, settings.max_matches_per_text)
            else:
                result = normalizer.normalize(body.text).as_dict(settings.max_matches_per_text)
            return orjson.dumps({"request_id": rid, **result})

        with unavailable_is_503():
            rendered = await request.app.state.pool.run(work)
        return Response(rendered, media_type="application/json")

    @app.get("/health")
    async def health(request: Request) -> dict:  # on the event loop itself: it only has to be alive
        """Liveness: the process answers."""
        return {"status": "ok", "uptime_s": round(time.time() - request.app.state.started, 1)}

    @app.get("/ready", responses={503: {"model": ErrorOut}})
    def ready(request: Request) -> Any:
        """Readiness: the pattern database is loaded and the classifier answers a probe. With an API key set,
        only a caller with the key sees the details; error messages never carry URLs or absolute paths."""
        m = request.app.state.moderator
        failure = probe_classifier(m)
        status = 200 if failure is None else 503
        body: dict[str, Any] = {"status": "ready" if failure is None else "not ready"}
        if settings.api_key is not None and not has_key(request):
            return JSONResponse(body, status_code=status)
        error = m.normalizer.last_error
        body.update({
            "pattern_db_version": m.normalizer.current().version,
            "pattern_db_error": scrub(error) if error else None,
            "classifier": {"backend": m.classifier.name, "version": m.classifier.version},
            "mock_mode": m.mock_mode,
        })  # fmt: skip
        health = getattr(m.classifier, "health", None)
        if callable(health):  # Stage 2's state from the breaker (a fleet of pods does not probe the endpoint)
            body["stage2"] = health() or "ok"
            body["fallback"] = m.fallback.name if m.fallback is not None else None
        if failure is not None:
            body["reason"] = scrub(f"classifier probe failed: {failure}")
        return JSONResponse(body, status_code=status)

    # HEAD for uptime checkers that ask only for the status (a 405 read as down); not in the schema: no body.
    @app.head("/health", include_in_schema=False)
    async def health_head() -> Response:
        return Response(status_code=200)

    @app.head("/ready", include_in_schema=False)
    def ready_head(request: Request) -> Response:
        return Response(status_code=ready(request).status_code)

    probe_lock = threading.Lock()
    last_probe: dict[str, Any] = {"finished": 0.0, "failure": None}

    def probe_classifier(m) -> str | None:
        """The classifier's answer to one probe (None: fine). One probe at a time: callers that arrive while one
        is running share its result, so a flood of /ready sends the endpoint one call at a time, not a flood."""
        from classifiers.base import check_scores

        health = getattr(m.classifier, "health", None)
        if callable(health):  # a remote classifier: its breaker says, no endpoint call per probe
            problem = health()
            if problem is None or m.fallback is not None:  # the fallback answers while the breaker is open
                return None
            return problem
        arrived = time.monotonic()
        with probe_lock:
            if last_probe["finished"] >= arrived:
                return last_probe["failure"]
            try:  # the same check every moderation answer passes: one probability per label, summing to 1
                check_scores(m.classifier.classify(["readiness probe"]), 1, m.classifier.name)
                failure = None
            except Exception as exc:  # the probe's failure (or a malformed answer) is the answer
                failure = str(exc) or type(exc).__name__
            last_probe.update(finished=time.monotonic(), failure=failure)
            return failure

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics_endpoint() -> Response:
        """Prometheus metrics."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

        from monitoring.metrics import REGISTRY

        registry = REGISTRY
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # several server processes: the sum over all of them
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        content_type = request.headers.get("content-type", "")
        media = content_type.split(";")[0].strip().lower()
        if request.method == "POST" and media and media != "application/json" and not media.endswith("+json"):
            detail: Any = f"the request body must be JSON sent as Content-Type: application/json, not {media[:100]}"
            return JSONResponse({"detail": detail, "request_id": request_id(request)}, status_code=422)
        return JSONResponse({"detail": errors, "request_id": request_id(request)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            if isinstance(exc.__cause__, BodyTooLarge) or isinstance(exc.__context__, BodyTooLarge):
                exc = HTTPException(413, f"request body is larger than the {settings.max_body_bytes}-byte limit")
            else:
                cause = exc.__cause__ or exc.__context__
                if isinstance(cause, RecursionError):
                    why = ": it is nested too deeply"
                elif isinstance(cause, ValueError) and "digits" in str(cause):  # int() past sys.int_info's limit
                    why = ": a number in it has too many digits"
                else:
                    why = " in UTF-8"
                exc = HTTPException(422, f"the request body is not valid JSON{why}")
        return JSONResponse(
            {"detail": exc.detail, "request_id": request_id(request)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),  # Allow on 405, Retry-After on 503
        )

    known_paths.update(getattr(route, "path", "") for route in app.routes)
    from monitoring.metrics import register_paths

    register_paths(known_paths)
    return app


def offload_rule(settings: Settings, processes: Any) -> Callable[[str], bool] | None:
    """Which texts are moderated in a child process (api/offload.py): those of `moderation_process_min_chars`
    characters or more, where there are child processes (None where there are none). One rule for every endpoint."""
    if processes is None:
        return None
    min_chars = settings.moderation_process_min_chars
    return lambda text: len(text) >= min_chars


def split_by_length(moderator: Any, processes: Any, offloaded: Callable[[str], bool] | None,
                    ) -> Callable[[list[str], list[str]], list]:
    """`moderate_batch` for the worker threads: the texts `offloaded` picks are moderated in a child process, the
    others on the calling thread meanwhile; results in the order of the texts."""
    if offloaded is None:  # no child processes (offload_rule)
        return moderator.moderate_batch

    def moderate_batch(texts: list[str], ids: list[str]) -> list:
        long = [i for i, text in enumerate(texts) if offloaded(text)]
        if not long:
            return moderator.moderate_batch(texts, ids)
        if len(long) == len(texts):
            return processes.moderate_batch(texts, ids)
        handle = processes.submit_moderate([texts[i] for i in long], [ids[i] for i in long])
        short = [i for i, text in enumerate(texts) if not offloaded(text)]
        results: list = [None] * len(texts)
        for i, result in zip(short, moderator.moderate_batch([texts[i] for i in short], [ids[i] for i in short])):
            results[i] = result
        for i, result in zip(long, processes.result(*handle)):
            results[i] = result
        return results

    return moderate_batch


@contextmanager
def unavailable_is_503() -> Iterator[None]:
    """Stage 2 could not answer under the fallback policy: tell the client so (503), never a guessed label.
    Every worker busy and the queue full: 503 with Retry-After."""
    from moderator import ModerationUnavailable

    try:
        yield
    except ModerationUnavailable as exc:  # the reason, without internal URLs or paths
        raise HTTPException(503, scrub(f"moderation is unavailable: {exc}")) from exc
    except Overloaded as exc:
        raise HTTPException(503, f"the server is busy ({exc}); retry shortly", headers={"Retry-After": "1"}) from exc


def _document_limits(app: FastAPI, settings: Settings) -> None:
    """Put the configured limits into the OpenAPI schema, so clients (and schemathesis) see the real contract."""
    default_openapi = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        spec = default_openapi()
        schemas = spec["components"]["schemas"]
        schemas["ModerateRequest"]["properties"]["text"]["maxLength"] = settings.max_text_chars
        texts = schemas["BatchRequest"]["properties"]["texts"]
        texts["maxItems"] = settings.max_batch_size
        texts["items"]["maxLength"] = settings.max_text_chars
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    import argparse
    import logging.config

    from api.serving import auto_workers, logging_config, prepare_workers, serve, server_config

    parser = argparse.ArgumentParser(description="Serve the moderation API (settings: .env.example).")
    parser.add_argument("--workers", type=int, help="server processes (default: SERVER_WORKERS; 0 = one per core)")
    args = parser.parse_args(argv)
    settings = get_settings()
    logging.config.dictConfig(logging_config(settings.log_level))
    workers = args.workers if args.workers is not None else settings.server_workers
    workers = workers or auto_workers()
    prepare_workers(settings, workers)
    log.info("serving on %s:%s with %d process(es)", settings.host, settings.port, workers)
    serve(server_config(settings, workers))


if __name__ == "__main__":
    main()
