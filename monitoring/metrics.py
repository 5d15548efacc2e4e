"""Prometheus metrics for the API, and optional CloudWatch publishing of the same figures.

The API serves these with `prometheus_client.generate_latest(monitoring.metrics.REGISTRY)` at `/metrics`;
it calls `observe(result)` once per moderation result and `observe_request(path, status, seconds)` once
per HTTP request (pass the route template, e.g. "/moderate", not the raw URL).

Rates are left to the query: the normalizer hit rate of a technique is
`rate(algospeak_normalizer_texts_total{technique="leetspeak"}[5m]) / rate(algospeak_predictions_total[5m])`.

CloudWatch is opt-in: `enable_cloudwatch()` starts a publisher that sends per-minute aggregates with
`put_metric_data`; `observe()` then feeds both.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter as _Tally
from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core.categories import CATEGORIES
from core.labels import LABELS
from core.result import ModerationResult
from monitoring.features import disagrees, normalize_label, techniques_of

log = logging.getLogger(__name__)

_CATEGORIES = frozenset(CATEGORIES)
REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter(
    "algospeak_http_requests_total", "HTTP requests by route and status code.", ["path", "status"],
    registry=REGISTRY,
)
REQUEST_LATENCY = Histogram(
    "algospeak_http_request_duration_seconds", "HTTP request duration by route.", ["path"],
    buckets=_LATENCY_BUCKETS, registry=REGISTRY,
)
PREDICTIONS = Counter(
    "algospeak_predictions_total", "Moderated texts by final label.", ["label"], registry=REGISTRY
)
for _label in LABELS:  # export zeros from the start, so rate() works on the first increment
    PREDICTIONS.labels(label=_label)

PREDICTION_LATENCY = Histogram(
    "algospeak_prediction_latency_seconds", "Per-text moderation latency by classifier backend.", ["backend"],
    buckets=_LATENCY_BUCKETS, registry=REGISTRY,
)
CONFIDENCE = Histogram(
    "algospeak_prediction_confidence", "Probability of the chosen label.",
    buckets=(0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0), registry=REGISTRY,
)
ALGOSPEAK_TEXTS = Counter(
    "algospeak_normalized_texts_total", "Texts in which the normalizer found at least one algospeak form.",
    registry=REGISTRY,
)
NORMALIZER_TEXTS = Counter(
    "algospeak_normalizer_texts_total",
    "Texts with at least one match of a technique (divide by algospeak_predictions_total for the hit rate).",
    ["technique"], registry=REGISTRY,
)
FLAGGED_CATEGORIES = Counter(
    "algospeak_flagged_category_texts_total",
    "Texts flagged with a harm category (a text may have several; core.categories).", ["category"], registry=REGISTRY,
)
DISAGREEMENTS = Counter(
    "algospeak_raw_normalized_disagreements_total",
    "Texts whose un-normalized and normalized labels differ.", registry=REGISTRY,
)
STAGE2_STATUS = Counter(
    "algospeak_stage2_status_total", "Classifier outcomes by status (ok, fallback:*, error).", ["status"],
    registry=REGISTRY,
)
FALLBACKS = Counter(
    "algospeak_classifier_fallbacks_total", "Results answered by a fallback classifier.", ["backend"],
    registry=REGISTRY,
)
LOG_WRITTEN = Counter(
    "algospeak_prediction_log_written_total", "Records written to the prediction log.", registry=REGISTRY
)
LOG_DROPPED = Counter(
    "algospeak_prediction_log_dropped_total",
    "Records not written to the prediction log, by reason (queue_full, closed, invalid, write_error).",
    ["reason"], registry=REGISTRY,
)
LOG_QUEUE = Gauge(
    "algospeak_prediction_log_queue_depth", "Records waiting for the prediction-log writer.", registry=REGISTRY
)

# Route labels are capped so a client probing random URLs cannot grow the registry without bound.
_MAX_PATHS = 64
_paths: set[str] = set()
_paths_lock = threading.Lock()


def register_paths(paths) -> None:
    """The application's own routes: always labelled as themselves, however many other paths were seen."""
    with _paths_lock:
        _paths.update(paths)


