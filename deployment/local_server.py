"""A local server that speaks the SageMaker container contract over the same inference core.

    uv run --extra llm python -m deployment.local_server --model-dir out/training/model --port 8080
    curl -s localhost:8080/ping
    curl -s localhost:8080/invocations -H 'content-type: application/json' -d '{"inputs": ["go k1ll yourself"]}'

Routes:
    GET  /ping                               200 once the model is loaded (the container health check)
    POST /invocations                        the JSON contract of core/llm_inference.py (400 on a bad request)
    POST /endpoints/{name}/invocations       the same, as the SageMaker *runtime* API: boto3's sagemaker-runtime
                                             client pointed here (endpoint_url) works unchanged, so the whole
                                             path API -> SagemakerClassifier -> container runs on one machine:
        SAGEMAKER_ENDPOINT_NAME=local AWS_ENDPOINT_URL=http://127.0.0.1:8080 uv run python main.py

A model failure is answered as the Hugging Face inference toolkit answers it (its handler service turns any
exception into a 400): /invocations answers 400, and the runtime route a 424 ModelError with OriginalStatusCode 400,
as SageMaker reports a container's 400. A bad request is a 400 ValidationError on the runtime route.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by its path (python deployment/local_server.py): the repository root on sys.path
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import logging
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from classifiers.base import ClassifierError
from core.llm_inference import BadRequest, LabelScorer, parse_request, render_response

log = logging.getLogger("deployment.local_server")
_RUNTIME_PATH = re.compile(r"^/endpoints/[A-Za-z0-9-]{1,63}/invocations$")
MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker's real-time payload limit


def make_server(scorer: LabelScorer, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    """A server over `scorer` (not yet serving: call serve_forever, or use `start_in_thread`)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as two small writes: with Nagle on, each answer waited ~40 ms for the
        # client's delayed ACK (measured by bench/bench_endpoint_load.py: 52 ms per call for a 5 ms forward pass).
        disable_nagle_algorithm = True
        server_version = "algospeak-stage2"

        def log_message(self, fmt: str, *args) -> None:
            log.debug("%s " + fmt, self.address_string(), *args)

        def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/ping":
                self._send(200, {"status": "ok", "model_version": scorer.version})
            else:
                self._send(404, {"message": f"no route GET {self.path}"})

        def do_POST(self) -> None:
            runtime = bool(_RUNTIME_PATH.match(self.path))
            if self.path != "/invocations" and not runtime:
                self._send(404, {"message": f"no route POST {self.path}"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self.close_connection = True
                self._error(runtime, 413, "ValidationError", f"the body is over {MAX_BODY_BYTES} bytes")
                return
            body = self.rfile.read(length)
            try:
                texts = parse_request(body, self.headers.get("Content-Type"))
            except BadRequest as exc:
                self._error(runtime, 400, "ValidationError", str(exc))
                return
            try:
                answer = render_response(scorer.score(texts), scorer.version)
            except Exception as exc:  # the model failed: the Hugging Face toolkit answers 400 (PredictionException)
                log.exception("scoring failed")
                container = {"code": 400, "type": "InternalServerException", "message": f"model error: {exc}"}
                if runtime:  # as the runtime reports a container's 400
                    self._send(424, {"ErrorCode": "CLIENT_ERROR_FROM_MODEL", "OriginalStatusCode": 400,
                                     "OriginalMessage": json.dumps(container),
                                     "message": f"Received client error (400) from primary with message "
                                                f"\"{json.dumps(container)}\"."},
                               {"x-amzn-ErrorType": "ModelError"})
                else:
                    self._send(400, container)
                return
            headers = {"x-Amzn-Invoked-Production-Variant": "local"} if runtime else None
            self._send(200, answer, headers)

        def _error(self, runtime: bool, status: int, code: str, message: str) -> None:
            self._send(status, {"message": message}, {"x-amzn-ErrorType": code} if runtime else None)

    server_class = type("LocalEndpoint", (ThreadingHTTPServer,), {"request_queue_size": 128, "daemon_threads": True})
    server = server_class((host, port), Handler)  # a backlog of 128, not socketserver's 5: bursts are not dropped
    server.daemon_threads = True
    return server


def start_in_thread(scorer: LabelScorer, host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Serve in a daemon thread (port 0 = a free one); returns the server and its base URL."""
    server = make_server(scorer, host, port)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployment.local_server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True, help="a model dir, a training output (merged/) or an adapter")
    parser.add_argument("--base-model", help="the adapter's base model (default: from the artifact)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="8080 is the SageMaker container port")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        scorer = LabelScorer.from_dir(args.model_dir, base_model=args.base_model, device=args.device,
                                      dtype=args.dtype, batch_size=args.batch_size)
    except ClassifierError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    server = make_server(scorer, args.host, args.port)
    print(f"serving {args.model_dir} (version {scorer.version}) on http://{args.host}:{server.server_address[1]}",
          file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
