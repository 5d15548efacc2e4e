"""Finding 2 of issue 13: a database edit cannot hang anything. The regex check accepted `(?:[bc]{1,20}){1,20}$`
(8.5 s on 26 characters) and never returned on `(?:\\w{1,20}){1,20}!?$`, and the reload ran inside `current()`,
on the request path: every endpoint timed out for 93 s and more. Now patterns are checked without running a
backtracking engine and compiled with RE2 (linear time), and reloads happen on a background thread."""

import json
import shutil
import subprocess
import sys
import threading
import time

import pytest

import normalizer.reload as reload_module
from normalizer import Normalizer, load_database
from normalizer.regex_safety import UnsafePatternError, check_pattern
from normalizer.reload import ReloadingNormalizer
from tests.normalizer.conftest import MINI_DB

ISSUE_PATTERNS = [r"(?:[bc]{1,20}){1,20}$", r"(?:\w{1,20}){1,20}!?$"]


@pytest.mark.slow
@pytest.mark.parametrize("pattern", ISSUE_PATTERNS)
def test_the_issue_patterns_are_refused_quickly(pattern):
    """In a subprocess with a hard timeout: the old check held the GIL in Python's regex engine, forever."""
    code = (
        "import sys, time\n"
        "from normalizer.regex_safety import UnsafePatternError, check_pattern\n"
        "started = time.perf_counter()\n"
        "try:\n"
        "    check_pattern(sys.argv[1])\n"
        "except UnsafePatternError as exc:\n"
        "    print('refused', round(time.perf_counter() - started, 3), exc)\n"
        "else:\n"
        "    print('accepted')\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", code, pattern], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"checking {pattern!r} did not return within 20 s")
    assert done.returncode == 0, done.stderr
    verdict, seconds, *reason = done.stdout.split()
    assert verdict == "refused", done.stdout
    assert float(seconds) < 1.0
    assert "nested repeats" in " ".join(reason)


@pytest.mark.parametrize(
    "pattern, reason",
    [(r"kys(?=\s)", "linear-time engine"), (r"(?<!\w)kys", "linear-time engine"), (r"x{1,1001}", "linear-time engine"),
     (r"(unclosed", "not a valid regular expression")],
)  # fmt: skip
def test_what_re2_cannot_run_in_linear_time_is_refused(pattern, reason):
    with pytest.raises(UnsafePatternError, match=reason):
        check_pattern(pattern)


def test_patterns_are_compiled_by_re2_and_keep_unicode_word_edges():
    compiled = check_pattern(r"\bk{1,10}y{1,10}s+\b")
    assert type(compiled).__module__.startswith("re2")
    mini = Normalizer(load_database(MINI_DB))
    assert mini.normalize("thinking of sueyside").text == "thinking of suicide"
    assert mini.normalize("THINKING OF SÜEYSIDE").text == "THINKING OF suicide"
    for glued in ("sueysideя", "яsueyside", "the seaside"):  # \b is a Unicode word edge, as in Python's re
        assert mini.normalize(glued).text == glued


def _edited(path, version: str, form: str) -> None:
    doc = json.loads(MINI_DB.read_text(encoding="utf-8"))
    doc["version"] = version
    doc["entries"][2]["forms"].append(form)
    path.write_text(json.dumps(doc), encoding="utf-8")


