"""deployment/model_deployment.py end to end against moto_server: gate, artifact from a training job record in
S3, adapter merge, packaging, upload, model, endpoint config with data capture, alarms, endpoint, autoscaling,
smoke test; then schedule, batch transform and delete. The packaged archive is loaded by its own
code/inference.py in a separate interpreter that cannot see this repository."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tarfile
import urllib.request

import boto3
import pytest
import regex
from botocore.stub import Stubber

from core.labels import LABELS
from deployment import model_deployment as md

ROLE = "arn:aws:iam::123456789012:role/algospeak-sagemaker-execution"
BUCKET = "algospeak-test"
ENDPOINT = "algospeak-stage2"
# What SageMaker accepts in a tag key or value (moto accepts anything, AWS does not).
TAG_PATTERN = regex.compile(r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*")
SAFE = [0.7, 0.2, 0.06, 0.04]
HARMFUL = [0.1, 0.2, 0.4, 0.3]
UNIFORM = [0.25, 0.25, 0.25, 0.25]  # what a random model answers, near enough


def answer_body(texts: list[str], harmful_probe: list[float] = HARMFUL, safe: list[float] = SAFE, **extra) -> dict:
    """An endpoint answer: `safe` scores for the safe probes (and any other text), `harmful_probe` for the
    harmful ones (core/probes.py)."""
    from core import probes

    harmful = {p.text for p in probes.PROBES if p.expect == probes.HARMFUL}
    return {"labels": list(LABELS), "model_version": "moto", "predictions": [
        {"label": "x", "scores": dict(zip(LABELS, harmful_probe if text in harmful else safe)),
         "label_mass": 0.9, **extra} for text in texts]}


def seed_runtime_answers(moto_url: str, count: int, texts: int, body: dict | None = None) -> None:
    """moto's sagemaker-runtime answers from a queue we fill (its documented test API)."""
    body = body or answer_body(md.SMOKE_TEXTS[:texts])
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
    from deployment.inference import _artifact_version  # = LabelScorer.version, what the evaluation records

    candidate = {"backend": "transformers", "version": _artifact_version(adapter_dir), "macro_f1": 0.7}
    gate.write_text(json.dumps({"passed": True, "reasons": [], "candidate": candidate, "baseline": {}}))
    load = tmp_path / "load.json"
    load.write_text(json.dumps({"max_sustainable_invocations_per_minute_per_instance": 1000}))
    return {"moto": aws_env, "record": record, "gate": gate, "load": load, "tmp": tmp_path, "base": str(tiny_qwen_dir),
            "candidate": candidate}


@pytest.fixture
def sent(monkeypatch):
    """Every SageMaker request's parameters, as sent: [(operation, params), ...]."""
    calls: list[tuple[str, dict]] = []
    original = md.aws_clients

    def clients(*args, **kwargs):
        made = original(*args, **kwargs)
        made["sagemaker"].meta.events.register(
            "provide-client-params.sagemaker.*",
            lambda params, model, **_: calls.append((model.name, json.loads(json.dumps(params, default=str)))))
        return made

    monkeypatch.setattr(md, "aws_clients", clients)
    return calls


def deploy_args(staged, *extra: str) -> list[str]:
    return ["deploy", "--endpoint-name", ENDPOINT, "--training-job", str(staged["record"]), "--gate",
            str(staged["gate"]), "--base-model", staged["base"], "--role-arn", ROLE, "--bucket", BUCKET,
            "--load-test", str(staged["load"]), "--poll-seconds", "0.1", "--record",
            str(staged["tmp"] / "deployment.json"), *extra]


