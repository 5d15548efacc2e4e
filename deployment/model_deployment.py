"""Ship a trained Stage 2 model to a SageMaker real-time endpoint, and operate it.

    # 1. deploy (after training/model_evaluation.py wrote a passing gate.json)
    uv run --all-extras python -m deployment.model_deployment deploy \\
        --training-job out/training/training_job.json --gate out/eval/transformers-VERSION/gate.json \\
        --endpoint-name algospeak-stage2 --load-test bench/results/endpoint_load.json
    #    or from an artifact: --model-artifact s3://bucket/prefix/model.tar.gz   or a local dir: --model-dir DIR
    # 2. scale on a schedule (e.g. more capacity on weekdays)
    uv run --all-extras python -m deployment.model_deployment schedule --endpoint-name algospeak-stage2 \\
        --name weekday-peak --cron "cron(0 7 ? * MON-FRI *)" --min 2 --max 6
    # 3. offline backfill with a batch transform job (input: JSONL, one request body per line)
    uv run --all-extras python -m deployment.model_deployment batch-transform --model-name MODEL \\
        --input s3://BUCKET/PREFIX/backfill/in/ --output s3://BUCKET/PREFIX/backfill/out/
    # 4. smoke-test an endpoint, or delete it (it costs money every hour it exists)
    uv run --all-extras python -m deployment.model_deployment smoke-test --endpoint-name algospeak-stage2
    uv run --all-extras python -m deployment.model_deployment delete --endpoint-name algospeak-stage2 --all

`deploy` does, in order: refuse without a passing gate.json; fetch the artifact (training job record -> its
model_artifact_uri, an S3 URI, or a local dir); refuse unless the gate's candidate is this artifact (its version,
as the inference core computes it, and not the embedded model) (`--force` overrides both, loudly, and tags the
model `gate=forced`); merge the LoRA adapter into the base in fp16; choose the Hugging Face inference image whose
transformers major matches the one the artifact was trained with (training_config.json `versions`; without one,
`code/requirements.txt` pins the training versions); package `model.tar.gz` (model at the root,
`code/inference.py` and the modules it imports under `code/`); upload it; create the SageMaker model and an
endpoint config (ml.g4dn.xlarge by default; data capture of the endpoint's answers only, unless --capture-input,
which stores raw user text); create CloudWatch alarms (5xx, 4xx and model errors, p99-ish model latency); create the endpoint, or
update it blue/green (a one-instance canary when the fleet has 2+ instances, else all at once) with automatic
rollback on those alarms; register target-tracking autoscaling on invocations per instance, with the target from
the load test (its sustainable rate per instance times a safety factor); smoke-test the endpoint through the same
client the API uses (finite label_mass, probabilities summing to 1, and with --expect-harmful, the default, the
labelled probes of core/probes.py answered right: clearly safe, clearly harmful and coded texts); write a
deployment record (`out/deployment/deployment.json`).

AWS calls go through boto3 (moto_server in the tests: AWS_ENDPOINT_URL); the SageMaker Python SDK v3 serves
for the container image URI (`sagemaker.core.image_uris`, offline). The endpoint execution role's least-privilege
policy is `deployment/iam/execution_role_policy.json` (the training jobs' role: `training_role_policy.json`).
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by its path (python deployment/model_deployment.py): the repository root on sys.path
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import logging
import math
import shutil
import sys
import tarfile
import tempfile
import time
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from classifiers.base import ClassifierError, check_scores
from core import probes
from core.labels import LABELS
from core.settings import ROOT, get_settings

log = logging.getLogger("deployment")

DEFAULT_INSTANCE = "ml.g4dn.xlarge"  # one T4 (16 GB, fp16, no bf16)
VARIANT = "AllTraffic"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
DEFAULT_LOAD_TEST = ROOT / "bench" / "results" / "endpoint_load.json"
DEFAULT_RECORD = ROOT / "out" / "deployment" / "deployment.json"
SAFETY_FACTOR = 0.7  # scale out before the load test's sustainable rate is reached
# The smoke test's texts: labelled probes with known answers (core/probes.py) that a random model cannot pass.
SMOKE_TEXTS = list(probes.TEXTS)
ALARM_SUFFIXES = ("invocation-5xx", "invocation-4xx", "model-errors", "model-latency")
# Endpoint states: the update this tool started has failed or is being undone (the old config stays or returns).
ENDPOINT_FAILED = ("Failed", "OutOfService", "RollingBack", "UpdateRollbackFailed", "Deleting")
HARMFUL_PROBE = "go kill yourself"
# The Hugging Face PyTorch inference image by default (transformers, pytorch, python): transformers 5, as training.
DEFAULT_SERVING = ("5.5.3", "2.6.0", "py312")
# SageMaker tag keys and values: letters, separators, digits and these; keys <= 128, values <= 256 characters.
TAG_PUNCTUATION = frozenset("_.:/=+-@")
# The container's entry point (shipped as `code/inference.py`) and every project module it imports, shipped beside
# it under code/ in the repository's layout (paths relative to the repository). The inference core and what it
# needs are all in core/; tests/deployment/test_model_deployment.py checks this against the entry point's imports.
ENTRY_POINT = "deployment/inference.py"
CODE_FILES = (ENTRY_POINT, "core/__init__.py", "core/categories.py", "core/labels.py", "core/prompt.py",
              "core/scores.py", "core/llm_inference.py")


class DeploymentError(RuntimeError):
    """A deployment step refused or failed; the message says which and what to do."""


class RefusedBeforeAnyCall(DeploymentError):
    """Refused from the arguments alone (a name AWS would refuse): nothing was sent, so nothing is live."""


# ----------------------------------------------------------------------------------------------- clients
def aws_clients(region: str | None = None, endpoint_url: str | None = None) -> dict[str, Any]:
    from core import aws

    names = ("s3", "sagemaker", "application-autoscaling", "cloudwatch")
    return {name: aws.client(name, region, endpoint_url) for name in names}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def _split_s3(uri: str) -> tuple[str, str]:
    from core.aws import split_s3

    try:
        bucket, key = split_s3(uri)
    except ValueError as exc:
        raise DeploymentError(str(exc)) from None
    if not key:
        raise DeploymentError(f"not an S3 object URI: {uri!r} (expected s3://bucket/key)")
    return bucket, key


def check_names(**names: tuple[str, str, str]) -> None:
    """DeploymentError (one line) unless every generated name is one AWS accepts: each value is (operation,
    member, name), checked against the service model's length and pattern before any call."""
    from core.aws import shape_problems, service_model

    problems = []
    for value in names.values():
        operation, member, name = value
        shape = service_model("sagemaker").operation_model(operation).input_shape.members[member]
        problems += [f"{member} {p.split(': ', 1)[-1]}" for p in shape_problems(shape, name, member)]
    if problems:
        raise RefusedBeforeAnyCall("SageMaker would refuse these names: " + "; ".join(problems)
                              + " (names: at most 63 letters, digits and dashes)")


