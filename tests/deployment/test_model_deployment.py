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
import botocore.exceptions
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
    from core.llm_inference import _artifact_version  # = LabelScorer.version, what the evaluation records

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
    assert {"config.json", "model.safetensors", "labels.json", "tokenizer.json"} <= names
    assert bundle_problems(archive) == []
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
            assert set(actions) <= UNSCOPED_ACTIONS or "Condition" in statement, statement
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


# Actions on Resource "*": AWS has no resource-level permission for them, and the SageMaker SDK's role check
# (iam_role_resolver) simulates the training ones on "*" without context, so a narrower or conditioned grant is
# refused by the SDK (see tests/training/test_model_training.py, the role check).
UNSCOPED_ACTIONS = {
    "ecr:GetAuthorizationToken", "cloudwatch:PutMetricData", "s3:ListAllMyBuckets",
    "ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission", "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups",
    "application-autoscaling:RegisterScalableTarget", "application-autoscaling:DeregisterScalableTarget",
    "application-autoscaling:DescribeScalableTargets", "application-autoscaling:DescribeScheduledActions",
    "application-autoscaling:PutScalingPolicy",
    "application-autoscaling:PutScheduledAction",
}


@pytest.mark.parametrize("name", ["execution_role_policy.json", "training_role_policy.json", "caller_policy.json"])
def test_role_policies_are_valid_scoped_and_wildcard_free(name):
    policy = json.loads((md.ROOT / "deployment" / "iam" / name).read_text())
    assert policy["Version"] == "2012-10-17" and policy["Statement"]
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and "NotAction" not in statement and "NotResource" not in statement
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        assert not any(a in ("*", "sagemaker:*", "s3:*") or a.endswith(":*") for a in actions), statement
        resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
        if "*" in resources:  # only actions without resource-level permissions, or under a condition
            assert set(actions) <= UNSCOPED_ACTIONS or "Condition" in statement, statement
        for resource in resources:
            if resource.startswith("arn:aws:s3:::"):
                if resource == "arn:aws:s3:::${BUCKET}" and name == "caller_policy.json":  # HeadBucket, the SDK
                    assert set(actions) == {"s3:ListBucket", "s3:GetBucketLocation"}, statement
                elif resource == "arn:aws:s3:::${BUCKET}":  # listing: only under the prefix
                    prefixes = statement["Condition"]["StringLike"]["s3:prefix"]
                    assert all(p.startswith("${PREFIX}/") for p in prefixes), statement
                else:
                    assert resource.startswith("arn:aws:s3:::${BUCKET}/${PREFIX}/"), resource
            else:
                assert resource in ("*", "${KMS_KEY_ARN}") or resource.startswith((
                    "arn:aws:ecr:", "arn:aws:logs:", "arn:aws:secretsmanager:", "arn:aws:sagemaker:${REGION}:${ACCOUNT}:",
                    "arn:aws:iam::${ACCOUNT}:role/", "arn:aws:cloudwatch:${REGION}:${ACCOUNT}:alarm:")), resource
            assert ":763104351884:" not in resource, "the image registry's account differs by region: ${ECR_ACCOUNT}"
            if resource.startswith("arn:aws:logs:"):  # a log group's ARN in IAM ends in :* (its streams, itself)
                assert resource.endswith(("/*", ":*")) or resource + ":*" in resources, resource


# --------------------------------------------------------------------------------------------- what AWS refuses


class Recorded:
    """A boto3 client whose method calls are appended to `order` (shared by several clients), with overrides."""

    def __init__(self, client, order: list[str], **overrides):
        self._client, self._order, self._overrides = client, order, overrides

    def __getattr__(self, name):
        attr = self._overrides.get(name) or getattr(self._client, name)
        if not callable(attr) or name.startswith("_") or name in ("meta", "exceptions"):
            return attr

        def call(*args, **kwargs):
            self._order.append(name)
            return attr(*args, **kwargs)
        return call