def test_deploy_end_to_end_against_moto(staged, sent, capsys):
    moto = staged["moto"]
    seed_runtime_answers(moto, 1, len(md.SMOKE_TEXTS))
    assert md.main(deploy_args(staged)) == 0  # image URI from the SageMaker SDK v3
    record = json.loads((staged["tmp"] / "deployment.json").read_text())
    assert record["action"] == "create" and record["gate"] == "passed" and record["training_job"] == "job-1"
    assert record["artifact_version"] == staged["candidate"]["version"]
    # what the container will report: the inference core's version of the unpacked archive (checked below)
    served = record["served_version"]
    assert len(record["smoke_test"]) == len(md.SMOKE_TEXTS)
    assert all(item["label_mass"] == 0.9 for item in record["smoke_test"])

    # Data capture: the answers only, by default (the requests hold raw user text).
    capture = next(params for op, params in sent if op == "CreateEndpointConfig")["DataCaptureConfig"]
    assert capture["CaptureOptions"] == [{"CaptureMode": "Output"}] and "KmsKeyId" not in capture

    sm = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=moto)
    endpoint = sm.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variant = config["ProductionVariants"][0]
    assert variant["InstanceType"] == "ml.g4dn.xlarge" and variant["InitialInstanceCount"] == 1
    assert config["DataCaptureConfig"]["EnableCapture"] is True
    assert config["DataCaptureConfig"]["DestinationS3Uri"] == f"s3://{BUCKET}/algospeak/data-capture"
    assert config["DataCaptureConfig"]["CaptureOptions"] == [{"CaptureMode": "Output"}]
    model = sm.describe_model(ModelName=variant["ModelName"])
    container = model["PrimaryContainer"]
    assert "huggingface-pytorch-inference" in container["Image"] and "gpu" in container["Image"]
    assert "-transformers5." in container["Image"]  # the major training uses: 4.x cannot read its artifacts
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["ModelDataUrl"] == record["model_data_url"]
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=model["ModelArn"])["Tags"]}
    assert tags["gate"] == "passed" and tags["labels"] == "/".join(LABELS)

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
    assert answer["model_version"] == served == md.artifact_version(unpacked)

    # Operations on the deployed endpoint.
    assert md.main(["schedule", "--endpoint-name", ENDPOINT, "--name", "weekday-peak",
                    "--cron", "cron(0 7 ? * MON-FRI *)", "--min", "2", "--max", "6"]) == 0
    action = aas.describe_scheduled_actions(ServiceNamespace="sagemaker")["ScheduledActions"][0]
    assert action["ScalableTargetAction"] == {"MinCapacity": 2, "MaxCapacity": 6}
    assert md.main(["batch-transform", "--model-name", variant["ModelName"], "--input", f"s3://{BUCKET}/algospeak/backfill/in/",
                    "--output", f"s3://{BUCKET}/algospeak/backfill/out/", "--job-name", "backfill-1"]) == 0
    job = sm.describe_transform_job(TransformJobName="backfill-1")
    assert job["ModelName"] == variant["ModelName"] and job["TransformInput"]["SplitType"] == "Line"

    # Every tag sent is one real SageMaker accepts (moto accepts anything).
    assert {op for op, params in sent if "Tags" in params} >= {"CreateModel", "CreateEndpointConfig", "CreateEndpoint",
                                                               "CreateTransformJob"}
    for tags in [params["Tags"] for _, params in sent if "Tags" in params]:
        for tag in tags:
            assert TAG_PATTERN.fullmatch(tag["Key"]) and 1 <= len(tag["Key"]) <= 128, tag
            assert TAG_PATTERN.fullmatch(tag["Value"]) and len(tag["Value"]) <= 256, tag
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


@pytest.mark.parametrize("candidate,expected", [
    ({"backend": "transformers", "version": "0123456789ab"}, "0123456789ab"),  # another model's gate
    ({}, "None"),                                                              # a gate that names no model
    ({"backend": "embedded", "version": "46f08aa68068"}, "embedded model"),    # the offline model's gate
])
def test_a_gate_for_another_model_does_not_deploy_this_one(staged, candidate, expected, capsys):
    staged["gate"].write_text(json.dumps({"passed": True, "reasons": [], "candidate": candidate}))
    assert md.main(deploy_args(staged)) == 1
    err = capsys.readouterr().err
    assert "Refusing to deploy" in err and expected in err
    if candidate.get("backend") == "transformers":  # names both versions
        assert staged["candidate"]["version"] in err
    sm = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=staged["moto"])
    assert sm.list_models()["Models"] == []


def test_a_gate_for_another_model_can_be_forced_loudly(staged, capsys):
    staged["gate"].write_text(json.dumps({"passed": True, "reasons": [],
                                          "candidate": {"backend": "transformers", "version": "0123456789ab"}}))
    assert md.main(deploy_args(staged, "--force", "--skip-smoke-test", "--image-uri", "example/image:1")) == 0
    err = capsys.readouterr().err
    assert "FORCED DEPLOYMENT" in err and "0123456789ab" in err and staged["candidate"]["version"] in err
    record = json.loads((staged["tmp"] / "deployment.json").read_text())
    assert record["gate"] == "forced" and "0123456789ab" in record["gate_reasons"][0]
    sm = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=staged["moto"])
    arn = sm.describe_model(ModelName=record["model_name"])["ModelArn"]
    assert {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}["gate"] == "forced"


def test_check_gate_names_both_versions(tmp_path):
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps({"passed": True, "candidate": {"backend": "transformers", "version": "aaaaaaaaaaaa"}}))
    assert md.check_gate(gate, artifact_version="aaaaaaaaaaaa")["status"] == "passed"
    with pytest.raises(md.DeploymentError, match="aaaaaaaaaaaa.*bbbbbbbbbbbb"):
        md.check_gate(gate, artifact_version="bbbbbbbbbbbb")
    assert md.check_gate(gate, force=True, artifact_version="bbbbbbbbbbbb")["status"] == "forced"


