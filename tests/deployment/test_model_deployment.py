"""deployment/model_deployment.py end to end against moto_server: gate, artifact from a training job record in
S3, adapter merge, packaging, upload, model, endpoint config with data capture, alarms, endpoint, autoscaling,
smoke test; then schedule, batch transform and delete. The packaged archive is loaded by its own
code/inference.py in a separate interpreter that cannot see this repository."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import urllib.request

import boto3
import pytest
from botocore.stub import Stubber

from core.labels import LABELS
from deployment import model_deployment as md

ROLE = "arn:aws:iam::123456789012:role/algospeak-sagemaker-execution"
BUCKET = "algospeak-test"
ENDPOINT = "algospeak-stage2"


def seed_runtime_answers(moto_url: str, count: int, texts: int) -> None:
    """moto's sagemaker-runtime answers from a queue we fill (its documented test API)."""
    body = {"labels": list(LABELS), "model_version": "moto", "predictions": [
        {"label": "safe", "scores": dict(zip(LABELS, [0.4, 0.3, 0.2, 0.1])), "label_mass": 0.9}] * texts}
    results = [{"Body": json.dumps(body), "ContentType": "application/json", "InvokedProductionVariant": "AllTraffic",
                "CustomAttributes": ""}] * count
    request = urllib.request.Request(f"{moto_url}/moto-api/static/sagemaker/endpoint-results",
                                     data=json.dumps({"results": results}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()


@pytest.fixture
def staged(aws_env, tmp_path, adapter_dir, tiny_qwen_dir):
    """A bucket, the adapter uploaded as a training job's model.tar.gz, its record, a passing gate, a load test."""
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=aws_env)
    s3.create_bucket(Bucket=BUCKET)
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        for path in adapter_dir.iterdir():
            tar.add(path, arcname=path.name)
    s3.upload_file(str(archive), BUCKET, "algospeak/training/job-1/output/model.tar.gz")
    record = tmp_path / "training_job.json"
    record.write_text(json.dumps({"job_name": "job-1", "status": "Completed", "base_model": "Qwen/Qwen2.5-3B-Instruct",
                                  "model_artifact_uri": f"s3://{BUCKET}/algospeak/training/job-1/output/model.tar.gz",
                                  "hyperparameters": {}, "region": "us-east-1", "image_uri": "x", "created_at": "",
                                  "mlflow_run_id": None}))
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps({"passed": True, "reasons": [], "candidate": {}, "baseline": {}}))
    load = tmp_path / "load.json"
    load.write_text(json.dumps({"max_sustainable_invocations_per_minute_per_instance": 1000}))
    return {"moto": aws_env, "record": record, "gate": gate, "load": load, "tmp": tmp_path, "base": str(tiny_qwen_dir)}


def deploy_args(staged, *extra: str) -> list[str]:
    return ["deploy", "--endpoint-name", ENDPOINT, "--training-job", str(staged["record"]), "--gate",
            str(staged["gate"]), "--base-model", staged["base"], "--role-arn", ROLE, "--bucket", BUCKET,
            "--load-test", str(staged["load"]), "--poll-seconds", "0.1", "--record",
            str(staged["tmp"] / "deployment.json"), *extra]


