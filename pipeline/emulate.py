"""AWS without AWS, for `python -m pipeline --emulate`: moto_server on loopback for S3 and the SageMaker control
plane, a local container that serves what the endpoint was deployed with (SageMaker hosting, emulated), the API
in a subprocess answering from that endpoint, and a tiny random Qwen2.5-shaped base model built offline.

Nothing here reaches a network beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from core.settings import ROOT

BUCKET = "algospeak-emulated"
ENDPOINT = "algospeak-emulated"
ROLE = "arn:aws:iam::123456789012:role/algospeak-emulated"
REGION = "us-east-1"


class EmulationError(RuntimeError):
    """Something the emulation needs did not start; one line."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, process: subprocess.Popen | None, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise EmulationError(f"{what} exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                resp.read()
                return
        except OSError:
            time.sleep(0.1)
    raise EmulationError(f"{what} did not answer on {url} within {timeout:.0f}s")


def start_moto(stack: ExitStack, log_dir: Path) -> str:
    """moto_server on a free loopback port for the life of `stack`; returns its URL."""
    port = free_port()
    log = open(log_dir / "moto_server.log", "wb")  # noqa: SIM115 - closed by the stack
    stack.callback(log.close)
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log, stderr=subprocess.STDOUT)
    stack.callback(_stop, process)
    url = f"http://127.0.0.1:{port}"
    _wait_http(f"{url}/moto-api/", process, "moto_server")
    return url


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def aws_environment(moto_url: str) -> dict[str, str]:
    """Dummy credentials and every AWS client pointed at moto (no profile or metadata lookups)."""
    return {
        "AWS_ACCESS_KEY_ID": "emulated", "AWS_SECRET_ACCESS_KEY": "emulated", "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION, "AWS_ENDPOINT_URL": moto_url, "AWS_EC2_METADATA_DISABLED": "true",
        "S3_BUCKET": BUCKET, "SAGEMAKER_ROLE_ARN": ROLE, "SAGEMAKER_VALIDATE_ROLE": "false",
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def create_bucket(moto_url: str) -> None:
    from core import aws

    aws.client("s3", REGION, moto_url).create_bucket(Bucket=BUCKET)


def tiny_base_model(out: Path) -> Path:
    """A random-weight Qwen2.5-shaped model ("tiny": 2 layers, hidden 64) with the exact Qwen2.5 tokenizer,
    built offline once (training.base_models)."""
    if (out / "config.json").is_file() and (out / "tokenizer.json").is_file():
        return out
    from transformers import AutoTokenizer

    from training.base_models import build_qwen25_tokenizer, build_random_qwen2

    tokenizer_dir = out.parent / (out.name + "-tokenizer")
    build_qwen25_tokenizer(tokenizer_dir)
    build_random_qwen2(out, "tiny", tokenizer=AutoTokenizer.from_pretrained(str(tokenizer_dir)))
    return out


class HostedEndpoint:
    """SageMaker hosting, emulated: on each call, the model the endpoint is configured with now (describe_endpoint
    -> endpoint config -> model -> ModelDataUrl in moto's S3), downloaded, unpacked and loaded by the inference
    core once per archive. What the deploy step uploaded is what answers."""

    def __init__(self, moto_url: str, endpoint_name: str, workdir: Path):
        self.moto_url, self.endpoint_name, self.workdir = moto_url, endpoint_name, workdir
        self._loaded: tuple[str, Any] | None = None
        self._lock = threading.Lock()

    def _model_data_url(self) -> str:
        from core import aws

        sm = aws.client("sagemaker", REGION, self.moto_url)
        config = sm.describe_endpoint(EndpointName=self.endpoint_name)["EndpointConfigName"]
        variant = sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0]
        return sm.describe_model(ModelName=variant["ModelName"])["PrimaryContainer"]["ModelDataUrl"]

    def scorer(self):
        from core import aws
        from core.llm_inference import LabelScorer

        url = self._model_data_url()
        with self._lock:
            if self._loaded is None or self._loaded[0] != url:
                bucket, key = aws.split_s3(url)
                target = Path(tempfile.mkdtemp(prefix="hosted-", dir=self.workdir))
                archive = target / "model.tar.gz"
                aws.client("s3", REGION, self.moto_url).download_file(bucket, key, str(archive))
                with tarfile.open(archive) as tar:
                    tar.extractall(target / "model", filter="data")
                self._loaded = (url, LabelScorer.from_dir(target / "model", batch_size=8))
            return self._loaded[1]

    @property
    def version(self) -> str:
        try:
            return self.scorer().version
        except Exception:  # noqa: BLE001 - no endpoint yet
            return "not deployed"

    def score(self, texts):
        return self.scorer().score(texts)


def start_container(stack: ExitStack, moto_url: str, workdir: Path) -> str:
    """The local container (deployment.local_server) over HostedEndpoint; returns its base URL, which is also a
    sagemaker-runtime endpoint URL (POST /endpoints/<name>/invocations)."""
    from deployment.local_server import start_in_thread

    workdir.mkdir(parents=True, exist_ok=True)
    server, url = start_in_thread(HostedEndpoint(moto_url, ENDPOINT, workdir))
    stack.callback(server.server_close)
    stack.callback(server.shutdown)
    return url


def start_api(stack: ExitStack, runtime_url: str, log_dir: Path) -> str:
    """The moderation API (uvicorn main:app) in a subprocess, its classifier the emulated endpoint."""
    port = free_port()
    env = {**os.environ, "CLASSIFIER_BACKEND": "sagemaker", "SAGEMAKER_ENDPOINT_NAME": ENDPOINT,
           "AWS_ENDPOINT_URL": runtime_url, "SAGEMAKER_TIMEOUT_SECONDS": "60", "SAGEMAKER_DEADLINE_SECONDS": "120",
           "FALLBACK_POLICY": "error", "PREDICTION_LOG_URL": f"sqlite:///{log_dir / 'predictions.db'}",
           "ENVIRONMENT": "development", "API_KEY": ""}
    log = open(log_dir / "api.log", "wb")  # noqa: SIM115 - closed by the stack
    stack.callback(log.close)
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", "main:create_app", "--factory", "--host", "127.0.0.1",
                                "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    stack.callback(_stop, process)
    url = f"http://127.0.0.1:{port}"
    _wait_http(f"{url}/health", process, "the API", timeout=120)
    return url


def moderate(api_url: str, text: str, timeout: float = 120) -> dict[str, Any]:
    request = urllib.request.Request(f"{api_url}/moderate", data=json.dumps({"text": text}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return json.loads(resp.read())


__all__ = ["BUCKET", "ENDPOINT", "ROLE", "REGION", "EmulationError", "HostedEndpoint", "aws_environment",
           "create_bucket", "moderate", "start_api", "start_container", "start_moto", "tiny_base_model"]
