"""Issue 13's findings as tests through the interfaces every version of the service has: HTTP requests to the
app that `main.create_app` builds (served by plain uvicorn in a thread, or `python main.py` in a subprocess,
configured by environment variables), and the normalizer's public `Normalizer(load_database()).normalize`.

The suite's own tests for these findings (tests/api/test_hardening.py and the rest) import what the fixes added
(`api.serving`, `normalizer.decode.Budget`, ...), so on the code before the fixes they fail at import, which says
nothing about behaviour. These variants import nothing new: a setting the old code does not know is ignored by it
(its Settings ignore unknown fields), so each test fails there on the behaviour the issue found. Not part of the
suite (the suite has the full tests); `python -m bench.findings_before_after` runs them on this checkout and on the
code before (f8a605f) and prints the table in the README's hardening section.

    uv run --frozen --all-extras pytest bench/findings_public.py
"""

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout these tests run in, whichever version it is
if str(ROOT) not in sys.path:  # run by path with pytest: bench/ is not a package
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ENVIRONMENT", "test")

import httpx  # noqa: E402
import pytest  # noqa: E402
import uvicorn  # noqa: E402

from core.settings import DEFAULT_PATTERN_DB, Settings  # noqa: E402
from moderator import Moderator  # noqa: E402
from normalizer import Normalizer, load_database  # noqa: E402
from normalizer.reload import ReloadingNormalizer  # noqa: E402
from tests.scripted import SAFE, BlackHole, Tagged, down  # noqa: E402

ISSUE_UNIT = "4.l.i.k.l.3.$.0.a.$.1.o.4.l.a.@.i.i.!.o.o.0.6.|.1.!.|.|.4.t.t.t.3.!.!.!.o.7.@.t zz "
KEY = "k" * 24


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Live:
    """create_app(settings, moderator) served by plain uvicorn on a loopback port, in a thread of this process."""

    def __init__(self, settings: Settings, moderator=None):
        from main import create_app

        self.port = _free_port()
        config = uvicorn.Config(create_app(settings, moderator), host="127.0.0.1", port=self.port, log_config=None,
                                log_level="warning", lifespan="on")  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)
        return self.client

    def __exit__(self, *exc) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=60)


def _settings(tmp_path: Path, **extra) -> Settings:
    fields = dict(environment="test", pattern_db_path=DEFAULT_PATTERN_DB, pattern_db_reload_seconds=0,
                  prediction_log_url="", max_text_chars=5_000, max_batch_size=16, max_body_bytes=200_000,
                  moderation_processes=0, _env_file=None)  # fmt: skip
    fields.update(extra)
    return Settings(**fields)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with Live(_settings(tmp_path_factory.mktemp("srv"))) as c:
        yield c


class MainPy:
    """`python main.py` of this checkout in a subprocess, configured by environment variables."""

    def __init__(self, tmp_path: Path, **env: str):
        self.port = _free_port()
        self.env = {**os.environ, "PORT": str(self.port), "ENVIRONMENT": "test", "LOG_LEVEL": "WARNING",
                    "PATTERN_DB_RELOAD_SECONDS": "0", "TEXT_HASH_KEY": "k" * 32, "SERVER_WORKERS": "1", **env}  # fmt: skip
        self.cwd = tmp_path
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self) -> "MainPy":
        self.process = subprocess.Popen([sys.executable, str(ROOT / "main.py")], cwd=self.cwd, env=self.env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(self.base + "/health", timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, self.process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.3)

    def stop(self, sig: int = 2) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _poll_health(base: str, seconds: float) -> list[float]:
    latencies = []
    with httpx.Client(base_url=base, timeout=60) as c:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            assert c.get("/health").status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)
    return sorted(latencies)


# ------------------------------------------------------------------------------------------------------ finding 1
def test_1_the_issue_spaced_leet_input_is_normalized_in_bounded_time():
    """3.6-4 ms per character before: 2,000 characters of the issue's unit took seconds. Now about 2 us/char."""
    normalizer = Normalizer(load_database())
    normalizer.normalize("warm up k1ll")
    text = (ISSUE_UNIT * 40)[:2_000]
    started = time.perf_counter()
    normalizer.normalize(text)
    assert time.perf_counter() - started < 1.0


