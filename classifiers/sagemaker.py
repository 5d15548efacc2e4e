"""The `sagemaker` backend: the tuned model behind a SageMaker real-time endpoint, called resiliently.

    CLASSIFIER_BACKEND=sagemaker SAGEMAKER_ENDPOINT_NAME=algospeak-stage2 uv run python main.py

What makes it resilient (every number is a setting, see `.env.example`):
- botocore timeouts (connect, read) and botocore's own retries off: the call is retried with the project's one
  retry loop (core.aws.RetryPolicy: exponential backoff with full jitter, retry n waiting up to
  min(SAGEMAKER_BACKOFF_MAX_SECONDS, SAGEMAKER_BACKOFF_BASE_SECONDS * 2**n)) on throttling, 5xx answers and failed
  or dropped connections (core.aws.is_retriable);
  a read timeout is NOT retried: the invocation may still be running on the endpoint's single worker, and a
  second copy would queue behind it. A 4xx that is not throttling is not retried (it would fail the same way),
  nor is a model error the container reports as a client error (the Hugging Face toolkit answers 400 when the
  handler raises) or as deterministic (the model's non-finite output);
- a circuit breaker: after N consecutive calls that failed for a reason about the endpoint's health (throttling,
  5xx, timeouts, dropped connections, retries spent; and model errors, a model that fails every request being
  the endpoint's failure whatever status the container gives it) it opens and calls fail at once (the moderator
  then answers with its fallback and says so, or 503), and after the reset time one trial call is let through.
  A refused request (a 4xx ValidationError) or a malformed answer fails that call only: it neither counts toward
  opening the breaker nor resets the count;
- a deadline (SAGEMAKER_DEADLINE_SECONDS) for a whole classify() call: no attempt, retry or chunk starts after
  it, and the call raises ClassifierError("deadline ...") so the moderator falls back instead of blocking (an
  attempt already in flight still ends by its read timeout);
- every answer is validated (one prediction per text, finite probabilities for the four labels summing to 1,
  and the category field's probabilities on every prediction or none); anything else is a ClassifierError,
  never a guess;
- request bodies are UTF-8 JSON (non-ASCII not escaped), and texts are sent in invocations of at most
  SAGEMAKER_BATCH_MAX_TEXTS texts and SAGEMAKER_MAX_PAYLOAD_BYTES bytes of body (SageMaker refuses bodies over
  6 MB); one text too large on its own is a ClassifierError naming its size. The invocations of one call run
  concurrently (SAGEMAKER_CONCURRENCY at a time; the connection pool is sized to match). With
  SAGEMAKER_BATCH_WAIT_MS > 0 concurrent calls from different threads are merged into one invocation (the waiting
  happens in the calling thread: call this client off the event loop).

Defaults are sized for the 3B model in fp16 on one T4 (about 2-3 s per 64 short texts): 32 texts per invocation,
an 8 s read timeout (SageMaker itself ends an invocation at 60 s), 4 invocations in flight. `recommended_settings`
derives them from an endpoint load test instead (bench/bench_endpoint_load.py): `deploy` records them.

The request and response bodies are the JSON contract of `core/llm_inference.py`. `endpoint_url` points the
client elsewhere than AWS: a test's fake runtime, or `deployment/local_server.py` (which answers
`POST /endpoints/{name}/invocations` too), so the whole path runs on one machine.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from classifiers.base import AnswerCategories, ClassifierError, LabelScores
from core.aws import RetryDeadline, RetryPolicy, describe, is_read_timeout, is_retriable

Answer = tuple[LabelScores, "dict[str, float] | None"]  # one text's label scores and category probabilities

log = logging.getLogger("classifiers.sagemaker")

# A ModelError (424, the container answered 5xx) whose message says one of these failed the same way every time:
# core/llm_inference.py raises ClassifierError("the model produced non-finite logits ...") and the container
# (deployment/local_server.py, the SageMaker container) reports it as "model error: <message>". Retrying it only
# multiplies the load; genuine 500/503 answers from the runtime or container are still retried.
_DETERMINISTIC_MODEL_ERRORS = ("non-finite", "ClassifierError")
_ENVELOPE = (b'{"inputs": [', b", ", b"]}")  # json.dumps({"inputs": [...]}) byte for byte


class CircuitBreaker:
    """closed -> (N consecutive failures) -> open -> (reset seconds) -> half-open: one trial call;
    its success closes the breaker, its failure opens it again for another reset period."""

    def __init__(self, failures: int, reset_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.failures_to_open = failures
        self.reset_seconds = reset_seconds
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.trial_in_flight = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.reset_seconds else "open"

    def allow(self) -> bool:
        with self._lock:
            state = self.state
            if state == "closed":
                return True
            if state == "half-open" and not self.trial_in_flight:
                self.trial_in_flight = True
                return True
            return False

    def success(self) -> None:
        with self._lock:
            self.failures, self.opened_at, self.trial_in_flight = 0, None, False

    def release(self) -> None:
        """A call that failed for a reason that says nothing about the endpoint's health (a refused request,
        a malformed answer): the count is kept as it is, and a half-open trial slot is handed back."""
        with self._lock:
            self.trial_in_flight = False

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.trial_in_flight or self.failures >= self.failures_to_open:
                if self.opened_at is None:
                    log.warning("circuit breaker open after %d consecutive failures", self.failures)
                self.opened_at = self.clock()  # (re)start the wait before the next trial
            self.trial_in_flight = False


class _Retriable(Exception):
    pass


class _Unavailable(ClassifierError):
    """The endpoint failed for retriable reasons until the retries (or the deadline) ran out: the breaker counts it."""


class _ModelFailed(ClassifierError):
    """The model in the container failed on this request (a ModelError that retrying would not fix): the call
    fails at once, and the breaker counts it (a model that fails every request must open it)."""


class _Combiner:
    """Merges classify() calls that arrive from different threads within `wait_s` into one call of `run`."""

    def __init__(self, run: Callable[[list[str]], list[Answer]], wait_s: float):
        self.run = run
        self.wait_s = wait_s
        self.queue: list[tuple[list[str], dict[str, Any], threading.Event]] = []
        self.leader_waiting = False
        self.lock = threading.Lock()

    def submit(self, texts: list[str]) -> list[Answer]:
        slot: dict[str, Any] = {}
        done = threading.Event()
        with self.lock:
            self.queue.append((texts, slot, done))
            lead = not self.leader_waiting
            self.leader_waiting = True
        if lead:
            time.sleep(self.wait_s)
            with self.lock:
                items, self.queue, self.leader_waiting = self.queue, [], False
            try:
                merged = self.run([t for item_texts, _, _ in items for t in item_texts])
                start = 0
                for item_texts, item_slot, _ in items:
                    item_slot["result"] = merged[start : start + len(item_texts)]
                    start += len(item_texts)
            except BaseException as exc:  # every caller in the merged call gets the failure
                for _, item_slot, _ in items:
                    item_slot["error"] = exc
            for _, _, item_done in items:
                item_done.set()
        done.wait()
        if "error" in slot:
            raise slot["error"]
        return slot["result"]


class SagemakerClassifier:
    name = "sagemaker"
    thresholds = None  # the endpoint's model carries none: settings or 0.5
    categories = AnswerCategories()  # the endpoint's model answers each category yes or no (core.prompt)

    def __init__(self, endpoint_name: str, *, region: str = "us-east-1", endpoint_url: str | None = None,
                 connect_timeout: float = 2.0, read_timeout: float = 8.0, max_retries: int = 2,
                 backoff_base: float = 0.1, backoff_max: float = 2.0, breaker_failures: int = 5,
                 breaker_reset_seconds: float = 30.0, batch_max_texts: int = 32, batch_wait_ms: float = 0.0,
                 max_payload_bytes: int = 5_000_000, deadline_seconds: float = 10.0, concurrency: int = 4,
                 client: Any = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        if not endpoint_name:
            raise ClassifierError("the sagemaker backend needs SAGEMAKER_ENDPOINT_NAME")
        self.endpoint_name = endpoint_name
        self.version = endpoint_name  # replaced by the model version the endpoint reports
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.batch_max_texts = batch_max_texts
        self.max_payload_bytes = max_payload_bytes
        self.deadline_seconds = deadline_seconds
        self.concurrency = max(1, int(concurrency))
        self._pool = None
        self._pool_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self.breaker = CircuitBreaker(breaker_failures, breaker_reset_seconds)
        self.sleep = sleep
        self.clock = clock
        self._rng = random.Random()
        self.invocations = 0  # calls made to the endpoint, retries included (tests and metrics read it)
        if client is None:
            try:
                from core import aws

                client = aws.client("sagemaker-runtime", region, endpoint_url, connect_timeout=connect_timeout,
                                    read_timeout=read_timeout, attempts=1,  # one attempt: retries are ours
                                    pool=max(32, 4 * self.concurrency))
            except ImportError as exc:
                raise ClassifierError(f"the sagemaker backend needs boto3 (uv sync --extra aws): {exc}") from exc
        self.client = client
        self._combiner = _Combiner(self._classify_now, batch_wait_ms / 1000) if batch_wait_ms > 0 else None

    @classmethod
    def from_settings(cls, settings) -> "SagemakerClassifier":
        return cls(settings.sagemaker_endpoint_name, region=settings.aws_region,
                   endpoint_url=settings.aws_endpoint_url, connect_timeout=settings.sagemaker_connect_timeout_seconds,
                   read_timeout=settings.sagemaker_timeout_seconds, max_retries=settings.sagemaker_max_retries,
                   backoff_base=settings.sagemaker_backoff_base_seconds,
                   backoff_max=settings.sagemaker_backoff_max_seconds,
                   breaker_failures=settings.sagemaker_breaker_failures,
                   breaker_reset_seconds=settings.sagemaker_breaker_reset_seconds,
                   batch_max_texts=settings.sagemaker_batch_max_texts, batch_wait_ms=settings.sagemaker_batch_wait_ms,
                   max_payload_bytes=settings.sagemaker_max_payload_bytes,
                   deadline_seconds=settings.sagemaker_deadline_seconds,
                   concurrency=settings.sagemaker_concurrency)

    def health(self) -> str | None:
        """Stage 2's health as /ready reports it, from the breaker (no invocation): None while it is closed or
        half-open, else why it is open."""
        if self.breaker.state == "open":
            return f"endpoint {self.endpoint_name}: circuit breaker open after {self.breaker.failures} failures"
        return None

    # ------------------------------------------------------------------ Classifier
    def classify(self, texts: Sequence[str]) -> list[LabelScores]:
        return self.classify_with_categories(texts)[0]

    def classify_with_categories(self, texts: Sequence[str]) -> tuple[list[LabelScores], list[dict[str, float]] | None]:
        """Severity scores and, when the endpoint's answer carries them, the category probabilities."""
        texts = list(texts)
        if not texts:
            return [], None
        answers = self._combiner.submit(texts) if self._combiner is not None else self._classify_now(texts)
        categories = [c for _, c in answers]
        return [s for s, _ in answers], (None if any(c is None for c in categories) else categories)

    def _classify_now(self, texts: list[str]) -> list[Answer]:
        deadline = self.clock() + self.deadline_seconds
        chunks = self._chunks(texts)
        if len(chunks) == 1 or self.concurrency == 1:
            out: list[Answer] = []
            for done, (count, body) in enumerate(chunks):
                if done and self.clock() >= deadline:  # the first chunk always gets its first attempt
                    raise ClassifierError(f"deadline of {self.deadline_seconds:g}s for one call to endpoint "
                                          f"{self.endpoint_name} passed after {done} invocation(s), "
                                          f"{len(out)} of {len(texts)} texts classified")
                out.extend(self._call(body, count, deadline))
            return out
        # Several invocations: `concurrency` in flight at once; results in order; the first failure fails the call
        # (invocations not yet started are cancelled).
        futures = [self._executor().submit(self._chunk_in_time, i, body, count, deadline)
                   for i, (count, body) in enumerate(chunks)]
        try:
            return [scores for future in futures for scores in future.result()]
        finally:
            for future in futures:
                future.cancel()

    def _chunk_in_time(self, index: int, body: bytes, count: int, deadline: float) -> list[Answer]:
        if index and self.clock() >= deadline:
            raise ClassifierError(f"deadline of {self.deadline_seconds:g}s for one call to endpoint "
                                  f"{self.endpoint_name} passed before invocation {index + 1} started")
        return self._call(body, count, deadline)

    def _executor(self):
        from concurrent.futures import ThreadPoolExecutor

        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="sagemaker-invoke")
            return self._pool

    def _chunks(self, texts: list[str]) -> list[tuple[int, bytes]]:
        """(number of texts, request body) per invocation: at most batch_max_texts texts and max_payload_bytes
        bytes each, in order. Built before anything is sent, so an oversized text fails the call up front."""
        head, sep, tail = _ENVELOPE
        chunks: list[tuple[int, bytes]] = []
        parts: list[bytes] = []
        size = 0
        for text in texts:
            part = _json_text(text)
            alone = len(head) + len(part) + len(tail)
            if alone > self.max_payload_bytes:
                raise ClassifierError(f"a text of {len(text)} characters makes a {alone}-byte request body, over "
                                      f"the {self.max_payload_bytes}-byte limit (SAGEMAKER_MAX_PAYLOAD_BYTES)")
            if parts and (len(parts) >= self.batch_max_texts or size + len(sep) + len(part) > self.max_payload_bytes):
                chunks.append((len(parts), head + sep.join(parts) + tail))
                parts, size = [], 0
            size = size + len(sep) + len(part) if parts else alone
            parts.append(part)
        if parts:
            chunks.append((len(parts), head + sep.join(parts) + tail))
        return chunks

    # ------------------------------------------------------------------ one resilient call
    def _call(self, body: bytes, expected: int, deadline: float) -> list[Answer]:
        if not self.breaker.allow():
            raise ClassifierError(f"endpoint {self.endpoint_name}: circuit breaker open after repeated failures")
        try:
            scores = self._attempts(body, expected, deadline)
        except (_Unavailable, _ModelFailed):  # the endpoint or its model looks unhealthy
            self.breaker.failure()
            raise
        except BaseException:  # refused, malformed, deterministic: says nothing about the endpoint's health
            self.breaker.release()
            raise
        self.breaker.success()
        return scores

    def _attempts(self, body: bytes, expected: int, deadline: float) -> list[Answer]:
        """The invocation under the shared retry policy (core.aws.RetryPolicy): only `_Retriable` failures are
        retried, and no retry starts after the call's deadline. A malformed answer is not retried: it is a
        deployment bug."""
        policy = RetryPolicy(max_attempts=self.max_retries + 1, base_delay=self.backoff_base,
                             max_delay=self.backoff_max, sleep=self.sleep, clock=self.clock, rng=self._rng,
                             retry_on=lambda err: isinstance(err, _Retriable))
        try:
            raw = policy.call(f"invocation of endpoint {self.endpoint_name}", lambda: self._invoke(body),
                              log.warning, deadline)
        except RetryDeadline as exc:
            raise _Unavailable(f"deadline of {self.deadline_seconds:g}s for one call to endpoint "
                               f"{self.endpoint_name} passed after {exc.attempts} attempt(s): {exc.last}") from exc
        except _Retriable as exc:
            raise _Unavailable(f"endpoint {self.endpoint_name} failed after {self.max_retries + 1} attempts: "
                               f"{exc}") from exc
        return self._parse(raw, expected)

    def _invoke(self, body: bytes) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        with self._count_lock:
            self.invocations += 1
        try:
            response = self.client.invoke_endpoint(EndpointName=self.endpoint_name, Body=body,
                                                   ContentType="application/json", Accept="application/json")
            return response["Body"].read()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            original = exc.response.get("OriginalStatusCode") or 0
            message = describe(exc)[:300]
            if code == "ModelError":
                said = f"{error.get('Message', '')} {exc.response.get('OriginalMessage', '')}"
                if any(marker in said for marker in _DETERMINISTIC_MODEL_ERRORS) or not 500 <= int(original) < 600:
                    # the container's handler raised (the toolkit answers 400) or failed deterministically
                    raise _ModelFailed(f"endpoint {self.endpoint_name}: the model failed on this request "
                                       f"(OriginalStatusCode {original}; not retried): {message}") from exc
                raise _Retriable(message) from exc
            if is_retriable(exc):
                raise _Retriable(message) from exc
            raise ClassifierError(f"endpoint {self.endpoint_name} refused the request: {message}") from exc
        except BotoCoreError as exc:
            if is_read_timeout(exc):  # the invocation may still be running: a retry would queue behind it
                raise _Unavailable(f"endpoint {self.endpoint_name} did not answer within the read timeout "
                                   f"(not retried): {exc}") from exc
            if is_retriable(exc):  # dropped or failed connections, unreachable endpoint
                raise _Retriable(describe(exc)) from exc
            raise _Unavailable(f"endpoint {self.endpoint_name} could not be called (not retried): "
                               f"{describe(exc)}") from exc

    def _parse(self, raw: bytes, expected: int) -> list[Answer]:
        from core.llm_inference import validate_response

        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ClassifierError(f"endpoint {self.endpoint_name} answered something that is not JSON") from exc
        scores, categories = validate_response(data, expected)
        version = data.get("model_version")
        if isinstance(version, str) and version:
            self.version = version[:64]
        return list(zip(scores, categories if categories is not None else [None] * len(scores)))