def _update_emulated(sm):
    """moto has no UpdateEndpoint: check the request against the service model, then put the endpoint on the new
    config as a finished update would (delete, create)."""
    from core.aws import check_request

    sent = []

    def update_endpoint(**params):
        check_request("sagemaker", "UpdateEndpoint", params)
        sent.append(params)
        sm.delete_endpoint(EndpointName=params["EndpointName"])
        sm.create_endpoint(EndpointName=params["EndpointName"], EndpointConfigName=params["EndpointConfigName"])
        return {"EndpointArn": "arn"}
    return update_endpoint, sent


def test_an_instance_type_change_deregisters_autoscaling_first_and_keeps_the_fleet(staged, capsys, aws_calls):
    """AWS refuses UpdateEndpoint with another instance type while the variant is a scalable target: deregister,
    update, register again (and keep the scheduled actions). The update keeps the fleet autoscaling grew (3), not
    --min-instances (1)."""
    args = deploy_args(staged, "--skip-smoke-test", "--image-uri", "example/image:1", "--max-instances", "6")
    assert md.main(args) == 0
    assert md.main(["schedule", "--endpoint-name", ENDPOINT, "--name", "weekday-peak",
                    "--cron", "cron(0 7 ? * MON-FRI *)", "--min", "2", "--max", "6"]) == 0
    sm = boto3.client("sagemaker")
    sm.update_endpoint_weights_and_capacities(EndpointName=ENDPOINT, DesiredWeightsAndCapacities=[
        {"VariantName": "AllTraffic", "DesiredInstanceCount": 3}])  # what autoscaling did meanwhile
    order: list[str] = []
    update_endpoint, sent = _update_emulated(sm)
    clients = {"s3": boto3.client("s3"), "cloudwatch": boto3.client("cloudwatch"),
               "sagemaker": Recorded(sm, order, update_endpoint=update_endpoint),
               "application-autoscaling": Recorded(boto3.client("application-autoscaling"), order)}
    record = md.deploy(md.build_parser().parse_args(
        deploy_args(staged, "--skip-smoke-test", "--image-uri", "example/image:1", "--instance-type", "ml.g4dn.2xlarge",
                    "--max-instances", "6")), clients=clients)
    assert record["action"] == "update"
    assert order.index("deregister_scalable_target") < order.index("update_endpoint") \
        < order.index("register_scalable_target")
    new_config = sm.describe_endpoint_config(EndpointConfigName=sent[0]["EndpointConfigName"])
    assert new_config["ProductionVariants"][0]["InstanceType"] == "ml.g4dn.2xlarge"
    assert new_config["ProductionVariants"][0]["InitialInstanceCount"] == 3 == record["instance_count"]
    aas = boto3.client("application-autoscaling")
    assert aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    actions = aas.describe_scheduled_actions(ServiceNamespace="sagemaker")["ScheduledActions"]
    assert [a["ScheduledActionName"] for a in actions] == ["weekday-peak"]
    # the same instance type: autoscaling stays registered through the update
    order.clear()
    md.deploy(md.build_parser().parse_args(
        deploy_args(staged, "--skip-smoke-test", "--image-uri", "example/image:1", "--instance-type", "ml.g4dn.2xlarge",
                    "--max-instances", "6")), clients=clients)
    assert "deregister_scalable_target" not in order and "update_endpoint" in order
    assert uncovered_by_the_caller_policy(aws_calls) == []  # the update path's calls too


