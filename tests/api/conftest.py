"""A real server: uvicorn on a free loopback port in a thread, the shipped model and pattern database."""

import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from api.serving import server_config
from core.settings import DEFAULT_PATTERN_DB, Settings


def children(pid: int) -> list[int]:
    """The processes `pid` started (Linux /proc; none once it has gone)."""
    out = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return []
    for task in tasks:
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:  # the thread ended meanwhile
            continue
    return out


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, children first."""
    out, todo = [], [pid]
    while todo:
        found = children(todo.pop())
        out += found
        todo += found
    return out


def running(pid: int) -> bool:
    """The process exists and has not exited (a zombie that nobody has reaped yet has exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_gone(pids: list[int], seconds: float) -> list[int]:
    """The processes of `pids` still running after up to `seconds` (empty when all are gone)."""
    deadline = time.monotonic() + seconds
    while (left := [p for p in pids if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def kill_all(pids: list[int]) -> None:
    """SIGKILL whichever of `pids` still run: what a failed test would otherwise leave behind."""
    for pid in pids:
        if running(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, settings: Settings, moderator=None):
        from main import create_app

        self.app = create_app(settings, moderator)
        self.port = _free_port()
        # The server main.py runs (header-read deadline included), in this process.
        config = server_config(settings, 1, app=self.app, host="127.0.0.1", port=self.port, log_config=None,
                               log_level="warning", lifespan="on")  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        return self.client

    def __exit__(self, *exc) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="session")
def live_db(tmp_path_factory):
    """A copy of the product database that tests may edit (hot reload)."""
    path = tmp_path_factory.mktemp("db") / "patterns.json"
    shutil.copy(DEFAULT_PATTERN_DB, path)
    return path


@pytest.fixture(scope="session")
def server_settings(tmp_path_factory, live_db) -> Settings:
    log_dir = tmp_path_factory.mktemp("log")
    return Settings(
        environment="test",
        pattern_db_path=live_db,
        pattern_db_reload_seconds=0.001,
        prediction_log_url=f"sqlite:///{log_dir / 'predictions.db'}",
        max_text_chars=5_000,
        max_batch_size=16,
        max_body_bytes=200_000,
        # Moderation on this process's worker threads, so that tests can patch the normalizer; the default path
        # (child processes) is tested in test_offload.py and by the tests that run main.py.
        moderation_processes=0,
        _env_file=None,
    )


@pytest.fixture(scope="session")
def client(server_settings):
    with LiveServer(server_settings) as c:
        yield c
