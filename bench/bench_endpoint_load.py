"""Endpoint load test: the highest sustained invocation rate one instance serves within a latency objective.

    # a real endpoint (one instance in service; region / endpoint_url from core.settings unless given):
    uv run --all-extras python bench/bench_endpoint_load.py --endpoint-name algospeak-stage2 \\
        --concurrency 1 2 4 8 16 32 --step-seconds 30 --texts-per-invocation 1 --p99-ms 1000 \\
        --label "ml.g4dn.xlarge, tuned Qwen2.5-3B fp16"              # -> bench/results/endpoint_load.json
    # the local container (deployment/local_server.py, started and stopped by this script):
    uv run --all-extras python -m training.base_models --shape tiny --out /tmp/tiny-qwen
    uv run --all-extras python bench/bench_endpoint_load.py --local-model-dir /tmp/tiny-qwen \\
        --concurrency 1 2 4 --step-seconds 5 --out endpoint_load_local_tiny --label "..."

Method: closed-loop steps of offered load. At each concurrency level N, N threads each send invocations back to
back for `--step-seconds` (boto3 `sagemaker-runtime` `invoke_endpoint`, botocore retries off, so every failed
attempt counts as an error and every latency is one attempt's). Each invocation is one request of
`--texts-per-invocation` real texts (../shared/data; synthetic ones when absent); an answer counts as an error
unless it is HTTP 200 with one valid prediction per text (core.llm_inference.validate_response). Per step:
invocations/s (successful ones over the step's wall time), p50/p95/p99 latency, errors, and the CPU time this
client used (on a small host the load generator itself can be the bottleneck: see `client_cpu_share`).

A step meets the objective when p99 <= `--p99-ms` and errors <= `--max-error-rate` (default 0.1%) of its
invocations. The sustainable rate is the highest invocations/s among steps that meet it; by default the test
stops at the first step that does not (more load only makes it worse; `--all-steps` runs every level); when no
step misses, the rate is only a lower bound (`objective_missed_at_some_step: false`): add higher levels.
`max_sustainable_invocations_per_minute_per_instance` = that rate x 60 / `--instances`: the number
`deployment/model_deployment.py deploy --load-test FILE` reads (its autoscaling target is that x 0.7).
When no step meets the objective the result is still written (with that field null, so `deploy` refuses it)
and the script exits 1 with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, load_texts, machine  # noqa: E402
from core.settings import ROOT  # noqa: E402

DEFAULT_CONCURRENCY = [1, 2, 4, 8, 16, 32, 64]


# ---------------------------------------------------------------------------------------------- helpers
def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class LocalContainer:
    """`python -m deployment.local_server` in a subprocess on a free port; ready once /ping answers 200."""

    def __init__(self, model_dir: str, *, batch_size: int, dtype: str, device: str, start_timeout: float,
                 torch_threads: int | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="local_server-", suffix=".log", delete=False)
        env = dict(os.environ)
        if torch_threads:
            env.update(OMP_NUM_THREADS=str(torch_threads), MKL_NUM_THREADS=str(torch_threads))
        command = [sys.executable, "-m", "deployment.local_server", "--model-dir", str(model_dir),
                   "--port", str(self.port), "--batch-size", str(batch_size), "--dtype", dtype, "--device", device]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=2) as answer:
                    self.ping = json.loads(answer.read())
                    return
            except OSError:
                pass
            if self.process.poll() is not None:
                tail = self.log_tail()
                self.close()
                code = self.process.returncode
                raise RuntimeError(f"the local container exited during start-up (exit {code}):\n{tail}")
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the local container did not answer /ping within {start_timeout:.0f} s")
            time.sleep(0.2)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return Path(self.log.name).read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def cpu_seconds(self) -> float | None:
        return process_cpu_seconds(self.process.pid)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


def make_client(region: str, endpoint_url: str | None, max_connections: int, connect_timeout: float,
                read_timeout: float, local: bool):
    import boto3

    from core import aws

    session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local") if local else None
    return aws.client("sagemaker-runtime", region, endpoint_url, connect_timeout=connect_timeout,
                      read_timeout=read_timeout, attempts=1,  # every attempt is measured as itself
                      pool=max(10, max_connections), session=session)


def invoke_once(client, endpoint_name: str, body: bytes, expected: int) -> str | None:
    """One invocation; None when it succeeded with a valid answer, else a short error description."""
    from botocore.exceptions import BotoCoreError, ClientError

    from classifiers.base import ClassifierError
    from core.llm_inference import validate_response

    try:
        response = client.invoke_endpoint(EndpointName=endpoint_name, Body=body, ContentType="application/json",
                                          Accept="application/json")
        raw = response["Body"].read()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return f"{error.get('Code') or 'error'} (HTTP {status}): {error.get('Message', '')}"[:200]
    except BotoCoreError as exc:  # timeouts, refused or dropped connections
        return f"{type(exc).__name__}: {exc}"[:200]
    try:
        validate_response(json.loads(raw), expected)
    except (ClassifierError, ValueError, TypeError, KeyError) as exc:
        return f"invalid answer: {exc}"[:200]
    return None


def run_step(client, endpoint_name: str, bodies: list[bytes], texts_per_invocation: int, concurrency: int,
             seconds: float, server_cpu=None) -> dict:
    """N threads invoking back to back for `seconds`; in-flight invocations finish and count."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[dict[str, int]] = [{} for _ in range(concurrency)]
    start_barrier = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def worker(index: int) -> None:
        start_barrier.wait()
        k = index
        while time.perf_counter() < deadline[0]:
            body = bodies[k % len(bodies)]
            k += concurrency
            started = time.perf_counter()
            error = invoke_once(client, endpoint_name, body, texts_per_invocation)
            elapsed = time.perf_counter() - started
            if error is None:
                latencies[index].append(elapsed)
            else:
                errors[index][error] = errors[index].get(error, 0) + 1
                if elapsed < 0.01:  # an instant failure (nothing listening): don't spin the CPU
                    time.sleep(0.01)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    cpu0, server0 = time.process_time(), server_cpu() if server_cpu else None
    t0 = time.perf_counter()
    deadline[0] = t0 + seconds
    start_barrier.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    client_cpu = time.process_time() - cpu0
    server1 = server_cpu() if server_cpu else None

    ok = [x for per in latencies for x in per]
    error_kinds: dict[str, int] = {}
    for per in errors:
        for kind, n in per.items():
            error_kinds[kind] = error_kinds.get(kind, 0) + n
    n_errors = sum(error_kinds.values())
    total = len(ok) + n_errors
    ms = lambda v: None if v is None else round(v * 1000, 2)  # noqa: E731
    step = {
        "concurrency": concurrency,
        "seconds": round(wall, 2),
        "invocations": total,
        "ok": len(ok),
        "errors": n_errors,
        "error_rate": round(n_errors / total, 5) if total else None,
        "invocations_per_s": round(len(ok) / wall, 2),
        "texts_per_s": round(len(ok) * texts_per_invocation / wall, 2),
        "latency_p50_ms": ms(percentile(ok, 50)),
        "latency_p95_ms": ms(percentile(ok, 95)),
        "latency_p99_ms": ms(percentile(ok, 99)),
        "latency_max_ms": ms(max(ok) if ok else None),
        "client_cpu_share": round(client_cpu / wall, 2),  # 1.0 = one core busy generating load
    }
    if server0 is not None and server1 is not None:
        step["server_cpu_share"] = round((server1 - server0) / wall, 2)
    if error_kinds:
        step["error_kinds"] = dict(sorted(error_kinds.items(), key=lambda kv: -kv[1])[:5])
    return step


