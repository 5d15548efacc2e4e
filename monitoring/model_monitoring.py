"""Health of the moderation service: the API, the SageMaker endpoint and the prediction log, in one status.

    uv run python -m monitoring.model_monitoring status --db sqlite:///predictions.db
    uv run python -m monitoring.model_monitoring status --db sqlite:///predictions.db --api http://127.0.0.1:8000
    uv run python -m monitoring.model_monitoring status --db sqlite:///predictions.db \\
        --endpoint algospeak-classifier --window 24h --json

Checks (each ok, warn, fail or skipped):
    api_health, api_ready        GET /health and /ready answer 200 (--api)
    endpoint_status              describe_endpoint says InService (--endpoint, default SAGEMAKER_ENDPOINT_NAME)
    endpoint_latency             one invoke_endpoint probe succeeds, and how long it took
    endpoint_answer              the probe's answer is right: the labelled probes of core/probes.py (clearly safe,
                                 clearly harmful, coded) get their known answers with enough label_mass, so a
                                 random, untrained or wrong model fails (a custom --probe-body: shape only)
    log_activity                 the log has records in the window
    log_error_rate               share of stage2_status == "error" in the window
    log_fallback_rate            share answered by a fallback classifier
    log_label_mix                warns when the label mix collapses (nearly every prediction the same label)
    log_integrity                unreadable rows

Exit status: 0 nothing failed (warnings allowed), 1 a check failed, 2 bad input (e.g. no log at --db).
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by its path (python monitoring/model_monitoring.py): the repository root on sys.path
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from core import probes
from core.labels import LABELS
from monitoring import MonitoringInputError
from monitoring.sources import parse_time, utc_iso

DEFAULT_PROBE = {"inputs": list(probes.TEXTS)}


@dataclass
class CheckResult:
    name: str
    status: str  # ok | warn | fail | skipped
    detail: str
    value: dict[str, Any] = field(default_factory=dict)


@dataclass
class Thresholds:
    error_rate_warn: float = 0.01
    error_rate_fail: float = 0.05
    fallback_rate_warn: float = 0.05
    endpoint_latency_warn_ms: float = 1000.0
    log_bad_rows_warn: float = 0.001
    label_collapse_share: float = 0.98  # one label this share of predictions or more: the mix collapsed
    label_collapse_min_records: int = 50


# ------------------------------------------------------------------------------------------ API


def _get(url: str, timeout: float) -> tuple[int, str, float]:
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read(2000).decode("utf-8", "replace")
            status = resp.status
    except urllib.error.HTTPError as exc:
        body = exc.read(2000).decode("utf-8", "replace") if exc.fp else ""
        status = exc.code
    return status, body, (time.perf_counter() - start) * 1000


def check_api(base_url: str, *, timeout: float = 3.0) -> list[CheckResult]:
    """GET /health (liveness) and /ready (readiness); 200 is ok, anything else fails with the body's gist."""
    results = []
    for name, path in (("api_health", "/health"), ("api_ready", "/ready")):
        url = base_url.rstrip("/") + path
        try:
            status, body, ms = _get(url, timeout)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            results.append(CheckResult(name, "fail", f"{url} unreachable: {reason}"))
            continue
        gist = " ".join(body.split())[:200]
        ok = status == 200
        results.append(CheckResult(name, "ok" if ok else "fail", f"{url} -> {status} in {ms:.0f} ms" +
                                   ("" if ok else f": {gist}"), {"http_status": status, "latency_ms": ms}))
    return results


# ------------------------------------------------------------------------------------------ SageMaker


