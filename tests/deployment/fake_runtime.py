"""A fake SageMaker runtime on loopback: POST /endpoints/{name}/invocations, answered from a script of faults.

boto3's sagemaker-runtime client pointed at it (endpoint_url) sends real HTTP; each request takes the next
scripted behaviour (then "ok" once the script is spent, or `default`):
    ok          a valid answer (one prediction per text)
    timeout     answers after `delay` seconds (past the client's read timeout)
    throttle    429 ThrottlingException
    error500    500 InternalFailure
    model500    424 ModelError with OriginalStatusCode 500 (the container failed)
    model400    424 ModelError with OriginalStatusCode 400 (the Hugging Face toolkit's answer when the handler raises)
    nonfinite   424 ModelError with OriginalStatusCode 500 carrying the container's deterministic failure
                (core/llm_inference.py's "non-finite logits" ClassifierError, as local_server.py reports it)
    garbage     200 with a body that is not JSON
    wrong_count 200 with one prediction too few
    nan         200 with NaN probabilities
    refuse      400 ValidationError (not retriable)
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from core.labels import LABELS

SCORES = dict(zip(LABELS, [0.7, 0.1, 0.1, 0.1]))


class FakeRuntime:
    def __init__(self, delay: float = 1.0):
        self.script: list[str] = []
        self.default = "ok"
        self.delay = delay
        self.requests: list[list[str]] = []  # the texts of each request received
        self.body_sizes: list[int] = []  # the bytes of each request body received
        self.served: list[str] = []
        self.gate = None  # a threading.Barrier: each request waits there (proves requests are in flight together)
        self.hold = None  # a threading.Event: each request waits for it (an endpoint as slow as the test likes)
        self.echo = False  # answer "safe" as 0.7 + i/1000 for "text i" (so each caller's answer is its own)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _next(self) -> str:
        with self.lock:
            kind = self.script.pop(0) if self.script else self.default
            self.served.append(kind)
            return kind

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                texts = json.loads(body)["inputs"]
                with fake.lock:
                    fake.requests.append(texts)
                    fake.body_sizes.append(len(body))
                kind = fake._next()
                if fake.gate is not None:
                    fake.gate.wait()
                if fake.hold is not None:  # a slow endpoint: answers once the test releases it
                    fake.hold.wait(timeout=30)
                ok = {"labels": list(LABELS), "model_version": "fake-v1",
                      "predictions": [{"label": "safe", "scores": SCORES, "label_mass": 0.9} for _ in texts]}
                if fake.echo:
                    for item, text in zip(ok["predictions"], texts):
                        bump = int(text.split()[-1]) / 1000
                        item["scores"] = {**SCORES, "safe": SCORES["safe"] + bump,
                                          LABELS[-1]: SCORES[LABELS[-1]] - bump}
                if kind == "timeout":
                    time.sleep(fake.delay)
                    self._send(200, json.dumps(ok).encode())
                elif kind == "throttle":
                    self._send(429, b'{"message": "Rate exceeded"}', {"x-amzn-ErrorType": "ThrottlingException"})
                elif kind == "error500":
                    self._send(500, b'{"message": "internal failure"}', {"x-amzn-ErrorType": "InternalFailure"})
                elif kind == "model500":
                    self._send(424, b'{"message": "boom", "OriginalStatusCode": 500}', {"x-amzn-ErrorType": "ModelError"})
                elif kind == "model400":
                    message = 'Received client error (400) from primary with message "{\\"code\\": 400, ...}"'
                    self._send(424, json.dumps({"message": message, "OriginalStatusCode": 400}).encode(),
                               {"x-amzn-ErrorType": "ModelError"})
                elif kind == "nonfinite":
                    message = ("model error: the model produced non-finite logits in torch.float16 (fp16 overflow?); "
                               "serve it in float32 or bfloat16")
                    self._send(424, json.dumps({"message": message, "OriginalStatusCode": 500}).encode(),
                               {"x-amzn-ErrorType": "ModelError"})
                elif kind == "refuse":
                    self._send(400, b'{"message": "bad"}', {"x-amzn-ErrorType": "ValidationError"})
                elif kind == "garbage":
                    self._send(200, b"<html>502 Bad Gateway</html>")
                elif kind == "wrong_count":
                    ok["predictions"] = ok["predictions"][:-1]
                    self._send(200, json.dumps(ok).encode())
                elif kind == "nan":
                    ok["predictions"] = [{"label": "safe", "scores": dict.fromkeys(LABELS, float("nan"))} for _ in texts]
                    self._send(200, json.dumps(ok).encode())
                else:
                    self._send(200, json.dumps(ok).encode())

        return Handler