def _path_label(path: str) -> str:
    with _paths_lock:
        if path in _paths:
            return path
        if len(_paths) < _MAX_PATHS:
            _paths.add(path)
            return path
    return "other"


def observe_request(path: str, status: int | str, seconds: float) -> None:
    """Count one HTTP request and its duration. Never raises."""
    try:
        label = _path_label(str(path))
        REQUESTS.labels(path=label, status=str(status)).inc()
        REQUEST_LATENCY.labels(path=label).observe(max(0.0, float(seconds)))
    except Exception:  # metrics must never break a request
        log.debug("observe_request failed", exc_info=True)


def observe(result: ModerationResult | Mapping[str, Any]) -> None:
    """Count one moderation result (`core.result.ModerationResult`). Never raises."""
    observe_batch((result,))


def observe_batch(results: Sequence[ModerationResult | Mapping[str, Any]]) -> None:
    """Count moderation results: counters are tallied first and incremented once per label value, so a batch
    of 256 costs a few increments, not a thousand. Never raises."""
    try:
        _observe_batch(results)
    except Exception:  # metrics must never break a request
        log.debug("observe failed", exc_info=True)
    publisher = _cloudwatch
    if publisher is not None:
        for result in results:
            publisher.observe(result)


def _observe_batch(results: Sequence[ModerationResult | Mapping[str, Any]]) -> None:
    tally: _Tally = _Tally()
    for result in results:
        if not isinstance(result, Mapping):
            continue
        label = normalize_label(result.get("classification")) or "unknown"
        tally[(PREDICTIONS, "label", label)] += 1
        model = result.get("model")
        backend = str((model if isinstance(model, Mapping) else {}).get("backend") or "unknown")
        latency_ms = result.get("latency_ms")
        if isinstance(latency_ms, (int, float)):
            PREDICTION_LATENCY.labels(backend=backend).observe(max(0.0, latency_ms / 1000.0))
        confidence = result.get("confidence")
        if isinstance(confidence, (int, float)):
            CONFIDENCE.observe(float(confidence))
        matches = result.get("matches")
        techniques = techniques_of(matches) if matches else []
        if result.get("algospeak_detected") or techniques:
            tally[(ALGOSPEAK_TEXTS, None, None)] += 1
        for technique in techniques:
            tally[(NORMALIZER_TEXTS, "technique", technique)] += 1
        flagged = result.get("flagged_categories")
        for category in flagged if isinstance(flagged, list) else ():
            if category in _CATEGORIES:
                tally[(FLAGGED_CATEGORIES, "category", category)] += 1
        if disagrees(label, normalize_label(result.get("raw_classification"))):
            tally[(DISAGREEMENTS, None, None)] += 1
        status = str(result.get("stage2_status") or "unknown")
        tally[(STAGE2_STATUS, "status", status)] += 1
        if status.startswith("fallback"):
            tally[(FALLBACKS, "backend", status.partition(":")[2] or backend)] += 1
    for (metric, name, value), n in tally.items():
        (metric.labels(**{name: value}) if name else metric).inc(n)


# --------------------------------------------------------------------------------------------- CloudWatch

_cloudwatch: CloudWatchPublisher | None = None


