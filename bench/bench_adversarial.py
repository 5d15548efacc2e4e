"""Normal traffic while an attacker sends the worst inputs (issue 13): the code before against this checkout.

    uv run --frozen --all-extras python -m bench.bench_adversarial               # two servers; needs wrk
    uv run --frozen --all-extras python -m bench.bench_adversarial --runs before:1 1 before:2 2 --rounds 2  # 5 min 18 s
    uv run --frozen --all-extras python -m bench.bench_adversarial --runs 1 2 1:MODERATION_PROCESSES=0
    uv run --frozen --all-extras python -m bench.bench_adversarial --before f8a605f --runs before:1 1

Each run is a process count, optionally with settings ("1:GIL_SWITCH_INTERVAL_MS=5"); "before:" in front serves
it from the commit `--before` (default: 0bb5311, the server before moderation moved to child processes, whose
worker threads shared the GIL with the event loop), exported with `git archive` and run with this environment.
The default compares one and two server processes of the code before and of this checkout. A server (python
main.py, SERVER_WORKERS=n, prediction log on) is started for every run and all stay up; each round measures every
run in turn, so that other load on the machine falls on all of them alike:
- clean: wrk sends /moderate with real texts (16 connections);
- attacked: the same wrk run while two clients send /moderate/batch requests of 16 worst-case texts at the
  API's length limit (20,000 characters: the families of bench/bench_worst_case.py, spaced leetspeak, look-alikes,
  "@ss " ...) back to back, and /health is polled.
Reported per run (medians over the rounds): normal requests/s and p99 clean and attacked, their ratio, the
attacker's texts/s and statuses, /health's p99 and maximum under attack; and, for every run also measured on the
code before, this checkout's figures divided by the code before's (requests/s under attack: new / before).
(The code before the issue-13 fixes, f8a605f, moderated on the event loop: one worst-case text of 20,000
characters held every request for about a minute, so it answers nothing while attacked.)
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
from bench.common import export, git_revision, load_texts, serve_api, write_result
from core.settings import ROOT

BEFORE = "0bb5311"  # the server before moderation moved to child processes (MODERATION_PROCESSES)
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

    def __init__(self, base: str, batches: list[list[str]], clients: int = 2, poll: bool = True):
        self.base, self.batches, self.clients = base, batches, clients
        self.stop = threading.Event()
        self.texts = 0
        self.status: dict[int, int] = {}
        self.health_ms: list[float] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._send, args=(i,)) for i in range(clients)]
        if poll:
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


def measure(runs: list[str], single: Path, batches: list[list[str]], seconds: float, rounds: int, workdir: Path,
            before: Path | None = None) -> dict:
    """All servers run at once (idle but for the one measured); each round measures each run, clean then attacked,
    so that the machine's other load falls on every run alike."""
    clean: dict[str, list[dict]] = {run: [] for run in runs}
    attacked: dict[str, list[dict]] = {run: [] for run in runs}
    with ExitStack() as stack:
        bases = {}
        for i, run in enumerate(runs):
            old = run.startswith("before:")
            workers, *settings = run.removeprefix("before:").split(":")
            env = {"PREDICTION_LOG_URL": f"sqlite:///{workdir / f'p{i}.db'}", "LOG_LEVEL": "WARNING",
                   "SERVER_WORKERS": workers, "TEXT_HASH_KEY": "bench-key-0123456789"}  # fmt: skip
            env.update(item.split("=", 1) for item in settings)
            bases[run] = stack.enter_context(serve_api(env, root=before if old and before else ROOT))
            run_wrk(bases[run] + "/moderate", single, 16, 3)  # warm-up
        for r in range(rounds):
            for run, base in bases.items():
                clean[run].append(run_wrk(base + "/moderate", single, 16, seconds))
                with Attack(base, batches) as attack:
                    result = run_wrk(base + "/moderate", single, 16, seconds)
                result.update(attack_texts_per_second=round(attack.texts / attack.seconds, 1),
                              attack_status=attack.status, health_p50_ms=_pct(attack.health_ms, 0.5),
                              health_p99_ms=_pct(attack.health_ms, 0.99),
                              health_max_ms=_pct(attack.health_ms, 1.0))  # fmt: skip
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
        "health_max_ms_under_attack": max(r["health_max_ms"] for r in attacked),
        "non_2xx_normal": sum(r["non_2xx"] for r in clean + attacked),
    }  # fmt: skip
    summary["rps_ratio_attacked_to_clean"] = round(summary["attacked_rps"] / summary["clean_rps"], 3)
    summary["p99_ratio_attacked_to_clean"] = round(summary["attacked_p99_ms"] / summary["clean_p99_ms"], 2)
    return {"summary": summary, "clean": clean, "attacked": attacked}


