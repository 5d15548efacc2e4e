"""AWS for tests: a real moto_server on loopback, and a fault-injecting HTTP proxy that can sit in front of it.

Fixtures:
  moto_server   (session) the endpoint URL of a `moto.server` subprocess on a free 127.0.0.1 port
  aws_env       dummy credentials and AWS_ENDPOINT_URL pointing at moto_server, moto state reset, settings
                cache cleared; yields the endpoint URL
  fault_proxy   a FaultProxy in front of moto_server: `fault_proxy.add("throttle", method="PUT")` makes the
                next matching request fail; yields the proxy (its `.url` is the endpoint to use)

Faults are real network behaviour, not mocks: "throttle" answers 503 SlowDown, "error500" answers 500
InternalError, "drop" reads half the request body and closes the connection without an answer, "corrupt"
flips one byte of the request body and forwards it.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

# Parts this small are allowed by the test server, so multipart uploads can be tested with small files.
MOTO_MIN_PART_SIZE = 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(host: str, port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode}")
        try:
            conn = http.client.HTTPConnection(host, port, timeout=1)
            conn.request("GET", "/moto-api/")
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"moto_server did not answer on {host}:{port} within {timeout}s")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Start moto's HTTP server in a subprocess for the whole session; stop it at the end."""
    host, port = "127.0.0.1", _free_port()
    env = {**os.environ, "S3_UPLOAD_PART_MIN_SIZE": str(MOTO_MIN_PART_SIZE)}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_up(host, port, process)
        yield f"http://{host}:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def reset_moto(url: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("POST", "/moto-api/reset")
    conn.getresponse().read()


@pytest.fixture
def aws_env(moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[str]:
    """Dummy credentials and the moto endpoint in the environment, a clean moto, fresh settings."""
    from core.settings import get_settings

    reset_moto(moto_server)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "S3_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    get_settings.cache_clear()
    yield moto_server
    get_settings.cache_clear()


# --------------------------------------------------------------------------------------------- fault proxy

_ERRORS = {
    "throttle": (503, "SlowDown", "Please reduce your request rate."),
    "error500": (500, "InternalError", "We encountered an internal error. Please try again."),
}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection", "te", "upgrade"}


@dataclass
class Fault:
    kind: str  # throttle | error500 | drop | corrupt
    method: str | None = None
    path_contains: str = ""
    times: int = 1
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.hits < self.times and (self.method in (None, method)) and self.path_contains in path


class FaultProxy:
    """A loopback HTTP proxy to an upstream server that injects the faults it is given, in order."""

    def __init__(self, upstream: str):
        self.upstream_host, port = upstream.removeprefix("http://").split(":")
        self.upstream_port = int(port)
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, str]] = []  # (method, path, fault kind or "ok")
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, kind: str, method: str | None = None, path_contains: str = "", times: int = 1) -> Fault:
        if kind not in (*_ERRORS, "drop", "corrupt"):
            raise ValueError(f"unknown fault {kind!r}")
        fault = Fault(kind, method, path_contains, times)
        with self._lock:
            self.faults.append(fault)
        return fault

    def injected(self) -> list[str]:
        return [kind for _, _, kind in self.log if kind != "ok"]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _take_fault(self, method: str, path: str) -> str:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    self.log.append((method, path, fault.kind))
                    return fault.kind
            self.log.append((method, path, "ok"))
            return "ok"

    def _handler_class(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                kind = proxy._take_fault(self.command, self.path)
                if kind == "drop":
                    self.rfile.read(length // 2)
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                body = self.rfile.read(length) if length else b""
                if kind in _ERRORS:
                    self._send_error(*_ERRORS[kind])
                    return
                if kind == "corrupt" and body:
                    middle = len(body) // 2
                    body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
                self._forward(body)

            def _send_error(self, status: int, code: str, message: str) -> None:
                xml = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
                data = xml.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _forward(self, body: bytes) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                if body or "Content-Length" in self.headers:
                    headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    answer = conn.getresponse()
                    data = answer.read()
                finally:
                    conn.close()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                upstream_length = answer.getheader("Content-Length")
                if self.command == "HEAD":
                    self.send_header("Content-Length", upstream_length or "0")
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        return Handler


@pytest.fixture
def fault_proxy(aws_env: str) -> Iterator[FaultProxy]:
    """A FaultProxy in front of the (reset) moto_server. Point clients at `fault_proxy.url`."""
    proxy = FaultProxy(aws_env)
    try:
        yield proxy
    finally:
        proxy.close()


# --------------------------------------------------------------------------------------------- IAM simulator


def simulate(policies: list[dict], actions: list[str], resources: list[str] | None = None) -> list[dict]:
    """What iam:SimulatePrincipalPolicy answers for `actions` on `resources` (default "*", as the SageMaker SDK's
    role check calls it) with no context keys: a statement allows when an action pattern and a resource pattern
    match (the requested resource string is matched literally, so "*" only by a "*" statement); a statement with a
    condition whose key the simulator has no value for does not apply (AWS reports MissingContextValues and an
    implicitDeny); an explicit Deny wins. Enough of IAM's evaluation for the SDK's checks."""
    from fnmatch import fnmatchcase

    def listed(value):
        return [value] if isinstance(value, str) else list(value or [])

    def applies(statement, action, resource):
        if not any(fnmatchcase(action.lower(), a.lower()) for a in listed(statement.get("Action"))):
            return False
        if not any(fnmatchcase(resource, r) for r in listed(statement.get("Resource"))):
            return False
        conditions = statement.get("Condition") or {}
        return all(op.endswith("IfExists") for op in conditions)

    results = []
    statements = [s for p in policies for s in p.get("Statement", [])]
    for action in actions:
        for resource in resources or ["*"]:
            if any(s.get("Effect") == "Deny" and applies(s, action, resource) for s in statements):
                decision = "explicitDeny"
            elif any(s.get("Effect") == "Allow" and applies(s, action, resource) for s in statements):
                decision = "allowed"
            else:
                decision = "implicitDeny"
            results.append({"EvalActionName": action, "EvalResourceName": resource, "EvalDecision": decision})
    return results


@pytest.fixture
def iam_simulator(aws_env, monkeypatch):
    """iam:SimulatePrincipalPolicy answered from the role's inline policies stored in moto (moto has no policy
    simulator), so the SageMaker SDK's role check runs as it does on AWS. Yields the list of simulated calls."""
    import json
    from urllib.parse import unquote

    import boto3
    from botocore.awsrequest import AWSResponse
    from botocore.endpoint import Endpoint

    calls: list[dict] = []
    make_request = Endpoint.make_request

    def answering(self, operation_model, request_dict):
        if operation_model.name != "SimulatePrincipalPolicy":
            return make_request(self, operation_model, request_dict)
        body = request_dict["body"]
        role_arn = body["PolicySourceArn"]
        actions = [v for k, v in sorted(body.items()) if k.startswith("ActionNames.member.")]
        resources = [v for k, v in sorted(body.items()) if k.startswith("ResourceArns.member.")]
        iam = boto3.client("iam")
        name = role_arn.rsplit("/", 1)[-1]
        policies = []
        for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
            policies.append(json.loads(unquote(document)) if isinstance(document, str) else document)
        results = simulate(policies, actions, resources)
        calls.append({"role": role_arn, "actions": actions, "resources": resources, "results": results})
        return AWSResponse("https://iam.amazonaws.com/", 200, {}, None), {
            "EvaluationResults": results, "IsTruncated": False, "ResponseMetadata": {"HTTPStatusCode": 200}}

    monkeypatch.setattr(Endpoint, "make_request", answering)
    yield calls
