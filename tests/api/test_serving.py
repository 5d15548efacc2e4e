"""Issue 13, serving: the header-read deadline (slowloris) and several server processes behind one port."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from core.settings import DEFAULT_PATTERN_DB, ROOT, Settings
from tests.api.conftest import LiveServer, _free_port, children, descendants, kill_all, wait_gone

HEADERS = b"GET /health HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slow\r\nAccept: */*\r\n"


@pytest.fixture(scope="module")
def deadline_server():
    settings = Settings(environment="test", pattern_db_path=DEFAULT_PATTERN_DB, pattern_db_reload_seconds=0,
                        prediction_log_url="", header_read_timeout_seconds=1.0, body_read_timeout_seconds=10,
                        moderation_processes=0, _env_file=None)  # fmt: skip
    server = LiveServer(settings)
    with server as client:
        yield server, client


def _trickle(port: int, data: bytes, every: float, first: bytes = b"") -> tuple[bytes, bool]:
    """Send `first`, then `data` a byte every `every` seconds; return what the server answered and whether it cut
    the connection before the client had sent everything."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        if first:
            raw.sendall(first)
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
                answer += raw.recv(4096)
        raw.setblocking(False)
        received = b""
        for i in range(len(data)):
            try:
                raw.sendall(data[i : i + 1])
            except (BrokenPipeError, ConnectionResetError):
                return received, True
            time.sleep(every)
            try:
                chunk = raw.recv(4096)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                return received, True
            received += chunk
            if not chunk or b"408" in received:
                return received, True
        return received, False


def test_a_client_trickling_its_headers_gets_408_and_loses_the_connection(deadline_server):
    """Slowloris: headers sent a byte every 0.1 s (7 s in all). The bytes keep coming, but the deadline (1 s here)
    is counted from the connection, not from the last byte: the server answers 408 and closes long before."""
    server, _ = deadline_server
    received, cut = _trickle(server.port, HEADERS, 0.1)
    assert cut, "the server held the trickling connection until the client had sent everything"
    assert received.startswith(b"HTTP/1.1 408 ")
    assert b"did not arrive within 1 s" in received


def test_the_deadline_applies_to_every_request_on_a_kept_alive_connection(deadline_server):
    server, _ = deadline_server
    received, cut = _trickle(server.port, HEADERS, 0.1, first=HEADERS + b"\r\n")
    assert cut and received.startswith(b"HTTP/1.1 408 ")


def test_an_idle_connection_is_closed(deadline_server):
    server, _ = deadline_server
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        assert raw.recv(4096) == b""  # closed without a word: nothing was asked


def test_headers_in_time_and_a_slow_body_are_still_served(deadline_server):
    """The header deadline does not cut a request whose body takes longer than it (the body has its own)."""
    server, _ = deadline_server
    body = b'{"text": "time to unalive myself"}'
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(b"POST /normalize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:10])  # fmt: skip
        time.sleep(1.5)
        raw.sendall(body[10:])
        answer = raw.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 ") and b"kill myself" in answer


def test_a_body_trickled_a_byte_at_a_time_gets_408_within_the_body_deadline():
    """The body deadline is counted from the request's start, not from the last byte: a client sending one byte
    every 0.1 s (a 40-byte body, 4 s) is cut after the 0.5 s deadline. A per-chunk timer let such a client hold the
    connection for as long as it liked."""
    import asyncio

    from main import create_app

    settings = Settings(environment="test", pattern_db_path=DEFAULT_PATTERN_DB, pattern_db_reload_seconds=0,
                        prediction_log_url="", body_read_timeout_seconds=0.5, moderation_processes=0,
                        _env_file=None)  # fmt: skip
    app = create_app(settings, moderator=object())
    body = b'{"text": "a body that takes its time.."}'
    pending = [body[i : i + 1] for i in range(len(body))]
    sent: list[dict] = []

    async def receive() -> dict:
        await asyncio.sleep(0.1)
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/normalize", "raw_path": b"/normalize", "root_path": "", "query_string": b"",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}  # fmt: skip
    started = time.monotonic()
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    assert time.monotonic() - started < 2
    assert next(m for m in sent if m["type"] == "http.response.start")["status"] == 408
    assert pending, "the whole body was read"


def test_a_body_that_stops_half_way_gets_408_within_the_body_deadline():
    """A client that sends its headers and part of its body, then nothing: the body deadline (0.2 s here) answers
    408 and asks to close the connection, instead of holding it (and the part already sent) forever."""
    import asyncio

    from main import create_app

    settings = Settings(environment="test", pattern_db_path=DEFAULT_PATTERN_DB, pattern_db_reload_seconds=0,
                        prediction_log_url="", body_read_timeout_seconds=0.2, moderation_processes=0,
                        _env_file=None)  # fmt: skip
    app = create_app(settings, moderator=object())  # the body is read before any moderation: no lifespan needed
    chunks = [{"type": "http.request", "body": b'{"text": "hel', "more_body": True}]
    sent: list[dict] = []

    async def receive() -> dict:
        if chunks:
            return chunks.pop()
        await asyncio.sleep(3600)  # the rest never comes
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/moderate", "raw_path": b"/moderate", "root_path": "", "query_string": b"",
             "headers": [(b"content-type", b"application/json"), (b"content-length", b"40")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}  # fmt: skip
    started = time.monotonic()
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    assert time.monotonic() - started < 5
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 408
    assert (b"connection", b"close") in [(k.lower(), v) for k, v in start["headers"]]
    body = json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
    assert body["detail"] == "the request body did not arrive within 0.2 s" and body["request_id"]


def test_many_slow_clients_neither_block_health_nor_stay_connected(deadline_server):
    server, client = deadline_server
    sockets = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(100)]
    try:
        for s in sockets:
            s.sendall(b"GET /health HTTP/1.1\r\n")
        assert client.get("/health").status_code == 200
        answers = [s.recv(4096) for s in sockets]  # blocks until the server answers or closes each one
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers)
    finally:
        for s in sockets:
            s.close()


