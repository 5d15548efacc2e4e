"""The status command and health checks report what an operator needs, and fail when something is wrong."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from monitoring.model_monitoring import check_api, check_endpoint, log_summary, main
from tests.monitoring import synth
from tests.monitoring.conftest import write_log


@pytest.fixture
def api():
    """A stand-in API: /health is fine, /ready says the model is not loaded."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            status, body = {"/health": (200, {"status": "ok"}),
                            "/ready": (503, {"ready": False, "reason": "model not loaded"})}.get(self.path, (404, {}))
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_api_checks(api):
    health, ready = check_api(api)
    assert (health.name, health.status) == ("api_health", "ok")
    assert (ready.name, ready.status) == ("api_ready", "fail") and "model not loaded" in ready.detail
    down = check_api(f"http://127.0.0.1:{_free_port()}", timeout=1)
    assert [c.status for c in down] == ["fail", "fail"] and "unreachable" in down[0].detail


def test_status_summarizes_the_log(data, capsys):
    code = main(["status", "--db", data["log_shifted"], "--window", "all", "--no-endpoint"])
    out = capsys.readouterr().out
    assert code == 0
    assert "500 records" in out and "leetspeak" in out and "p95" in out
    rows = synth.results(500, seed=6, shifted=True)
    summary = log_summary(data["log_shifted"])
    assert summary["records"] == 500
    assert summary["labels"]["harmful"] == sum(r["classification"] == "harmful" for r in rows)
    assert summary["fallback_rate"] == pytest.approx(
        sum(r["stage2_status"].startswith("fallback") for r in rows) / 500)

    code = main(["status", "--db", data["log_shifted"], "--window", "all", "--no-endpoint", "--json"])
    parsed = json.loads(capsys.readouterr().out)
    assert parsed["status"] in ("ok", "warn") and parsed["log"]["records"] == 500


def test_status_fails_on_classifier_errors_and_unready_api(tmp_path, api, capsys):
    rows = synth.results(100, seed=41)
    for r in rows[:10]:
        r["stage2_status"] = "error"
    url = write_log(f"sqlite:///{tmp_path}/log.db", rows, log_text=False)
    code = main(["status", "--db", url, "--window", "1h", "--no-endpoint"])
    out = capsys.readouterr().out
    assert code == 1 and "FAIL" in out and "classifier errors 10.00%" in out
    code = main(["status", "--db", url, "--api", api, "--no-endpoint", "--json"])
    checks = {c["name"]: c["status"] for c in json.loads(capsys.readouterr().out)["checks"]}
    assert code == 1 and checks["api_health"] == "ok" and checks["api_ready"] == "fail"


@pytest.mark.parametrize("args", [
    ["--db", "sqlite:///{tmp}/missing.db"],
    ["--db", "nonsense"],
    ["--db", "sqlite:///{tmp}/x.db", "--window", "yesterday-ish"],
])
def test_status_bad_input_exit_2(args, tmp_path, capsys):
    code = main(["status", "--no-endpoint", *[a.format(tmp=tmp_path) for a in args]])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1


def _endpoint(moto_url: str, name: str = "algospeak") -> None:
    """An InService endpoint in moto (its answers are whatever _seed last gave it)."""
    import boto3

    sm = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=moto_url)
    sm.create_model(ModelName="m", ExecutionRoleArn="arn:aws:iam::123456789012:role/sagemaker",
                    PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/img:1"})
    sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[
        {"VariantName": "v", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName="c")


def test_endpoint_checks(aws_env):
    _endpoint(aws_env)
    # moto answers b"body" unless told otherwise: an answer, but not a model's
    status, latency, answer = check_endpoint("algospeak")  # region and endpoint URL from settings
    assert (status.status, latency.status, answer.status) == ("ok", "ok", "fail")
    assert latency.value["latency_ms"] >= 0 and "not the inference contract" in answer.detail
    missing, probe = check_endpoint("absent")
    assert missing.status == "fail" and "absent" in missing.detail and probe.status == "skipped"


def _seed(moto_url: str, body: dict) -> None:
    import urllib.request

    results = [{"Body": json.dumps(body), "ContentType": "application/json", "InvokedProductionVariant": "v",
                "CustomAttributes": ""}]
    request = urllib.request.Request(f"{moto_url}/moto-api/static/sagemaker/endpoint-results",
                                     data=json.dumps({"results": results}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()


def _answer(safe_scores, harmful_scores, label_mass=0.9) -> dict:
    from core import probes
    from core.labels import LABELS

    return {"predictions": [{"scores": dict(zip(LABELS, safe_scores if p.expect == probes.SAFE else harmful_scores)),
                             "label_mass": label_mass} for p in probes.PROBES]}


@pytest.mark.parametrize("body,expected,detail", [
    (_answer([0.8, 0.1, 0.05, 0.05], [0.05, 0.1, 0.5, 0.35]), "ok", "answered right"),
    (_answer([0.25] * 4, [0.25] * 4), "fail", "labelled probe"),                  # a random model
    (_answer([0.8, 0.1, 0.05, 0.05], [0.8, 0.1, 0.05, 0.05]), "fail", "P(harmful_or_worse)"),  # all "safe"
    (_answer([0.8, 0.1, 0.05, 0.05], [0.05, 0.1, 0.5, 0.35], 3e-5), "fail", "label_mass"),  # untrained
])
def test_the_endpoint_probe_fails_a_random_or_untrained_model(aws_env, body, expected, detail):
    _endpoint(aws_env)
    _seed(aws_env, body)
    _, _, answer = check_endpoint("algospeak")
    assert answer.status == expected and detail in answer.detail


def test_status_warns_when_every_prediction_is_the_same_label(tmp_path, capsys):
    rows = synth.results(100, seed=41)
    for r in rows:
        r["classification"] = "safe"
    url = write_log(f"sqlite:///{tmp_path}/log.db", rows, log_text=False)
    assert main(["status", "--db", url, "--window", "all", "--no-endpoint"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("status: WARN") and "log_label_mix" in out and "100.0% of 100 predictions are safe" in out
    mixed = write_log(f"sqlite:///{tmp_path}/mixed.db", synth.results(100, seed=41), log_text=False)
    assert main(["status", "--db", mixed, "--window", "all", "--no-endpoint", "--json"]) == 0
    checks = {c["name"]: c["status"] for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["log_label_mix"] == "ok"
