"""How the API is served: uvicorn with a header-read deadline, one or several worker processes.

    uv run python main.py                  # SERVER_WORKERS processes (0 = one per usable core, at most 8)
    uv run python main.py --workers 1      # one process

Each worker process is a whole server: its own event loop, worker threads, micro-batcher, prediction-log writer
(all writing to the same database) and pattern-database reload thread (each picks up an edit within
PATTERN_DB_RELOAD_SECONDS). The parent only supervises: it restarts a worker that dies and stops them all on
SIGINT/SIGTERM, each draining its prediction-log queue first. A worker whose parent is killed outright shuts itself
down (api/lifeline.py).

uvicorn has no deadline for the request line and headers: a client that opens a connection and sends its headers
a byte at a time (slowloris) holds the connection forever, and a few hundred of them use up the file descriptors.
`HeaderDeadline` gives every request HEADER_READ_TIMEOUT_SECONDS from the moment the server starts waiting for it
(connection opened, or the previous answer sent) to its last header line; trickling bytes does not extend it.
Past it the connection is closed, with a 408 when part of a request had arrived. The body has its own deadline
(BODY_READ_TIMEOUT_SECONDS, in main.RequestContext).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import shutil
import tempfile
from typing import Any

import orjson

log = logging.getLogger("api")

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - uvicorn without httptools
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment]

DEFAULT_HEADER_TIMEOUT = 10.0
MAX_AUTO_WORKERS = 8


class HeaderDeadline(_Base):  # type: ignore[misc,valid-type]
    """uvicorn's HTTP/1.1 protocol with a deadline for each request's headers (see the module docstring).

    The deadline is read from the uvicorn Config's `header_read_timeout` attribute (set by `server_config`), so it
    travels with the config to worker processes."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_read_timeout = float(getattr(config, "header_read_timeout", DEFAULT_HEADER_TIMEOUT))
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        self._header_bytes += len(data)
        super().data_received(data)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn arms its keep-alive timer exactly when it starts waiting for the next request.
        if self.timeout_keep_alive_task is not None:
            self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_bytes = 0
        self._header_timer = self.loop.call_later(self.header_read_timeout, self._header_deadline_passed)

    def _header_deadline_passed(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # the headers arrived in time: the request is being handled (its body has its own deadline)
        if self._header_bytes:
            body = orjson.dumps({"detail": f"the request headers did not arrive within {self.header_read_timeout:g} s"})
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
        log.info("header read timeout: closed a connection from %s after %d bytes in %g s",
                 self.client, self._header_bytes, self.header_read_timeout)  # fmt: skip
        self.transport.close()


def auto_workers() -> int:
    """One worker process per core this process may run on, at most MAX_AUTO_WORKERS."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, MAX_AUTO_WORKERS))


def logging_config(level: str) -> dict[str, Any]:
    """One format for the app's and uvicorn's log lines, in the parent and in every worker process."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {"uvicorn.access": {"level": "WARNING"}},
    }


def prepare_workers(settings: Any, workers: int) -> None:
    """What several processes must share, put into the environment they inherit (before they start):
    a text-digest key (without TEXT_HASH_KEY each process would make its own, and equal texts would get different
    digests) and a folder for the Prometheus counters of all processes (/metrics then adds them up)."""
    if workers <= 1:
        return
    if settings.prediction_log_url and not settings.text_hash_key and not os.environ.get("TEXT_HASH_KEY"):
        os.environ["TEXT_HASH_KEY"] = os.urandom(24).hex()
        log.warning("TEXT_HASH_KEY is not set: the %d worker processes share a random key made for this run "
                    "(digests match within the run only; production requires the setting)", workers)  # fmt: skip
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        folder = tempfile.mkdtemp(prefix="algospeak-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        atexit.register(shutil.rmtree, folder, ignore_errors=True)  # the parent exits after its workers


def server_config(settings: Any, workers: int, app: Any = "main:create_app", **overrides: Any):
    """The uvicorn Config the API runs with (main.main and the tests' live server)."""
    import uvicorn

    kwargs: dict[str, Any] = dict(
        host=settings.host, port=settings.port, workers=workers, http=HeaderDeadline,
        log_config=logging_config(settings.log_level), access_log=False,
        timeout_graceful_shutdown=30,
        # The supervisor kills a worker that does not answer its ping (a thread, not the event loop) in this time,
        # and a worker still starting counts: uvicorn's 5 s killed workers starting on a busy machine, over and over.
        timeout_worker_healthcheck=60,
    )  # fmt: skip
    if isinstance(app, str):
        kwargs["factory"] = True
    kwargs.update(overrides)
    config = uvicorn.Config(app, **kwargs)
    config.header_read_timeout = settings.header_read_timeout_seconds  # type: ignore[attr-defined]
    return config


def serve(config: Any) -> None:
    """Run the server: in this process for one worker, else a supervisor over `config.workers` processes
    (what uvicorn.run does, with our Config)."""
    import uvicorn

    if config.workers > 1:
        from uvicorn.supervisors import Multiprocess

        class Supervisor(Multiprocess):
            def terminate_all(self) -> None:
                # The shutdown begins: this process's copy of the listening socket goes first. Each worker closes
                # its own as it starts to shut down; if this copy stayed open, new connections would wait in the
                # kernel's queue, accepted by nobody, and be reset when this process exits, instead of refused.
                for listening in self.sockets:
                    listening.close()
                super().terminate_all()

        sock = config.bind_socket()
        try:
            Supervisor(config, sockets=[sock]).run()
        except KeyboardInterrupt:  # pragma: no cover - a second Ctrl-C
            pass
    else:
        uvicorn.Server(config).run()