def test_1_health_answers_while_the_issue_input_is_moderated(client):
    """The Done-when's first half at this server's 5,000-character limit: /health while the issue's text is moderated
    (it held /health for the whole moderation, 67 s at 20,000 characters)."""
    text = (ISSUE_UNIT * 100)[:5_000]
    base = f"{client.base_url}".rstrip("/")
    with ThreadPoolExecutor(max_workers=2) as pool:
        attack = [pool.submit(httpx.post, base + "/moderate/batch", json={"texts": [text] * 4}, timeout=600)]
        time.sleep(0.3)
        latencies = _poll_health(base, 3.0)
        for a in attack:
            assert a.result().status_code == 200
    assert latencies[int(0.99 * len(latencies))] < 0.050 and latencies[-1] < 1.0, latencies[-5:]


# ------------------------------------------------------------------------------------------------------ finding 2
def _with_pattern(db: Path, pattern: str, version: str) -> None:
    data = json.loads(DEFAULT_PATTERN_DB.read_text(encoding="utf-8"))
    data["version"] = version
    data["entries"].append({**data["entries"][0], "id": "issue13.pattern", "forms": ["zzq issue thirteen"],
                            "patterns": [pattern], "replacements": {},
                            "examples": {"positive": ["zzq issue thirteen here"], "negative": []}})  # fmt: skip
    db.write_text(json.dumps(data), encoding="utf-8")


