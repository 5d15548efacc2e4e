"""API throughput and latency on loopback: one uvicorn process, load from wrk.

    uv run --extra data python -m bench.bench_api            # ~1 minute; needs wrk (apt-get install wrk)

- /moderate: requests per second and p50/p99 latency, one real text per request (texts from shared/data,
  rotated by a Lua script), 16 connections for 15 s;
- /moderate/batch: texts per second with 256 texts per request, 4 connections for 15 s.
Targets (issue 3) on the 2-core machine: >= 1,000 req/s with p99 < 25 ms; >= 10,000 texts/s through batch.
The server runs with the prediction log on (SQLite), as it would in use. wrk runs on the other core.
Also reported: the server's CPU time per request and per text (from /proc), which other load on the machine
disturbs much less than the rates do.

    uv run --extra data python -m bench.bench_api --baseline 0a104e6   # ~5 minutes: and a git revision's API

With `--baseline REV`, the whole tree of a git revision (its code and models) is served the same way, on the same
texts, alternating with ours (baseline, ours, baseline, ours; the better of each side's two runs kept): each
figure as a ratio from one run, which this machine's drifting speed does not distort as much as figures from
runs an hour apart.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, git_revision, real_texts, revision_tree, serve_api, write_result


def _lua(bodies: list[str]) -> str:
    quoted = ",\n".join(json.dumps(b) for b in bodies)
    return f"""
bodies = {{ {quoted} }}
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", nil, {{["Content-Type"] = "application/json"}}, bodies[(counter % #bodies) + 1])
end
"""


def _parse(output: str) -> dict:
    def ms(value: str) -> float:
        number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    out = {"requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}  # type: ignore[union-attr]
    out["requests"] = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    for pct in ("50", "90", "99"):
        m = re.search(rf"\s{pct}(?:\.000)?%\s+([\d.]+\w+)", output)
        if m:
            out[f"p{pct}_ms"] = round(ms(m.group(1)), 2)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    out["non_2xx"] = int(errors.group(1)) if errors else 0
    return out


def _count(result: dict) -> int:
    return result["requests"]


def run_wrk(url: str, script: Path, connections: int, seconds: int) -> dict:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    if hasattr(os, "sched_setaffinity"):
        cmd = ["taskset", "-c", "1", *cmd]
    output = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    return _parse(output)


def measure(texts: list[str], root: Path = ROOT) -> dict:
    """/moderate and /moderate/batch of the API in `root` (a checkout), on one core, the prediction log on."""
    workdir = Path(tempfile.mkdtemp())
    env = {"PREDICTION_LOG_URL": f"sqlite:///{workdir / 'p.db'}", "LOG_LEVEL": "WARNING"}
    try:
        with serve_api(env, cpu=0, root=root) as base:
            single = workdir / "single.lua"
            single.write_text(_lua([json.dumps({"text": t}) for t in texts[:2000]]), encoding="utf-8")
            batch = workdir / "batch.lua"
            batch.write_text(
                _lua([json.dumps({"texts": texts[i : i + 256]}) for i in range(0, 2048, 256)]), encoding="utf-8"
            )
            run_wrk(base + "/moderate", single, 16, 3)  # warm-up
            cpu = base.cpu_seconds()
            moderate = run_wrk(base + "/moderate", single, 16, 15)
            moderate["server_cpu_us_per_request"] = round((base.cpu_seconds() - cpu) / _count(moderate) * 1e6, 1)
            cpu = base.cpu_seconds()
            batched = run_wrk(base + "/moderate/batch", batch, 4, 15)
            time.sleep(1.0)  # the prediction log's writer finishes the last batch: its CPU time is counted too
            batched["server_cpu_us_per_text"] = round((base.cpu_seconds() - cpu) / (_count(batched) * 256) * 1e6, 1)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    batched["texts_per_second"] = round(batched["requests_per_second"] * 256)
    return {"moderate": moderate, "batch_256": batched}


def better(a: dict, b: dict) -> dict:
    """Of two runs of one server, the faster on each endpoint (other load only ever slows a run down)."""
    return {k: max(a[k], b[k], key=lambda r: r["requests_per_second"]) for k in a}


def report(name: str, run: dict) -> None:
    moderate, batched = run["moderate"], run["batch_256"]
    print(f"{name}")
    print(f"  /moderate        {moderate['requests_per_second']:>9,.0f} req/s   p50 {moderate['p50_ms']} ms   "
          f"p99 {moderate['p99_ms']} ms   non-2xx {moderate['non_2xx']}")
    print(f"  /moderate/batch  {batched['texts_per_second']:>9,.0f} texts/s (256 per request)   p99 {batched['p99_ms']} ms"
          f"   non-2xx {batched['non_2xx']}")
    print(f"  server CPU: {moderate['server_cpu_us_per_request']} µs per /moderate request, "
          f"{batched['server_cpu_us_per_text']} µs per text through /moderate/batch")


def ratios(ours: dict, baseline: dict) -> dict:
    m, bm = ours["moderate"], baseline["moderate"]
    b, bb = ours["batch_256"], baseline["batch_256"]
    return {
        "moderate_requests_per_second": round(m["requests_per_second"] / bm["requests_per_second"], 3),
        "moderate_p99": round(m["p99_ms"] / bm["p99_ms"], 3),
        "moderate_server_cpu_per_request": round(m["server_cpu_us_per_request"] / bm["server_cpu_us_per_request"], 3),
        "batch_texts_per_second": round(b["texts_per_second"] / bb["texts_per_second"], 3),
        "batch_server_cpu_per_text": round(b["server_cpu_us_per_text"] / bb["server_cpu_us_per_text"], 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", metavar="REV", type=git_revision, help="also serve this git revision, alternating with ours")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        print("error: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    texts = [t for t in real_texts(5000) if len(t) < 1000]
    if not args.baseline:
        ours = measure(texts)
        report("ours", ours)
        payload: dict = dict(ours)
    else:
        with revision_tree(args.baseline, ()) as tree:
            runs = [(side, measure(texts, tree if side == "baseline" else ROOT))
                    for side in ("baseline", "ours", "baseline", "ours")]
        baseline = better(*[r for side, r in runs if side == "baseline"])
        ours = better(*[r for side, r in runs if side == "ours"])
        report(f"baseline {args.baseline}", baseline)
        report("ours", ours)
        payload = {**ours, "baseline": {"revision": args.baseline, **baseline}, "ours_over_baseline": ratios(ours, baseline)}
        print("ours / baseline: " + ", ".join(f"{k} {v}x" for k, v in payload["ours_over_baseline"].items()))
    path = write_result("api", {**payload, "texts_mean_chars": round(sum(map(len, texts)) / len(texts), 1)})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