def _json_text(text: str) -> bytes:
    """`text` as a JSON string in UTF-8, non-ASCII unescaped (a CJK character is 3 bytes, not the 6 of \\uXXXX).
    A text holding lone surrogates (not encodable as UTF-8) falls back to ASCII escapes, still valid JSON."""
    try:
        return json.dumps(text, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(text).encode("ascii")


def recommended_settings(load_test: dict[str, Any]) -> dict[str, float | int]:
    """Client settings (SAGEMAKER_*) from an endpoint load test (bench/bench_endpoint_load.py's JSON): the texts per
    invocation it measured; a read timeout of 3x the p99 latency at the sustainable step (at least 2 s, under
    SageMaker's 60 s); as many invocations in flight as the sustainable concurrency; a deadline that fits one
    read timeout and a retry."""
    per_invocation = int(load_test.get("method", {}).get("texts_per_invocation") or 1)
    concurrency = int(load_test.get("sustainable_at_concurrency") or 1)
    steps = [s for s in load_test.get("steps", []) if s.get("concurrency") == concurrency] or load_test.get("steps", [])
    p99_s = max((float(s.get("latency_p99_ms") or 0) for s in steps), default=1000.0) / 1000.0
    read_timeout = round(min(55.0, max(2.0, 3 * p99_s)), 1)
    return {"SAGEMAKER_BATCH_MAX_TEXTS": per_invocation, "SAGEMAKER_TIMEOUT_SECONDS": read_timeout,
            "SAGEMAKER_CONCURRENCY": max(1, concurrency),
            "SAGEMAKER_DEADLINE_SECONDS": round(max(10.0, 1.5 * read_timeout), 1)}