def judge(step: dict, p99_ms: float, max_error_rate: float) -> tuple[bool, str]:
    """Whether a step meets the objective, and why not."""
    if not step["ok"]:
        return False, "no successful invocation"
    if step["error_rate"] > max_error_rate:
        return False, f"error rate {step['error_rate']:.2%} > {max_error_rate:.2%}"
    if step["latency_p99_ms"] > p99_ms:
        return False, f"p99 {step['latency_p99_ms']:.0f} ms > {p99_ms:.0f} ms"
    return True, "ok"


def sustainable(steps: list[dict]) -> dict | None:
    """The step with the highest rate among those that met the objective."""
    passing = [s for s in steps if s["meets_objective"]]
    return max(passing, key=lambda s: s["invocations_per_s"]) if passing else None


def print_table(steps: list[dict], out=None) -> None:
    out = out or sys.stdout
    header = f"{'conc':>5} {'inv/s':>9} {'texts/s':>9} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'invoc':>7} " \
             f"{'errors':>7} {'cli cpu':>7}  objective"
    print(header, file=out)
    print("-" * len(header), file=out)
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    for s in steps:
        print(f"{s['concurrency']:>5} {s['invocations_per_s']:>9.2f} {s['texts_per_s']:>9.2f} "
              f"{fmt(s['latency_p50_ms']):>9} {fmt(s['latency_p95_ms']):>9} {fmt(s['latency_p99_ms']):>9} "
              f"{s['invocations']:>7} {s['errors']:>7} {s['client_cpu_share']:>7.2f}  "
              f"{'met' if s['meets_objective'] else 'MISSED: ' + s['verdict']}", file=out)


