"""The whole pipeline in one command: each step reads the previous step's record and writes its own.

    uv run --all-extras python -m pipeline --emulate          # offline: moto_server, the local container, a tiny
                                                              # model; a few minutes on a laptop
    uv run --all-extras python -m pipeline --from deploy      # again from a step (earlier records are its inputs)
    uv run --all-extras python -m pipeline --bucket my-bucket --role-arn arn:aws:iam::123456789012:role/SageMaker \\
        --base-model Qwen/Qwen2.5-1.5B-Instruct              # against the AWS account in the environment

Steps, in order (each also runs alone; its record is `<out>/<step>/record.json`):
  prepare   data.prepare                       the labelled, split, augmented dataset
  ingest    data.data_ingestion                checksummed upload to S3 and a manifest
  train     training.model_training            the QLoRA job (SageMaker; --emulate: in process on a tiny model)
  evaluate  training.model_evaluation --gate   the trained model's report ...
  gate                                         ... and the deployment gate (gate.json), written by the same run
  deploy    deployment.model_deployment        endpoint, autoscaling, smoke test with the labelled probes
  monitor   monitoring.model_monitoring        endpoint and API health, and the API answering from the model

It stops at the first step that fails, with that step's one-line reason, and says how to resume.

--emulate runs it all on this machine and offline: moto_server on loopback (S3 and the SageMaker control plane),
a bucket, the local container serving what the endpoint was deployed with (deployment/local_server.py over the
archive in moto's S3), the API in a subprocess answering from that endpoint, and a random-weight Qwen2.5-shaped
model with 2 layers trained for a few steps. Such a model cannot pass the quality checks, so --emulate relaxes
exactly three, and says so in out/emulated/pipeline.json: the gate's absolute thresholds (GATE_MIN_MACRO_F1=0,
GATE_MAX_FALSE_ALARM_RATE=1, GATE_MAX_ECE=1), the deploy smoke test's labelled probes (--no-expect-harmful: shape,
finite probabilities and label_mass still checked) and the monitoring probe (a custom probe body: shape only).
`--strict` keeps them, and the run then stops at the gate, as it must for a random model.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by its path (python pipeline/run.py): the repository root on sys.path
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.settings import ROOT
from core import records

STEP_HELP = {
    "prepare": "data.prepare", "ingest": "data.data_ingestion", "train": "training.model_training",
    "evaluate": "training.model_evaluation", "gate": "training.model_evaluation --gate",
    "deploy": "deployment.model_deployment deploy", "monitor": "monitoring.model_monitoring status",
}
RELAXED_GATE = {"GATE_MIN_MACRO_F1": "0", "GATE_MAX_FALSE_ALARM_RATE": "1", "GATE_MAX_ECE": "1",
                "GATE_MAX_FUNCTIONAL_REGRESSION": "1"}
EMULATED_PROBE = {"inputs": ["monitoring health probe"]}


class PipelineError(RuntimeError):
    """A step failed or its record is not what the next step needs; one line."""


@dataclass
class Context:
    args: argparse.Namespace
    out: Path
    emulate: bool
    env: dict[str, str] = field(default_factory=dict)
    runtime_url: str | None = None
    api_url: str | None = None
    relaxed: list[str] = field(default_factory=list)
    stack: ExitStack | None = None


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------- steps


def step_prepare(ctx: Context) -> None:
    argv = ["--out", str(ctx.out / "prepared")]
    if ctx.emulate:  # a small sample of three sets: the plumbing, not the model, is what an emulated run shows
        # (without the team's seed corpus, which would add some 3,600 train records to the 240)
        argv += ["--target-size", str(ctx.args.emulate_rows), "--sources", "davidson,olid,convabuse",
                 "--no-seed-corpus"]
    _call("data.prepare", argv)


def step_ingest(ctx: Context) -> None:
    prepared = records.read("prepare")
    argv = [prepared["outputs"]["dataset_dir"]]
    if ctx.args.bucket:
        argv += ["--bucket", ctx.args.bucket]
    _call("data.data_ingestion", argv)


def step_train(ctx: Context) -> None:
    records.read("ingest")  # training reads the manifest from it (and refuses without it)
    argv = ["--record", str(ctx.out / "training" / "training_job.json")]
    if ctx.args.base_model:
        argv += ["--base-model", ctx.args.base_model]
    if ctx.emulate:  # the job runs in this process (the container's entry point) on the manifest's data in S3
        base = ctx.args.base_model or str(_tiny_base_model(ctx))
        argv += ["--local", "--base-model", base, "--model-dir", str(ctx.out / "training" / "model"),
                 "--checkpoint-dir", str(ctx.out / "training" / "checkpoints"), "--epochs", "1",
                 "--batch-size", "2", "--gradient-accumulation-steps", "1", "--max-length", "160",
                 "-H", "quantization=none", "-H", f"max-steps={ctx.args.emulate_steps}", "-H", "max-eval-samples=8",
                 "-H", "overwrite-checkpoints=true", "-H", "learning-rate=0.01"]
    else:
        argv += ["--wait"]
        if ctx.args.role_arn:
            argv += ["--role", ctx.args.role_arn]
        if ctx.args.bucket:
            argv += ["--bucket", ctx.args.bucket]
    _call("training.model_training", argv)


def step_evaluate(ctx: Context) -> None:
    records.read("train")
    prepared = records.read("prepare")
    argv = ["--gate", "--data", str(Path(prepared["outputs"]["dataset_dir"]) / "test.jsonl"),
            "--out", str(ctx.out / "eval")]
    if ctx.emulate:
        argv += ["--subset", "all", "--limit", "40", "--probe-limit", "8", "--variants", "1", "--no-mlflow"]
    elif ctx.args.baseline:
        argv += ["--baseline", str(ctx.args.baseline)]
    _call("training.model_evaluation", argv, ok_codes=(0, 1))
    # exit 1 is also how a failing gate ends: the gate step reads its record and says why
    records.read("evaluate")


def step_gate(ctx: Context) -> None:
    gate = records.read("gate")
    evaluate = records.read("evaluate")
    if Path(gate["inputs"]["evaluate"]["record"]).resolve() != Path(evaluate["_path"]).resolve():
        raise PipelineError("the gate record was written for another evaluation; run from evaluate")
    if not gate["outputs"]["passed"]:
        raise PipelineError("the gate failed: " + "; ".join(gate["outputs"]["reasons"]))
    _say(f"  gate passed for {gate['outputs']['candidate']['backend']} {gate['outputs']['candidate']['version']}")


def step_deploy(ctx: Context) -> None:
    argv = ["deploy", "--endpoint-name", ctx.args.endpoint_name, "--record",
            str(ctx.out / "deployment" / "deployment.json")]
    if ctx.args.bucket:
        argv += ["--bucket", ctx.args.bucket]
    if ctx.args.role_arn:
        argv += ["--role-arn", ctx.args.role_arn]
    if ctx.emulate:
        argv += ["--target-invocations", "60", "--poll-seconds", "0.2", "--runtime-endpoint-url", ctx.runtime_url]
        if not ctx.args.strict:
            argv += ["--no-expect-harmful"]
    elif ctx.args.target_invocations:
        argv += ["--target-invocations", str(ctx.args.target_invocations)]
    elif ctx.args.load_test:
        argv += ["--load-test", str(ctx.args.load_test)]
    _call("deployment.model_deployment", argv)


def step_monitor(ctx: Context) -> None:
    from monitoring.model_monitoring import status

    deployed = records.read("deploy")
    endpoint = deployed["outputs"]["endpoint_name"]
    checks: dict[str, Any] = {}
    api_answers = []
    if ctx.emulate and ctx.api_url is None:
        from pipeline import emulate

        ctx.api_url = emulate.start_api(ctx.stack, ctx.runtime_url, ctx.out)
    probe = EMULATED_PROBE if ctx.emulate and not ctx.args.strict else None
    kwargs = {"probe": probe} if probe else {}
    result = status(None, api=ctx.api_url, endpoint=endpoint, runtime_endpoint_url=ctx.runtime_url, **kwargs)
    checks = {c["name"]: {"status": c["status"], "detail": c["detail"]} for c in result["checks"]}
    for name, check in checks.items():
        _say(f"  [{check['status']:>7}] {name:<18} {check['detail']}")
    if ctx.api_url:
        from pipeline import emulate

        for text in ("have a nice day", "go k1ll yourself"):
            answer = emulate.moderate(ctx.api_url, text)
            api_answers.append({"text": text, "classification": answer["classification"],
                                "stage2_status": answer["stage2_status"], "model": answer.get("model")})
        versions = {str((a["model"] or {}).get("version")) for a in api_answers}
        backends = {str((a["model"] or {}).get("backend")) for a in api_answers}
        expected = deployed["outputs"]["served_version"]  # the merged model's version; the gate named the adapter's
        ok = (versions == {expected} and backends == {"sagemaker"}
              and all(a["stage2_status"] == "ok" for a in api_answers))
        checks["api_answers_from_deployed_model"] = {
            "status": "ok" if ok else "fail",
            "detail": f"the API answered with {', '.join(sorted(backends))} model {', '.join(sorted(versions))} "
                      f"(deployed: {expected})"}
        _say(f"  [{checks['api_answers_from_deployed_model']['status']:>7}] api_answers_from_deployed_model "
             f"{checks['api_answers_from_deployed_model']['detail']}")
    overall = "fail" if any(c["status"] == "fail" for c in checks.values()) else result["status"]
    path = records.write("monitor", {"status": overall, "endpoint_name": endpoint, "api": ctx.api_url,
                                     "checks": checks, "api_answers": api_answers,
                                     "probe": "custom (shape only)" if probe else "labelled probes"},
                         {"deploy": Path(deployed["_path"])})
    _say(f"record: {path}")
    if overall == "fail":
        failed = [f"{n}: {c['detail']}" for n, c in checks.items() if c["status"] == "fail"]
        raise PipelineError("monitoring failed: " + "; ".join(failed))


STEPS: dict[str, Callable[[Context], None]] = {
    "prepare": step_prepare, "ingest": step_ingest, "train": step_train, "evaluate": step_evaluate,
    "gate": step_gate, "deploy": step_deploy, "monitor": step_monitor,
}
assert tuple(STEPS) == records.STEPS


# ----------------------------------------------------------------------------------------------- plumbing


def _call(module: str, argv: list[str], ok_codes: tuple[int, ...] = (0,)) -> int:
    """Run a step's module in this process (`main(argv)`), as `python -m module argv` would."""
    import importlib

    _say(f"  $ python -m {module} {' '.join(argv)}")
    code = importlib.import_module(module).main(argv)
    if code not in ok_codes:
        raise PipelineError(f"python -m {module} exited with status {code} (its reason is the error line above)")
    return code