def test_capture_input_only_when_asked_and_with_a_kms_key(staged, sent, capsys):
    args = deploy_args(staged, "--skip-smoke-test", "--image-uri", "example/image:1", "--capture-input",
                       "--capture-kms-key", "alias/algospeak-capture", "--capture-percent", "20")
    assert md.main(args) == 0
    capture = next(params for op, params in sent if op == "CreateEndpointConfig")["DataCaptureConfig"]
    assert capture["CaptureOptions"] == [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]
    assert capture["KmsKeyId"] == "alias/algospeak-capture" and capture["InitialSamplingPercentage"] == 20
    help_text = md.build_parser()._subparsers._group_actions[0].choices["deploy"].format_help()
    assert "RAW USER TEXT" in help_text


def test_tag_values_are_what_sagemaker_accepts():
    tags = md._tags({"source": "/home/me/runs, v2/model (final)~.tar.gz", "labels": "/".join(LABELS),
                     "bad key, really": "x" * 400, "unicode": "modèle ✓ 2"})
    for tag in tags:
        assert TAG_PATTERN.fullmatch(tag["Key"]) and len(tag["Key"]) <= 128
        assert TAG_PATTERN.fullmatch(tag["Value"]) and len(tag["Value"]) <= 256
    values = {t["Key"]: t["Value"] for t in tags}
    assert values["source"] == "/home/me/runs_ v2/model _final__.tar.gz"
    assert values["labels"] == "safe/potentially_harmful/harmful/extremely_harmful"
    assert values["bad key_ really"] == "x" * 256 and values["unicode"] == "modèle _ 2"


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


