"""The training orchestrator: a real SageMaker SDK v3 ModelTrainer job created against moto_server, the job
record the deployment step reads, MLflow runs, one-line errors, and --local running the real entry point."""

import hashlib
import json

import pytest

pytest.importorskip("sagemaker.train")
pytest.importorskip("mlflow")

from core.labels import LABELS
from training import model_training

BUCKET = "algospeak-test"
PREFIX = "algospeak/datasets/v-test"
ROLE = "arn:aws:iam::123456789012:role/SageMakerTraining"
SECRET_VALUE = "hf_not_a_real_token_0123456789"


def rows(n):
    return "".join(json.dumps({"text": f"text number {i}", "label": LABELS[i % 4]}) + "\n" for i in range(n))


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('mlruns') / 'mlflow.db'}"


@pytest.fixture
def aws(aws_env, monkeypatch, mlflow_uri):
    """moto with a bucket holding an ingested dataset and its manifest, the execution role, an HF secret."""
    import boto3

    from core.settings import get_settings

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    for name in ("SAGEMAKER_ROLE_ARN", "HF_TOKEN", "HF_TOKEN_SECRET_ID", "SAGEMAKER_VALIDATE_ROLE"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    objects = []
    for split, n in (("train", 8), ("validation", 4), ("test", 4)):
        body = rows(n).encode()
        key = f"{PREFIX}/data/{split}.jsonl"
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        objects.append({"key": key, "uri": f"s3://{BUCKET}/{key}", "kind": "dataset", "size": len(body),
                        "sha256": hashlib.sha256(body).hexdigest(), "rows": n})
    manifest = {"version": "v-test", "bucket": BUCKET, "prefix": PREFIX, "objects": objects}
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/manifest.json", Body=json.dumps(manifest).encode())
    boto3.client("iam").create_role(RoleName="SageMakerTraining", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                  "Principal": {"Service": "sagemaker.amazonaws.com"}}]}))
    boto3.client("secretsmanager").create_secret(Name="hf-token", SecretString=SECRET_VALUE)
    yield f"s3://{BUCKET}/{PREFIX}/manifest.json"
    get_settings.cache_clear()


def launch(manifest, record, *extra):
    return model_training.main(["--manifest", manifest, "--role", ROLE, "--bucket", BUCKET, "--record", str(record),
                                "--skip-role-validation", "--poll-seconds", "0", *extra])