# ----------------------------------------------------------------------------------------------- gate
def artifact_version(artifact_dir: Path) -> str:
    """The version the inference core gives this artifact directory (LabelScorer.version, which the transformers
    backend reports as classifier.version and training/model_evaluation.py records as the gate's candidate)."""
    from core.llm_inference import _artifact_version

    return _artifact_version(Path(artifact_dir))


def served_version(archive: Path) -> str:
    """The version the container will report for this archive (the inference core's version of the unpacked
    model dir): its small descriptive files unpacked, the others as sparse files of their size, which is all that
    version reads of them. The trained artifact's version is what the gate names; this one is what answers."""
    with tempfile.TemporaryDirectory(prefix="served-") as tmp, tarfile.open(archive) as tar:
        root = Path(tmp)
        for member in tar.getmembers():
            if not member.isfile():
                continue
            target = root / member.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if Path(member.name).suffix in (".json", ".txt") and member.size < 1_000_000:
                target.write_bytes(tar.extractfile(member).read())
            else:
                with open(target, "wb") as handle:
                    handle.truncate(member.size)
        return artifact_version(root)


def check_gate(gate_path: str | Path | None, force: bool = False,
               artifact_version: str | None = None) -> dict[str, Any]:
    """The gate verdict; DeploymentError unless it passed (or `force`, which is logged loudly). With
    `artifact_version`, the gate must also be about this artifact: its candidate's version is that version and its
    backend is not the embedded model (a passing gate for another model says nothing about this one)."""
    problem = None
    gate: dict[str, Any] = {}
    if gate_path is None:
        problem = "no evaluation gate given (--gate out/eval/<backend>-<version>/gate.json, or run the gate step)"
    else:
        try:
            gate = json.loads(Path(gate_path).read_text(encoding="utf-8"))
            if not isinstance(gate, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            gate = {}
            problem = f"cannot read the gate {gate_path}: {exc}"
        else:
            if gate.get("passed") is not True:
                problem = f"the evaluation gate did not pass: {'; '.join(gate.get('reasons') or ['no reasons given'])}"
            elif artifact_version is not None:
                problem = _candidate_problem(gate, artifact_version)
    if problem is None:
        return {"status": "passed", **gate}
    if not force:
        raise DeploymentError(f"{problem}. Refusing to deploy; --force overrides (and is recorded in the tags).")
    banner = "!" * 100
    log.warning("%s\nFORCED DEPLOYMENT: %s\n%s", banner, problem, banner)
    print(f"WARNING: FORCED DEPLOYMENT: {problem}", file=sys.stderr)
    return {"status": "forced", "problem": problem, **gate}


def _candidate_problem(gate: dict[str, Any], version: str) -> str | None:
    candidate = gate.get("candidate") if isinstance(gate.get("candidate"), dict) else {}
    backend, theirs = candidate.get("backend"), candidate.get("version")
    if backend == "embedded":
        return ("the gate evaluated the embedded model, not this artifact (evaluate it with "
                "training/model_evaluation.py --backend transformers --model-path <the artifact> --gate)")
    if theirs != version:
        return (f"the gate's candidate is version {theirs!r} ({backend or 'unknown backend'}) but this artifact is "
                f"version {version!r}: the gate passed for another model (evaluate this artifact with "
                "training/model_evaluation.py --backend transformers --model-path <the artifact> --gate)")
    return None


# ----------------------------------------------------------------------------------------------- artifact
def resolve_source(training_job: str | None, model_artifact: str | None, model_dir: str | None) -> tuple[str, dict]:
    """(an S3 URI or a local directory, the training job record or {})."""
    given = [x for x in (training_job, model_artifact, model_dir) if x]
    if len(given) != 1:
        raise DeploymentError("give exactly one of --training-job, --model-artifact, --model-dir")
    if training_job:
        try:
            record = json.loads(Path(training_job).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DeploymentError(f"cannot read the training job record {training_job}: {exc}") from exc
        status = str(record.get("status", "")).lower()
        if status and status not in ("completed", "succeeded"):
            raise DeploymentError(f"training job {record.get('job_name')} is {record.get('status')}, not Completed")
        uri = record.get("model_artifact_uri")
        if not uri:
            raise DeploymentError(f"{training_job} has no model_artifact_uri")
        return uri, record
    return (model_artifact or model_dir), {}  # type: ignore[return-value]


def fetch_artifact(source: str, workdir: Path, s3=None) -> Path:
    """A local directory holding the artifact: extracted from S3 or a local .tar.gz, or the directory itself."""
    if source.startswith("s3://"):
        bucket, key = _split_s3(source)
        archive = workdir / "artifact.tar.gz"
        try:
            s3.download_file(bucket, key, str(archive))
        except Exception as exc:
            raise DeploymentError(f"cannot download {source}: {exc}") from exc
        source = str(archive)
    path = Path(source)
    if path.is_dir():
        return path
    if path.is_file() and tarfile.is_tarfile(path):
        out = workdir / "artifact"
        with tarfile.open(path) as tar:
            tar.extractall(out, filter="data")
        return out
    raise DeploymentError(f"{source} is neither a directory nor a .tar.gz artifact")


def merge_adapter(artifact_dir: Path, out_dir: Path, base_model: str | None = None) -> Path:
    """A full fp16 model directory (weights, tokenizer, labels.json, training_config.json) from the artifact:
    its merged/ copy, a full model as is, or the adapter merged into its base (in fp32, saved as fp16)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from classifiers.base import ClassifierError
    from core.llm_inference import locate_artifact

    try:
        model_path, adapter = locate_artifact(artifact_dir, base_model)
    except ClassifierError as exc:
        raise DeploymentError(str(exc)) from exc
    if adapter is None:
        shutil.copytree(model_path, out_dir, dirs_exist_ok=True)
        for name in ("labels.json", "training_config.json"):  # a merged/ dir may keep them one level up
            if not (out_dir / name).exists() and (artifact_dir / name).is_file():
                shutil.copy2(artifact_dir / name, out_dir / name)
        return out_dir
    from peft import PeftModel

    from core.llm_inference import check_library_versions

    try:  # merging here saves the model with this process's transformers: it must read the adapter correctly
        check_library_versions({"versions": training_versions(adapter)}, adapter)
    except ClassifierError as exc:
        raise DeploymentError(str(exc)) from exc
    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch.float32)
    model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    model.to(torch.float16).save_pretrained(str(out_dir))
    tokenizer_dir = adapter if (adapter / "tokenizer_config.json").is_file() else model_path
    AutoTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(str(out_dir))
    for name in ("labels.json", "training_config.json"):
        if (adapter / name).is_file():
            shutil.copy2(adapter / name, out_dir / name)
    log.info("merged %s into %s in %.1fs", adapter, model_path, time.perf_counter() - started)
    return out_dir


def package(model_dir: Path, out_path: Path, requirements: list[str] | None = None) -> Path:
    """model.tar.gz: the model at the root and the inference code under code/ (the container's layout); with
    `requirements`, code/requirements.txt too (the Hugging Face inference toolkit pip-installs it at start-up)."""
    import io

    with tarfile.open(out_path, "w:gz", compresslevel=1) as tar:  # weights barely compress; keep it fast
        for path in sorted(model_dir.iterdir()):
            if path.name != "code":
                tar.add(path, arcname=path.name)
        for relative in CODE_FILES:
            arcname = "code/inference.py" if relative == ENTRY_POINT else f"code/{relative}"
            tar.add(ROOT / relative, arcname=arcname)
        if requirements:
            data = ("\n".join(requirements) + "\n").encode("utf-8")
            info = tarfile.TarInfo("code/requirements.txt")
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return out_path


def training_versions(model_dir: Path) -> dict[str, str]:
    """The library versions the artifact was trained with (training_config.json `versions`), or {}."""
    path = Path(model_dir) / "training_config.json"
    try:
        versions = json.loads(path.read_text(encoding="utf-8")).get("versions") or {}
    except (OSError, json.JSONDecodeError, AttributeError):
        return {}
    return {k: str(v) for k, v in versions.items()} if isinstance(versions, dict) else {}


def _major(version: str | None) -> int | None:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return None


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in version.split("."))


def serving_framework(versions: dict[str, str]) -> tuple[tuple[str, str, str], list[str] | None]:
    """((transformers, pytorch, python) of the Hugging Face inference image to serve with, requirements or None).

    The newest image the SageMaker SDK knows (offline) whose transformers major is the training run's; an
    artifact saved by one transformers major does not load correctly in another. When no image has that major,
    the default image and a code/requirements.txt pinning the training run's transformers (and peft) versions."""
    trained = versions.get("transformers")
    major = _major(trained)
    if major is None:
        log.warning("the artifact records no transformers version (training_config.json `versions`); serving "
                    "with transformers %s", DEFAULT_SERVING[0])
        return DEFAULT_SERVING, None
    if _major(DEFAULT_SERVING[0]) == major:
        return DEFAULT_SERVING, None
    try:
        from sagemaker.core import image_uris

        known = image_uris.config_for_framework("huggingface")["inference"]["versions"]
    except Exception as exc:  # noqa: BLE001 - an SDK without the table: fall back to pinning
        log.warning("cannot read the SDK's Hugging Face image table: %s", exc)
        known = {}
    for version in sorted((v for v in known if _major(v) == major), key=_version_key, reverse=True):
        frameworks = {k: v for k, v in known[version].items() if k.startswith("pytorch") and isinstance(v, dict)}
        if not frameworks:
            continue
        base = max(frameworks, key=lambda k: _version_key(k.removeprefix("pytorch")))
        return (version, base.removeprefix("pytorch"), frameworks[base]["py_versions"][-1]), None
    pins = [f"transformers=={trained}"]
    if _major(versions.get("peft")) is not None:
        pins.append(f"peft=={versions['peft']}")
    log.warning("no Hugging Face inference image has transformers %s.x; the archive pins %s in "
                "code/requirements.txt (installed when the container starts)", major, ", ".join(pins))
    return DEFAULT_SERVING, pins


def load_test_target(load_test: str | Path | None, target: float | None) -> tuple[float, str]:
    """Invocations per instance per minute for target tracking, and where the number came from."""
    if target is not None:
        return float(target), "--target-invocations"
    path = Path(load_test) if load_test else DEFAULT_LOAD_TEST
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
        sustainable = float(result["max_sustainable_invocations_per_minute_per_instance"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DeploymentError(
            f"no load-test result at {path} ({exc}); run the endpoint load test or pass --target-invocations"
        ) from exc
    return round(sustainable * SAFETY_FACTOR, 1), f"{path} x {SAFETY_FACTOR}"


def client_settings(load_test: str | Path | None) -> dict[str, Any] | None:
    """The API's SAGEMAKER_* client settings the load test supports (classifiers.sagemaker.recommended_settings),
    or None without a readable load test."""
    from classifiers.sagemaker import recommended_settings

    try:
        result = json.loads(Path(load_test or DEFAULT_LOAD_TEST).read_text(encoding="utf-8"))
        return recommended_settings(result) if result.get("steps") else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def image_uri(region: str, instance_type: str, transformers_version: str = DEFAULT_SERVING[0],
              pytorch_version: str = DEFAULT_SERVING[1], py_version: str = DEFAULT_SERVING[2]) -> str:
    """The Hugging Face PyTorch inference container (SageMaker Python SDK v3, offline)."""
    from sagemaker.core import image_uris

    return image_uris.retrieve("huggingface", region=region, version=transformers_version,
                               base_framework_version=f"pytorch{pytorch_version}", image_scope="inference",
                               instance_type=instance_type, py_version=py_version)


# ----------------------------------------------------------------------------------------------- endpoint
def tag_text(value: Any, limit: int) -> str:
    """`value` as SageMaker accepts it in a tag ([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*): other characters become "_",
    and it is cut to `limit` characters (keys 128, values 256)."""
    text = "".join(c if c in TAG_PUNCTUATION or unicodedata.category(c)[0] in "LZN" else "_" for c in str(value))
    return text[:limit]


def _tags(values: dict[str, Any]) -> list[dict[str, str]]:
    return [{"Key": tag_text(k, 128) or "_", "Value": tag_text(v, 256)} for k, v in values.items()]


def alarm_names(endpoint_name: str) -> list[str]:
    return [f"{endpoint_name}-{suffix}" for suffix in ALARM_SUFFIXES]


def put_alarms(cloudwatch, endpoint_name: str, latency_ms_p99: float) -> list[str]:
    """The alarms that roll a blue/green update back: 5xx errors; 4xx errors and model errors (the Hugging Face
    inference toolkit answers 400 when the handler raises, so a model failing every request shows there, not in
    5xx); and model latency over the SLO."""
    dimensions = [{"Name": "EndpointName", "Value": endpoint_name}, {"Name": "VariantName", "Value": VARIANT}]
    alarms = {
        f"{endpoint_name}-invocation-5xx": dict(MetricName="Invocation5XXErrors", Statistic="Sum", Threshold=5.0),
        f"{endpoint_name}-invocation-4xx": dict(MetricName="Invocation4XXErrors", Statistic="Sum", Threshold=5.0),
        f"{endpoint_name}-model-errors": dict(MetricName="InvocationModelErrors", Statistic="Sum", Threshold=5.0),
        f"{endpoint_name}-model-latency": dict(MetricName="ModelLatency", ExtendedStatistic="p99",
                                               Threshold=latency_ms_p99 * 1000.0),  # ModelLatency is microseconds
    }
    for name, spec in alarms.items():
        cloudwatch.put_metric_alarm(
            AlarmName=name, Namespace="AWS/SageMaker", Dimensions=dimensions, Period=60, EvaluationPeriods=2,
            DatapointsToAlarm=2, ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching",
            AlarmDescription=f"rolls back a deployment of {endpoint_name}", **spec,
        )
    return list(alarms)


def endpoint_exists(sm, endpoint_name: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        sm.describe_endpoint(EndpointName=endpoint_name)
        return True
    except ClientError as exc:
        if "Could not find" in str(exc) or exc.response.get("Error", {}).get("Code") == "ValidationException":
            return False
        raise


def blue_green_config(alarms: list[str], instance_count: int = 1, wait_seconds: int = 300) -> dict[str, Any]:
    """A blue/green update that rolls back on `alarms`. AWS requires a canary of at most half the fleet: with 2+
    instances the canary is one instance (then the rest after `wait_seconds`); with one instance there is no
    canary and traffic moves all at once (still watched by the alarms, and rolled back while the old fleet waits
    out TerminationWaitInSeconds)."""
    if instance_count >= 2:
        routing = {"Type": "CANARY", "WaitIntervalInSeconds": wait_seconds,
                   "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}}
    else:
        routing = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": wait_seconds}
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": 600,
            "MaximumExecutionTimeoutInSeconds": 3600,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in alarms]},
    }


def wait_in_service(sm, endpoint_name: str, config_name: str, timeout_s: float = 3600, poll_s: float = 15) -> dict:
    """Wait for InService on `config_name`; a rollback (InService on another config) or Failed is an error.
    Progress (core.progress.Waiting): a bar of the seconds waited against the timeout on a terminal, else a line
    at every change of state and every 15 s."""
    from core.progress import Waiting

    deadline = time.monotonic() + timeout_s
    with Waiting(f"endpoint {endpoint_name}", limit_s=timeout_s) as wait:
        while True:
            described = sm.describe_endpoint(EndpointName=endpoint_name)
            status = described["EndpointStatus"]
            wait.status(status)  # creating an endpoint takes minutes
            if status == "InService":
                if described.get("EndpointConfigName") != config_name:
                    raise DeploymentError(f"{endpoint_name} rolled back to {described.get('EndpointConfigName')} "
                                          "(an alarm fired during the blue/green update)")
                return described
            if status in ENDPOINT_FAILED:
                what = {"RollingBack": "rolling back the update (an alarm fired during the blue/green update)",
                        "UpdateRollbackFailed": "in UpdateRollbackFailed: the update failed and so did its rollback; "
                                                "update the endpoint again to a known config"}.get(status, status)
                raise DeploymentError(f"{endpoint_name} is {what}: {described.get('FailureReason', 'no reason given')}")
            if time.monotonic() > deadline:
                raise DeploymentError(f"{endpoint_name} still {status} after {timeout_s}s")
            time.sleep(poll_s)


def configure_autoscaling(aas, endpoint_name: str, target: float, min_capacity: int, max_capacity: int) -> str:
    resource_id = f"endpoint/{endpoint_name}/variant/{VARIANT}"
    aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource_id,
                                 ScalableDimension=SCALABLE_DIMENSION, MinCapacity=min_capacity,
                                 MaxCapacity=max_capacity)
    policy = f"{endpoint_name}-invocations-per-instance"
    aas.put_scaling_policy(
        PolicyName=policy, ServiceNamespace="sagemaker", ResourceId=resource_id,
        ScalableDimension=SCALABLE_DIMENSION, PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": target,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            "ScaleOutCooldown": 60, "ScaleInCooldown": 300,
        },
    )
    return policy


def check_smoke_answer(answer: Any, texts: list[str], expect_harmful: bool = True) -> list[dict[str, Any]]:
    """Each text's answer ({"text", "label", "scores", "label_mass"}); DeploymentError unless every prediction
    has a finite label_mass in [0, 1] and probabilities summing to 1, and (with `expect_harmful`, for a tuned
    model) every labelled probe of core/probes.py gets its known answer with label_mass >= the floor."""
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(predictions, list) or len(predictions) != len(texts):
        raise DeploymentError(f"smoke test: expected {len(texts)} predictions, got {answer!r:.300}")
    out = []
    for text, item in zip(texts, predictions):
        scores = item.get("scores") if isinstance(item, dict) else None
        mass = item.get("label_mass") if isinstance(item, dict) else None
        try:  # the rule every backend's answer passes
            [scores] = check_scores([scores], 1, "the endpoint")
        except ClassifierError as exc:
            raise DeploymentError(f"smoke test: {text!r}: {exc}") from None
        if not isinstance(mass, int | float) or isinstance(mass, bool) or not math.isfinite(mass) \
                or not 0.0 <= mass <= 1.0 + 1e-6:
            raise DeploymentError(f"smoke test: {text!r} has no finite label_mass in [0, 1] (got {mass!r}): "
                                  "the endpoint does not run this project's inference code")
        out.append({"text": text, "label": max(scores, key=scores.__getitem__), "scores": scores,
                    "label_mass": mass})
    if expect_harmful:
        if texts != list(probes.TEXTS):
            raise DeploymentError("smoke test: the labelled probes (core/probes.py) must be the texts sent")
        failed = probes.failures(out)
        if failed:
            raise DeploymentError(
                f"smoke test: {len(failed)} labelled probe check(s) failed: {'; '.join(failed)}; a tuned model "
                "passes them (an untrained, random or wrong model? --no-expect-harmful skips this check)")
    return out


def smoke_test(endpoint_name: str, region: str, endpoint_url: str | None,
               expect_harmful: bool = True) -> list[dict[str, Any]]:
    """Classify SMOKE_TEXTS through the client the API uses (validated answers, no retries hidden) and check the
    whole answer (check_smoke_answer)."""
    from classifiers.base import ClassifierError
    from classifiers.sagemaker import SagemakerClassifier

    class Recording(SagemakerClassifier):  # the API's client, keeping the raw answer (label_mass included)
        answer: Any = None

        def _parse(self, raw: bytes, expected: int):
            scores = super()._parse(raw, expected)
            self.answer = json.loads(raw)
            return scores

    client = Recording(endpoint_name, region=region, endpoint_url=endpoint_url, read_timeout=60,
                       max_retries=2, breaker_failures=10, batch_max_texts=len(SMOKE_TEXTS),
                       deadline_seconds=200)  # a cold endpoint may be slow once: three full tries fit
    try:
        client.classify(SMOKE_TEXTS)
    except ClassifierError as exc:
        raise DeploymentError(f"smoke test of {endpoint_name} failed: {exc}") from exc
    try:
        return check_smoke_answer(client.answer, list(SMOKE_TEXTS), expect_harmful)
    except DeploymentError as exc:
        raise DeploymentError(f"{exc} (endpoint {endpoint_name})") from exc


def data_capture_config(destination: str, percent: int, capture_input: bool = False,
                        kms_key: str | None = None) -> dict[str, Any]:
    """Capture the endpoint's answers (scores, no text). The requests hold raw user text, so they are captured
    only when asked (`capture_input`), and then best with a KMS key of your own."""
    modes = ([{"CaptureMode": "Input"}] if capture_input else []) + [{"CaptureMode": "Output"}]
    config: dict[str, Any] = {
        "EnableCapture": True, "InitialSamplingPercentage": percent, "DestinationS3Uri": destination,
        "CaptureOptions": modes, "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
    }
    if kms_key:
        config["KmsKeyId"] = kms_key
    return config


def library_versions() -> dict[str, str]:
    """The versions of the libraries that merged and saved the served model here (torch, transformers, peft)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "peft", "safetensors"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def current_fleet(sm, endpoint_name: str) -> dict[str, Any] | None:
    """The running variant's instance type and desired instance count (what autoscaling set), or None."""
    described = sm.describe_endpoint(EndpointName=endpoint_name)
    variant = next((v for v in described.get("ProductionVariants") or [] if v.get("VariantName") == VARIANT), None)
    if variant is None:
        return None
    instance_type = None
    try:
        config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
        instance_type = next((v.get("InstanceType") for v in config.get("ProductionVariants") or []
                              if v.get("VariantName") == VARIANT), None)
    except Exception:  # noqa: BLE001 - a deleted config: the type is unknown
        pass
    desired = variant.get("DesiredInstanceCount") or variant.get("CurrentInstanceCount") or 1
    return {"instance_type": instance_type, "desired": int(desired)}


def suspend_autoscaling(aas, endpoint_name: str) -> list[dict[str, Any]] | None:
    """Deregister the variant's scalable target (if any); return its scheduled actions, which go with it (None:
    there was no scalable target, so nothing to restore)."""
    resource_id = f"endpoint/{endpoint_name}/variant/{VARIANT}"
    targets = aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource_id],
                                            ScalableDimension=SCALABLE_DIMENSION)["ScalableTargets"]
    if not targets:
        return None
    actions = aas.describe_scheduled_actions(ServiceNamespace="sagemaker", ResourceId=resource_id,
                                             ScalableDimension=SCALABLE_DIMENSION).get("ScheduledActions", [])
    aas.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource_id,
                                   ScalableDimension=SCALABLE_DIMENSION)
    log.info("deregistered the scalable target of %s for the instance-type change (%d scheduled actions kept)",
             endpoint_name, len(actions))
    return actions