def check_endpoint(
    endpoint_name: str,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    probe: Any = DEFAULT_PROBE,
    content_type: str = "application/json",
    thresholds: Thresholds | None = None,
    sagemaker: Any = None,
    runtime: Any = None,
    runtime_endpoint_url: str | None = None,
) -> list[CheckResult]:
    """describe_endpoint status, then one invoke_endpoint probe (skipped when the endpoint is not InService)."""
    th = thresholds or Thresholds()
    try:
        import boto3  # noqa: F401 - only whether it is installed
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        return [CheckResult("endpoint_status", "skipped", "boto3 is not installed: uv sync --extra monitoring")]
    from core import aws

    sagemaker = sagemaker or aws.client("sagemaker", region, endpoint_url)
    runtime = runtime or aws.client("sagemaker-runtime", region, runtime_endpoint_url or endpoint_url)
    try:
        desc = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    except (BotoCoreError, ClientError) as exc:
        return [CheckResult("endpoint_status", "fail", f"{endpoint_name}: {str(exc).splitlines()[0]}"),
                CheckResult("endpoint_latency", "skipped", "endpoint not described")]
    state = desc.get("EndpointStatus", "Unknown")
    value = {"endpoint_status": state, "config": desc.get("EndpointConfigName")}
    if state == "InService":
        results = [CheckResult("endpoint_status", "ok", f"{endpoint_name} is InService", value)]
    elif state in ("Updating", "SystemUpdating", "Creating", "RollingBack"):
        results = [CheckResult("endpoint_status", "warn", f"{endpoint_name} is {state}", value)]
    else:
        why = desc.get("FailureReason") or ""
        results = [CheckResult("endpoint_status", "fail", f"{endpoint_name} is {state} {why}".strip(), value)]
    if state not in ("InService", "Updating", "SystemUpdating"):
        return results + [CheckResult("endpoint_latency", "skipped", f"endpoint is {state}")]
    body = probe if isinstance(probe, (bytes, str)) else json.dumps(probe)
    start = time.perf_counter()
    try:
        resp = runtime.invoke_endpoint(EndpointName=endpoint_name, ContentType=content_type, Body=body)
        raw = resp["Body"].read()
    except (BotoCoreError, ClientError) as exc:
        return results + [CheckResult("endpoint_latency", "fail", f"probe failed: {str(exc).splitlines()[0]}"),
                          CheckResult("endpoint_answer", "skipped", "no answer")]
    ms = (time.perf_counter() - start) * 1000
    status = "warn" if ms > th.endpoint_latency_warn_ms else "ok"
    results.append(CheckResult("endpoint_latency", status, f"probe answered in {ms:.0f} ms", {"latency_ms": ms}))
    return results + [check_probe_answer(raw, probe)]


def check_probe_answer(raw: bytes, probe: Any = DEFAULT_PROBE) -> CheckResult:
    """The endpoint's answer to the probe: one prediction per text, and for the default probe, the labelled
    probes' known answers (core/probes.py). An answer that is not this contract fails."""
    try:
        answer = json.loads(raw)
        predictions = answer["predictions"]
    except (ValueError, TypeError, KeyError):
        return CheckResult("endpoint_answer", "fail", f"the answer is not the inference contract: {raw[:80]!r}")
    texts = probe.get("inputs") if isinstance(probe, dict) else None
    if not isinstance(predictions, list) or (isinstance(texts, list) and len(predictions) != len(texts)):
        return CheckResult("endpoint_answer", "fail", f"expected one prediction per probe text, got {raw[:120]!r}")
    if probe != DEFAULT_PROBE:
        return CheckResult("endpoint_answer", "ok", f"{len(predictions)} predictions (custom probe: shape only)")
    failed = probes.failures(predictions)
    if failed:
        return CheckResult("endpoint_answer", "fail", f"{len(failed)} labelled probe check(s) failed: {failed[0]}"
                           + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""), {"failures": failed})
    return CheckResult("endpoint_answer", "ok", f"all {len(predictions)} labelled probes answered right")


# ------------------------------------------------------------------------------------------ prediction log