def test_creates_the_job_and_records_what_deployment_needs(aws, tmp_path, capsys, mlflow_uri, monkeypatch):
    import boto3
    import mlflow
    from botocore.endpoint import Endpoint

    sent = {}  # the request bodies that went to moto, by operation (moto does not keep Environment)
    make_request = Endpoint.make_request

    def recording(self, operation_model, request_dict):
        sent[operation_model.name] = request_dict.get("body")
        return make_request(self, operation_model, request_dict)

    monkeypatch.setattr(Endpoint, "make_request", recording)
    record_path = tmp_path / "training_job.json"
    code = launch(aws, record_path, "--no-wait", "--hf-token-secret", "hf-token", "--tag", "owner=ml",
                  "--lora-r", "8", "-H", "packing=true")
    out = capsys.readouterr()
    # moto "completes" the job at once and writes no model: recorded Completed, that would be a lie
    assert code == 1 and "says Completed but the model artifact" in out.err and "Traceback" not in out.err, out.err
    record = json.loads(record_path.read_text())
    assert record["status"] == "Failed" and "not in S3" in record["failure_reason"]
    assert set(record) >= {"job_name", "status", "model_artifact_uri", "base_model", "hyperparameters", "region",
                           "image_uri", "created_at", "mlflow_run_id"}
    job = boto3.client("sagemaker").describe_training_job(TrainingJobName=record["job_name"])
    assert record["job_name"].startswith("algospeak-qlora")
    assert record["model_artifact_uri"] == (
        f"s3://{BUCKET}/algospeak/training/output/{record['job_name']}/output/model.tar.gz")
    assert record["base_model"] == "Qwen/Qwen2.5-3B-Instruct" and record["region"] == "us-east-1"
    assert "huggingface-pytorch-training" in record["image_uri"]
    assert job["AlgorithmSpecification"]["TrainingImage"] == record["image_uri"]
    assert job["RoleArn"] == ROLE
    assert job["HyperParameters"]["lora-r"] == "8" and job["HyperParameters"]["packing"] == "true"
    assert job["HyperParameters"]["base-model"] == "Qwen/Qwen2.5-3B-Instruct"
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]}
    assert channels["train"] == f"s3://{BUCKET}/{PREFIX}/data/train.jsonl"
    assert channels["validation"] == f"s3://{BUCKET}/{PREFIX}/data/validation.jsonl"
    assert "test" not in channels
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"]["MaxWaitTimeInSeconds"] >= job["StoppingCondition"]["MaxRuntimeInSeconds"]
    assert job["CheckpointConfig"]["S3Uri"].startswith(f"s3://{BUCKET}/")
    assert job["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"
    # the token travels as a secret reference, never as a value
    request = json.loads(sent["CreateTrainingJob"])
    assert request["Environment"]["HF_TOKEN_SECRET_ID"].startswith("arn:aws:secretsmanager:")
    assert {m["Name"] for m in request["AlgorithmSpecification"]["MetricDefinitions"]} >= {"eval_loss", "eval_macro_f1"}
    everything = json.dumps(request) + json.dumps(job, default=str) + out.out + out.err + record_path.read_text()
    assert SECRET_VALUE not in everything
    tags = {t["Key"]: t["Value"] for t in boto3.client("sagemaker").list_tags(ResourceArn=job["TrainingJobArn"])["Tags"]}
    assert tags["owner"] == "ml" and tags["component"] == "stage2-qlora" and tags["dataset-version"] == "v-test"
    # the code the job runs was uploaded: the entry point and the shared prompt module
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="algospeak/training/")
            .get("Contents", [])]
    assert any(k.endswith("training/train_script.py") for k in keys) and any(k.endswith("core/prompt.py") for k in keys)
    # and MLflow has the run, with the job and where its model will be
    mlflow.set_tracking_uri(mlflow_uri)
    run = mlflow.get_run(record["mlflow_run_id"])
    assert run.data.tags["job_name"] == record["job_name"]
    assert run.data.tags["model_artifact_uri"] == record["model_artifact_uri"]
    assert run.data.params["hp.lora-r"] == "8"


def test_wait_streams_status_until_the_job_ends(aws, tmp_path, capsys, monkeypatch):
    import boto3

    from core import records

    wait = model_training.wait_for_job

    def wait_and_write_the_model(sm, job_name, *args, **kwargs):  # what the container does before Completed
        job = wait(sm, job_name, *args, **kwargs)
        key = f"algospeak/training/output/{job_name}/output/model.tar.gz"
        boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"model")
        return job

    monkeypatch.setattr(model_training, "wait_for_job", wait_and_write_the_model)
    record_path = tmp_path / "job.json"
    assert launch(aws, record_path, "--wait", "--no-spot", "--no-checkpoints") == 0
    err = capsys.readouterr().err
    record = json.loads(record_path.read_text())
    assert record["status"] == "Completed"
    assert f"{record['job_name']}: Completed" in err
    step = records.read("train")  # the record the evaluation and deployment steps read
    assert step["outputs"]["job_record"] == str(record_path) and step["outputs"]["status"] == "Completed"
    assert step["outputs"]["model_artifact_uri"] == record["model_artifact_uri"]