def test_a_refused_instance_type_change_registers_autoscaling_again(staged):
    """The scalable target is deregistered for an instance-type change; when the update then fails (refused, or
    rolled back), the old fleet must not be left without autoscaling and its scheduled actions."""
    assert md.main(deploy_args(staged, "--skip-smoke-test", "--image-uri", "example/image:1", "--max-instances", "6")) == 0
    assert md.main(["schedule", "--endpoint-name", ENDPOINT, "--name", "weekday-peak",
                    "--cron", "cron(0 7 ? * MON-FRI *)", "--min", "2", "--max", "6"]) == 0
    sm = boto3.client("sagemaker")

    def refused(**kwargs):
        raise botocore.exceptions.ClientError(
            {"Error": {"Code": "ValidationException", "Message": "capacity not available"}}, "UpdateEndpoint")

    order: list[str] = []
    clients = {"s3": boto3.client("s3"), "cloudwatch": boto3.client("cloudwatch"),
               "sagemaker": Recorded(sm, order, update_endpoint=refused),
               "application-autoscaling": Recorded(boto3.client("application-autoscaling"), order)}
    with pytest.raises(botocore.exceptions.ClientError):
        md.deploy(md.build_parser().parse_args(deploy_args(
            staged, "--skip-smoke-test", "--image-uri", "example/image:1", "--instance-type", "ml.g4dn.2xlarge",
            "--max-instances", "6")), clients=clients)
    assert order.index("deregister_scalable_target") < order.index("register_scalable_target")
    aas = boto3.client("application-autoscaling")
    targets = aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in targets] == [(1, 6)]
    actions = aas.describe_scheduled_actions(ServiceNamespace="sagemaker")["ScheduledActions"]
    assert [a["ScheduledActionName"] for a in actions] == ["weekday-peak"]


@pytest.mark.parametrize("endpoint", ["a" * 30 + "-stage2-moderation-endpoint", "stage2-" + "x" * 56])
def test_generated_names_fit_sagemaker_limits(staged, endpoint, aws_calls):
    """An endpoint name of 23+ characters made a 65-character transform job name (and 48+ made model and config
    names over 63): every generated name now fits, and the suite's service-model check sees every request."""
    assert len(endpoint) <= 63
    args = deploy_args(staged, "--skip-smoke-test", "--image-uri", "example/image:1")
    args[args.index("--endpoint-name") + 1] = endpoint
    assert md.main(args) == 0
    record = json.loads((staged["tmp"] / "deployment.json").read_text())
    assert len(record["model_name"]) <= 63 and record["model_name"].startswith(endpoint[:20])
    assert md.main(["batch-transform", "--model-name", record["model_name"], "--input",
                    f"s3://{BUCKET}/algospeak/backfill/in/", "--output", f"s3://{BUCKET}/algospeak/backfill/out/"]) == 0
    job = next(c.params["TransformJobName"] for c in aws_calls if c.operation == "CreateTransformJob")
    assert len(job) <= 63 and "-backfill-" in job


@pytest.mark.parametrize("endpoint,problem", [("x" * 64, "above the maximum of 63"),
                                              ("stage2_endpoint", "does not match the pattern")])
def test_a_name_aws_would_refuse_is_one_line_before_any_call(staged, endpoint, problem, capsys, aws_calls):
    args = deploy_args(staged, "--skip-smoke-test", "--image-uri", "example/image:1")
    args[args.index("--endpoint-name") + 1] = endpoint
    before = len(aws_calls)  # the fixture's set-up calls
    assert md.main(args) == 1
    err = capsys.readouterr().err
    assert "SageMaker would refuse these names" in err and problem in err and err.count("\n") == 1
    assert aws_calls[before:] == []  # nothing sent, nothing uploaded


@pytest.mark.parametrize("status,message", [("RollingBack", "rolling back"),
                                            ("UpdateRollbackFailed", "UpdateRollbackFailed")])
def test_a_rollback_in_progress_or_failed_ends_the_wait(status, message):
    sm = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(sm) as stub:
        stub.add_response("describe_endpoint", {"EndpointName": "a", "EndpointArn": "arn:aws:sagemaker:us-east-1:1:endpoint/a",
                                                "EndpointConfigName": "new", "EndpointStatus": status,
                                                "CreationTime": "2026-01-01", "LastModifiedTime": "2026-01-01"})
        with pytest.raises(md.DeploymentError, match=message):
            md.wait_in_service(sm, "a", "new", poll_s=3600)  # no second poll: it ends at once


def test_rollback_alarms_watch_4xx_and_model_errors(aws_env):
    """The Hugging Face toolkit answers 400 when the handler raises: a model failing every request shows in
    Invocation4XXErrors and InvocationModelErrors, not in 5xx; all of them roll a deployment back."""
    cloudwatch = boto3.client("cloudwatch")
    names = md.put_alarms(cloudwatch, ENDPOINT, 500.0)
    assert names == md.alarm_names(ENDPOINT)
    metrics = {a["MetricName"] for a in cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]}
    assert {"Invocation5XXErrors", "Invocation4XXErrors", "InvocationModelErrors", "ModelLatency"} == metrics
    assert {a["AlarmName"] for a in md.blue_green_config(names)["AutoRollbackConfiguration"]["Alarms"]} == set(names)