def _tiny_base_model(ctx: Context) -> Path:
    from pipeline import emulate

    return emulate.tiny_base_model(ctx.out / "base-model")


def _set_env(values: dict[str, str]) -> None:
    from core.settings import get_settings

    os.environ.update(values)
    get_settings.cache_clear()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--emulate", action="store_true", help="offline: moto_server, the local container, a tiny model")
    p.add_argument("--strict", action="store_true", help="--emulate: keep every quality check (the run then stops "
                                                         "at the gate: a tiny random model does not pass it)")
    p.add_argument("--from", dest="start", choices=records.STEPS, default="prepare", help="first step to run")
    p.add_argument("--to", dest="stop", choices=records.STEPS, default="monitor", help="last step to run")
    p.add_argument("--out", type=Path, help="where records and outputs go (default out/, or out/emulated/)")
    p.add_argument("--endpoint-name", default=None, help="default algospeak-stage2 (algospeak-emulated)")
    p.add_argument("--bucket", help="S3 bucket (default S3_BUCKET)")
    p.add_argument("--role-arn", help="SageMaker execution role (default SAGEMAKER_ROLE_ARN)")
    p.add_argument("--base-model", help="hub id or local directory (default BASE_MODEL_ID; --emulate: a tiny one)")
    p.add_argument("--baseline", type=Path, default=ROOT / "models" / "embedded" / "eval_report.json",
                   help="the production model's evaluation report the gate compares with (default %(default)s)")
    p.add_argument("--load-test", type=Path, help="endpoint load-test result for autoscaling "
                                                  "(bench/bench_endpoint_load.py writes one)")
    p.add_argument("--target-invocations", type=float, help="or: invocations per instance per minute to scale at")
    p.add_argument("--emulate-rows", type=int, default=240, help=argparse.SUPPRESS)
    p.add_argument("--emulate-steps", type=int, default=2, help=argparse.SUPPRESS)
    return p


