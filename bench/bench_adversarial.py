"""Normal traffic while an attacker sends the worst inputs (issue 13), and one server process against several.

    uv run --frozen --all-extras python -m bench.bench_adversarial               # ~6 minutes; needs wrk
    uv run --frozen --all-extras python -m bench.bench_adversarial --runs 1 2 --seconds 10 --rounds 2

Each run is a process count, optionally with settings ("1:GIL_SWITCH_INTERVAL_MS=5"); the default compares one
process, two, and one with Python's default GIL switch interval. A server (python main.py, SERVER_WORKERS=n,
prediction log on) is started for every run and all stay up; each round measures every run in turn, so that other
load on the machine falls on all of them alike:
- clean: wrk sends /moderate with real texts (16 connections);
- attacked: the same wrk run while two clients send /moderate/batch requests of 16 worst-case texts at the
  API's length limit (20,000 characters: the families of bench/bench_worst_case.py, spaced leetspeak, look-alikes,
  "@ss " ...) back to back, and /health is polled.
Reported per run (medians over the rounds): normal requests/s and p99 clean and attacked, their ratio, the
attacker's texts/s and statuses, /health's p99 under attack; and each run's requests/s relative to the first.
Results: bench/results/adversarial.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.bench_api import _lua, _parse
from bench.bench_worst_case import FAMILIES, family_texts
from bench.common import load_texts, serve_api, write_result

ATTACK_CHARS = 20_000
ATTACK_BATCH = 16


def run_wrk(url: str, script: Path, connections: int, seconds: float) -> dict:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "30s", "--latency", "-s", str(script), url]
    output = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    return _parse(output)


def attack_batches() -> list[list[str]]:
    """Batches of worst-case texts: 16 seeds of each family (the families built from one repeated unit, the issue's
    and "@ss ", are the same text every seed). The attack cycles through them."""
    texts = [family_texts(f, ATTACK_CHARS, seed) for seed in range(16) for f in FAMILIES]
    return [texts[i : i + ATTACK_BATCH] for i in range(0, len(texts), ATTACK_BATCH)]


class Attack:
    """Clients sending worst-case batches back to back, and a /health poller, until stopped."""

    def __init__(self, base: str, batches: list[list[str]], clients: int = 2):
        self.base, self.batches, self.clients = base, batches, clients
        self.stop = threading.Event()
        self.texts = 0
        self.status: dict[int, int] = {}
        self.health_ms: list[float] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._send, args=(i,)) for i in range(clients)]
        self.threads.append(threading.Thread(target=self._poll))

    def _send(self, offset: int) -> None:
        with httpx.Client(base_url=self.base, timeout=120) as client:
            i = offset
            while not self.stop.is_set():
                batch = self.batches[i % len(self.batches)]
                i += self.clients
                response = client.post("/moderate/batch", json={"texts": batch})
                with self.lock:
                    self.status[response.status_code] = self.status.get(response.status_code, 0) + 1
                    if response.status_code == 200:
                        self.texts += len(batch)
                    elif response.status_code == 503:
                        time.sleep(float(response.headers.get("retry-after", "1")) / 10)

    def _poll(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                client.get("/health")
                self.health_ms.append((time.perf_counter() - started) * 1000)
                time.sleep(0.05)

    def __enter__(self) -> Attack:
        self.started = time.perf_counter()
        for t in self.threads:
            t.start()
        time.sleep(1.0)  # the attack is under way before the measurement starts
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.seconds = time.perf_counter() - self.started
        for t in self.threads:
            t.join(timeout=180)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if ordered else float("nan")


def measure(runs: list[str], single: Path, batches: list[list[str]], seconds: float, rounds: int, workdir: Path) -> dict:
    """All servers run at once (idle but for the one measured); each round measures each run, clean then attacked,
    so that the machine's other load falls on every run alike."""
    clean: dict[str, list[dict]] = {run: [] for run in runs}
    attacked: dict[str, list[dict]] = {run: [] for run in runs}
    with ExitStack() as stack:
        bases = {}
        for i, run in enumerate(runs):
            workers, *settings = run.split(":")
            env = {"PREDICTION_LOG_URL": f"sqlite:///{workdir / f'p{i}.db'}", "LOG_LEVEL": "WARNING",
                   "SERVER_WORKERS": workers, "TEXT_HASH_KEY": "bench-key-0123456789"}  # fmt: skip
            env.update(item.split("=", 1) for item in settings)
            bases[run] = stack.enter_context(serve_api(env))
            run_wrk(bases[run] + "/moderate", single, 16, 3)  # warm-up
        for r in range(rounds):
            for run, base in bases.items():
                clean[run].append(run_wrk(base + "/moderate", single, 16, seconds))
                with Attack(base, batches) as attack:
                    result = run_wrk(base + "/moderate", single, 16, seconds)
                result.update(attack_texts_per_second=round(attack.texts / attack.seconds, 1),
                              attack_status=attack.status, health_p50_ms=_pct(attack.health_ms, 0.5),
                              health_p99_ms=_pct(attack.health_ms, 0.99))  # fmt: skip
                attacked[run].append(result)
                print(f"  {run} round {r + 1}: clean {clean[run][-1]['requests_per_second']:,.0f} req/s "
                      f"p99 {clean[run][-1].get('p99_ms')} ms | attacked {result['requests_per_second']:,.0f} req/s "
                      f"p99 {result.get('p99_ms')} ms, attacker {result['attack_texts_per_second']} texts/s "
                      f"{result['attack_status']}, /health p99 {result['health_p99_ms']} ms", file=sys.stderr, flush=True)
    return {run: summarize(clean[run], attacked[run]) for run in runs}