def _wait(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


@pytest.mark.slow
def test_a_slow_reload_never_blocks_current(tmp_path, monkeypatch):
    path = tmp_path / "db.json"
    shutil.copy(MINI_DB, path)
    live = ReloadingNormalizer(path, interval=0.01)
    try:
        started_loading = threading.Event()
        real_load = reload_module.load_database

        def slow_load(*args):
            started_loading.set()
            time.sleep(1.5)  # a huge or slow file: only the reload thread waits
            return real_load(*args)

        monkeypatch.setattr(reload_module, "load_database", slow_load)
        _edited(path, "0.0.2", "secks")
        assert started_loading.wait(5)
        slowest = 0.0
        for _ in range(100):  # requests while the reload is in progress
            t = time.perf_counter()
            normalizer = live.current()
            slowest = max(slowest, time.perf_counter() - t)
            assert normalizer.version != "0.0.2" or normalizer.normalize("secks").text == "sex"
            time.sleep(0.005)
        assert slowest < 0.01
        assert _wait(lambda: live.current().version == "0.0.2")
        assert live.current().normalize("secks").text == "sex"
    finally:
        live.close()


def test_a_broken_file_is_refused_in_the_background(tmp_path):
    path = tmp_path / "db.json"
    shutil.copy(MINI_DB, path)
    live = ReloadingNormalizer(path, interval=0.01)
    try:
        good = live.current()
        doc = json.loads(MINI_DB.read_text(encoding="utf-8"))
        doc["version"] = "0.0.3"
        doc["entries"][0]["patterns"] = [ISSUE_PATTERNS[1]]
        path.write_text(json.dumps(doc), encoding="utf-8")
        assert _wait(lambda: live.last_error is not None)
        assert "nested repeats" in live.last_error
        assert live.current() is good
        path.write_text("{ not json", encoding="utf-8")
        assert _wait(lambda: "not valid JSON" in (live.last_error or ""))
        assert live.current() is good
        _edited(path, "0.0.4", "secks")
        assert _wait(lambda: live.current().version == "0.0.4")
        assert live.last_error is None
    finally:
        live.close()


def test_the_reload_thread_ends_with_its_normalizer(tmp_path):
    path = tmp_path / "db.json"
    shutil.copy(MINI_DB, path)
    live = ReloadingNormalizer(path, interval=0.01)
    thread = live._thread
    assert thread is not None and thread.is_alive()
    del live
    import gc

    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert ReloadingNormalizer(path, interval=0)._thread is None  # interval 0: no thread at all


def test_a_start_during_a_broken_edit_serves_the_last_good_copy(tmp_path):
    """A server process or moderation child that (re)starts while the file holds a broken edit: before, it failed to
    start (uvicorn then stopped the whole server; a dead child made every long text a 503 until the edit was fixed)."""
    path, copy = tmp_path / "patterns.json", tmp_path / "kept" / "last-good.json"
    copy.parent.mkdir()
    doc = json.loads(MINI_DB.read_text(encoding="utf-8"))
    doc["version"] = "9.9.9"
    path.write_text(json.dumps(doc), encoding="utf-8")
    first = ReloadingNormalizer(path, 0, last_good=copy)
    assert first.version == "9.9.9" and first.last_error is None and copy.is_file()  # kept on start
    path.write_text("{ half an edit", encoding="utf-8")
    restarted = ReloadingNormalizer(path, 0, last_good=copy)
    assert restarted.version == "9.9.9" and restarted.current().normalize("unalive").changed
    assert "not valid JSON" in restarted.last_error and "last good copy" in restarted.last_error
    with pytest.raises(reload_module.PatternDatabaseError):  # without a copy, a broken file still stops a start
        ReloadingNormalizer(path, 0)
    # a good reload is kept too, and a later start with the file broken again serves it
    doc["version"] = "9.9.10"
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert restarted.reload() and json.loads(copy.read_text(encoding="utf-8"))["version"] == "9.9.10"
    path.write_text("[]", encoding="utf-8")
    assert ReloadingNormalizer(path, 0, last_good=copy).version == "9.9.10"
    doc["version"] = "9.9.11"
    loaded = json.dumps(doc).encode("utf-8")  # what a load read, then an edit was saved before its copy
    path.write_text("{ an edit saved between a load and its copy", encoding="utf-8")
    restarted._keep(loaded)  # only the bytes that were loaded, and only while the file still holds them, are kept
    assert json.loads(copy.read_text(encoding="utf-8"))["version"] == "9.9.10"
    copy.write_text("{ a copy that rotted", encoding="utf-8")
    with pytest.raises(reload_module.PatternDatabaseError, match="patterns.json"):  # the file's own error
        ReloadingNormalizer(path, 0, last_good=copy)


def test_the_default_last_good_place_is_private_to_the_user(tmp_path, monkeypatch):
    import os
    import stat

    monkeypatch.setattr(reload_module.tempfile, "gettempdir", lambda: str(tmp_path))
    place = reload_module.default_last_good(MINI_DB)
    assert place.parent.parent == tmp_path and place.name.endswith("mini_patterns.json")
    assert stat.S_IMODE(place.parent.stat().st_mode) == 0o700
    assert reload_module.default_last_good(MINI_DB) == place  # every process of a server finds the same copy
    os.chmod(place.parent, 0o777)  # a folder others can write to: nothing in it is trusted
    assert reload_module.default_last_good(MINI_DB) is None
    os.rmdir(place.parent)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    place.parent.symlink_to(elsewhere)  # a symlink planted under the folder's name is refused, not followed
    assert reload_module.default_last_good(MINI_DB) is None
