"""Launch the Stage 2 QLoRA training job on SageMaker, or run it here with --local; record it for the next steps.

    # SageMaker: the dataset the ingestion step uploaded, a role, an output bucket (S3_BUCKET)
    uv run --all-extras python -m training.model_training \\
        --manifest s3://my-bucket/algospeak/datasets/v-0123456789ab/manifest.json \\
        --role arn:aws:iam::123456789012:role/SageMakerTraining --bucket my-bucket --wait
    # spot capacity with checkpoints (the default), a bigger GPU, a hub token kept in Secrets Manager
    uv run --all-extras python -m training.model_training --manifest ... --instance-type ml.g5.2xlarge \\
        --hf-token-secret hf-token --tag team=trust-safety --no-wait
    # the same entry point in this process (CPU or a local GPU), on a local prepared dataset
    uv run --all-extras python -m training.model_training --local --data out/prepared \\
        --base-model Qwen/Qwen2.5-1.5B-Instruct -H epochs=1 -H max-train-samples=2000

SageMaker mode builds the job with the SageMaker Python SDK v3 `ModelTrainer`: the Hugging Face PyTorch training
container for the region (--image-uri to change it), `training/train_script.py` with `core/` as the source code,
the manifest's train and validation files as the `train` and `validation` channels, managed spot training with
checkpoints synced to S3 (a spot interruption resumes from the last one), metric definitions for the per-epoch
validation loss and macro-F1, and tags. A checkpoint is resumed only by the same run (same data and
hyperparameters: train_script's run fingerprint); a reused --checkpoint-s3-uri holding another run's checkpoints
fails the job with the reason, unless `-H overwrite-checkpoints=true` (start over) or `-H no-resume=true`.
A Hugging Face token is never sent as a value: pass the name or ARN of a Secrets Manager secret
(--hf-token-secret); the job reads it at start (its role needs secretsmanager:GetSecretValue on it).
`--wait` streams the job's status until it ends; `--no-wait` returns once it is created.

Either way the job record (default out/training/training_job.json) gets: job_name, status, model_artifact_uri
(s3://.../model.tar.gz, or the local model dir), base_model, hyperparameters, region, image_uri, created_at,
mlflow_run_id. Every run is logged to MLflow (training.tracking: a local mlruns/ unless MLFLOW_TRACKING_URI).

Errors a user can fix (no credentials, no role, no bucket, no manifest, a missing dataset object or secret) are
one line on stderr and exit status 1.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by its path (python training/model_training.py): the repository root on sys.path
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.settings import ROOT, get_settings

__all__ = ["ModelTrainingError", "build_parser", "dataset_channels", "default_image_uri", "load_manifest", "main"]

DEFAULT_RECORD = ROOT / "out" / "training" / "training_job.json"
DEFAULT_LOCAL_MODEL_DIR = ROOT / "out" / "training" / "model"
BASE_JOB_NAME = "algospeak-qlora"
EXPERIMENT = "algospeak-stage2"
# The Hugging Face PyTorch training container (transformers 5.3, torch 2.9) from the SDK's image catalogue.
HF_TRANSFORMERS_VERSION = "5.3.0"
HF_PYTORCH_VERSION = "pytorch2.9.0"
HF_PY_VERSION = "py312"
FALLBACK_IMAGE = ("763104351884.dkr.ecr.{region}.amazonaws.com/huggingface-pytorch-training:"
                  "2.9.0-transformers5.3.0-gpu-py312-cu130-ubuntu22.04")
# Installed in the container on top of the image (which has torch, transformers, accelerate, numpy);
# pydantic-settings for core.settings (shipped with core/). Pinned to what this project is tested with (uv.lock),
# so a job next month trains with the same libraries.
CONTAINER_REQUIREMENTS = ("peft==0.21.2", "bitsandbytes==0.50.2", "pydantic>=2.7", "pydantic-settings>=2.3")
# Regexes over train_script.EVAL_LINE, so SageMaker records the per-epoch validation metrics.
METRIC_DEFINITIONS = {
    "eval_loss": r"eval_loss=([0-9.eE+-]+)",
    "eval_macro_f1": r"eval_macro_f1=([0-9.eE+-]+)",
    "eval_accuracy": r"eval_accuracy=([0-9.eE+-]+)",
}
TERMINAL = ("Completed", "Failed", "Stopped")
# What the job runs: train_script and the modules it imports (training/metrics.py for the macro-F1 definition,
# core/progress.py for its progress lines); tests/training/test_model_training.py checks it against the imports.
SOURCE_FILES = ("core/__init__.py", "core/aws.py", "core/categories.py", "core/labels.py", "core/progress.py",
                "core/prompt.py", "core/settings.py", "training/__init__.py", "training/metrics.py",
                "training/train_script.py")
# Hyperparameters the launcher always sets (the entry point's defaults otherwise); -H adds or overrides any.
HYPERPARAMETER_FLAGS = ("epochs", "learning_rate", "lora_r", "lora_alpha", "max_length", "batch_size",
                        "gradient_accumulation_steps", "merge")


class ModelTrainingError(RuntimeError):
    """A problem the user can fix (configuration, credentials, inputs); the message is one line."""


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    s = get_settings()
    p = argparse.ArgumentParser(
        prog="python -m training.model_training",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1].split("SageMaker mode builds")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--manifest", help="the ingestion manifest: s3://.../manifest.json or a local path (default: the "
                                      "ingestion record's, out/ingest/record.json)")
    p.add_argument("--local", action="store_true", help="run the entry point in this process, not on SageMaker")
    p.add_argument("--data", type=Path, help="--local: a prepared dataset folder instead of the manifest's files")
    p.add_argument("--model-dir", type=Path, default=DEFAULT_LOCAL_MODEL_DIR, help="--local: where the model goes")
    p.add_argument("--checkpoint-dir", type=Path, help="--local: checkpoints (default: beside the model dir)")
    p.add_argument("--record", type=Path, default=DEFAULT_RECORD, help="job record JSON (default %(default)s)")
    p.add_argument("--experiment", default=EXPERIMENT, help="MLflow experiment (default %(default)s)")

    h = p.add_argument_group("hyperparameters (passed to training/train_script.py)")
    h.add_argument("--base-model", default=s.base_model_id,
                   help="hub id or local dir (BASE_MODEL_ID; default %(default)s; Qwen2.5-3B-Instruct is under the "
                        "Qwen research licence, non-commercial; Qwen/Qwen2.5-1.5B-Instruct is Apache-2.0)")
    h.add_argument("--epochs", type=float, default=2.0)
    h.add_argument("--learning-rate", type=float, default=2e-4)
    h.add_argument("--lora-r", type=int, default=16)
    h.add_argument("--lora-alpha", type=int, default=32)
    h.add_argument("--max-length", type=int, default=512)
    h.add_argument("--batch-size", type=int, default=8)
    h.add_argument("--gradient-accumulation-steps", type=int, default=2)
    h.add_argument("--merge", action=argparse.BooleanOptionalAction, default=False,
                   help="also save merged/, a full fp16 model for serving")
    h.add_argument("-H", "--hyperparameter", action="append", default=[], metavar="NAME=VALUE",
                   help="any other train_script option, e.g. -H packing=true -H max-train-samples=5000")

    a = p.add_argument_group("SageMaker")
    a.add_argument("--role", default=s.sagemaker_role_arn, help="execution role ARN (SAGEMAKER_ROLE_ARN)")
    a.add_argument("--bucket", default=s.s3_bucket, help="bucket for code, checkpoints and the model (S3_BUCKET)")
    a.add_argument("--prefix", default=s.s3_prefix, help="key prefix (S3_PREFIX; default %(default)s)")
    a.add_argument("--region", default=s.aws_region, help="AWS region (AWS_REGION; default %(default)s)")
    a.add_argument("--image-uri", help="training image (default: the Hugging Face PyTorch training container "
                                       f"with transformers {HF_TRANSFORMERS_VERSION} for the region)")
    a.add_argument("--instance-type", default="ml.g4dn.xlarge", help="default %(default)s (one T4, fp16)")
    a.add_argument("--instance-count", type=int, default=1)
    a.add_argument("--volume-size", type=int, default=100, help="GB of instance storage")
    a.add_argument("--spot", action=argparse.BooleanOptionalAction, default=True, help="managed spot training")
    a.add_argument("--max-run", type=int, default=24 * 3600, help="seconds of training at most")
    a.add_argument("--max-wait", type=int, help="spot: seconds of training plus waiting (default 2 x --max-run)")
    a.add_argument("--checkpoints", action=argparse.BooleanOptionalAction, default=True,
                   help="sync /opt/ml/checkpoints to S3 (resume after a spot interruption)")
    a.add_argument("--checkpoint-s3-uri", help="where checkpoints go (default: under the job's S3 prefix); reuse "
                                               "one to resume a previous job's training")
    a.add_argument("--hf-token-secret", default=os.environ.get("HF_TOKEN_SECRET_ID"),
                   help="Secrets Manager name or ARN holding the Hugging Face token (HF_TOKEN_SECRET_ID)")
    a.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="job tag (repeatable)")
    a.add_argument("--job-name", default=BASE_JOB_NAME, help="job name prefix; a timestamp is appended")
    a.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                   help="stream the job's status until it ends (default) or return once it is created")
    a.add_argument("--poll-seconds", type=float, default=30.0)
    a.add_argument("--skip-role-validation", action="store_true",
                   help="skip the SDK's check of the role (iam:SimulatePrincipalPolicy on its EC2, ECR and "
                        "CloudWatch actions, and its trust policy). Not needed when you may not simulate: the SDK "
                        "then only warns. Use it when an SCP or permissions boundary makes the simulator deny "
                        "what the role really has")
    return p


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ModelTrainingError(f"{what} {item!r} is not NAME=VALUE")
        out[key.strip()] = value.strip()
    return out


def hyperparameters(args: argparse.Namespace) -> dict[str, str]:
    """The entry point's options as SageMaker sends them (`--name value`): strings, dashes in names."""
    hp = {"base-model": str(args.base_model)}
    for name in HYPERPARAMETER_FLAGS:
        value = getattr(args, name)
        hp[name.replace("_", "-")] = str(value).lower() if isinstance(value, bool) else str(value)
    for key, value in _pairs(args.hyperparameter, "hyperparameter").items():
        hp[key.lstrip("-").replace("_", "-")] = value
    _check_hyperparameters(hp)
    return hp