def run(args: argparse.Namespace) -> int:
    out = (args.out or (ROOT / "out" / ("emulated" if args.emulate else ""))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    args.endpoint_name = args.endpoint_name or ("algospeak-emulated" if args.emulate else "algospeak-stage2")
    names = list(records.STEPS)
    todo = names[names.index(args.start): names.index(args.stop) + 1]
    if not todo:
        _say(f"error: --from {args.start} comes after --to {args.stop}")
        return 1
    if args.emulate and args.start != "prepare":
        _say("error: --emulate starts an empty moto_server (nothing of an earlier run is in its S3), so an emulated "
             "run starts at prepare; --to stops early")
        return 1
    saved_env = dict(os.environ)
    ctx = Context(args, out, args.emulate)
    summary: dict[str, Any] = {"emulated": args.emulate, "out": str(out), "steps": {}, "relaxed_checks": []}
    started = time.monotonic()
    name = "setup"
    with ExitStack() as stack:
        ctx.stack = stack
        try:
            _set_env({"PIPELINE_OUT": str(out), "MLFLOW_TRACKING_URI": os.environ.get(
                "MLFLOW_TRACKING_URI", f"sqlite:///{out / 'mlflow.db'}")})
            if args.emulate:
                from pipeline import emulate

                moto = emulate.start_moto(stack, out)
                _set_env(emulate.aws_environment(moto))
                emulate.create_bucket(moto)
                ctx.runtime_url = emulate.start_container(stack, moto, out / "container")
                args.bucket, args.role_arn = emulate.BUCKET, emulate.ROLE
                _say(f"emulated AWS: moto_server {moto}, bucket {emulate.BUCKET}; local container {ctx.runtime_url}")
                if not args.strict:
                    _set_env(RELAXED_GATE)
                    summary["relaxed_checks"] = [
                        "gate thresholds: " + ", ".join(f"{k}={v}" for k, v in RELAXED_GATE.items()),
                        "deploy smoke test: --no-expect-harmful (labelled probes not required)",
                        "monitoring probe: a custom body (answer shape only)",
                    ]
                    for line in summary["relaxed_checks"]:
                        _say(f"emulated, relaxed: {line}")
            for i, name in enumerate(todo, 1):
                _say(f"[{i}/{len(todo)}] {name} ({STEP_HELP[name]})")
                t0 = time.monotonic()
                STEPS[name](ctx)
                path = records.record_path(name)
                summary["steps"][name] = {"record": str(path), "seconds": round(time.monotonic() - t0, 1)}
                _say(f"  done in {time.monotonic() - t0:.0f}s: {path}")
        except (PipelineError, records.RecordError) as exc:
            _say(f"error: {exc}")
            _say(f"pipeline stopped at {name}; fix it and resume with: python -m pipeline "
                 f"{'--emulate ' if args.emulate else ''}--from {name}")
            summary["stopped_at"] = {"step": name, "reason": str(exc)}
            return _finish(out, summary, 1, started)
        except Exception as exc:  # an emulation part that did not start, or an unexpected failure: one line
            from pipeline.emulate import EmulationError

            if not isinstance(exc, EmulationError | OSError):
                raise
            _say(f"error: {exc}")
            summary["stopped_at"] = {"step": name, "reason": str(exc)}
            return _finish(out, summary, 1, started)
        finally:
            os.environ.clear()
            os.environ.update(saved_env)
            from core.settings import get_settings

            get_settings.cache_clear()
    return _finish(out, summary, 0, started)


def _finish(out: Path, summary: dict[str, Any], code: int, started: float) -> int:
    summary["seconds"] = round(time.monotonic() - started, 1)
    summary["status"] = "completed" if code == 0 else "stopped"
    (out / "pipeline.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    _say(f"pipeline {summary['status']} in {summary['seconds']:.0f}s; summary: {out / 'pipeline.json'}")
    return code


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