# ---------------------------------------------------------------------------------------------- several processes
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_several_server_processes_share_one_port_the_metrics_and_the_log(tmp_path):
    """python main.py --workers 2: two processes answer on one port; /metrics adds up both; a worker killed with
    SIGKILL is replaced and the service keeps answering; on SIGINT each drains its prediction-log queue."""
    port = _free_port()
    db, patterns = tmp_path / "log.db", tmp_path / "patterns.json"
    shutil.copy(DEFAULT_PATTERN_DB, patterns)
    server, base = _two_workers(tmp_path, port, {"PREDICTION_LOG_URL": f"sqlite:///{db}", "PATTERN_DB_PATH": str(patterns),
                                                 "PATTERN_DB_RELOAD_SECONDS": "0.2"})  # fmt: skip
    orphans: list[int] = []
    try:
        workers = _wait_for_two_workers(server, base)
        texts = [f"time to unalive myself {i}" for i in range(40)]

        def send(part: list[str]) -> None:
            for text in part:  # a new connection each time: the kernel spreads them over both processes
                assert httpx.post(base + "/moderate", json={"text": text}, timeout=60).status_code == 200

        threads = [threading.Thread(target=send, args=(texts[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        metrics = httpx.get(base + "/metrics", timeout=30).text
        counted = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                      if line.startswith("algospeak_predictions_total{"))  # fmt: skip
        assert counted == len(texts)  # whichever process answered /metrics, it reports both

        deadline = time.monotonic() + 60  # both processes write to the one log
        while _logged(db) < len(texts):
            assert time.monotonic() < deadline, f"{_logged(db)} of {len(texts)} records logged"
            time.sleep(0.2)

        orphans = descendants(workers[0])  # its moderation child
        assert orphans
        os.kill(workers[0], signal.SIGKILL)
        assert not wait_gone(orphans, 20), "the killed worker's moderation child outlived it"
        deadline = time.monotonic() + 180
        while workers[0] in _children_serving(server.pid) or len(_children_serving(server.pid)) < 2:
            assert time.monotonic() < deadline, "the killed worker was not replaced"
            assert _answers(base, timeout=30)  # the other one serves meanwhile (slowly on a busy machine)
            time.sleep(0.5)
        assert httpx.post(base + "/moderate", json={"text": "one more"}, timeout=60).status_code == 200

        # An edit of the pattern database reaches every process (each reloads it on its own).
        document = json.loads(patterns.read_text(encoding="utf-8"))
        patterns.write_text(json.dumps(document | {"version": "9.9.9"}), encoding="utf-8")
        deadline = time.monotonic() + 60
        while True:
            seen = {httpx.post(base + "/normalize", json={"text": "k1ll"}, timeout=60).json()["pattern_db_version"]
                    for _ in range(10)}  # fmt: skip
            if seen == {"9.9.9"}:
                break
            assert time.monotonic() < deadline, f"versions still served: {seen}"
            time.sleep(0.5)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=90)
        kill_all(orphans)
    assert _logged(db) == len(texts) + 1  # the last one too: a graceful stop drains the queue


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_a_killed_supervisor_takes_its_workers_and_their_children_with_it(tmp_path):
    """The supervisor of `main.py --workers 2` killed outright (SIGKILL, the out-of-memory killer) cannot stop its
    workers: each notices (api/lifeline.py) and shuts down as on SIGTERM, and so goes its moderation child. Before,
    they went on serving the port on their own, and a restarted server ran beside them."""
    port = _free_port()
    metrics = tmp_path / "metrics"  # the supervisor's own folder would outlive it: its clean-up never runs
    metrics.mkdir()
    server, base = _two_workers(tmp_path, port, {"PREDICTION_LOG_URL": f"sqlite:///{tmp_path / 'log.db'}",
                                                 "PATTERN_DB_RELOAD_SECONDS": "0", "PROMETHEUS_MULTIPROC_DIR": str(metrics)})
    below: list[int] = []
    try:
        workers = _wait_for_two_workers(server, base)
        assert httpx.post(base + "/moderate", json={"text": "hello"}, timeout=60).status_code == 200
        below = descendants(server.pid)
        assert all(set(children(w)) <= set(below) for w in workers)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        assert not wait_gone(below, 60), "processes outlived their killed supervisor"
        assert not _answers(base, timeout=2)  # nobody serves the port any more
    finally:
        if server.poll() is None:
            server.kill()
        kill_all(below)


def test_a_stopping_server_of_several_workers_refuses_new_connections_at_once(tmp_path):
    """SIGTERM to the supervisor of `main.py --workers 2` while a long request is answered: the workers stop
    accepting, and so does the supervisor's copy of the listening socket, so a new client is refused at once.
    Before, its connection waited in the kernel's queue, accepted by nobody, and was reset when the supervisor
    exited (32 of them in a helper's load test)."""
    port = _free_port()
    server, base = _two_workers(tmp_path, port, {"PREDICTION_LOG_URL": "", "PATTERN_DB_RELOAD_SECONDS": "0",
                                                 "MODERATION_PROCESSES": "0"})
    below: list[int] = []
    try:
        _wait_for_two_workers_without_children(server, base)
        below = descendants(server.pid)
        answered: list[int] = []
        slow = threading.Thread(target=lambda: answered.append(httpx.post(
            base + "/moderate/batch", timeout=120, json={"texts": ["💜" * 20000] * 16}).status_code))
        slow.start()
        time.sleep(1.0)  # the batch is being moderated (several seconds)
        server.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 3
        while True:  # the workers close their listening sockets first; then nobody may accept
            with socket.socket() as probe:
                probe.settimeout(2)
                try:
                    probe.connect(("127.0.0.1", port))
                except ConnectionRefusedError:
                    break
            assert time.monotonic() < deadline, "new connections were still queued while the server stopped"
            time.sleep(0.1)
        assert slow.is_alive()  # refused while the batch in flight is still being answered
        slow.join(120)
        assert answered == [200]  # and that batch is answered: a graceful stop
        server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
        kill_all(below)


def _wait_for_two_workers_without_children(server: subprocess.Popen, base: str) -> None:
    deadline = time.monotonic() + 180
    while len(_children_serving(server.pid)) < 2 or not _answers(base):
        assert server.poll() is None, server.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.5)


def _two_workers(tmp_path: Path, port: int, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """`python main.py --workers 2` on `port` with `env` (a fresh metrics folder unless it names one); its base URL."""
    inherited = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env = {**inherited, "PORT": str(port), "ENVIRONMENT": "test", "LOG_LEVEL": "WARNING", **env}
    server = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--workers", "2"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    return server, f"http://127.0.0.1:{port}"


def _wait_for_two_workers(server: subprocess.Popen, base: str) -> list[int]:
    """The two worker processes, once both are up with their moderation child (started before a worker serves)
    and the port answers."""
    deadline = time.monotonic() + 180
    while (len(workers := _children_serving(server.pid)) < 2 or not all(children(w) for w in workers)
           or not _answers(base)):  # fmt: skip
        assert server.poll() is None, server.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.5)
    return workers


def _logged(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute("select count(*) from predictions").fetchone()[0]


def _children_serving(pid: int) -> list[int]:
    """The server's worker processes (the multiprocessing helper that tracks resources is not one)."""
    out = []
    for child in children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline:
            out.append(child)
    return out


def _answers(base: str, timeout: float = 5) -> bool:
    try:
        return httpx.get(base + "/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False