def _check_hyperparameters(hp: dict[str, str]) -> None:
    """Refuse names the entry point does not know here, not an hour later in the container."""
    from training.train_script import build_parser as entry_parser

    argv = [x for k, v in hp.items() for x in (f"--{k}", v)] + ["--train", ".", "--model-dir", "."]
    known = {o for action in entry_parser()._actions for o in action.option_strings}
    unknown = [k for k in hp if f"--{k}" not in known]
    if unknown:
        raise ModelTrainingError(f"train_script has no option {', '.join('--' + k for k in unknown)}")
    try:
        with _quiet_argparse():
            entry_parser().parse_args(argv)
    except SystemExit:
        raise ModelTrainingError(f"a hyperparameter value is not valid for train_script: {hp}") from None


@contextmanager
def _quiet_argparse() -> Iterator[None]:
    import io
    from contextlib import redirect_stderr

    with redirect_stderr(io.StringIO()):
        yield


# --------------------------------------------------------------------------------------------- manifest


def _s3_client(region: str):
    from core import aws

    return aws.client("s3", region)


def _split_s3(uri: str) -> tuple[str, str]:
    from core.aws import split_s3

    try:
        return split_s3(uri)
    except ValueError as err:
        raise ModelTrainingError(str(err)) from None


def load_manifest(ref: str | None, s3=None) -> dict[str, Any]:
    """The ingestion manifest, from S3 or a local file."""
    if not ref:
        raise ModelTrainingError("no dataset manifest: pass --manifest s3://.../manifest.json (written by "
                                 "`python -m data.data_ingestion`)")
    if ref.startswith("s3://"):
        from botocore.exceptions import ClientError

        bucket, key = _split_s3(ref)
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "NoSuchBucket", "404"):
                raise ModelTrainingError(f"manifest {ref} not found: run `python -m data.data_ingestion` first, "
                                         "or check the version in the URI") from None
            raise
    else:
        path = Path(ref)
        if not path.is_file():
            raise ModelTrainingError(f"manifest {ref} not found: run `python -m data.data_ingestion` first")
        body = path.read_bytes()
    try:
        manifest = json.loads(body)
        manifest["objects"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ModelTrainingError(f"{ref} is not a manifest written by data.data_ingestion ({err})") from None
    return manifest


def dataset_channels(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The manifest's train and validation objects (JSON Lines preferred, else Parquet), by channel name."""
    by_name = {o["key"].rsplit("/", 1)[-1]: o for o in manifest["objects"] if o.get("kind") == "dataset"}
    channels = {}
    for split in ("train", "validation"):
        obj = by_name.get(f"{split}.jsonl") or by_name.get(f"{split}.parquet")
        if obj is None:
            raise ModelTrainingError(f"the manifest lists no {split}.jsonl or {split}.parquet dataset object")
        channels[split] = obj
    return channels


def default_image_uri(region: str, instance_type: str) -> str:
    """The Hugging Face PyTorch training container for the region, from the SDK's (offline) image catalogue."""
    try:
        from sagemaker.core import image_uris

        return image_uris.retrieve("huggingface", region, version=HF_TRANSFORMERS_VERSION,
                                   base_framework_version=HF_PYTORCH_VERSION, py_version=HF_PY_VERSION,
                                   instance_type=instance_type, image_scope="training")
    except Exception:  # noqa: BLE001 - an SDK without this version: the documented image, in the region's registry
        from deployment.policies import ecr_account

        try:
            account = ecr_account(region, "training")
        except ValueError as exc:
            raise ModelTrainingError(f"{exc}; pass --image-uri") from None
        uri = FALLBACK_IMAGE.replace("763104351884", account).format(region=region)
        _log(f"warning: the SageMaker SDK has no {HF_TRANSFORMERS_VERSION} Hugging Face training image for {region}; "
             f"using {uri} (pass --image-uri to choose)")
        return uri


def container_requirements() -> list[str]:
    """CONTAINER_REQUIREMENTS with peft and bitsandbytes pinned to the versions installed here (uv.lock): the job
    trains with the libraries this project was tested with, not whatever is newest on the day."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for requirement in CONTAINER_REQUIREMENTS:
        name = requirement.split("=")[0].rstrip("<>!~")
        try:
            out.append(f"{name}=={version(name)}" if name in ("peft", "bitsandbytes") else requirement)
        except PackageNotFoundError:
            out.append(requirement)
    return out


def stage_source(out: Path) -> Path:
    """The code the job runs: train_script, what it imports, and the extra requirements."""
    for rel in SOURCE_FILES:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, out / rel)
    (out / "requirements.txt").write_text("\n".join(container_requirements()) + "\n", encoding="utf-8")
    return out


# --------------------------------------------------------------------------------------------- SageMaker


@contextmanager
def _aws_errors(bucket: str | None) -> Iterator[None]:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

    try:
        yield
    except NoCredentialsError:
        raise ModelTrainingError("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                                 "or AWS_PROFILE") from None
    except NoRegionError:
        raise ModelTrainingError("no AWS region: pass --region or set AWS_REGION") from None
    except EndpointConnectionError as err:
        raise ModelTrainingError(f"cannot reach AWS: {err}") from None
    except ClientError as err:
        e = err.response.get("Error", {})
        code, status = e.get("Code", ""), err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 403 or code in ("AccessDenied", "AccessDeniedException", "InvalidAccessKeyId",
                                     "SignatureDoesNotMatch", "UnrecognizedClientException"):
            raise ModelTrainingError(f"AWS denied the request ({code}): check the credentials and that they may "
                                     f"use SageMaker, S3 (s3://{bucket}) and iam:PassRole") from None
        raise ModelTrainingError(f"AWS refused the request: {code}: {e.get('Message', '')}".strip()) from None


def _preflight(args: argparse.Namespace, s3, manifest_channels: dict[str, dict[str, Any]] | None = None) -> None:
    """Fail in one line before anything is created: credentials, bucket, dataset objects, secret."""
    import boto3
    from botocore.exceptions import ClientError

    if boto3.session.Session(region_name=args.region).get_credentials() is None:
        raise ModelTrainingError("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                                 "or AWS_PROFILE")
    try:
        s3.head_bucket(Bucket=args.bucket)
    except ClientError as err:
        if err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            raise ModelTrainingError(f"bucket s3://{args.bucket} does not exist: create it, or pass --bucket / "
                                     "set S3_BUCKET") from None
        raise
    for channel, obj in (manifest_channels or {}).items():
        bucket, key = _split_s3(obj["uri"])
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except ClientError as err:
            if err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                raise ModelTrainingError(f"{channel} data {obj['uri']} listed in the manifest is missing: run "
                                         "data.data_ingestion again") from None
            raise
    if args.hf_token_secret:
        from core import aws

        sm = aws.client("secretsmanager", args.region)
        try:  # DescribeSecret: checks that it exists without reading the value
            args.hf_token_secret = sm.describe_secret(SecretId=args.hf_token_secret)["ARN"]
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise ModelTrainingError(f"Secrets Manager secret {args.hf_token_secret} not found") from None
            raise


def _sagemaker_session(region: str, bucket: str, prefix: str):
    """An SDK session on `bucket`, SageMaker configs honoured, SDK telemetry off (this tool does not phone home)."""
    import boto3
    from sagemaker.core.config.config import load_sagemaker_config
    from sagemaker.core.helper.session_helper import Session

    config = load_sagemaker_config()
    config.setdefault("SchemaVersion", "1.0")
    modules = config.setdefault("SageMaker", {}).setdefault("PythonSDK", {}).setdefault("Modules", {})
    modules.setdefault("TelemetryOptOut", True)
    return Session(boto_session=boto3.session.Session(region_name=region), default_bucket=bucket,
                   default_bucket_prefix=f"{prefix.strip('/')}/training" if prefix.strip("/") else "training",
                   sagemaker_config=config)


@contextmanager
def _role_validation(skip: bool) -> Iterator[None]:
    if not skip:
        yield
        return
    previous = os.environ.get("SAGEMAKER_VALIDATE_ROLE")
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("SAGEMAKER_VALIDATE_ROLE", None)
        else:
            os.environ["SAGEMAKER_VALIDATE_ROLE"] = previous


def create_training_job(args: argparse.Namespace, hp: dict[str, str], channels: dict[str, dict[str, Any]],
                        manifest: dict[str, Any], image_uri: str) -> tuple[str, str]:
    """Create the job with ModelTrainer; return (job name, S3 output path)."""
    from sagemaker.core.shapes import MetricDefinition
    from sagemaker.core.training.configs import (
        CheckpointConfig,
        Compute,
        InputData,
        OutputDataConfig,
        SourceCode,
        StoppingCondition,
        Tag,
    )
    from sagemaker.train import ModelTrainer

    session = _sagemaker_session(args.region, args.bucket, args.prefix)
    base = f"s3://{args.bucket}/{session.default_bucket_prefix}"
    output_path = f"{base}/output"
    tags = {"project": "algospeak-moderation", "component": "stage2-qlora",
            "base-model": str(args.base_model)[:256], "dataset-version": str(manifest.get("version", "unknown")),
            **_pairs(args.tag, "tag")}
    environment = {"HF_TOKEN_SECRET_ID": args.hf_token_secret} if args.hf_token_secret else {}
    max_wait = (args.max_wait or 2 * args.max_run) if args.spot else None
    checkpoint = None
    if args.checkpoints or args.checkpoint_s3_uri:
        checkpoint = CheckpointConfig(s3_uri=args.checkpoint_s3_uri, local_path="/opt/ml/checkpoints")
    with tempfile.TemporaryDirectory(prefix="algospeak-train-src-") as tmp, _role_validation(
        args.skip_role_validation
    ):
        try:
            trainer = ModelTrainer(
                sagemaker_session=session,
                role=args.role,
                base_job_name=args.job_name,
                training_image=image_uri,
                source_code=SourceCode(source_dir=str(stage_source(Path(tmp))),
                                       entry_script="training/train_script.py", requirements="requirements.txt"),
                compute=Compute(instance_type=args.instance_type, instance_count=args.instance_count,
                                volume_size_in_gb=args.volume_size, enable_managed_spot_training=args.spot),
                stopping_condition=StoppingCondition(max_runtime_in_seconds=args.max_run,
                                                     max_wait_time_in_seconds=max_wait),
                output_data_config=OutputDataConfig(s3_output_path=output_path),
                checkpoint_config=checkpoint,
                hyperparameters=hp,
                environment=environment,
                tags=[Tag(key=k, value=v) for k, v in tags.items()],
            ).with_metric_definitions([MetricDefinition(name=n, regex=r) for n, r in METRIC_DEFINITIONS.items()])
        except ValueError as err:  # the SDK's "role does not exist" and friends
            raise ModelTrainingError(f"SageMaker SDK refused the job configuration: {str(err).splitlines()[0]}") from None
        except Exception as err:  # noqa: BLE001 - RoleValidationError is no ValueError
            if type(err).__name__ != "RoleValidationError":
                raise
            raise ModelTrainingError(role_refusal(args.role, str(err))) from None
        trainer.train(input_data_config=[InputData(channel_name=name, data_source=obj["uri"])
                                         for name, obj in channels.items()], wait=False, logs=False)
    return trainer._latest_training_job.training_job_name, output_path


def role_refusal(role: str, message: str) -> str:
    """The SDK's multi-line RoleValidationError as one line: which role, what it lacks, where the policy is."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    detail = next((line for line in lines if line.startswith(("Missing permissions", "Its trust policy"))),
                  lines[0] if lines else "refused")
    return (f"the SageMaker SDK refused the training role {role}: {detail}. Attach "
            "deployment/iam/training_role_policy.json (`python -m deployment.policies training ...` fills it in) "
            "and the trust policy deployment/iam/execution_role_trust_policy.json")


def wait_for_job(sm, job_name: str, poll_seconds: float, log: Callable[[str], None] = _log,
                 sleep: Callable[[float], None] = time.sleep, limit_s: float = 24 * 3600) -> dict[str, Any]:
    """Poll the job until it ends and return its description. Progress (core.progress.Waiting): the seconds
    waited against `limit_s` (the job's own stopping condition), with its status; each secondary status (starting,
    downloading, training, uploading) is logged as it comes."""
    from core.progress import Waiting

    seen_transitions = 0
    with Waiting(f"training job {job_name}", limit_s=limit_s) as wait:
        while True:
            job = sm.describe_training_job(TrainingJobName=job_name)
            status = job["TrainingJobStatus"]
            wait.status(status)
            transitions = job.get("SecondaryStatusTransitions", [])
            for t in transitions[seen_transitions:]:
                log(f"{job_name}:   {t.get('Status')}: {t.get('StatusMessage', '')}")
            seen_transitions = len(transitions)
            if status in TERMINAL:
                return job
            sleep(poll_seconds)


def run_sagemaker(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    if not args.role:
        raise ModelTrainingError("no SageMaker execution role: pass --role or set SAGEMAKER_ROLE_ARN")
    if not args.bucket:
        raise ModelTrainingError("no S3 bucket for the job's code, checkpoints and model: pass --bucket or set "
                                 "S3_BUCKET")
    if not args.manifest:
        load_manifest(None)
    if args.spot and args.max_wait is not None and args.max_wait < args.max_run:
        raise ModelTrainingError(f"--max-wait {args.max_wait} is shorter than --max-run {args.max_run}: with spot "
                                 "capacity SageMaker needs max-wait >= max-run (training time plus waiting)")
    endpoint = get_settings().aws_endpoint_url
    if endpoint and not os.environ.get("AWS_ENDPOINT_URL"):
        os.environ["AWS_ENDPOINT_URL"] = endpoint  # the SDK's clients read the endpoint from the environment
    if os.environ.get("HF_TOKEN") and not args.hf_token_secret:
        _log("note: HF_TOKEN is not sent to the job; store it in Secrets Manager and pass --hf-token-secret")
    hp = hyperparameters(args)
    image_uri = args.image_uri or default_image_uri(args.region, args.instance_type)
    with _aws_errors(args.bucket):
        s3 = _s3_client(args.region)
        manifest = load_manifest(args.manifest, s3)
        channels = dataset_channels(manifest)
        _preflight(args, s3, channels)
        job_name, output_path = create_training_job(args, hp, channels, manifest, image_uri)
        from core import aws

        sm = aws.client("sagemaker", args.region)
        job = sm.describe_training_job(TrainingJobName=job_name)
    record = {
        "job_name": job_name,
        "status": job["TrainingJobStatus"],
        "model_artifact_uri": f"{output_path}/{job_name}/output/model.tar.gz",
        "base_model": str(args.base_model),
        "hyperparameters": hp,
        "region": args.region,
        "image_uri": image_uri,
        "created_at": _iso(job.get("CreationTime")),
        "mlflow_run_id": None,
        "mode": "sagemaker",
        "manifest": args.manifest,
        "dataset_version": manifest.get("version"),
        "instance_type": args.instance_type,
        "spot": args.spot,
        "checkpoint_s3_uri": (job.get("CheckpointConfig") or {}).get("S3Uri"),
    }
    _log(f"created training job {job_name} ({args.instance_type}{', spot' if args.spot else ''}); "
         f"model will be at {record['model_artifact_uri']}")
    params = {**{f"hp.{k}": v for k, v in hp.items()}, "instance_type": args.instance_type, "spot": args.spot,
              "image_uri": image_uri, "dataset_version": manifest.get("version"), "manifest": args.manifest}
    with _tracking(args, job_name, params, {"mode": "sagemaker", "job_name": job_name}) as (mlflow, run_id):
        record["mlflow_run_id"] = run_id
        mlflow.set_tag("model_artifact_uri", record["model_artifact_uri"])
        write_record(args.record, record)
        if not args.wait:
            return record, 0
        with _aws_errors(args.bucket):
            job = wait_for_job(sm, job_name, args.poll_seconds,
                               limit_s=(args.max_wait or 2 * args.max_run) if args.spot else args.max_run)
        record["status"] = job["TrainingJobStatus"]
        artifacts = (job.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
        if artifacts:
            record["model_artifact_uri"] = artifacts
            mlflow.set_tag("model_artifact_uri", artifacts)
        for metric in job.get("FinalMetricDataList", []):
            mlflow.log_metric(metric["MetricName"].replace(":", "_"), float(metric["Value"]))
        mlflow.set_tag("status", record["status"])
        if record["status"] != "Completed":
            record["failure_reason"] = job.get("FailureReason", "")
        write_record(args.record, record)
    if record["status"] != "Completed":
        _log(f"error: training job {job_name} {record['status'].lower()}: {record.get('failure_reason', '')}")
        return record, 1
    return record, 0


# --------------------------------------------------------------------------------------------- local


def _local_data(args: argparse.Namespace, tmp: Path) -> tuple[Path, Path]:
    """Train and validation files for --local: from --data, or downloaded from the manifest's URIs."""
    if args.data:
        return args.data, args.data
    manifest = load_manifest(args.manifest, _s3_client(args.region) if str(args.manifest or "").startswith(
        "s3://") else None)
    files = []
    for split, obj in dataset_channels(manifest).items():
        target = tmp / split / obj["key"].rsplit("/", 1)[-1]
        target.parent.mkdir(parents=True, exist_ok=True)
        bucket, key = _split_s3(obj["uri"])
        with _aws_errors(bucket):
            _s3_client(args.region).download_file(bucket, key, str(target))
        files.append(target)
    return files[0], files[1]


def run_local(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    from training import train_script

    hp = hyperparameters(args)
    created = datetime.now(UTC)
    job_name = f"{args.job_name}-local-{created.strftime('%Y%m%d-%H%M%S')}"
    model_dir = Path(args.model_dir).resolve()
    with tempfile.TemporaryDirectory(prefix="algospeak-train-data-") as tmp:
        train_path, val_path = _local_data(args, Path(tmp))
        argv = [x for k, v in hp.items() for x in (f"--{k}", v)]
        argv += ["--train", str(train_path), "--validation", str(val_path), "--model-dir", str(model_dir)]
        if args.checkpoint_dir:
            argv += ["--checkpoint-dir", str(args.checkpoint_dir)]
        entry_args = train_script.build_parser().parse_args(argv)
        params = {**{f"hp.{k}": v for k, v in hp.items()}, "mode": "local"}
        with _tracking(args, job_name, params, {"mode": "local", "job_name": job_name}) as (mlflow, run_id):
            try:
                summary = train_script.train(entry_args)
            except train_script.TrainError as err:
                raise ModelTrainingError(str(err)) from None
            for epoch in summary["metrics"]["epochs"]:
                mlflow.log_metrics({k: v for k, v in epoch.items() if k.startswith("eval_") and v is not None},
                                   step=int(epoch["step"]))
            mlflow.log_metric("train_loss", summary["metrics"]["train_loss"])
            mlflow.set_tag("model_artifact_uri", str(model_dir))
            for name in (train_script.CONFIG_FILE, train_script.METRICS_FILE, train_script.LABELS_FILE):
                mlflow.log_artifact(str(model_dir / name))
    record = {
        "job_name": job_name,
        "status": "Completed",
        "model_artifact_uri": str(model_dir),
        "base_model": str(args.base_model),
        "hyperparameters": hp,
        "region": args.region,
        "image_uri": None,
        "created_at": created.isoformat(timespec="seconds"),
        "mlflow_run_id": run_id,
        "mode": "local",
        "manifest": args.manifest,
        "data": str(args.data) if args.data else None,
        "metrics": summary["metrics"]["epochs"],
    }
    write_record(args.record, record)
    return record, 0


# --------------------------------------------------------------------------------------------- shared


@contextmanager
def _tracking(args: argparse.Namespace, run_name: str, params: dict[str, Any], tags: dict[str, str]):
    from training import tracking

    with tracking.run(args.experiment, run_name, params=params, tags=tags) as mlflow:
        yield mlflow, mlflow.active_run().info.run_id


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds")
    return str(value) if value else datetime.now(UTC).isoformat(timespec="seconds")


def write_record(path: Path, record: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def default_manifest(args: argparse.Namespace) -> dict[str, Any] | None:
    """Without --manifest (and --data): the manifest the ingestion step recorded. Returns that record."""
    from core import records

    if args.manifest or (args.local and args.data):
        return None
    try:
        record = records.read("ingest")
    except records.RecordError as err:
        raise ModelTrainingError(f"no dataset manifest: pass --manifest s3://.../manifest.json, or run the ingest step "
                                 f"first ({err})") from None
    args.manifest = record["outputs"]["manifest_uri"]
    _log(f"dataset: {args.manifest} (from {record['_path']})")
    return record


def artifact_problem(record: dict[str, Any], region: str) -> str | None:
    """Why a Completed job's model is not there (None when it is): a job recorded as Completed must have it."""
    uri = str(record.get("model_artifact_uri") or "")
    if not uri:
        return "the job names no model artifact"
    if not uri.startswith("s3://"):
        model_dir = Path(uri)
        if not (model_dir / "adapter_config.json").is_file() and not (model_dir / "config.json").is_file():
            return f"no model in {uri} (no adapter_config.json or config.json)"
        return None
    from botocore.exceptions import ClientError

    bucket, key = _split_s3(uri)
    try:
        _s3_client(region).head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        return f"the model artifact {uri} is not in S3 ({err.response.get('Error', {}).get('Code', err)})"
    return None


def write_step_record(args: argparse.Namespace, record: dict[str, Any], ingest: dict[str, Any] | None) -> None:
    """out/train/record.json: the job and its model, for the evaluation and deployment steps."""
    from core import records

    outputs = {k: record.get(k) for k in ("job_name", "status", "model_artifact_uri", "base_model", "mode",
                                           "hyperparameters", "mlflow_run_id", "dataset_version")}
    outputs["job_record"] = str(args.record)
    if record.get("mode") == "local":
        outputs["model_dir"] = record["model_artifact_uri"]
        outputs["model_sha256"] = records.sha256_tree(record["model_artifact_uri"])
    outputs["manifest"] = args.manifest
    inputs = {"ingest": Path(ingest["_path"])} if ingest else {}
    _log(f"record: {records.write('train', outputs, inputs)}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        ingest = default_manifest(args)
        record, code = run_local(args) if args.local else run_sagemaker(args)
        if record["status"] == "Completed":
            problem = artifact_problem(record, args.region)
            if problem:  # moto "completes" a job at once with no model; so could a broken entry point
                record["status"], record["failure_reason"] = "Failed", f"recorded Completed but {problem}"
                write_record(args.record, record)
                raise ModelTrainingError(f"training job {record['job_name']} says Completed but {problem}")
            write_step_record(args, record, ingest)
    except ModelTrainingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps({k: record[k] for k in ("job_name", "status", "model_artifact_uri", "mlflow_run_id")}))
    _log(f"job record: {args.record}")
    return code


if __name__ == "__main__":
    sys.exit(main())
