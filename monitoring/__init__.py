"""Monitoring: the prediction log, Prometheus/CloudWatch metrics, health checks, drift and new-term discovery.

    features.py          what is kept of one text (hash, length, character classes, techniques), computed once
    prediction_log.py    PredictionLog: record(result) off the request path; read_records() for analysis
    metrics.py           REGISTRY, observe(result), observe_request(path, status, seconds), CloudWatch opt-in
    model_monitoring.py  health checks (API, SageMaker endpoint, prediction log) and the `status` command
    sources.py           windows of samples from the log, JSONL/Parquet files or SageMaker capture files
    drift_detection.py   reference vs current window: statistics, alert, JSON/Markdown/PNG report
    new_terms.py         candidate new algospeak, written as draft pattern-database entries
"""


class MonitoringInputError(ValueError):
    """Input a monitoring command cannot use (missing, empty or unreadable); its message is one line for users."""