def attack_only(base: str, seconds: float) -> int:
    """`--attack URL`: only the attack (two clients, worst-case batches back to back) for `seconds`, then one
    JSON line: batches answered per status and texts moderated. A separate process, so that whoever measures the
    server meanwhile (tests/api/test_hardening.py) shares no GIL with the attacking clients."""
    batches = attack_batches()
    print("attacking", flush=True)
    with Attack(base, batches, poll=False) as attack:
        time.sleep(max(0.0, seconds - 1.0))
    print(json.dumps({"status": attack.status, "texts": attack.texts, "seconds": round(attack.seconds, 1)}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attack", metavar="URL", help="only attack the server at URL (see attack_only)")
    parser.add_argument("--attack-seconds", type=float, default=15, help="with --attack (default %(default)s)")
    parser.add_argument("--runs", nargs="+", default=["before:1", "1"],
                        help="process counts, each optionally with :KEY=VALUE settings, 'before:' for the code of "
                             "--before (default %(default)s)")  # fmt: skip
    parser.add_argument("--before", default=BEFORE, type=git_revision, help="the commit 'before:' runs serve (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=6, help="per phase (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="clean/attacked pairs per run (default %(default)s)")
    args = parser.parse_args(argv)
    if args.attack:
        return attack_only(args.attack, args.attack_seconds)
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
        before = None
        if any(run.startswith("before:") for run in args.runs):
            before = export(args.before, workdir / "before", ())
        runs = measure(args.runs, single, batches, args.seconds, args.rounds, workdir, before)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'run':<28}  {'clean req/s':>11}  {'p99 ms':>7}  {'attacked req/s':>14}  {'p99 ms':>7}  "
          f"{'ratio':>6}  {'attack texts/s':>14}  {'/health p99 ms':>14}  {'max ms':>7}")
    for w, run in runs.items():
        s = run["summary"]
        print(f"{w:<28}  {s['clean_rps']:>11,.0f}  {s['clean_p99_ms']:>7}  {s['attacked_rps']:>14,.0f}  "
              f"{s['attacked_p99_ms']:>7}  {s['rps_ratio_attacked_to_clean']:>6}  {s['attack_texts_per_second']:>14}  "
              f"{s['health_p99_ms_under_attack']:>14}  {s['health_max_ms_under_attack']:>7}")
    versus_before = {}
    for w, run in runs.items():
        old_run = runs.get(f"before:{w}")
        if old_run is None:
            continue
        new_s, old_s = run["summary"], old_run["summary"]
        versus_before[w] = {k: round(new_s[k] / old_s[k], 2) if old_s[k] else None
                            for k in ("clean_rps", "attacked_rps", "attack_texts_per_second",
                                      "health_p99_ms_under_attack")}  # fmt: skip
        print(f"run {w}, this checkout / {args.before}: {versus_before[w]}")
    scaling = {}
    if args.runs[0] in runs:
        base = runs[args.runs[0]]["summary"]
        for w, run in runs.items():
            scaling[w] = {k: round(run["summary"][k] / base[k], 2) for k in ("clean_rps", "attacked_rps")}
        print(f"requests/s relative to run {args.runs[0]}:", scaling)
    path = write_result("adversarial", {
        "texts": source, "normal_connections": 16, "seconds_per_phase": args.seconds, "rounds": args.rounds,
        "attack": {"clients": 2, "texts_per_batch": ATTACK_BATCH, "chars_per_text": ATTACK_CHARS, "families": list(FAMILIES)},
        "before": args.before, "runs": runs, "relative_to_first_run": scaling, "this_checkout_over_before": versus_before,
    })  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