def test_a_completed_job_without_its_model_is_not_recorded_completed(aws, tmp_path, capsys):
    from core import records

    record_path = tmp_path / "job.json"
    assert launch(aws, record_path, "--wait", "--no-spot", "--no-checkpoints") == 1
    err = capsys.readouterr().err
    assert "says Completed but the model artifact" in err and "Traceback" not in err
    assert json.loads(record_path.read_text())["status"] == "Failed"
    assert not records.record_path("train").exists()  # nothing for the next step to pick up


@pytest.mark.parametrize("drop, message", [
    ("--role", "no SageMaker execution role"),
    ("--bucket", "no S3 bucket"),
    ("--manifest", "no dataset manifest"),
])
def test_missing_settings_are_one_line_errors(aws, tmp_path, capsys, drop, message):
    argv = {"--manifest": aws, "--role": ROLE, "--bucket": BUCKET}
    argv.pop(drop)
    code = model_training.main([x for kv in argv.items() for x in kv] + ["--record", str(tmp_path / "r.json"),
                                                                          "--skip-role-validation"])
    err = capsys.readouterr().err
    assert code == 1 and message in err and err.count("\n") == 1
    assert not (tmp_path / "r.json").exists()


def test_bad_inputs_are_one_line_errors(aws, tmp_path, capsys, monkeypatch):
    record = tmp_path / "r.json"
    assert launch(f"s3://{BUCKET}/{PREFIX}/nope/manifest.json", record) == 1
    assert "manifest" in capsys.readouterr().err
    assert model_training.main(["--manifest", aws, "--role", ROLE, "--bucket", "no-such-bucket",
                                "--record", str(record)]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert launch(aws, record, "--hf-token-secret", "missing-secret") == 1
    assert "missing-secret not found" in capsys.readouterr().err
    assert launch(aws, record, "-H", "no-such-option=1") == 1
    assert "--no-such-option" in capsys.readouterr().err
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert launch(aws, record) == 1
    assert "no AWS credentials" in capsys.readouterr().err
    assert not record.exists()


def test_local_mode_runs_the_entry_point_in_process(aws, tmp_path, tiny_qwen_dir, capsys, mlflow_uri):
    """--local reads the same manifest (from moto), trains here, and records the local model dir."""
    record_path = tmp_path / "job.json"
    model_dir = tmp_path / "model"
    code = model_training.main([
        "--local", "--manifest", aws, "--record", str(record_path), "--model-dir", str(model_dir),
        "--base-model", str(tiny_qwen_dir), "--epochs", "1", "--max-length", "192", "--batch-size", "4",
        "--gradient-accumulation-steps", "1", "-H", "max-steps=1", "-H", "max-eval-samples=4"])
    assert code == 0, capsys.readouterr().err
    record = json.loads(record_path.read_text())
    assert record["status"] == "Completed" and record["model_artifact_uri"] == str(model_dir.resolve())
    assert record["base_model"] == str(tiny_qwen_dir) and record["mlflow_run_id"]
    assert (model_dir / "adapter_model.safetensors").is_file() and (model_dir / "labels.json").is_file()
    assert json.loads((model_dir / "training_config.json").read_text())["global_step"] == 1
    import mlflow

    mlflow.set_tracking_uri(mlflow_uri)
    run = mlflow.get_run(record["mlflow_run_id"])
    assert "eval_loss" in run.data.metrics and run.data.tags["model_artifact_uri"] == str(model_dir.resolve())


def test_default_image_is_the_hugging_face_training_container():
    uri = model_training.default_image_uri("eu-west-1", "ml.g4dn.xlarge")
    assert uri.startswith("763104351884.dkr.ecr.eu-west-1.amazonaws.com/huggingface-pytorch-training:")
    assert "transformers5.3.0" in uri and "gpu" in uri


def test_an_image_outside_the_sdk_table_comes_from_the_regions_registry(monkeypatch, capsys):
    """The documented image when the SDK lacks the version: in the registry of the region (not always
    763104351884), said in a warning; a region without any Hugging Face image is a one-line error."""
    from sagemaker.core import image_uris

    from deployment.policies import ecr_account

    def no_such_version(*args, **kwargs):
        raise ValueError("unsupported version")

    monkeypatch.setattr(image_uris, "retrieve", no_such_version)
    uri = model_training.default_image_uri("ap-east-1", "ml.g4dn.xlarge")
    assert uri.startswith(f"{ecr_account('ap-east-1')}.dkr.ecr.ap-east-1.amazonaws.com/") and "763104351884" not in uri
    assert "warning: the SageMaker SDK has no" in capsys.readouterr().err
    with pytest.raises(model_training.ModelTrainingError, match="no Hugging Face training image in region"):
        model_training.default_image_uri("xx-nowhere-1", "ml.g4dn.xlarge")


def test_the_staged_job_code_imports_on_its_own(tmp_path):
    """The job gets only SOURCE_FILES: train_script and everything of ours it imports (training/metrics.py, for
    the shared macro-F1) must be among them, and the extra requirements cover what those import. The
    evaluation's report, plot and MLflow code (training/model_evaluation.py) is not shipped."""
    import subprocess
    import sys

    src = model_training.stage_source(tmp_path / "src")
    script = ("import sys; sys.path.insert(0, '.'); import training.train_script as t; "
              "print('\\n'.join(m.__file__ for n, m in sys.modules.items() "
              "if n.split('.')[0] in ('core', 'training', 'normalizer', 'classifiers', 'data')))")
    out = subprocess.run([sys.executable, "-c", script], cwd=src, capture_output=True, text=True, check=True).stdout
    files = out.split()
    assert files and all(f.startswith(str(src)) for f in files), files
    assert not (src / "training" / "model_evaluation.py").exists()
    assert not any(f.endswith(("model_evaluation.py", "tracking.py", "robustness.py")) for f in files), files
    requirements = (src / "requirements.txt").read_text()
    assert "pydantic-settings" in requirements and "peft" in requirements
    # Imports inside functions too (the progress callback imports core.progress when training starts): every
    # project module train_script can reach, read from the source, is staged.
    from core.settings import ROOT
    from tests.imports import closure, import_graph, module_file

    graph = import_graph(ROOT)
    needed = {module_file(m, ROOT) for m in closure(graph, "training.train_script")}
    assert "core/progress.py" in needed
    assert sorted(rel for rel in needed if not (src / rel).is_file()) == []


def test_checkpoint_options_pass_as_hyperparameters():
    args = model_training.build_parser().parse_args(
        ["-H", "overwrite-checkpoints=true", "-H", "no-resume=true", "--no-merge"])
    hp = model_training.hyperparameters(args)
    assert hp["overwrite-checkpoints"] == "true" and hp["no-resume"] == "true"


# --------------------------------------------------------------------------------------------- the role check


def _role_with(policy: dict, trusted: str = "sagemaker.amazonaws.com", name: str = "SageMakerTraining") -> str:
    """The role in moto with `policy` inline (the test fixture's role is replaced)."""
    import boto3

    iam = boto3.client("iam")
    try:
        for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
        iam.delete_role(RoleName=name)
    except iam.exceptions.NoSuchEntityException:
        pass
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": trusted}}]}))
    iam.put_role_policy(RoleName=name, PolicyName="training", PolicyDocument=json.dumps(policy))
    return f"arn:aws:iam::123456789012:role/{name}"


def _training_policy(**extra):
    from deployment.policies import ecr_account, render

    return render("training", {"ACCOUNT": "123456789012", "REGION": "us-east-1", "BUCKET": BUCKET,
                               "PREFIX": "algospeak", "ECR_ACCOUNT": ecr_account("us-east-1"), **extra})


def test_the_shipped_training_policy_passes_the_sdk_role_check(aws, iam_simulator, tmp_path, capsys):
    """No --skip-role-validation: the SDK simulates its EC2, ECR and CloudWatch actions on the role holding
    deployment/iam/training_role_policy.json, and the job is created."""
    role = _role_with(_training_policy(HF_TOKEN_SECRET="hf-token"))
    record = tmp_path / "job.json"
    code = model_training.main(["--manifest", aws, "--role", role, "--bucket", BUCKET, "--record", str(record),
                                "--no-wait"])
    err = capsys.readouterr().err
    # the job is created; moto then "completes" it at once without a model, which the launcher refuses (exit 1)
    assert "created training job" in err and "says Completed but the model artifact" in err, err
    assert code == 1 and "role" not in err.lower().replace("--role", ""), err
    assert iam_simulator, "the SDK did not check the role"
    gate = [c for c in iam_simulator if not c["resources"]]  # the role check (no ResourceArns)
    checked = {r["EvalActionName"]: r["EvalDecision"] for c in gate for r in c["results"]}
    assert {"ec2:CreateNetworkInterface", "cloudwatch:PutMetricData", "ecr:GetAuthorizationToken"} <= set(checked)
    assert set(checked.values()) == {"allowed"}, checked
    # the SDK stages the job's code where the role may write (else under the output path), and the role may
    # read every object the job is given: the code and both dataset channels
    from tests.plugins.aws import simulate

    import boto3

    job = boto3.client("sagemaker").describe_training_job(TrainingJobName=json.loads(record.read_text())["job_name"])
    uris = [c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]]
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]]
    objects = [f"arn:aws:s3:::{BUCKET}/{k}" for u in uris for k in keys if f"s3://{BUCKET}/{k}".startswith(u)]
    assert len(objects) >= 3, (uris, keys)
    policy = _training_policy(HF_TOKEN_SECRET="hf-token")
    assert {r["EvalDecision"] for r in simulate([policy], ["s3:GetObject"], objects)} == {"allowed"}, objects