def test_the_endpoint_reports_the_gated_version_and_the_merge_versions(staged, sent):
    assert md.main(deploy_args(staged, "--skip-smoke-test", "--image-uri", "example/image:1")) == 0
    record = json.loads((staged["tmp"] / "deployment.json").read_text())
    env = next(p for op, p in sent if op == "CreateModel")["PrimaryContainer"]["Environment"]
    assert env["INFERENCE_MODEL_VERSION"] == record["artifact_version"] == staged["candidate"]["version"]
    assert {"torch", "transformers", "peft"} <= set(record["merge_versions"])


def test_the_caller_policy_allows_every_call_the_tools_make(staged, aws_calls):
    """Every AWS operation a deploy, a schedule, a batch transform and a delete send (recorded by the suite's
    plugin) is an IAM action deployment/iam/caller_policy.json grants."""
    seed_runtime_answers(staged["moto"], 1, len(md.SMOKE_TEXTS))
    assert md.main(deploy_args(staged)) == 0
    record = json.loads((staged["tmp"] / "deployment.json").read_text())
    assert md.main(["schedule", "--endpoint-name", ENDPOINT, "--name", "n", "--cron", "cron(0 7 * * ? *)",
                    "--min", "1", "--max", "2"]) == 0
    assert md.main(["batch-transform", "--model-name", record["model_name"], "--input",
                    f"s3://{BUCKET}/algospeak/backfill/in/", "--output", f"s3://{BUCKET}/algospeak/backfill/out/"]) == 0
    assert md.main(["delete", "--endpoint-name", ENDPOINT, "--all"]) == 0
    assert uncovered_by_the_caller_policy(aws_calls) == []


def uncovered_by_the_caller_policy(calls) -> list[str]:
    """The IAM actions of `calls` that deployment/iam/caller_policy.json does not grant."""
    from fnmatch import fnmatchcase

    policy = json.loads((md.ROOT / "deployment" / "iam" / "caller_policy.json").read_text())
    granted = [a for s in policy["Statement"] for a in s["Action"]]
    prefix = {"sagemaker-runtime": "sagemaker", "monitoring": "cloudwatch"}
    special = {"HeadBucket": "ListBucket", "HeadObject": "GetObject", "ListObjectsV2": "ListBucket",
               "CreateMultipartUpload": "PutObject", "UploadPart": "PutObject", "CompleteMultipartUpload": "PutObject"}
    fixture_ops = {"CreateBucket", "PutObject"}  # the test's own set-up (staged) also runs through the plugin
    needed = {f"{prefix.get(c.service, c.service)}:{special.get(c.operation, c.operation)}" for c in calls
              if not (c.service == "s3" and c.operation in fixture_ops)
              and c.operation != "UpdateEndpointWeightsAndCapacities"}  # the test playing autoscaling
    return sorted(a for a in needed if not any(fnmatchcase(a, g) for g in granted))


def test_the_record_carries_the_client_settings_the_load_test_supports(tmp_path):
    load = {"max_sustainable_invocations_per_minute_per_instance": 600, "sustainable_at_concurrency": 4,
            "method": {"texts_per_invocation": 32}, "steps": [{"concurrency": 4, "latency_p99_ms": 1500.0}]}
    path = tmp_path / "load.json"
    path.write_text(json.dumps(load))
    assert md.client_settings(path) == {"SAGEMAKER_BATCH_MAX_TEXTS": 32, "SAGEMAKER_TIMEOUT_SECONDS": 4.5,
                                        "SAGEMAKER_CONCURRENCY": 4, "SAGEMAKER_DEADLINE_SECONDS": 10.0}
    assert md.client_settings(tmp_path / "absent.json") is None


