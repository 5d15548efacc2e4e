"""Prometheus metrics count what the API did; CloudWatch gets the same figures when turned on."""

from __future__ import annotations

from prometheus_client import generate_latest

from monitoring import metrics
from monitoring.metrics import REGISTRY, CloudWatchPublisher, observe, observe_request
from tests.monitoring import synth


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_observe_counts_labels_techniques_fallbacks_and_disagreements():
    rows = synth.results(200, seed=21, shifted=True)
    before = {
        "harmful": value("algospeak_predictions_total", label="harmful"),
        "leet": value("algospeak_normalizer_texts_total", technique="leetspeak"),
        "normalized": value("algospeak_normalized_texts_total"),
        "fallback": value("algospeak_classifier_fallbacks_total", backend="embedded"),
        "disagree": value("algospeak_raw_normalized_disagreements_total"),
        "latency_n": value("algospeak_prediction_latency_seconds_count", backend="embedded"),
    }
    for r in rows:
        observe(r)
    expected = {
        "harmful": sum(r["classification"] == "harmful" for r in rows),
        "leet": sum(any("leetspeak" in m["techniques"] for m in r["matches"]) for r in rows),
        "normalized": sum(bool(r["matches"]) for r in rows),
        "fallback": sum(r["stage2_status"] == "fallback:embedded" for r in rows),
        "disagree": sum(r["raw_classification"] not in (None, r["classification"]) for r in rows),
        "latency_n": len(rows),
    }
    assert expected["leet"] > 0 and expected["disagree"] > 0  # the data exercises every counter
    after = {
        "harmful": value("algospeak_predictions_total", label="harmful"),
        "leet": value("algospeak_normalizer_texts_total", technique="leetspeak"),
        "normalized": value("algospeak_normalized_texts_total"),
        "fallback": value("algospeak_classifier_fallbacks_total", backend="embedded"),
        "disagree": value("algospeak_raw_normalized_disagreements_total"),
        "latency_n": value("algospeak_prediction_latency_seconds_count", backend="embedded"),
    }
    assert {k: after[k] - before[k] for k in after} == expected
    text = generate_latest(REGISTRY).decode()
    assert 'algospeak_predictions_total{label="extremely_harmful"}' in text


def test_observe_request_and_bounded_routes():
    before = value("algospeak_http_requests_total", path="/moderate", status="200")
    observe_request("/moderate", 200, 0.012)
    observe_request("/moderate", 200, 0.3)
    assert value("algospeak_http_requests_total", path="/moderate", status="200") - before == 2
    assert value("algospeak_http_request_duration_seconds_bucket", path="/moderate", le="0.025") >= 1
    for i in range(100):  # a scanner probing random URLs must not grow the registry without bound
        observe_request(f"/probe/{i}", 404, 0.001)
    paths = {s.labels["path"] for m in REGISTRY.collect() if m.name == "algospeak_http_requests"
             for s in m.samples}
    assert len(paths) <= 65 and "other" in paths


def test_odd_results_are_counted_as_unknown_and_never_raise():
    before = {"unknown": value("algospeak_predictions_total", label="unknown"),
              "status": value("algospeak_stage2_status_total", status="unknown")}  # fmt: skip
    observe({})
    observe({"classification": "spam", "latency_ms": "slow", "model": None})  # (3 would be an ordinal label)
    observe("not a result")  # type: ignore[arg-type]  # not a mapping: skipped
    assert value("algospeak_predictions_total", label="unknown") - before["unknown"] == 2
    assert value("algospeak_stage2_status_total", status="unknown") - before["status"] == 2
    observe({"classification": "safe", "matches": "nope"})  # a result it cannot read is not counted, and no raise
    before_other = value("algospeak_http_requests_total", path="other", status="x")
    observe_request(None, "x", "y")  # type: ignore[arg-type]
    assert value("algospeak_http_requests_total", path="other", status="x") - before_other == 1


def test_a_moderation_result_is_counted_by_its_fields():
    """The moderator's own result (core.result.ModerationResult): normalizing revealed an extremely harmful
    text the raw reading called safe, answered by the fallback."""
    from core.settings import DEFAULT_PATTERN_DB, Settings
    from moderator import Moderator
    from normalizer.reload import ReloadingNormalizer
    from tests.scripted import EXTREME, SAFE, Scripted, down

    settings = Settings(environment="test", prediction_log_url="", _env_file=None)
    fallback = Scripted({"i will unal1ve you": SAFE, "i will kill you": EXTREME}, name="embedded")
    moderator = Moderator(ReloadingNormalizer(DEFAULT_PATTERN_DB, 0), down(), settings, fallback)
    [result] = moderator.moderate_batch(["i will unal1ve you"])
    assert result["classification"] == "extremely_harmful" and result["raw_classification"] == "safe"
    names = {
        "label": ("algospeak_predictions_total", {"label": "extremely_harmful"}),
        "normalized": ("algospeak_normalized_texts_total", {}),
        "disagree": ("algospeak_raw_normalized_disagreements_total", {}),
        "status": ("algospeak_stage2_status_total", {"status": "fallback:embedded"}),
        "fallback": ("algospeak_classifier_fallbacks_total", {"backend": "embedded"}),
        "confidence_sum": ("algospeak_prediction_confidence_sum", {}),
        "latency_n": ("algospeak_prediction_latency_seconds_count", {"backend": "embedded"}),
        "safe": ("algospeak_predictions_total", {"label": "safe"}),
    }
    before = {k: value(name, **labels) for k, (name, labels) in names.items()}
    observe(result)
    after = {k: value(name, **labels) for k, (name, labels) in names.items()}
    assert {k: round(after[k] - before[k], 6) for k in names} == {
        "label": 1, "normalized": 1, "disagree": 1, "status": 1, "fallback": 1,
        "confidence_sum": result["confidence"], "latency_n": 1, "safe": 0,
    }  # fmt: skip


def test_cloudwatch_publisher_sends_aggregates(aws_env):
    import boto3

    client = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=aws_env)
    publisher = CloudWatchPublisher("Test/Moderation", interval_s=3600)  # region and endpoint from settings
    rows = synth.results(50, seed=22, shifted=True)
    for r in rows:
        publisher.observe(r)
    assert publisher.publish() > 0
    names = {(m["MetricName"], tuple((d["Name"], d["Value"]) for d in m["Dimensions"]))
             for m in client.list_metrics(Namespace="Test/Moderation")["Metrics"]}
    assert ("Predictions", (("Label", "harmful"),)) in names
    assert ("TechniqueTexts", (("Technique", "leetspeak"),)) in names
    assert ("LatencyMs", ()) in names
    assert publisher.publish() == 0  # nothing new since the last send


def test_enable_cloudwatch_feeds_observe(aws_env):
    import boto3

    client = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=aws_env)
    publisher = metrics.enable_cloudwatch("Test/Enabled", client=client, interval_s=3600)
    try:
        for r in synth.results(5, seed=23):
            observe(r)
    finally:
        metrics.disable_cloudwatch()  # sends what it holds
    assert metrics._cloudwatch is None
    assert publisher is not None
    assert client.list_metrics(Namespace="Test/Enabled")["Metrics"]
