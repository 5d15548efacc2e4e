"""Ship a trained Stage 2 model to a SageMaker real-time endpoint, and operate it.

    # 1. deploy (after training/model_evaluation.py wrote a passing gate.json)
    uv run --all-extras python -m deployment.model_deployment deploy \\
        --training-job out/training/training_job.json --gate out/evaluation/gate.json \\
        --endpoint-name algospeak-stage2 --load-test bench/results/endpoint_load.json
    #    or from an artifact: --model-artifact s3://bucket/prefix/model.tar.gz   or a local dir: --model-dir DIR
    # 2. scale on a schedule (e.g. more capacity on weekdays)
    uv run --all-extras python -m deployment.model_deployment schedule --endpoint-name algospeak-stage2 \\
        --name weekday-peak --cron "cron(0 7 ? * MON-FRI *)" --min 2 --max 6
    # 3. offline backfill with a batch transform job (input: JSONL, one request body per line)
    uv run --all-extras python -m deployment.model_deployment batch-transform --model-name MODEL \\
        --input s3://bucket/backfill/in/ --output s3://bucket/backfill/out/
    # 4. smoke-test an endpoint, or delete it (it costs money every hour it exists)
    uv run --all-extras python -m deployment.model_deployment smoke-test --endpoint-name algospeak-stage2
    uv run --all-extras python -m deployment.model_deployment delete --endpoint-name algospeak-stage2 --all

`deploy` does, in order: refuse without a passing gate.json (`--force` overrides, loudly, and tags the model
`gate=forced`); fetch the artifact (training job record -> its model_artifact_uri, an S3 URI, or a local dir);
merge the LoRA adapter into the base in fp16; package `model.tar.gz` (model at the root, `code/inference.py` and
the modules it imports under `code/`); upload it; create the SageMaker model and an endpoint config
(ml.g4dn.xlarge by default, data capture of requests and responses to S3); create CloudWatch alarms (5xx
errors, p99-ish model latency); create the endpoint, or update it blue/green (canary 10% of capacity, then all)
with automatic rollback on those alarms; register target-tracking autoscaling on invocations per instance, with
the target from the load test (its sustainable rate per instance times a safety factor); smoke-test the
endpoint through the same client the API uses; write a deployment record (`out/deployment/deployment.json`).

AWS calls go through boto3 (moto_server in the tests: AWS_ENDPOINT_URL); the SageMaker Python SDK v3 serves
for the container image URI (`sagemaker.core.image_uris`, offline). The execution role's least-privilege policy
is `deployment/iam/execution_role_policy.json`.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.labels import LABELS
from core.settings import ROOT, get_settings

log = logging.getLogger("deployment")

DEFAULT_INSTANCE = "ml.g4dn.xlarge"  # one T4 (16 GB, fp16, no bf16)
VARIANT = "AllTraffic"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
DEFAULT_LOAD_TEST = ROOT / "bench" / "results" / "endpoint_load.json"
DEFAULT_RECORD = ROOT / "out" / "deployment" / "deployment.json"
SAFETY_FACTOR = 0.7  # scale out before the load test's sustainable rate is reached
SMOKE_TEXTS = ["have a nice day", "go k1ll yourself", "time to unalive myself"]
# Modules `code/inference.py` imports, shipped beside it in the archive (paths relative to the repository).
CODE_FILES = ("deployment/inference.py", "core/__init__.py", "core/labels.py", "core/prompt.py",
              "classifiers/__init__.py", "classifiers/base.py")


class DeploymentError(RuntimeError):
    """A deployment step refused or failed; the message says which and what to do."""


# ----------------------------------------------------------------------------------------------- clients
def aws_clients(region: str | None = None, endpoint_url: str | None = None) -> dict[str, Any]:
    import boto3

    settings = get_settings()
    region = region or settings.aws_region
    endpoint_url = endpoint_url or settings.aws_endpoint_url or None
    names = ("s3", "sagemaker", "application-autoscaling", "cloudwatch")
    return {name: boto3.client(name, region_name=region, endpoint_url=endpoint_url) for name in names}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def _split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise DeploymentError(f"not an S3 object URI: {uri!r} (expected s3://bucket/key)")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


# ----------------------------------------------------------------------------------------------- gate
def check_gate(gate_path: str | Path | None, force: bool = False) -> dict[str, Any]:
    """The gate verdict; DeploymentError unless it passed (or `force`, which is logged loudly)."""
    problem = None
    gate: dict[str, Any] = {}
    if gate_path is None:
        problem = "no evaluation gate given (--gate out/evaluation/gate.json)"
    else:
        try:
            gate = json.loads(Path(gate_path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            problem = f"cannot read the gate {gate_path}: {exc}"
        else:
            if gate.get("passed") is not True:
                problem = f"the evaluation gate did not pass: {'; '.join(gate.get('reasons') or ['no reasons given'])}"
    if problem is None:
        return {"status": "passed", **gate}
    if not force:
        raise DeploymentError(f"{problem}. Refusing to deploy; --force overrides (and is recorded in the tags).")
    banner = "!" * 100
    log.warning("%s\nFORCED DEPLOYMENT: %s\n%s", banner, problem, banner)
    print(f"WARNING: FORCED DEPLOYMENT: {problem}", file=sys.stderr)
    return {"status": "forced", "problem": problem, **gate}


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
    from deployment.inference import locate_artifact

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


def package(model_dir: Path, out_path: Path) -> Path:
    """model.tar.gz: the model at the root and the inference code under code/ (the container's layout)."""
    with tarfile.open(out_path, "w:gz", compresslevel=1) as tar:  # weights barely compress; keep it fast
        for path in sorted(model_dir.iterdir()):
            if path.name != "code":
                tar.add(path, arcname=path.name)
        for relative in CODE_FILES:
            arcname = "code/inference.py" if relative == "deployment/inference.py" else f"code/{relative}"
            tar.add(ROOT / relative, arcname=arcname)
    return out_path


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


def image_uri(region: str, instance_type: str, transformers_version: str = "4.49.0",
              pytorch_version: str = "2.6.0", py_version: str = "py312") -> str:
    """The Hugging Face PyTorch inference container (SageMaker Python SDK v3, offline)."""
    from sagemaker.core import image_uris

    return image_uris.retrieve("huggingface", region=region, version=transformers_version,
                               base_framework_version=f"pytorch{pytorch_version}", image_scope="inference",
                               instance_type=instance_type, py_version=py_version)


# ----------------------------------------------------------------------------------------------- endpoint
def _tags(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": str(v)[:256]} for k, v in values.items()]


def put_alarms(cloudwatch, endpoint_name: str, latency_ms_p99: float) -> list[str]:
    """The alarms that roll a blue/green update back: 5xx errors, and model latency over the SLO."""
    dimensions = [{"Name": "EndpointName", "Value": endpoint_name}, {"Name": "VariantName", "Value": VARIANT}]
    alarms = {
        f"{endpoint_name}-invocation-5xx": dict(MetricName="Invocation5XXErrors", Statistic="Sum", Threshold=5.0),
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


def blue_green_config(alarms: list[str], canary_percent: int = 10, wait_seconds: int = 300) -> dict[str, Any]:
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "CANARY", "WaitIntervalInSeconds": wait_seconds,
                                            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": canary_percent}},
            "TerminationWaitInSeconds": 600,
            "MaximumExecutionTimeoutInSeconds": 3600,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in alarms]},
    }