def bundle_problems(archive) -> list[str]:
    """What the archive's code/ lacks: every project module the container's entry point imports (read from the
    source, so a module added to the inference core counts without anyone listing it), in the layout the
    container puts on sys.path (code/inference.py, code/core/...)."""
    from core.settings import ROOT
    from tests.imports import closure, import_graph, module_file

    graph = import_graph(ROOT)
    entry = md.ENTRY_POINT.removesuffix(".py").replace("/", ".")
    needed = {"code/inference.py"} | {f"code/{module_file(m, ROOT)}" for imported in graph[entry]
                                      for m in closure(graph, imported)}
    with tarfile.open(archive) as tar:
        return sorted(needed - set(tar.getnames()))


# The entry point imported from the unpacked archive by an interpreter that cannot see this repository.
IMPORT_ENTRY = "import sys; sys.path.insert(0, 'code'); import inference; print(inference.LabelScorer.__module__)"


def _import_entry(unpacked):
    return subprocess.run([sys.executable, "-I", "-c", IMPORT_ENTRY], cwd=unpacked, capture_output=True, text=True,
                          check=False, timeout=120, env={"PATH": "/usr/bin:/bin"})


def test_the_archive_ships_every_module_the_container_entry_point_imports(tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    archive = md.package(model, tmp_path / "model.tar.gz")
    assert bundle_problems(archive) == []
    with tarfile.open(archive) as tar:
        assert {"code/inference.py", "code/core/llm_inference.py", "code/core/scores.py"} <= set(tar.getnames())
        tar.extractall(tmp_path / "unpacked", filter="data")
    run = _import_entry(tmp_path / "unpacked")
    assert run.returncode == 0 and run.stdout.strip() == "core.llm_inference", run.stderr[-2000:]

    # A core module left out of the bundle is named, and the container could not import its entry point.
    monkeypatch.setattr(md, "CODE_FILES", tuple(f for f in md.CODE_FILES if f != "core/scores.py"))
    broken = md.package(model, tmp_path / "broken.tar.gz")
    assert bundle_problems(broken) == ["code/core/scores.py"]
    with tarfile.open(broken) as tar:
        tar.extractall(tmp_path / "broken", filter="data")
    run = _import_entry(tmp_path / "broken")
    assert run.returncode != 0 and "No module named 'core.scores'" in run.stderr


def test_one_invocation_stays_well_inside_sagemakers_60_seconds():
    """1,024 texts per invocation at the T4's 2-3 s per 64 short texts is 32-48 s before long texts: over 60 s.
    The container takes at most 256 and the client sends at most that."""
    from core.settings import Settings
    from core.llm_inference import MAX_TEXTS_PER_REQUEST, BadRequest, parse_request

    assert MAX_TEXTS_PER_REQUEST == 256 and 256 / 64 * 3 < 60 / 4
    assert len(parse_request(json.dumps({"inputs": ["a"] * 256}), "application/json")) == 256
    with pytest.raises(BadRequest, match="at most 256"):
        parse_request(json.dumps({"inputs": ["a"] * 257}), "application/json")
    with pytest.raises(ValueError):
        Settings(sagemaker_batch_max_texts=257)


def test_kms_and_checkpoint_deletes_are_granted_narrowly():
    from deployment.policies import PolicyError, render

    values = {"ACCOUNT": "123456789012", "REGION": "eu-west-1", "BUCKET": "b", "PREFIX": "algospeak",
              "ECR_ACCOUNT": "763104351884"}
    training = render("training", values)
    deletes = [s for s in training["Statement"] if "s3:DeleteObject" in s["Action"]]
    assert deletes and all(r.endswith("/checkpoints/*") for s in deletes for r in s["Resource"])
    assert not any(a.startswith("kms:") for s in training["Statement"] for a in s["Action"])  # no key: no grant
    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    for kind in ("training", "execution"):
        kms = [s for s in render(kind, {**values, "KMS_KEY_ARN": key})["Statement"] if s["Action"][0].startswith("kms:")]
        assert kms == [{"Sid": kms[0]["Sid"], "Effect": "Allow", "Resource": key,
                        "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]}]
    with pytest.raises(PolicyError, match="BUCKET"):
        render("training", {**values, "BUCKET": None})