def test_deploy_end_to_end_against_moto(staged, capsys):
    moto = staged["moto"]
    seed_runtime_answers(moto, 1, len(md.SMOKE_TEXTS))
    assert md.main(deploy_args(staged)) == 0  # image URI from the SageMaker SDK v3
    record = json.loads((staged["tmp"] / "deployment.json").read_text())
    assert record["action"] == "create" and record["gate"] == "passed" and record["training_job"] == "job-1"
    assert len(record["smoke_test"]) == len(md.SMOKE_TEXTS)

    sm = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=moto)
    endpoint = sm.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variant = config["ProductionVariants"][0]
    assert variant["InstanceType"] == "ml.g4dn.xlarge" and variant["InitialInstanceCount"] == 1
    assert config["DataCaptureConfig"]["EnableCapture"] is True
    assert config["DataCaptureConfig"]["DestinationS3Uri"] == f"s3://{BUCKET}/algospeak/data-capture"
    model = sm.describe_model(ModelName=variant["ModelName"])
    container = model["PrimaryContainer"]
    assert "huggingface-pytorch-inference" in container["Image"] and "gpu" in container["Image"]
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["ModelDataUrl"] == record["model_data_url"]
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=model["ModelArn"])["Tags"]}
    assert tags["gate"] == "passed"

    aas = boto3.client("application-autoscaling", region_name="us-east-1", endpoint_url=moto)
    target = aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"][0]
    assert target["ResourceId"] == f"endpoint/{ENDPOINT}/variant/AllTraffic"
    policy = aas.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"][0]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 700.0  # the load test's 1000/min/instance x the 0.7 safety factor
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=moto)
    assert {a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"]} == set(record["alarms"])

    # The uploaded archive: model at the root, code/ beside it, and it loads with its own code only.
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto)
    bucket, key = md._split_s3(record["model_data_url"])
    archive = staged["tmp"] / "uploaded.tar.gz"
    s3.download_file(bucket, key, str(archive))
    unpacked = staged["tmp"] / "unpacked"
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        tar.extractall(unpacked, filter="data")
    assert {"config.json", "model.safetensors", "labels.json", "tokenizer.json", "code/inference.py",
            "code/core/prompt.py", "code/classifiers/base.py"} <= names
    assert not any(n.startswith("adapter_") for n in names)  # merged, no PEFT needed in the container
    script = ("import json, sys; sys.path.insert(0, 'code'); import inference; "
              "m = inference.model_fn('.'); "
              "out = inference.output_fn(inference.predict_fn(inference.input_fn(json.dumps({'inputs': ['a', 'b']}), "
              "'application/json'), m), 'application/json'); print(out.decode())")
    run = subprocess.run([sys.executable, "-I", "-c", script], cwd=unpacked, capture_output=True, text=True, check=False,
                         timeout=120, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr[-2000:]
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(answer["predictions"]) == 2 and answer["predictions"][0]["scores"].keys() == set(LABELS)

    # Operations on the deployed endpoint.
    assert md.main(["schedule", "--endpoint-name", ENDPOINT, "--name", "weekday-peak",
                    "--cron", "cron(0 7 ? * MON-FRI *)", "--min", "2", "--max", "6"]) == 0
    action = aas.describe_scheduled_actions(ServiceNamespace="sagemaker")["ScheduledActions"][0]
    assert action["ScalableTargetAction"] == {"MinCapacity": 2, "MaxCapacity": 6}
    assert md.main(["batch-transform", "--model-name", variant["ModelName"], "--input", f"s3://{BUCKET}/algospeak/backfill/in/",
                    "--output", f"s3://{BUCKET}/algospeak/backfill/out/", "--job-name", "backfill-1"]) == 0
    job = sm.describe_transform_job(TransformJobName="backfill-1")
    assert job["ModelName"] == variant["ModelName"] and job["TransformInput"]["SplitType"] == "Line"
    assert md.main(["delete", "--endpoint-name", ENDPOINT, "--all"]) == 0
    assert not md.endpoint_exists(sm, ENDPOINT)
    assert sm.list_endpoint_configs()["EndpointConfigs"] == [] and sm.list_models()["Models"] == []
    assert cloudwatch.describe_alarms()["MetricAlarms"] == []


@pytest.mark.parametrize("gate", [None, {"passed": False, "reasons": ["macro F1 0.41 < 0.60"]}])
def test_no_passing_gate_no_deployment(staged, gate, capsys):
    args = deploy_args(staged)
    if gate is None:
        index = args.index("--gate")
        del args[index : index + 2]
    else:
        staged["gate"].write_text(json.dumps(gate))
    assert md.main(args) == 1
    assert "Refusing to deploy" in capsys.readouterr().err
    sm = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=staged["moto"])
    assert sm.list_models()["Models"] == []


def test_forced_deployment_is_loud_and_tagged(staged, capsys):
    staged["gate"].write_text(json.dumps({"passed": False, "reasons": ["ECE 0.2 > 0.1"]}))
    assert md.main(deploy_args(staged, "--force", "--skip-smoke-test", "--image-uri", "example/image:1")) == 0
    assert "FORCED DEPLOYMENT" in capsys.readouterr().err
    record = json.loads((staged["tmp"] / "deployment.json").read_text())
    assert record["gate"] == "forced" and "ECE" in record["gate_reasons"][0]
    sm = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=staged["moto"])
    arn = sm.describe_model(ModelName=record["model_name"])["ModelArn"]
    assert {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}["gate"] == "forced"


def test_no_load_test_no_guessing(staged, capsys):
    args = deploy_args(staged)
    args[args.index("--load-test") + 1] = str(staged["tmp"] / "absent.json")
    assert md.main(args) == 1
    assert "--target-invocations" in capsys.readouterr().err


def test_update_is_blue_green_with_alarm_rollback():
    """moto has no UpdateEndpoint, so the update call is checked against the service model (Stubber validates
    the parameters' shapes) and the rollback detection against a described endpoint on the old config."""
    sm = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    config = md.blue_green_config(["a-5xx", "a-latency"])
    with Stubber(sm) as stub:
        stub.add_response("update_endpoint", {"EndpointArn": "arn:aws:sagemaker:us-east-1:1:endpoint/a"},
                          {"EndpointName": "a", "EndpointConfigName": "new", "DeploymentConfig": config})
        sm.update_endpoint(EndpointName="a", EndpointConfigName="new", DeploymentConfig=config)
        stub.add_response("describe_endpoint", {"EndpointName": "a", "EndpointArn": "arn:aws:sagemaker:us-east-1:1:endpoint/a", "EndpointConfigName": "old",
                                                "EndpointStatus": "InService", "CreationTime": "2026-01-01",
                                                "LastModifiedTime": "2026-01-01"})
        with pytest.raises(md.DeploymentError, match="rolled back"):
            md.wait_in_service(sm, "a", "new", poll_s=0)
    assert config["AutoRollbackConfiguration"]["Alarms"] == [{"AlarmName": "a-5xx"}, {"AlarmName": "a-latency"}]
    assert config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "CANARY"


def test_execution_role_policy_is_least_privilege():
    root = md.ROOT / "deployment" / "iam"
    policy = json.loads((root / "execution_role_policy.json").read_text())
    trust = json.loads((root / "execution_role_trust_policy.json").read_text())
    assert trust["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert statement["Effect"] == "Allow"
        assert not any(a == "*" or a.endswith(":*") for a in actions), statement
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if "*" in resources:  # only actions that have no resource-level permissions, or are conditioned
            assert actions == ["ecr:GetAuthorizationToken"] or "Condition" in statement, statement
    assert not any(a.startswith("iam:") for s in policy["Statement"] for a in s["Action"])