# ---------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--endpoint-name", help="a SageMaker endpoint (default: SAGEMAKER_ENDPOINT_NAME)")
    target.add_argument("--local-model-dir", help="start deployment.local_server on this model and load-test it")
    parser.add_argument("--region", help="default: AWS_REGION from core.settings")
    parser.add_argument("--endpoint-url", help="the runtime API's URL (default: AWS_ENDPOINT_URL, else AWS)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=DEFAULT_CONCURRENCY,
                        help="offered load: concurrent clients per step (default %(default)s)")
    parser.add_argument("--step-seconds", type=float, default=30.0, help="duration of each step")
    parser.add_argument("--texts-per-invocation", type=int, default=1)
    parser.add_argument("--p99-ms", type=float, default=1000.0, help="latency objective (p99, client side)")
    parser.add_argument("--max-error-rate", type=float, default=0.001, help="default 0.001 (0.1%%)")
    parser.add_argument("--instances", type=int, default=1, help="instances in service behind the endpoint")
    parser.add_argument("--all-steps", action="store_true", help="keep stepping after a step misses the objective")
    parser.add_argument("--warmup-invocations", type=int, default=3, help="untimed invocations before the steps")
    parser.add_argument("--connect-timeout", type=float, default=2.0)
    parser.add_argument("--read-timeout", type=float, default=30.0)
    parser.add_argument("--local-batch-size", type=int, default=16, help="local container's --batch-size")
    parser.add_argument("--local-dtype", default="auto")
    parser.add_argument("--local-device", default="auto")
    parser.add_argument("--local-threads", type=int, help="OMP/MKL threads for the local container")
    parser.add_argument("--start-timeout", type=float, default=180.0, help="seconds to wait for the container's /ping")
    parser.add_argument("--out", default="endpoint_load", help="result name under bench/results/")
    parser.add_argument("--output", help="full path of the result file (overrides --out)")
    parser.add_argument("--label", default="", help="what this run is, recorded in the result")
    parser.add_argument("--note", action="append", default=[], help="a remark recorded in the result's notes")
    args = parser.parse_args(argv)
    if min(args.concurrency) < 1 or args.step_seconds <= 0 or args.texts_per_invocation < 1 or args.instances < 1:
        parser.error("--concurrency, --step-seconds, --texts-per-invocation and --instances must be positive")

    from core.settings import get_settings

    settings = get_settings()
    region = args.region or settings.aws_region
    output = Path(args.output) if args.output else RESULTS / f"{args.out}.json"
    container: LocalContainer | None = None
    if args.local_model_dir:
        print(f"starting the local container on {args.local_model_dir} ...", file=sys.stderr)
        try:
            container = LocalContainer(args.local_model_dir, batch_size=args.local_batch_size, dtype=args.local_dtype,
                                       device=args.local_device, start_timeout=args.start_timeout,
                                       torch_threads=args.local_threads)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        endpoint_name, endpoint_url = "local", container.url
        description = {"kind": "local container", "model_dir": str(args.local_model_dir), "url": container.url,
                       "model_version": container.ping.get("model_version"), "batch_size": args.local_batch_size,
                       "dtype": args.local_dtype, "device": args.local_device, "torch_threads": args.local_threads}
    else:
        endpoint_name = args.endpoint_name or settings.sagemaker_endpoint_name
        if not endpoint_name:
            print("error: give --endpoint-name (or SAGEMAKER_ENDPOINT_NAME) or --local-model-dir", file=sys.stderr)
            return 2
        endpoint_url = args.endpoint_url or settings.aws_endpoint_url
        description = {"kind": "sagemaker endpoint", "endpoint_name": endpoint_name, "region": region,
                       "endpoint_url": endpoint_url}

    try:
        texts, source = load_texts(max(256, args.texts_per_invocation * 64))
        bodies = [json.dumps({"inputs": texts[i : i + args.texts_per_invocation]}).encode("utf-8")
                  for i in range(0, len(texts) - args.texts_per_invocation + 1, args.texts_per_invocation)]
        client = make_client(region, endpoint_url, max(args.concurrency), args.connect_timeout, args.read_timeout,
                             local=container is not None)
        warmup_errors = []
        for i in range(args.warmup_invocations):
            error = invoke_once(client, endpoint_name, bodies[i % len(bodies)], args.texts_per_invocation)
            if error:
                warmup_errors.append(error)
        if warmup_errors:
            print(f"warning: {len(warmup_errors)} of {args.warmup_invocations} warm-up invocations failed: "
                  f"{warmup_errors[0]}", file=sys.stderr)
        steps = []
        for concurrency in args.concurrency:
            step = run_step(client, endpoint_name, bodies, args.texts_per_invocation, concurrency, args.step_seconds,
                            container.cpu_seconds if container else None)
            step["meets_objective"], step["verdict"] = judge(step, args.p99_ms, args.max_error_rate)
            steps.append(step)
            print(f"step concurrency={concurrency}: {step['invocations_per_s']} inv/s, p99 "
                  f"{step['latency_p99_ms']} ms, {step['errors']} errors -> {step['verdict']}", file=sys.stderr)
            if not step["meets_objective"] and not args.all_steps:
                break
    finally:
        if container is not None:
            container.close()

    best = sustainable(steps)
    per_minute = round(best["invocations_per_s"] * 60 / args.instances, 1) if best else None
    notes = list(args.note)
    if best and any(not s["meets_objective"] for s in steps[: steps.index(best)]):
        notes.append("a lower load level missed the objective before this one met it: check for noise or errors")
    saturated = any(not s["meets_objective"] for s in steps)
    if best and not saturated:
        notes.append("every step met the objective: the sustainable rate is a lower bound (the endpoint was not "
                     "pushed past its limit); add higher --concurrency levels for the real maximum")
    thin = [s["concurrency"] for s in steps if 0 < s["ok"] < 100]
    if thin:
        notes.append(f"steps at concurrency {thin} had fewer than 100 successful invocations: their p99 is close "
                     "to their maximum; use longer steps for a stable figure")
    if steps and max(s["client_cpu_share"] for s in steps) > 0.8:
        notes.append("the load generator used most of a core in some step: on a small host it may cap the rate")
    payload = {
        "benchmark": output.stem,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "label": args.label,
        "target": description,
        "objective": {"latency_p99_ms": args.p99_ms, "max_error_rate": args.max_error_rate,
                      "latency_measured": "client side, per invoke_endpoint attempt (botocore retries off)"},
        "method": {"load": "closed loop: N concurrent clients invoking back to back per step",
                   "concurrency": args.concurrency, "step_seconds": args.step_seconds,
                   "texts_per_invocation": args.texts_per_invocation, "texts": source,
                   "warmup_invocations": args.warmup_invocations, "warmup_errors": len(warmup_errors),
                   "stopped_at_first_miss": not args.all_steps},
        "instances": args.instances,
        "max_sustainable_invocations_per_second": best["invocations_per_s"] if best else None,
        "max_sustainable_invocations_per_minute_per_instance": per_minute,
        "sustainable_at_concurrency": best["concurrency"] if best else None,
        "objective_missed_at_some_step": saturated,  # false: the rate above is a lower bound
        "steps": steps,
        "notes": notes,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")

    print(f"\n{description['kind']}: {endpoint_name if container is None else args.local_model_dir}; objective "
          f"p99 <= {args.p99_ms:g} ms, errors <= {args.max_error_rate:.2%}; {args.texts_per_invocation} text(s) "
          f"per invocation, {args.step_seconds:g} s steps")
    print_table(steps)
    for note in notes:
        print(f"note: {note}")
    if best is None:
        first = steps[0] if steps else None
        reason = first["verdict"] if first else "no step ran"
        kinds = f" ({next(iter(first['error_kinds']))})" if first and first.get("error_kinds") else ""
        print(f"\nNO sustainable rate: no step met the objective (first step: {reason}{kinds}). Wrote {output} with "
              f"max_sustainable_invocations_per_minute_per_instance = null; deploy will refuse it.", file=sys.stderr)
        return 1
    bound = "" if saturated else "(a lower bound: no step missed the objective) "
    print(f"\nmax sustainable: {best['invocations_per_s']} invocations/s at concurrency {best['concurrency']} {bound}"
          f"= {per_minute} invocations/min per instance (of {args.instances}); deploy target = that x 0.7")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
