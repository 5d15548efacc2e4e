"""The one place this project touches AWS from: clients, the retry policy, S3 URIs, file digests, request checks.

- `client(service, ...)`: a boto3 client with the region (AWS_REGION) and endpoint (AWS_ENDPOINT_URL: moto in the
  tests, a local server) from the settings, and one botocore Config: explicit timeouts, and botocore's own retries
  either left to botocore (`attempts=None`, its "standard" mode) or off (`attempts=1`) where the caller retries
  with `RetryPolicy` (which takes a deadline, and the caller's own rule for what is worth a retry).
- `RETRIABLE_CODES` / `is_retriable(err)`: the one list of errors worth another try (throttling, 5xx, dropped or
  failed connections, a checksum rejected in transit). A read timeout is a separate question (`is_read_timeout`):
  the request may still be running on the other side, so callers that would queue a second copy do not retry it.
- `backoff_delay(attempt, base, cap)`: exponential backoff with full jitter; `RetryPolicy`: the one retry loop
  around it (`RetryDeadline` when a deadline stops it).
- `split_s3(uri)`, `sha256_file(path)`.
- `request_problems(service, operation, params)` / `check_request(...)`: a request checked against botocore's
  service model (required members, length and pattern limits, enums, ranges) before it is sent, for what moto
  takes and AWS refuses: names are generated here (job, model and endpoint-config names), and a name AWS would
  refuse must fail before anything is created. `fit_name` builds such names within the 63-character limit.

boto3 is imported lazily: the API runs without the aws extra when it serves the embedded model.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# Error codes worth retrying, from every service this project calls (S3, SageMaker, its runtime, CloudWatch,
# Application Auto Scaling, Secrets Manager). Any 5xx or 429 is retried whatever its code.
RETRIABLE_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled", "RequestThrottledException",
    "SlowDown", "TooManyRequestsException", "RequestLimitExceeded", "ProvisionedThroughputExceededException",
    "RequestTimeout", "RequestTimeoutException", "InternalError", "InternalFailure", "InternalServerError",
    "InternalDependencyException", "ServiceUnavailable", "BadDigest",
})
# SageMaker resource names (models, endpoint configs, endpoints, training and transform jobs).
NAME_LIMIT = 63


def client(service: str, region: str | None = None, endpoint_url: str | None = None, *,
           connect_timeout: float = 10.0, read_timeout: float = 60.0, attempts: int | None = None,
           pool: int = 10, session: Any = None, **config: Any):
    """A boto3 client for `service`. `attempts=1` turns botocore's retries off (the caller retries); None keeps
    botocore's "standard" retries. Region and endpoint default to the settings (AWS_REGION, AWS_ENDPOINT_URL)."""
    import boto3
    from botocore.config import Config

    from core.settings import get_settings

    settings = get_settings()
    retries = {"mode": "standard"} | ({"total_max_attempts": attempts} if attempts else {})
    cfg = Config(connect_timeout=connect_timeout, read_timeout=read_timeout, retries=retries,
                 max_pool_connections=pool, **config)
    session = session or boto3.session.Session()  # a fresh session: credentials are looked up now
    return session.client(service, region_name=region or settings.aws_region or None,
                          endpoint_url=endpoint_url or settings.aws_endpoint_url
                          or os.environ.get("AWS_ENDPOINT_URL") or None, config=cfg)


def error_code(err: BaseException) -> tuple[str, int]:
    """(error code, HTTP status) of a botocore ClientError, else ("", 0)."""
    response = getattr(err, "response", None)
    if not isinstance(response, dict):
        return "", 0
    return (response.get("Error", {}).get("Code", "") or "",
            int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0))


def is_read_timeout(err: BaseException) -> bool:
    from botocore.exceptions import ReadTimeoutError

    return isinstance(err, ReadTimeoutError)


def is_retriable(err: BaseException) -> bool:
    """Throttling, 5xx and 429, a checksum rejected in transit, connections that failed or dropped. Not a read
    timeout: the request may still be running (see `is_read_timeout`)."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, IncompleteReadError

    if isinstance(err, ClientError):
        code, status = error_code(err)
        return code in RETRIABLE_CODES or status >= 500 or status == 429
    if is_read_timeout(err):
        return False
    return isinstance(err, ConnectionError | HTTPClientError | IncompleteReadError)


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full jitter: uniform(0, min(cap, base * 2**attempt)) seconds before retry number `attempt` (1-based)."""
    return (rng or random).uniform(0, min(cap, base * 2 ** attempt))