def wait_in_service(sm, endpoint_name: str, config_name: str, timeout_s: float = 3600, poll_s: float = 15) -> dict:
    """Wait for InService on `config_name`; a rollback (InService on another config) or Failed is an error."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = sm.describe_endpoint(EndpointName=endpoint_name)
        status = described["EndpointStatus"]
        if status == "InService":
            if described.get("EndpointConfigName") != config_name:
                raise DeploymentError(f"{endpoint_name} rolled back to {described.get('EndpointConfigName')} "
                                      "(an alarm fired during the blue/green update)")
            return described
        if status in ("Failed", "OutOfService"):
            raise DeploymentError(f"{endpoint_name} is {status}: {described.get('FailureReason', 'no reason')}")
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


def smoke_test(endpoint_name: str, region: str, endpoint_url: str | None) -> list[dict[str, float]]:
    """Classify a few texts through the client the API uses (validated answers, no retries hidden)."""
    from classifiers.base import ClassifierError
    from classifiers.sagemaker import SagemakerClassifier

    client = SagemakerClassifier(endpoint_name, region=region, endpoint_url=endpoint_url, read_timeout=60,
                                 max_retries=2, breaker_failures=10)
    try:
        scores = client.classify(SMOKE_TEXTS)
    except ClassifierError as exc:
        raise DeploymentError(f"smoke test of {endpoint_name} failed: {exc}") from exc
    return scores


def deploy(args: argparse.Namespace, clients: dict[str, Any] | None = None) -> dict[str, Any]:
    settings = get_settings()
    gate = check_gate(args.gate, args.force)
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
    model_name = f"{args.endpoint_name}-{stamp}"
    prefix = f"{settings.s3_prefix}/deployment/{model_name}"
    base_model = args.base_model or training_record.get("base_model")

    with tempfile.TemporaryDirectory(prefix="deploy-") as tmp:
        workdir = Path(tmp)
        artifact = fetch_artifact(source, workdir, clients["s3"])
        merged = merge_adapter(artifact, workdir / "merged", base_model)
        archive = package(merged, workdir / "model.tar.gz")
        model_data = f"s3://{bucket}/{prefix}/model.tar.gz"
        clients["s3"].upload_file(str(archive), bucket, f"{prefix}/model.tar.gz")
        log.info("uploaded %s (%.1f MB)", model_data, archive.stat().st_size / 1e6)

    tags = _tags({"project": "algospeak-moderation", "gate": gate["status"],
                  "training_job": training_record.get("job_name", "none"), "source": source,
                  "labels": ",".join(LABELS)})
    sm = clients["sagemaker"]
    image = args.image_uri or image_uri(region, args.instance_type)
    sm.create_model(
        ModelName=model_name, ExecutionRoleArn=role, Tags=tags,
        PrimaryContainer={"Image": image, "ModelDataUrl": model_data, "Environment": {
            "SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
            "SAGEMAKER_MODEL_SERVER_WORKERS": "1",  # one model copy per GPU
            "INFERENCE_DTYPE": args.dtype, "INFERENCE_BATCH_SIZE": str(args.batch_size),
            "HF_HUB_OFFLINE": "1",
        }},
    )
    config_name = model_name
    sm.create_endpoint_config(
        EndpointConfigName=config_name, Tags=tags,
        ProductionVariants=[{
            "VariantName": VARIANT, "ModelName": model_name, "InstanceType": args.instance_type,
            "InitialInstanceCount": args.min_instances, "InitialVariantWeight": 1.0,
            "ContainerStartupHealthCheckTimeoutInSeconds": 600, "ModelDataDownloadTimeoutInSeconds": 1200,
        }],
        DataCaptureConfig={
            "EnableCapture": True, "InitialSamplingPercentage": args.capture_percent,
            "DestinationS3Uri": f"s3://{bucket}/{settings.s3_prefix}/data-capture",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
        },
    )
    alarms = put_alarms(clients["cloudwatch"], args.endpoint_name, args.latency_slo_ms)
    if endpoint_exists(sm, args.endpoint_name):
        action = "update"
        sm.update_endpoint(EndpointName=args.endpoint_name, EndpointConfigName=config_name,
                           DeploymentConfig=blue_green_config(alarms))
    else:
        action = "create"
        sm.create_endpoint(EndpointName=args.endpoint_name, EndpointConfigName=config_name, Tags=tags)
    described = wait_in_service(sm, args.endpoint_name, config_name, poll_s=args.poll_seconds)
    policy = configure_autoscaling(clients["application-autoscaling"], args.endpoint_name, target,
                                   args.min_instances, args.max_instances)
    smoke = None if args.skip_smoke_test else smoke_test(args.endpoint_name, region,
                                                         args.runtime_endpoint_url or args.endpoint_url
                                                         or settings.aws_endpoint_url)
    record = {
        "endpoint_name": args.endpoint_name, "endpoint_arn": described.get("EndpointArn"), "action": action,
        "model_name": model_name, "endpoint_config_name": config_name, "model_data_url": model_data,
        "image_uri": image, "instance_type": args.instance_type, "source": source,
        "training_job": training_record.get("job_name"), "base_model": base_model, "gate": gate["status"],
        "gate_reasons": gate.get("reasons") or ([gate["problem"]] if "problem" in gate else []),
        "alarms": alarms, "autoscaling": {"policy": policy, "target_invocations_per_instance": target,
                                          "target_source": target_source, "min": args.min_instances,
                                          "max": args.max_instances},
        "smoke_test": smoke, "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    out = Path(args.record)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
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
        alarms = [f"{args.endpoint_name}-invocation-5xx", f"{args.endpoint_name}-model-latency"]
        clients["cloudwatch"].delete_alarms(AlarmNames=alarms)
        deleted.append("alarms")
    return {"deleted": deleted}


def batch_transform(args: argparse.Namespace, clients: dict[str, Any] | None = None) -> dict[str, Any]:
    """An offline backfill: each input line is one request body ({"inputs": [...]}), each output line its answer."""
    clients = clients or aws_clients(args.region, args.endpoint_url)
    job_name = args.job_name or f"{args.model_name[:40]}-backfill-{_now()}"
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
    d.add_argument("--training-job", help="a training job record (out/training/training_job.json)")
    d.add_argument("--model-artifact", help="an S3 URI or local path of a model.tar.gz")
    d.add_argument("--model-dir", help="a local model/adapter directory")
    d.add_argument("--base-model", help="the adapter's base model (default: the artifact's training_config.json)")
    d.add_argument("--gate", help="gate.json from training/model_evaluation.py")
    d.add_argument("--force", action="store_true", help="deploy without a passing gate (recorded in the tags)")
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
    d.add_argument("--dtype", default="float16", help="serving dtype in the container (T4: float16)")
    d.add_argument("--batch-size", type=int, default=16)
    d.add_argument("--runtime-endpoint-url", help="sagemaker-runtime endpoint for the smoke test")
    d.add_argument("--skip-smoke-test", action="store_true")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    commands = {"deploy": deploy, "schedule": schedule, "delete": delete, "batch-transform": batch_transform,
                "smoke-test": lambda a: {"scores": smoke_test(a.endpoint_name, a.region or get_settings().aws_region,
                                                               a.runtime_endpoint_url or a.endpoint_url
                                                               or get_settings().aws_endpoint_url)}}
    try:
        result = commands[args.command](args)
    except DeploymentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