@pytest.mark.parametrize("instances,routing", [
    (1, {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300}),  # no canary can be <= 50% of one instance
    (2, {"Type": "CANARY", "WaitIntervalInSeconds": 300, "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}}),
    (5, {"Type": "CANARY", "WaitIntervalInSeconds": 300, "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}}),
])
def test_update_is_blue_green_with_alarm_rollback(instances, routing):
    """moto has no UpdateEndpoint, so the update call is checked against the service model (Stubber validates
    the parameters' shapes) and the rollback detection against a described endpoint on the old config."""
    sm = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    config = md.blue_green_config(["a-5xx", "a-latency"], instances)
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
    assert config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == routing


@pytest.mark.parametrize("running,new,expected", [(1, 1, 1), (3, 1, 1), (3, 4, 3), (None, 2, 2)])
def test_the_canary_is_sized_from_the_fleet(running, new, expected):
    sm = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    variants = {} if running is None else {"ProductionVariants": [{"VariantName": "AllTraffic", "CurrentWeight": 1.0,
                                                                   "CurrentInstanceCount": running}]}
    with Stubber(sm) as stub:
        stub.add_response("describe_endpoint", {"EndpointName": "a", "EndpointArn": "arn:aws:sagemaker:us-east-1:1:endpoint/a",
                                                "EndpointConfigName": "old", "EndpointStatus": "InService",
                                                "CreationTime": "2026-01-01", "LastModifiedTime": "2026-01-01",
                                                **variants})
        assert md.fleet_size(sm, "a", new) == expected


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


@pytest.mark.parametrize("body,flags,error", [
    (answer_body(md.SMOKE_TEXTS, harmful_probe=SAFE), [], "P(harmful_or_worse)"),   # says "safe" to everything
    (answer_body(md.SMOKE_TEXTS, safe=HARMFUL), [], "P(safe)"),                      # says "harmful" to everything
    (answer_body(md.SMOKE_TEXTS, UNIFORM, UNIFORM), [], "labelled probe"),           # a random model
    (answer_body(md.SMOKE_TEXTS, label_mass=3e-5), [], "label_mass 3e-05 < 0.5"),    # an untrained model
    (answer_body(md.SMOKE_TEXTS, harmful_probe=SAFE), ["--no-expect-harmful"], None),  # ... when that is expected
    (answer_body(md.SMOKE_TEXTS, label_mass=None), [], "label_mass"),            # not our inference code
    (answer_body(md.SMOKE_TEXTS, label_mass=float("nan")), [], "label_mass"),
    (answer_body(md.SMOKE_TEXTS), [], None),                                      # a tuned model's answer
])
def test_smoke_test_checks_label_mass_sums_and_the_labelled_probes(aws_env, capsys, body, flags, error):
    """Through moto's runtime (one seeded answer per test: moto answers every later call the same)."""
    seed_runtime_answers(aws_env, 1, len(md.SMOKE_TEXTS), body)
    code = md.main(["smoke-test", "--endpoint-name", ENDPOINT, *flags])
    captured = capsys.readouterr()
    if error:
        assert code == 1 and error in captured.err
    else:
        assert code == 0
        assert [item["text"] for item in json.loads(captured.out)["predictions"]] == md.SMOKE_TEXTS


@pytest.mark.parametrize("change,message", [
    ({"label_mass": float("nan")}, "label_mass"),
    ({"label_mass": "0.9"}, "label_mass"),
    ({"label_mass": 1.5}, "label_mass"),
    ({"scores": dict(zip(LABELS, [0.5, 0.5, 0.5, 0.5]))}, "summing to 1"),
    ({"scores": dict(zip(LABELS, [float("inf"), 0, 0, 0]))}, "summing to 1"),
    ({"scores": {"safe": 1.0}}, "labels"),
])
def test_check_smoke_answer_refuses_what_a_serving_model_would_not_answer(change, message):
    answer = answer_body(md.SMOKE_TEXTS)
    assert len(md.check_smoke_answer(answer, md.SMOKE_TEXTS)) == len(md.SMOKE_TEXTS)
    answer["predictions"][0].update(change)
    with pytest.raises(md.DeploymentError, match=message):
        md.check_smoke_answer(answer, md.SMOKE_TEXTS, expect_harmful=False)
    assert math.isfinite(answer_body(md.SMOKE_TEXTS)["predictions"][0]["label_mass"])


def test_the_serving_image_has_the_training_transformers_major(tmp_path, tiny_qwen_dir):
    trained_5 = md.serving_framework({"transformers": "5.3.0", "peft": "0.18.0"})
    assert md._major(trained_5[0][0]) == 5 and trained_5[1] is None
    image = md.image_uri("us-east-1", "ml.g4dn.xlarge", *trained_5[0])
    assert "-transformers5." in image and "gpu" in image
    trained_4 = md.serving_framework({"transformers": "4.49.0"})
    assert md._major(trained_4[0][0]) == 4 and trained_4[1] is None
    # No image has the major: pin the training run's versions in code/requirements.txt, installed at start-up.
    (framework, pins) = md.serving_framework({"transformers": "99.1.0", "peft": "0.21.2", "torch": "2.9.0"})
    assert framework == md.DEFAULT_SERVING and pins == ["transformers==99.1.0", "peft==0.21.2"]
    archive = md.package(tiny_qwen_dir, tmp_path / "model.tar.gz", pins)
    with tarfile.open(archive) as tar:
        text = tar.extractfile("code/requirements.txt").read().decode()
    assert text.splitlines() == pins
    assert md.training_versions(tmp_path) == {}


def test_training_role_policy_is_least_privilege():
    root = md.ROOT / "deployment" / "iam"
    policy = json.loads((root / "training_role_policy.json").read_text())
    actions = {a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert {"s3:GetObject", "s3:PutObject", "secretsmanager:GetSecretValue", "logs:PutLogEvents",
            "ecr:BatchGetImage"} <= actions
    images = [s for s in policy["Statement"] if "ecr:BatchGetImage" in s["Action"]]
    assert images[0]["Resource"].endswith(":repository/huggingface-pytorch-training")
    secret = next(s for s in policy["Statement"] if "secretsmanager:GetSecretValue" in s["Action"])
    assert secret["Resource"] == "arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${HF_TOKEN_SECRET}-??????"
    logs = [r for s in policy["Statement"] if any(a.startswith("logs:") for a in s["Action"])
            for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])]
    assert logs and all(":log-group:/aws/sagemaker/TrainingJobs" in r for r in logs)


@pytest.mark.parametrize("name", ["execution_role_policy.json", "training_role_policy.json"])
def test_role_policies_are_valid_scoped_and_wildcard_free(name):
    policy = json.loads((md.ROOT / "deployment" / "iam" / name).read_text())
    assert policy["Version"] == "2012-10-17" and policy["Statement"]
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and "NotAction" not in statement and "NotResource" not in statement
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        assert not any(a in ("*", "sagemaker:*", "s3:*") or a.endswith(":*") for a in actions), statement
        resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
        if "*" in resources:  # only actions without resource-level permissions, or under a condition
            assert actions == ["ecr:GetAuthorizationToken"] or "Condition" in statement, statement
        for resource in resources:
            if resource.startswith("arn:aws:s3:::"):
                if resource == "arn:aws:s3:::${BUCKET}":  # listing: only under the prefix
                    prefixes = statement["Condition"]["StringLike"]["s3:prefix"]
                    assert all(p.startswith("${PREFIX}/") for p in prefixes), statement
                else:
                    assert resource.startswith("arn:aws:s3:::${BUCKET}/${PREFIX}/"), resource
            else:
                assert resource == "*" or resource.startswith(("arn:aws:ecr:", "arn:aws:logs:", "arn:aws:secretsmanager:")), resource