def restore_scheduled_actions(aas, actions: list[dict[str, Any]]) -> None:
    for action in actions:
        kwargs = {k: action[k] for k in ("ScheduledActionName", "ResourceId", "ScalableDimension", "Schedule",
                                         "ScalableTargetAction", "Timezone", "StartTime", "EndTime") if action.get(k)}
        aas.put_scheduled_action(ServiceNamespace="sagemaker", **kwargs)


def fleet_size(sm, endpoint_name: str, new_count: int) -> int:
    """The instance count a blue/green update works with: the smaller of the running fleet and the new config's
    (a canary must fit either)."""
    try:
        variants = sm.describe_endpoint(EndpointName=endpoint_name).get("ProductionVariants") or []
        current = sum(int(v.get("CurrentInstanceCount") or 0) for v in variants if v.get("VariantName") == VARIANT)
    except Exception:  # noqa: BLE001 - unknown: assume the new config's count
        current = 0
    return min(new_count, current) if current else new_count


def inputs_from_records(args: argparse.Namespace) -> dict[str, Path]:
    """Without --gate and a model source: the gate and training job the pipeline's records name
    (out/gate/record.json, out/train/record.json). A gate whose evaluation was of an earlier training run
    (the training record changed since) is stale and refused. Returns the records used."""
    from core import records

    used: dict[str, Path] = {}
    try:
        if args.gate is None and not args.force:
            gate_record = records.read("gate")
            evaluate_link = (gate_record.get("inputs") or {}).get("evaluate", {}).get("record")
            evaluate = records.read("evaluate", path=evaluate_link)  # stale when the train record changed
            args.gate = gate_record["outputs"]["gate"]
            used["gate"] = Path(gate_record["_path"])
        if not (args.training_job or args.model_artifact or args.model_dir):
            train = records.read("train")
            evaluated = (evaluate.get("inputs") or {}).get("train", {}).get("record") if "gate" in used else None
            if evaluated and Path(evaluated).resolve() != Path(train["_path"]).resolve():
                raise records.RecordError(f"the gate judged the model of {evaluated}, not {train['_path']}")
            args.training_job = train["outputs"]["job_record"]
            used["train"] = Path(train["_path"])
    except records.RecordError as exc:
        raise DeploymentError(f"{exc}. Refusing to deploy.") from None
    return used