def log_summary(db_url: str, *, since: float | None = None, limit: int = 200_000) -> dict[str, Any]:
    """Counts and rates over the log window (the most recent `limit` records at most)."""
    from monitoring.prediction_log import read_records

    result = read_records(db_url, since=since, limit=limit)
    rows = result.records
    n = len(rows)
    summary: dict[str, Any] = {"records": n, "bad_rows": result.bad_rows, "problems": result.problems,
                               "since": utc_iso(since)}
    if not n:
        return summary
    labels = Counter(r["label"] for r in rows)
    stage2 = Counter(r.get("stage2_status") or "unknown" for r in rows)
    techniques = Counter(t for r in rows for t in r["techniques"])
    latency = np.array([r["latency_ms"] for r in rows if r.get("latency_ms") is not None], dtype=float)
    with_raw = [r for r in rows if r.get("raw_label")]
    last = rows[-1]
    summary.update({
        "first": utc_iso(rows[0]["ts"]),
        "last": utc_iso(last["ts"]),
        "labels": {lb: labels.get(lb, 0) for lb in LABELS},
        "label_shares": {lb: labels.get(lb, 0) / n for lb in LABELS},
        "algospeak_rate": sum(bool(r["algospeak_detected"]) for r in rows) / n,
        "technique_rates": {t: c / n for t, c in techniques.most_common()},
        "disagreement_rate": sum(bool(r["disagreement"]) for r in rows) / n,
        "disagreements_among_normalized": (sum(bool(r["disagreement"]) for r in with_raw) / len(with_raw))
        if with_raw else None,
        "stage2_status": dict(stage2),
        "error_rate": stage2.get("error", 0) / n,
        "fallback_rate": sum(c for s, c in stage2.items() if s.startswith("fallback")) / n,
        "latency_ms": {"p50": float(np.percentile(latency, 50)), "p95": float(np.percentile(latency, 95)),
                       "max": float(latency.max())} if latency.size else None,
        "mean_confidence": float(np.mean(conf)) if (conf := [r["confidence"] for r in rows
                                                            if r.get("confidence") is not None]) else None,
        "backends": dict(Counter(r.get("backend") or "unknown" for r in rows)),
        "latest_versions": {"model": last.get("model_version"), "pattern_db": last.get("pattern_db_version"),
                            "backend": last.get("backend")},
    })
    return summary


def check_log(summary: dict[str, Any], thresholds: Thresholds | None = None) -> list[CheckResult]:
    th = thresholds or Thresholds()
    n = summary["records"]
    window = f"since {summary['since']}" if summary.get("since") else "in the log"
    results = []
    total = n + summary["bad_rows"]
    bad_share = summary["bad_rows"] / total if total else 0.0
    if summary["bad_rows"]:
        status = "warn" if bad_share >= th.log_bad_rows_warn else "ok"
        results.append(CheckResult("log_integrity", status, f"{summary['bad_rows']} unreadable rows "
                                   f"({bad_share:.2%}), e.g. {summary['problems'][0]}", {"bad_rows": summary["bad_rows"]}))
    else:
        results.append(CheckResult("log_integrity", "ok", "all rows readable"))
    if not n:
        results.append(CheckResult("log_activity", "warn", f"no records {window}"))
        return results
    results.append(CheckResult("log_activity", "ok", f"{n} records {window}, last at {summary['last']}",
                               {"records": n}))
    er = summary["error_rate"]
    status = "fail" if er >= th.error_rate_fail else "warn" if er >= th.error_rate_warn else "ok"
    results.append(CheckResult("log_error_rate", status, f"classifier errors {er:.2%} of {n}", {"error_rate": er}))
    fr = summary["fallback_rate"]
    status = "warn" if fr >= th.fallback_rate_warn else "ok"
    results.append(CheckResult("log_fallback_rate", status, f"fallback answers {fr:.2%} of {n}",
                               {"fallback_rate": fr}))
    top = max(LABELS, key=lambda label: summary["label_shares"][label])
    share = summary["label_shares"][top]
    if n >= th.label_collapse_min_records and share >= th.label_collapse_share:
        results.append(CheckResult("log_label_mix", "warn", f"{share:.1%} of {n} predictions are {top}: the label "
                                   "mix collapsed (a broken or wrong model answers one label)", {"share": share}))
    else:
        results.append(CheckResult("log_label_mix", "ok", f"most common label {top} at {share:.1%}",
                                   {"share": share}))
    return results


# ------------------------------------------------------------------------------------------ status