class RetryDeadline(Exception):
    """`RetryPolicy.call` gave up because the next retry would start after its deadline; `last` is the error of
    the last attempt, `attempts` how many were made."""

    def __init__(self, what: str, attempts: int, last: BaseException):
        super().__init__(f"{what}: the deadline passed after {attempts} attempt(s): {describe(last)}")
        self.attempts, self.last = attempts, last


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter over `is_retriable` errors (read timeouts too when `retry_read_timeouts`,
    for idempotent reads), or over what `retry_on` says when a caller classifies its errors itself. With a
    `deadline` (on `clock`), no retry starts after it: `RetryDeadline` instead."""

    max_attempts: int = 8
    base_delay: float = 0.25
    max_delay: float = 20.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    retry_read_timeouts: bool = True
    retries: int = 0  # how many retries happened, for summaries
    retry_on: Callable[[BaseException], bool] | None = None
    clock: Callable[[], float] = time.monotonic

    def should_retry(self, err: BaseException) -> bool:
        if self.retry_on is not None:
            return self.retry_on(err)
        return is_retriable(err) or (self.retry_read_timeouts and is_read_timeout(err))

    def call(self, what: str, fn: Callable[[], T], log: Callable[[str], None] = lambda _: None,
             deadline: float | None = None) -> T:
        for attempt in range(1, self.max_attempts + 1):
            try:
                return fn()
            except Exception as err:
                if not self.should_retry(err) or attempt == self.max_attempts:
                    raise
                delay = backoff_delay(attempt, self.base_delay, self.max_delay, self.rng)
                if deadline is not None and self.clock() + delay >= deadline:
                    raise RetryDeadline(what, attempt, err) from err
                self.retries += 1
                log(f"retry {attempt}/{self.max_attempts - 1} of {what} in {delay:.2f}s: {describe(err)}")
                self.sleep(delay)
        raise AssertionError("unreachable")


def describe(err: BaseException) -> str:
    """One line about an AWS error."""
    code, status = error_code(err)
    if code or status:
        message = err.response.get("Error", {}).get("Message", "")  # type: ignore[attr-defined]
        return f"{code or 'error'} (HTTP {status}): {message}".strip()
    return f"{type(err).__name__}: {err}"


def split_s3(uri: str) -> tuple[str, str]:
    """(bucket, key) of s3://bucket/key; ValueError for anything else (a key may be empty: s3://bucket/)."""
    if not isinstance(uri, str) or not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
        raise ValueError(f"not an S3 URI: {uri!r} (expected s3://bucket/key)")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# --------------------------------------------------------------------------------------------- request checks


_patterns: dict[str, Any] = {}


def _pattern(expr: str):
    if expr not in _patterns:
        try:  # the models' patterns are Java regexes (\p{L}, \p{Z}, ...): the `regex` module reads them
            import regex as engine
        except ImportError:  # pragma: no cover
            import re as engine
        try:
            _patterns[expr] = engine.compile(expr)
        except Exception:  # noqa: BLE001 - a pattern this engine cannot read is not checked
            _patterns[expr] = None
    return _patterns[expr]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def shape_problems(shape, value: Any, path: str = "") -> list[str]:
    """Problems of `value` against the botocore `shape`: required members, string length and pattern, enum, list
    and map sizes, number ranges, recursively. botocore's own validator checks types, required members and minimum
    lengths; not maximum lengths, patterns or enums, which is where moto and AWS differ most."""
    if shape is None or value is None:
        return []
    meta, kind, where = shape.metadata, shape.type_name, path or "(input)"
    problems: list[str] = []
    if kind == "structure" and isinstance(value, dict):
        problems += [f"{where}: required member {n} missing" for n in shape.required_members if n not in value]
        for name, item in value.items():
            if name in shape.members:
                problems += shape_problems(shape.members[name], item, f"{path}.{name}" if path else name)
    elif kind == "list" and isinstance(value, list | tuple):
        problems += _range(meta, len(value), where, "items")
        for i, item in enumerate(value):
            problems += shape_problems(shape.member, item, f"{where}[{i}]")
    elif kind == "map" and isinstance(value, dict):
        problems += _range(meta, len(value), where, "entries")
        for key, item in value.items():
            problems += shape_problems(shape.key, key, f"{where}<key>")
            problems += shape_problems(shape.value, item, f"{where}[{key!r}]")
    elif kind == "string" and isinstance(value, str):
        problems += _range(meta, len(value), where, "characters", value)
        if shape.enum and value not in shape.enum:
            problems.append(f"{where}: {_short(value)} is not one of {sorted(shape.enum)}")
        expr = meta.get("pattern")
        compiled = _pattern(expr) if expr else None
        if compiled is not None and compiled.fullmatch(value) is None:
            problems.append(f"{where}: {_short(value)} does not match the pattern {expr}")
    elif kind in ("integer", "long", "float", "double") and isinstance(value, int | float) \
            and not isinstance(value, bool):
        problems += _range(meta, value, where, "value")
    return problems


def _range(meta: dict, n: float, where: str, unit: str, value: Any = None) -> list[str]:
    shown = f"{_short(value)}: " if value is not None else ""
    out = []
    if "min" in meta and n < meta["min"]:
        out.append(f"{where}: {shown}{n} {unit}, below the minimum of {meta['min']}")
    if "max" in meta and n > meta["max"]:
        out.append(f"{where}: {shown}{n} {unit}, above the maximum of {meta['max']}")
    return out


_models: dict[str, Any] = {}


def service_model(service: str):
    if service not in _models:
        import botocore.session

        _models[service] = botocore.session.get_session().get_service_model(service)
    return _models[service]


def request_problems(service: str, operation: str, params: dict[str, Any]) -> list[str]:
    """What the service model says AWS would refuse in this request (an empty list: nothing)."""
    shape = service_model(service).operation_model(operation).input_shape
    return [f"{service} {operation}: {p}" for p in shape_problems(shape, params)]


def check_request(service: str, operation: str, params: dict[str, Any]) -> None:
    """ValueError (one line, every problem) when AWS would refuse the request."""
    problems = request_problems(service, operation, params)
    if problems:
        raise ValueError("; ".join(problems))


def fit_name(prefix: str, suffix: str, limit: int = NAME_LIMIT) -> str:
    """`prefix` + "-" + `suffix` within `limit` characters: the prefix is cut (and trailing dashes dropped), the
    suffix (a timestamp, a purpose) is kept whole."""
    room = limit - len(suffix) - 1
    if room < 1:
        raise ValueError(f"the suffix {suffix!r} leaves no room for a name within {limit} characters")
    return f"{prefix[:room].rstrip('-')}-{suffix}"