def deploy(args: argparse.Namespace, clients: dict[str, Any] | None = None) -> dict[str, Any]:
    """`_deploy`, and when it fails with the endpoint in place, `<record>.failed.json` says so (the error, that the
    endpoint exists, what to do), so a failed deploy never leaves an unrecorded endpoint; the last good record
    is kept."""
    used_records = inputs_from_records(args)
    try:
        return _deploy(args, clients, used_records)
    except RefusedBeforeAnyCall:
        raise  # nothing was sent (asking AWS about a name it refuses would itself be refused)
    except Exception as exc:
        exists = None
        try:
            exists = endpoint_exists((clients or aws_clients(args.region, args.endpoint_url))["sagemaker"],
                                     args.endpoint_name)
        except Exception:  # noqa: BLE001 - AWS unreachable: unknown
            pass
        if exists is False:
            raise  # nothing live to account for
        failed = Path(args.record).with_suffix(".failed.json")  # the last good record stays where it is
        _write_json(failed, {
            "status": "failed", "endpoint_name": args.endpoint_name, "endpoint_exists": exists,
            "error": f"{type(exc).__name__}: {exc}".splitlines()[0],
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "next": f"fix the cause and run deploy again (it updates an existing {args.endpoint_name}), or remove "
                    f"it: python -m deployment.model_deployment delete --endpoint-name {args.endpoint_name} --all",
        })
        print(f"the failed deployment is recorded in {failed} (endpoint {args.endpoint_name} exists: {exists})",
              file=sys.stderr)
        raise


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")