def status(
    db: str | None,
    *,
    api: str | None = None,
    endpoint: str | None = None,
    since: float | None = None,
    thresholds: Thresholds | None = None,
    probe: Any = DEFAULT_PROBE,
    runtime_endpoint_url: str | None = None,
) -> dict[str, Any]:
    """Everything the `status` command prints, as a dict with an overall status (ok, warn or fail)."""
    checks: list[CheckResult] = []
    summary = None
    if db:
        summary = log_summary(db, since=since)
        checks += check_log(summary, thresholds)
    if api:
        checks += check_api(api)
    if endpoint:
        checks += check_endpoint(endpoint, probe=probe, thresholds=thresholds,
                                 runtime_endpoint_url=runtime_endpoint_url)
    order = {"skipped": -1, "ok": 0, "warn": 1, "fail": 2}
    overall = max((c.status for c in checks), key=order.__getitem__, default="ok")
    return {"status": "ok" if overall == "skipped" else overall, "checks": [asdict(c) for c in checks],
            "log": summary}


def _print_status(result: dict[str, Any]) -> None:
    print(f"status: {result['status'].upper()}")
    for c in result["checks"]:
        print(f"  [{c['status']:>7}] {c['name']:<18} {c['detail']}")
    s = result.get("log")
    if not s or not s.get("records"):
        return
    print(f"prediction log: {s['records']} records, {s['first']} .. {s['last']}")
    print("  labels:     " + ", ".join(f"{lb} {s['label_shares'][lb]:.1%}" for lb in LABELS))
    print(f"  algospeak:  {s['algospeak_rate']:.1%} of texts; raw/normalized disagree {s['disagreement_rate']:.1%}")
    if s["technique_rates"]:
        print("  techniques: " + ", ".join(f"{t} {r:.1%}" for t, r in list(s["technique_rates"].items())[:8]))
    print("  stage 2:    " + ", ".join(f"{k} {v}" for k, v in sorted(s["stage2_status"].items())))
    if s["latency_ms"]:
        lat = s["latency_ms"]
        print(f"  latency:    p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, max {lat['max']:.1f} ms")
    v = s["latest_versions"]
    print(f"  versions:   backend {v['backend']}, model {v['model']}, pattern db {v['pattern_db']}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m monitoring.model_monitoring",
                                     description="Health checks and a status summary of the moderation service.")
    sub = parser.add_subparsers(dest="command", required=True)
    st = sub.add_parser("status", help="print the status summary",
                        epilog="Exit status: 0 ok or warnings, 1 a check failed, 2 bad input.")
    st.add_argument("--db", help="prediction-log URL (default: PREDICTION_LOG_URL)")
    st.add_argument("--api", help="API base URL, e.g. http://127.0.0.1:8000")
    st.add_argument("--endpoint", help="SageMaker endpoint name (default: SAGEMAKER_ENDPOINT_NAME)")
    st.add_argument("--no-endpoint", action="store_true", help="skip the SageMaker checks")
    st.add_argument("--runtime-endpoint-url", help="sagemaker-runtime URL for the probe (default: AWS_ENDPOINT_URL; "
                                                   "a local container: http://127.0.0.1:8080)")
    st.add_argument("--probe-body", help="JSON body for the endpoint probe (default: %(default)s)",
                    default=json.dumps(DEFAULT_PROBE))
    st.add_argument("--window", default="1h", help="how far back the log summary looks (e.g. 1h, 7d, all)")
    st.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from core.settings import get_settings

    settings = get_settings()
    db = args.db or settings.prediction_log_url
    endpoint = None if args.no_endpoint else (args.endpoint or settings.sagemaker_endpoint_name)
    try:
        since = None if args.window == "all" else parse_time(args.window)
        try:
            probe = json.loads(args.probe_body)
        except ValueError:
            raise MonitoringInputError(f"--probe-body is not JSON: {args.probe_body!r}") from None
        if not (db or args.api or endpoint):
            raise MonitoringInputError("nothing to check: pass --db, --api or --endpoint")
        result = status(db, api=args.api, endpoint=endpoint, since=since, probe=probe,
                        runtime_endpoint_url=args.runtime_endpoint_url)
    except MonitoringInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        _print_status(result)
    return 1 if result["status"] == "fail" else 0


if __name__ == "__main__":
    sys.exit(main())