class CloudWatchPublisher:
    """Aggregates results in memory and sends them to CloudWatch every `interval_s` seconds.

    Metrics (namespace `namespace`, no dimensions unless noted): Predictions (per Label dimension),
    AlgospeakTexts, TechniqueTexts (per Technique), Disagreements, Fallbacks, Stage2Errors, LatencyMs
    (statistic set). A failed send is logged and its aggregates are kept for the next try.
    """

    def __init__(
        self,
        namespace: str = "Algospeak/Moderation",
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        interval_s: float = 60.0,
        client: Any = None,
        dimensions: Mapping[str, str] | None = None,
    ) -> None:
        if client is None:
            from core import aws

            client = aws.client("cloudwatch", region, endpoint_url)
        self.client = client
        self.namespace = namespace
        self.interval_s = interval_s
        self.dimensions = [{"Name": k, "Value": v} for k, v in (dimensions or {}).items()]
        self._lock = threading.Lock()
        self._reset()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _reset(self) -> None:
        self._counts: _Tally[tuple[str, str, str]] = _Tally()
        self._latency: list[float] = []

    def observe(self, result: ModerationResult | Mapping[str, Any]) -> None:
        try:
            label = normalize_label(result.get("classification")) or "unknown"
            with self._lock:
                self._counts[("Predictions", "Label", label)] += 1
                techniques = techniques_of(result.get("matches"))
                if result.get("algospeak_detected") or techniques:
                    self._counts[("AlgospeakTexts", "", "")] += 1
                for t in techniques:
                    self._counts[("TechniqueTexts", "Technique", t)] += 1
                if disagrees(label, normalize_label(result.get("raw_classification"))):
                    self._counts[("Disagreements", "", "")] += 1
                status = str(result.get("stage2_status") or "")
                if status.startswith("fallback"):
                    self._counts[("Fallbacks", "", "")] += 1
                elif status == "error":
                    self._counts[("Stage2Errors", "", "")] += 1
                if isinstance(result.get("latency_ms"), (int, float)):
                    self._latency.append(float(result["latency_ms"]))
        except Exception:
            log.debug("CloudWatch observe failed", exc_info=True)

    def _metric_data(self, counts: _Tally, latency: list[float]) -> list[dict]:
        data = []
        for (name, dim, value), n in sorted(counts.items()):
            dims = list(self.dimensions) + ([{"Name": dim, "Value": value}] if dim else [])
            data.append({"MetricName": name, "Dimensions": dims, "Value": float(n), "Unit": "Count"})
        if latency:
            data.append({
                "MetricName": "LatencyMs", "Dimensions": list(self.dimensions), "Unit": "Milliseconds",
                "StatisticValues": {
                    "SampleCount": float(len(latency)), "Sum": float(sum(latency)),
                    "Minimum": float(min(latency)), "Maximum": float(max(latency)),
                },
            })
        return data

    def publish(self) -> int:
        """Send what was aggregated since the last publish; returns the number of metric data points."""
        with self._lock:
            counts, latency = self._counts, self._latency
            self._reset()
        data = self._metric_data(counts, latency)
        try:
            for i in range(0, len(data), 500):  # put_metric_data takes at most 1000 items per call
                self.client.put_metric_data(Namespace=self.namespace, MetricData=data[i : i + 500])
        except Exception as exc:
            log.warning("CloudWatch put_metric_data failed (%s); keeping aggregates for the next try", exc)
            with self._lock:
                self._counts.update(counts)
                self._latency[:0] = latency
            return 0
        return len(data)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="cloudwatch-metrics", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.publish()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.publish()


def enable_cloudwatch(namespace: str = "Algospeak/Moderation", **kwargs: Any) -> CloudWatchPublisher:
    """Start publishing to CloudWatch as well (opt-in; needs AWS credentials). Returns the publisher."""
    global _cloudwatch
    disable_cloudwatch()
    publisher = CloudWatchPublisher(namespace, **kwargs)
    publisher.start()
    _cloudwatch = publisher
    return publisher


def disable_cloudwatch() -> None:
    """Stop the CloudWatch publisher, sending what it still holds."""
    global _cloudwatch
    publisher, _cloudwatch = _cloudwatch, None
    if publisher is not None:
        publisher.close()


__all__ = [
    "REGISTRY",
    "CloudWatchPublisher",
    "disable_cloudwatch",
    "enable_cloudwatch",
    "observe",
    "observe_request",
]