def _deploy(args: argparse.Namespace, clients: dict[str, Any] | None, used_records: dict[str, Path]) -> dict[str, Any]:
    settings = get_settings()
    if not args.force:
        check_gate(args.gate)  # refuse a missing or failed gate before downloading anything
    clients = clients or aws_clients(args.region, args.endpoint_url)
    region = args.region or settings.aws_region
    role = args.role_arn or settings.sagemaker_role_arn
    bucket = args.bucket or settings.s3_bucket
    if not role:
        raise DeploymentError("no execution role: pass --role-arn or set SAGEMAKER_ROLE_ARN "
                              "(policy: deployment/iam/execution_role_policy.json)")
    if not bucket:
        raise DeploymentError("no bucket: pass --bucket or set S3_BUCKET")
    target, target_source = load_test_target(args.load_test, args.target_invocations)
    source, training_record = resolve_source(args.training_job, args.model_artifact, args.model_dir)
    stamp = _now()
    from core.aws import fit_name

    model_name = fit_name(args.endpoint_name, stamp)  # also the endpoint config's name
    check_names(endpoint=("CreateEndpoint", "EndpointName", args.endpoint_name),
                model=("CreateModel", "ModelName", model_name),
                config=("CreateEndpointConfig", "EndpointConfigName", model_name))
    prefix = f"{settings.s3_prefix}/deployment/{model_name}"
    base_model = args.base_model or training_record.get("base_model")

    with tempfile.TemporaryDirectory(prefix="deploy-") as tmp:
        workdir = Path(tmp)
        artifact = fetch_artifact(source, workdir, clients["s3"])
        version = artifact_version(artifact)
        gate = check_gate(args.gate, args.force, artifact_version=version)  # the gate must be about this artifact
        merged = merge_adapter(artifact, workdir / "merged", base_model)
        versions = training_versions(merged)
        serving, requirements = serving_framework(versions)
        archive = package(merged, workdir / "model.tar.gz", requirements)
        served = served_version(archive)
        model_data = f"s3://{bucket}/{prefix}/model.tar.gz"
        clients["s3"].upload_file(str(archive), bucket, f"{prefix}/model.tar.gz")
        log.info("uploaded %s (%.1f MB)", model_data, archive.stat().st_size / 1e6)

    tags = _tags({"project": "algospeak-moderation", "gate": gate["status"],
                  "training_job": training_record.get("job_name", "none"), "source": source,
                  "artifact_version": version, "labels": "/".join(LABELS)})
    sm = clients["sagemaker"]
    image = args.image_uri or image_uri(region, args.instance_type, *serving)
    sm.create_model(
        ModelName=model_name, ExecutionRoleArn=role, Tags=tags,
        PrimaryContainer={"Image": image, "ModelDataUrl": model_data, "Environment": {
            "SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
            "SAGEMAKER_MODEL_SERVER_WORKERS": "1",  # one model copy per GPU
            "INFERENCE_DTYPE": args.dtype, "INFERENCE_BATCH_SIZE": str(args.batch_size),
            "INFERENCE_MODEL_VERSION": version,  # the gated artifact's version, not the merged copy's hash
            "HF_HUB_OFFLINE": "1",
        }},
    )
    config_name = model_name
    exists = endpoint_exists(sm, args.endpoint_name)
    current = current_fleet(sm, args.endpoint_name) if exists else None
    # An update keeps the fleet the autoscaler has grown (within the new bounds) instead of resetting it.
    initial = args.min_instances if current is None else max(args.min_instances,
                                                              min(args.max_instances, current["desired"]))
    sm.create_endpoint_config(
        EndpointConfigName=config_name, Tags=tags,
        ProductionVariants=[{
            "VariantName": VARIANT, "ModelName": model_name, "InstanceType": args.instance_type,
            "InitialInstanceCount": initial, "InitialVariantWeight": 1.0,
            "ContainerStartupHealthCheckTimeoutInSeconds": 600, "ModelDataDownloadTimeoutInSeconds": 1200,
        }],
        DataCaptureConfig=data_capture_config(f"s3://{bucket}/{settings.s3_prefix}/data-capture",
                                              args.capture_percent, args.capture_input, args.capture_kms_key),
    )
    alarms = put_alarms(clients["cloudwatch"], args.endpoint_name, args.latency_slo_ms)
    scheduled: list[dict[str, Any]] | None = None
    aas = clients["application-autoscaling"]
    try:
        if exists:
            action = "update"
            if current and current["instance_type"] not in (None, args.instance_type):
                # AWS refuses UpdateEndpoint with another instance type while the variant is a scalable target:
                # deregister it (keeping its scheduled actions), register it again once the endpoint is InService.
                scheduled = suspend_autoscaling(aas, args.endpoint_name)
            sm.update_endpoint(EndpointName=args.endpoint_name, EndpointConfigName=config_name,
                               DeploymentConfig=blue_green_config(alarms, fleet_size(sm, args.endpoint_name, initial)))
        else:
            action = "create"
            sm.create_endpoint(EndpointName=args.endpoint_name, EndpointConfigName=config_name, Tags=tags)
        described = wait_in_service(sm, args.endpoint_name, config_name, poll_s=args.poll_seconds)
    except Exception:
        if scheduled is not None:  # the update failed or rolled back: the old fleet must scale again
            try:
                configure_autoscaling(aas, args.endpoint_name, target, args.min_instances, args.max_instances)
                restore_scheduled_actions(aas, scheduled)
                log.warning("the update of %s failed; its autoscaling is registered again", args.endpoint_name)
            except Exception:  # noqa: BLE001 - report the update's own error; say this one too
                log.exception("the update of %s failed and its autoscaling could not be registered again",
                              args.endpoint_name)
        raise
    policy = configure_autoscaling(aas, args.endpoint_name, target, args.min_instances, args.max_instances)
    restore_scheduled_actions(aas, scheduled or [])
    smoke = None if args.skip_smoke_test else smoke_test(args.endpoint_name, region,
                                                         args.runtime_endpoint_url or args.endpoint_url
                                                         or settings.aws_endpoint_url, args.expect_harmful)
    record = {
        "endpoint_name": args.endpoint_name, "endpoint_arn": described.get("EndpointArn"), "action": action,
        "model_name": model_name, "endpoint_config_name": config_name, "model_data_url": model_data,
        "image_uri": image, "instance_type": args.instance_type, "source": source,
        "artifact_version": version, "served_version": served, "training_versions": versions,
        "merge_versions": library_versions(), "instance_count": initial,
        "serving_transformers": None if args.image_uri else serving[0], "requirements": requirements,
        "data_capture": {"input": args.capture_input, "output": True, "percent": args.capture_percent,
                         "kms_key": args.capture_kms_key},
        "training_job": training_record.get("job_name"), "base_model": base_model, "gate": gate["status"],
        "gate_reasons": gate.get("reasons") or ([gate["problem"]] if "problem" in gate else []),
        "alarms": alarms, "autoscaling": {"policy": policy, "target_invocations_per_instance": target,
                                          "target_source": target_source, "min": args.min_instances,
                                          "max": args.max_instances},
        "smoke_test": smoke, "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "client_settings": client_settings(args.load_test),
        "status": "deployed",
    }
    _write_json(Path(args.record), record)
    from core import records

    step = records.write("deploy", {
        "endpoint_name": args.endpoint_name, "deployment_record": str(Path(args.record).resolve()),
        "model_name": model_name, "artifact_version": version, "served_version": served, "gate": gate["status"],
        "smoke_test": "skipped" if smoke is None else ("probes passed" if args.expect_harmful else "shape only"),
        "runtime_endpoint_url": args.runtime_endpoint_url or args.endpoint_url or settings.aws_endpoint_url,
    }, used_records)
    log.info("deployed %s (%s); records: %s, %s", args.endpoint_name, action, args.record, step)
    return record


