"""Helpers shared by the benchmarks: real texts from shared/data, one-core pinning, result files."""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.settings import ROOT

RESULTS = ROOT / "bench" / "results"


def pin_one_core() -> None:
    """Run on one core, as the targets are stated per core."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def real_texts(limit: int | None = None) -> list[str]:
    """Texts from every shared data set, in a fixed shuffled order."""
    import random

    from data.readers import load_shared_sources

    texts = load_shared_sources()["text"].to_list()
    random.Random(0).shuffle(texts)
    return texts[:limit] if limit else texts


def load_texts(count: int) -> tuple[list[str], str]:
    """`count` real texts and where they came from; synthetic ones when ../shared/data is not there."""
    import random

    try:
        texts = [t for t in real_texts(count * 2) if t.strip()][:count]
        if len(texts) >= count:
            return texts, "shared/data (real texts)"
    except Exception as exc:  # no shared data beside the checkout
        print(f"note: real texts unavailable ({exc}); using synthetic ones", file=sys.stderr)
    rng = random.Random(0)
    words = "the a you go kill unalive seggs day work great lol time myself sewer slide k1ll nice".split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(3, 40))) for _ in range(count)], "synthetic"


STAGE1_PATHS = ("normalizer", "core", "data/dataset")  # what Stage 1 needs to run at another revision


def git_revision(value: str) -> str:
    """An argparse `type` for a git revision of this checkout: refused with a clear message (not a traceback from
    `git archive` minutes into a run) when git does not know it as a commit."""
    import argparse

    known = not value.startswith("-") and subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{value}^{{commit}}"], cwd=ROOT, capture_output=True).returncode == 0
    if not known:  # an option-like value never reaches git
        raise argparse.ArgumentTypeError(f"{value!r} is not a commit of this repository ({ROOT})")
    return value


def export(revision: str, into: Path, paths: tuple[str, ...] = STAGE1_PATHS) -> Path:
    """The files of `revision` (`paths` of it; () for the whole tree) extracted under `into` (created)."""
    archive = subprocess.run(["git", "archive", revision, *paths], cwd=ROOT, check=True, capture_output=True).stdout
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


@contextmanager
def revision_tree(revision: str, paths: tuple[str, ...] = STAGE1_PATHS) -> Iterator[Path]:
    """A temporary directory holding `paths` as they were at a git revision (to run an earlier version beside
    this one, on the same inputs)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        yield export(revision, Path(tmp), paths)


def machine() -> dict:
    return {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}


def write_result(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


class Server(str):
    """A running API's base URL (it is the string) that also knows its process, for CPU accounting."""

    process: subprocess.Popen

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def serve_api(env: dict[str, str], cpu: int | None = None, root: Path = ROOT) -> Iterator[Server]:
    """Run `python main.py` in a subprocess on a free loopback port (pinned to one CPU if asked); yield its
    base URL once /health answers; stop it with SIGINT so it shuts down cleanly (the prediction log flushes).
    `root`: the checkout whose main.py runs (another version of the code, exported by bench_worst_case.export);
    one that does not stop within a minute (an old server still moderating on its event loop) is killed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, str(root / "main.py")]
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        command = ["taskset", "-c", str(cpu), *command]
    server = subprocess.Popen(
        command, cwd=root, env={**os.environ, **env, "PORT": str(port)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = Server(f"http://127.0.0.1:{port}")
    base.process = server
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/health", timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError("the API exited during start-up") from None
                time.sleep(0.1)
        yield base
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