def test_a_role_the_sdk_refuses_is_a_one_line_error(aws, iam_simulator, tmp_path, capsys):
    """The policy as it was (no EC2 actions; PutMetricData under a namespace condition the simulator cannot
    satisfy): the SDK's RoleValidationError becomes one line naming what is missing, and no job is created."""
    import boto3

    old = _training_policy()
    old["Statement"] = [s for s in old["Statement"] if not any(a.startswith("ec2:") for a in s["Action"])]
    for statement in old["Statement"]:
        if statement["Action"] == ["cloudwatch:PutMetricData"]:
            statement["Condition"] = {"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/TrainingJobs"]}}
    role = _role_with(old)
    code = model_training.main(["--manifest", aws, "--role", role, "--bucket", BUCKET,
                                "--record", str(tmp_path / "r.json"), "--no-wait"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "refused the training role" in err and "ec2:CreateNetworkInterface" in err
    assert "cloudwatch:PutMetricData" in err and "training_role_policy.json" in err
    assert boto3.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []
    # a role SageMaker may not assume is refused the same way
    role = _role_with(_training_policy(), trusted="ec2.amazonaws.com")
    assert model_training.main(["--manifest", aws, "--role", role, "--bucket", BUCKET,
                                "--record", str(tmp_path / "r.json"), "--no-wait"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trust policy" in err


def test_max_wait_shorter_than_max_run_is_refused_before_anything_is_created(aws, tmp_path, capsys):
    assert launch(aws, tmp_path / "r.json", "--max-run", "7200", "--max-wait", "3600") == 1
    err = capsys.readouterr().err
    assert "--max-wait 3600 is shorter than --max-run 7200" in err and err.count("\n") == 1


def test_the_job_installs_the_tested_peft_and_bitsandbytes(tmp_path):
    from importlib.metadata import version

    requirements = model_training.stage_source(tmp_path / "src").joinpath("requirements.txt").read_text().split()
    assert f"peft=={version('peft')}" in requirements
    assert f"bitsandbytes=={version('bitsandbytes')}" in requirements