# ----------------------------------------------------------------------------------------------- operations
def schedule(args: argparse.Namespace, clients: dict[str, Any] | None = None) -> dict[str, Any]:
    """A scheduled change of the autoscaling bounds (real-time endpoints keep at least one instance)."""
    clients = clients or aws_clients(args.region, args.endpoint_url)
    if args.min < 1 or args.max < args.min:
        raise DeploymentError("need 1 <= --min <= --max (a real-time endpoint cannot scale to zero; delete it)")
    clients["application-autoscaling"].put_scheduled_action(
        ServiceNamespace="sagemaker", ScheduledActionName=args.name,
        ResourceId=f"endpoint/{args.endpoint_name}/variant/{VARIANT}", ScalableDimension=SCALABLE_DIMENSION,
        Schedule=args.cron, ScalableTargetAction={"MinCapacity": args.min, "MaxCapacity": args.max},
    )
    return {"scheduled_action": args.name, "schedule": args.cron, "min": args.min, "max": args.max}


def delete(args: argparse.Namespace, clients: dict[str, Any] | None = None) -> dict[str, Any]:
    """Delete the endpoint (and with --all its config, model, alarms and scaling target)."""
    from botocore.exceptions import ClientError

    clients = clients or aws_clients(args.region, args.endpoint_url)
    sm = clients["sagemaker"]
    if not endpoint_exists(sm, args.endpoint_name):
        raise DeploymentError(f"no endpoint named {args.endpoint_name}")
    described = sm.describe_endpoint(EndpointName=args.endpoint_name)
    config_name = described["EndpointConfigName"]
    deleted = [f"endpoint {args.endpoint_name}"]
    try:
        clients["application-autoscaling"].deregister_scalable_target(
            ServiceNamespace="sagemaker", ResourceId=f"endpoint/{args.endpoint_name}/variant/{VARIANT}",
            ScalableDimension=SCALABLE_DIMENSION)
        deleted.append("scalable target")
    except ClientError:
        pass  # never registered
    sm.delete_endpoint(EndpointName=args.endpoint_name)
    if args.all:
        config = sm.describe_endpoint_config(EndpointConfigName=config_name)
        sm.delete_endpoint_config(EndpointConfigName=config_name)
        deleted.append(f"endpoint config {config_name}")
        for variant in config["ProductionVariants"]:
            sm.delete_model(ModelName=variant["ModelName"])
            deleted.append(f"model {variant['ModelName']}")
        clients["cloudwatch"].delete_alarms(AlarmNames=alarm_names(args.endpoint_name))
        deleted.append("alarms")
    return {"deleted": deleted}