def _version_served(c: httpx.Client, version: str, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if c.post("/moderate", json={"text": "hello"}, timeout=20).json()["pattern_db_version"] == version:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("pattern", [r"(?:[bc]{1,20}){1,20}$", r"(?:\w{1,20}){1,20}!?$"])
def test_2_a_database_edit_with_a_catastrophic_pattern_neither_hangs_nor_is_taken(tmp_path, pattern):
    """The issue's two patterns written into the served database file: the server keeps answering at once and the
    file is refused, where the regex check took 8.5 s or never returned, on the request path. A harmless pattern
    in the same place is taken first, so the refusal is the pattern's."""
    db = tmp_path / "patterns.json"
    shutil.copy(DEFAULT_PATTERN_DB, db)
    with Live(_settings(tmp_path, pattern_db_path=db, pattern_db_reload_seconds=0.05)) as c:
        _with_pattern(db, r"zzq{1,3}x", "9.9.0")
        assert _version_served(c, "9.9.0"), "a harmless pattern was not taken"
        _with_pattern(db, pattern, "9.9.9")
        worst = 0.0
        for _ in range(20):
            started = time.perf_counter()
            response = c.post("/moderate", json={"text": "b" * 26 + "x"}, timeout=20)
            worst = max(worst, time.perf_counter() - started)
            assert response.status_code == 200
            assert response.json()["pattern_db_version"] == "9.9.0"
            time.sleep(0.05)
        assert worst < 1.0, f"{worst:.1f} s"


# ------------------------------------------------------------------------------------------------------ finding 3
def test_3_answers_are_bounded(client):
    """A 2 MB request of '@ss ' answered with 122.8 MB: every match of every text. At most 100 a text now."""
    text = ("@ss " * 2_000)[:5_000]
    body = client.post("/moderate/batch", json={"texts": [text] * 4}).json()
    for result in body["results"]:
        assert len(result["matches"]) <= 100, len(result["matches"])
        assert result["matches_omitted"] == text.count("@ss") - len(result["matches"])


# ------------------------------------------------------------------------------------------------------ finding 4
def test_4_a_locked_prediction_log_neither_slows_answers_nor_health(tmp_path):
    """The issue's set-up: another process holds the SQLite file's write lock and the log's queue fills. Each record
    then waited up to 2 s on the loop (one 64-text batch and /health: 43.7 s)."""
    db = tmp_path / "log.db"
    settings = _settings(tmp_path, prediction_log_url=f"sqlite:///{db}", prediction_log_queue_size=1)
    with Live(settings) as c:
        assert c.post("/moderate", json={"text": "warm up"}).status_code == 200
        time.sleep(1.0)  # written; the database and its table exist
        blocker = sqlite3.connect(db, timeout=30, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            started = time.perf_counter()
            response = c.post("/moderate/batch", json={"texts": [f"text {i}" for i in range(16)]}, timeout=120)
            elapsed = time.perf_counter() - started
            health = time.perf_counter()
            assert c.get("/health").status_code == 200
            health = time.perf_counter() - health
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
    assert response.status_code == 200
    assert elapsed < 2.0 and health < 0.5, f"batch {elapsed:.1f} s, /health {health:.2f} s"


# ------------------------------------------------------------------------------------------------------ finding 5
def test_5_a_black_hole_endpoint_neither_holds_new_requests_nor_health(tmp_path):
    """Every request waited for the endpoint's deadline. Now work beyond the workers and their queue is refused at
    once with Retry-After, and /health answers in milliseconds."""
    settings = _settings(tmp_path, moderation_workers=2, moderation_queue_size=2)
    classifier = BlackHole()
    live = Live(settings, Moderator(ReloadingNormalizer(DEFAULT_PATTERN_DB, 0), classifier, settings))
    try:
        with live as c, ThreadPoolExecutor(max_workers=4) as pool:
            stuck = [pool.submit(httpx.post, f"http://127.0.0.1:{live.port}/moderate/batch",
                                 json={"texts": [f"text {i}"]}, timeout=60) for i in range(2)]  # fmt: skip
            classifier.entered.acquire(timeout=10)
            classifier.entered.acquire(timeout=10)
            started = time.perf_counter()
            c.post("/moderate", json={"text": "one more"}, timeout=60)
            waited = time.perf_counter() - started
            latencies = []
            for _ in range(20):
                t = time.perf_counter()
                assert c.get("/health", timeout=60).status_code == 200
                latencies.append(time.perf_counter() - t)
            classifier.release.set()
            assert [s.result().status_code for s in stuck] == [200, 200]
    finally:
        classifier.release.set()
    assert waited < 1.0, f"a request beyond the workers waited {waited:.1f} s"
    assert max(latencies) < 0.050, latencies


# ------------------------------------------------------------------------------------------------------ finding 6
def test_6_control_characters_do_not_hide_algospeak(client):
    body = client.post("/moderate", json={"text": "go un\u0001alive yourself"}).json()
    assert body["algospeak_detected"] and body["normalized_text"] == "go kill yourself", body["normalized_text"]
    hidden = client.post("/moderate", json={"text": "k\u0000ill yourself"}).json()
    assert hidden["normalized_text"] == "kill yourself", hidden["normalized_text"]


# ------------------------------------------------------------------------------------------------------ finding 7
def test_7_a_guessed_short_text_does_not_find_its_logged_row(tmp_path):
    """The server logs a short text; sha256 of a guess must not match the stored digest (8 of 9 did)."""
    import hashlib

    db = tmp_path / "log.db"
    server = MainPy(tmp_path, PREDICTION_LOG_URL=f"sqlite:///{db}").start()
    try:
        for text in ("kill yourself", "i hate you", "unalive"):
            assert httpx.post(server.base + "/moderate", json={"text": text}, timeout=60).status_code == 200
    finally:
        server.stop()
    with sqlite3.connect(db) as conn:
        stored = {r[0] for r in conn.execute("select text_sha256 from predictions")}  # the digest's column
    assert len(stored) == 3
    guesses = {hashlib.sha256(t.encode()).hexdigest() for t in ("kill yourself", "i hate you", "unalive")}
    assert not stored & guesses


# ------------------------------------------------------------------------------------------------------ point 8
def test_8_405_says_which_methods_are_allowed(client):
    response = client.get("/moderate")
    assert response.status_code == 405
    assert response.headers.get("allow") == "POST"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_8_utf16_and_utf32_bodies_are_refused(client, encoding):
    body = json.dumps({"text": "go k1ll yourself"}).encode(encoding)
    response = client.post("/moderate", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.status_code


def test_8_a_text_plain_body_gets_a_message_naming_the_content_type(client):
    response = client.post("/moderate", content=b'{"text": "hello"}', headers={"content-type": "text/plain"})
    assert response.status_code == 422
    assert "application/json" in response.text and "text/plain" in response.text, response.text


@pytest.fixture
def guarded(tmp_path):
    """An API key, a Stage 2 failing with its URL and no fallback, a database copy the test can break."""
    db = tmp_path / "patterns.json"
    shutil.copy(DEFAULT_PATTERN_DB, db)
    settings = _settings(tmp_path, api_key=KEY, pattern_db_path=db, pattern_db_reload_seconds=0.01,
                         fallback_policy="error", body_read_timeout_seconds=0.5)  # fmt: skip
    classifier = down("Could not connect to the endpoint URL: https://runtime.sagemaker.eu-west-1.amazonaws.com/"
                      "endpoints/prod-moderation-7/invocations")  # fmt: skip
    live = Live(settings, Moderator(ReloadingNormalizer(db, 0.01), classifier, settings))
    with live as c:
        yield live, c, db


def test_8_ready_shows_no_paths_or_urls_without_the_key(guarded):
    _, client, db = guarded
    db.write_text("{ not json", encoding="utf-8")
    time.sleep(1.0)
    anonymous = client.get("/ready")
    assert anonymous.status_code == 503
    assert str(db.parent) not in anonymous.text and "amazonaws.com" not in anonymous.text, anonymous.text
    failed = client.post("/moderate", json={"text": "hello"}, headers={"X-API-Key": KEY})
    assert failed.status_code == 503
    assert "amazonaws.com" not in failed.text, failed.text


def test_8_an_incomplete_body_is_not_held_open(guarded):
    live, _, _ = guarded
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as raw:
        raw.sendall(b"POST /moderate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"X-API-Key: " + KEY.encode() + b"\r\nContent-Length: 100\r\n\r\n{\"text\": ")  # fmt: skip
        try:
            answer = raw.recv(4096)
        except TimeoutError:
            answer = b"(nothing within 10 s)"
    assert b" 408 " in answer.split(b"\r\n")[0], answer[:100]


def test_8_a_client_trickling_its_headers_is_cut_off(tmp_path):
    server = MainPy(tmp_path, PREDICTION_LOG_URL="", HEADER_READ_TIMEOUT_SECONDS="1").start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            raw.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            started = time.monotonic()
            try:
                raw.recv(4096)  # an answer or the end of the connection
            except TimeoutError:
                pass
            held = time.monotonic() - started
    finally:
        server.stop()
    assert held < 5, f"held open {held:.0f} s"


def test_8_a_flood_of_ready_probes_the_classifier_one_call_at_a_time(tmp_path):
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def slow_probe():
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.2)
        with lock:
            in_flight[0] -= 1
        return [dict(SAFE)]

    settings = _settings(tmp_path)
    classifier = Tagged(probe=slow_probe)
    live = Live(settings, Moderator(ReloadingNormalizer(DEFAULT_PATTERN_DB, 0), classifier, settings))
    with live, ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(lambda _: httpx.get(f"http://127.0.0.1:{live.port}/ready", timeout=60).status_code,
                              range(20)))  # fmt: skip
    assert codes == [200] * 20
    assert most[0] == 1, f"{most[0]} probes at once"


def test_8_production_refuses_a_one_character_api_key():
    strong = "x" * 32
    Settings(environment="production", api_key=strong, text_hash_key=strong, _env_file=None)  # accepted
    with pytest.raises(ValueError):
        Settings(environment="production", api_key="k", text_hash_key=strong, _env_file=None)


def test_8_real_endpoints_keep_their_metric_label_after_random_paths(client):
    for i in range(80):
        client.get(f"/no-such-path-{i}")
    client.post("/normalize", json={"text": "hello"})
    metrics = client.get("/metrics").text
    assert 'path="/normalize"' in metrics, "/normalize counted under 'other'"


def test_8_a_database_reload_does_not_block_requests(tmp_path):
    """A reload (about 0.25 s) ran inside current(), on the request path: requests during it waited."""
    db = tmp_path / "patterns.json"
    shutil.copy(DEFAULT_PATTERN_DB, db)
    with Live(_settings(tmp_path, pattern_db_path=db, pattern_db_reload_seconds=0.01)) as c:
        c.post("/moderate", json={"text": "warm up"})
        worst = 0.0
        for i in range(6):
            data = json.loads(db.read_text(encoding="utf-8"))
            data["version"] = f"7.0.{i}"
            db.write_text(json.dumps(data), encoding="utf-8")
            for _ in range(5):
                started = time.perf_counter()
                assert c.post("/normalize", json={"text": "hello"}).status_code == 200
                worst = max(worst, time.perf_counter() - started)
                time.sleep(0.01)
    assert worst < 0.15, f"a request waited {worst * 1000:.0f} ms during a reload"


# The suite's FUZZ_PRODUCT (tests/normalizer/test_properties.py): texts that changed on a second normalization.
FUZZ_FINDS = [
    "Maybe !next time he'k.i.l.lll think twice before pickinunaliveg fights.",
    "Can I have a bad bitch without no flawws\u2744k.i.l.lsss",
    "a\u202e+\u0138y\u015e\u0198\u02d9kiiill\U0001f52b|<",
    "\u00b6\u02d8\x91\u01892024@m3th\U0001f351fvck\u20ac|2",
    "+sui.cide3send nudes\U0001f351\u20ac\t",
    "send nudes3\u015b\u02ae\u0233\u018bb\U0001f351\u200d\u00a3",
]


@pytest.mark.parametrize("text", FUZZ_FINDS)
def test_8_a_second_normalization_changes_nothing_on_the_fuzz_finds(text):
    normalizer = Normalizer(load_database())
    once = normalizer.normalize(text).text
    assert normalizer.normalize(once).text == once, ascii(once)


@pytest.mark.parametrize("text", ["\u202ek1ll\u202c you", "say \u2067unalive\u2069 now", "\u202ek\u202c1ll and more"])
def test_8_a_rewrite_keeps_the_closing_bidi_mark(text):
    out = Normalizer(load_database()).normalize(text).text
    for opening, closing in (("\u202e", "\u202c"), ("\u2067", "\u2069")):
        assert (out.count(opening), out.count(closing)) == (text.count(opening), text.count(closing)), ascii(out)


def test_8_a_killed_server_loses_no_answered_record_with_the_journal(tmp_path):
    """kill -9 lost what was still queued. With PREDICTION_LOG_JOURNAL_DIR set, every answered record survives:
    the database is locked by another process, 20 requests are answered, the server is killed, the next start of
    the server finds them all."""
    db = tmp_path / "log.db"
    env = {"PREDICTION_LOG_URL": f"sqlite:///{db}", "PREDICTION_LOG_JOURNAL_DIR": str(tmp_path / "journal")}
    server = MainPy(tmp_path, **env).start()
    try:
        blocker = sqlite3.connect(db, timeout=30, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            for i in range(20):
                response = httpx.post(server.base + "/moderate", json={"text": f"time to unalive myself {i}"},
                                      headers={"X-Request-ID": f"acked-{i}"}, timeout=60)  # fmt: skip
                assert response.status_code == 200
            server.stop(9)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
    finally:
        server.stop(9)
    again = MainPy(tmp_path, **env).start()
    again.stop()
    with sqlite3.connect(db) as conn:
        logged = {r[0] for r in conn.execute("select request_id from predictions")}
    assert logged >= {f"acked-{i}" for i in range(20)}, f"{len(logged)} of 20 answered records"