def summarize(clean: list[dict], attacked: list[dict]) -> dict:
    def med(rows: list[dict], key: str) -> float:
        return round(statistics.median(r[key] for r in rows if key in r), 2)

    summary = {
        "clean_rps": med(clean, "requests_per_second"), "clean_p99_ms": med(clean, "p99_ms"),
        "attacked_rps": med(attacked, "requests_per_second"), "attacked_p99_ms": med(attacked, "p99_ms"),
        "attack_texts_per_second": med(attacked, "attack_texts_per_second"),
        "health_p99_ms_under_attack": med(attacked, "health_p99_ms"),
        "non_2xx_normal": sum(r["non_2xx"] for r in clean + attacked),
    }  # fmt: skip
    summary["rps_ratio_attacked_to_clean"] = round(summary["attacked_rps"] / summary["clean_rps"], 3)
    summary["p99_ratio_attacked_to_clean"] = round(summary["attacked_p99_ms"] / summary["clean_p99_ms"], 2)
    return {"summary": summary, "clean": clean, "attacked": attacked}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", default=["1", "2", "1:GIL_SWITCH_INTERVAL_MS=5"],
                        help="process counts, each optionally with :KEY=VALUE settings (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=10, help="per phase (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="clean/attacked pairs per run (default %(default)s)")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        print("error: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    texts, source = load_texts(4000)
    texts = [t for t in texts if len(t) < 1000][:2000]
    batches = attack_batches()
    workdir = Path(tempfile.mkdtemp())
    try:
        single = workdir / "single.lua"
        single.write_text(_lua([json.dumps({"text": t}) for t in texts]), encoding="utf-8")
        runs = measure(args.runs, single, batches, args.seconds, args.rounds, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'run':<28}  {'clean req/s':>11}  {'p99 ms':>7}  {'attacked req/s':>14}  {'p99 ms':>7}  "
          f"{'ratio':>6}  {'attack texts/s':>14}  {'/health p99 ms':>14}")
    for w, run in runs.items():
        s = run["summary"]
        print(f"{w:<28}  {s['clean_rps']:>11,.0f}  {s['clean_p99_ms']:>7}  {s['attacked_rps']:>14,.0f}  "
              f"{s['attacked_p99_ms']:>7}  {s['rps_ratio_attacked_to_clean']:>6}  {s['attack_texts_per_second']:>14}  "
              f"{s['health_p99_ms_under_attack']:>14}")
    scaling = {}
    if args.runs[0] in runs:
        base = runs[args.runs[0]]["summary"]
        for w, run in runs.items():
            scaling[w] = {k: round(run["summary"][k] / base[k], 2) for k in ("clean_rps", "attacked_rps")}
        print(f"requests/s relative to run {args.runs[0]}:", scaling)
    path = write_result("adversarial", {
        "texts": source, "normal_connections": 16, "seconds_per_phase": args.seconds, "rounds": args.rounds,
        "attack": {"clients": 2, "texts_per_batch": ATTACK_BATCH, "chars_per_text": ATTACK_CHARS, "families": list(FAMILIES)},
        "runs": runs, "relative_to_first_run": scaling,
    })  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