def batch_transform(args: argparse.Namespace, clients: dict[str, Any] | None = None) -> dict[str, Any]:
    """An offline backfill: each input line is one request body ({"inputs": [...]}), each output line its answer."""
    clients = clients or aws_clients(args.region, args.endpoint_url)
    settings = get_settings()
    for uri in (args.input, args.output):
        bucket = settings.s3_bucket or "*"
        if settings.s3_bucket and not uri.startswith(f"s3://{bucket}/{settings.s3_prefix}/backfill/"):
            log.warning("%s is outside s3://%s/%s/backfill/, where the execution role "
                        "(deployment/iam/execution_role_policy.json) may read and write", uri, bucket,
                        settings.s3_prefix)
    from core.aws import fit_name

    job_name = args.job_name or fit_name(args.model_name, f"backfill-{_now()}")
    check_names(job=("CreateTransformJob", "TransformJobName", job_name),
                model=("CreateTransformJob", "ModelName", args.model_name))
    clients["sagemaker"].create_transform_job(
        TransformJobName=job_name, ModelName=args.model_name, BatchStrategy="SingleRecord",
        MaxConcurrentTransforms=1, MaxPayloadInMB=6,
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": args.input}},
                        "ContentType": "application/json", "SplitType": "Line"},
        TransformOutput={"S3OutputPath": args.output, "Accept": "application/json", "AssembleWith": "Line"},
        TransformResources={"InstanceType": args.instance_type, "InstanceCount": args.instance_count},
        Tags=_tags({"project": "algospeak-moderation", "purpose": "backfill"}),
    )
    described = clients["sagemaker"].describe_transform_job(TransformJobName=job_name)
    return {"transform_job": job_name, "status": described.get("TransformJobStatus")}


# ----------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deployment.model_deployment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--region", help="default: AWS_REGION")
    common.add_argument("--endpoint-url", help="AWS API endpoint (default: AWS_ENDPOINT_URL; moto in tests)")
    sub = parser.add_subparsers(dest="command", required=True)

    d = sub.add_parser("deploy", parents=[common], help="gate, merge, package, upload, endpoint, autoscaling")
    d.add_argument("--endpoint-name", required=True)
    d.add_argument("--training-job", help="a training job record (default: the one out/train/record.json names)")
    d.add_argument("--model-artifact", help="an S3 URI or local path of a model.tar.gz")
    d.add_argument("--model-dir", help="a local model/adapter directory")
    d.add_argument("--base-model", help="the adapter's base model (default: the artifact's training_config.json)")
    d.add_argument("--gate", help="gate.json from training/model_evaluation.py --gate (default: the one "
                                  "out/gate/record.json names)")
    d.add_argument("--force", action="store_true",
                   help="deploy without a passing gate for this artifact (loud; recorded in the tags: gate=forced)")
    d.add_argument("--role-arn", help="default: SAGEMAKER_ROLE_ARN")
    d.add_argument("--bucket", help="default: S3_BUCKET")
    d.add_argument("--image-uri", help="default: the Hugging Face PyTorch inference image (SDK v3 lookup)")
    d.add_argument("--instance-type", default=DEFAULT_INSTANCE)
    d.add_argument("--min-instances", type=int, default=1)
    d.add_argument("--max-instances", type=int, default=4)
    d.add_argument("--load-test", help=f"load-test result (default {DEFAULT_LOAD_TEST.relative_to(ROOT)})")
    d.add_argument("--target-invocations", type=float, help="override: invocations per instance per minute")
    d.add_argument("--latency-slo-ms", type=float, default=500.0, help="p99 model latency that rolls back")
    d.add_argument("--capture-percent", type=int, default=100, help="data capture sampling percentage")
    d.add_argument("--capture-input", action="store_true",
                   help="also capture the requests: this STORES RAW USER TEXT in S3 (default: answers only)")
    d.add_argument("--capture-kms-key", help="KMS key (id, ARN or alias) that encrypts the captured data")
    d.add_argument("--dtype", default="auto",
                   help="serving dtype in the container (auto: bf16 where the GPU has it, fp16 on a T4)")
    d.add_argument("--batch-size", type=int, default=16)
    d.add_argument("--runtime-endpoint-url", help="sagemaker-runtime endpoint for the smoke test")
    d.add_argument("--skip-smoke-test", action="store_true")
    d.add_argument("--expect-harmful", action=argparse.BooleanOptionalAction, default=True,
                   help="smoke test: require the labelled probes (core/probes.py) answered right "
                        "(a tuned model; --no-expect-harmful for a random or untuned one)")
    d.add_argument("--poll-seconds", type=float, default=15.0)
    d.add_argument("--record", default=str(DEFAULT_RECORD), help="where the deployment record goes")

    s = sub.add_parser("schedule", parents=[common], help="scheduled autoscaling bounds")
    s.add_argument("--endpoint-name", required=True)
    s.add_argument("--name", required=True, help="the scheduled action's name")
    s.add_argument("--cron", required=True, help='e.g. "cron(0 7 ? * MON-FRI *)" (UTC)')
    s.add_argument("--min", type=int, required=True)
    s.add_argument("--max", type=int, required=True)

    x = sub.add_parser("delete", parents=[common], help="delete the endpoint (stops its cost)")
    x.add_argument("--endpoint-name", required=True)
    x.add_argument("--all", action="store_true", help="also its config, model, alarms")

    b = sub.add_parser("batch-transform", parents=[common], help="offline backfill over S3 JSONL")
    b.add_argument("--model-name", required=True)
    b.add_argument("--input", required=True, help="s3:// prefix of JSONL request bodies")
    b.add_argument("--output", required=True, help="s3:// prefix for the answers")
    b.add_argument("--job-name")
    b.add_argument("--instance-type", default=DEFAULT_INSTANCE)
    b.add_argument("--instance-count", type=int, default=1)

    t = sub.add_parser("smoke-test", parents=[common], help="classify a few texts through the endpoint")
    t.add_argument("--endpoint-name", required=True)
    t.add_argument("--runtime-endpoint-url")
    t.add_argument("--expect-harmful", action=argparse.BooleanOptionalAction, default=True,
                   help="require the labelled probes (core/probes.py) answered right (a tuned model)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    commands = {"deploy": deploy, "schedule": schedule, "delete": delete, "batch-transform": batch_transform,
                "smoke-test": lambda a: {"predictions": smoke_test(a.endpoint_name,
                                                                    a.region or get_settings().aws_region,
                                                                    a.runtime_endpoint_url or a.endpoint_url
                                                                    or get_settings().aws_endpoint_url,
                                                                    a.expect_harmful)}}
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        result = commands[args.command](args)
    except DeploymentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ClientError as exc:
        e = exc.response.get("Error", {})
        print(f"error: AWS refused {exc.operation_name}: {e.get('Code', '')}: {e.get('Message', '')}", file=sys.stderr)
        return 1
    except BotoCoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
