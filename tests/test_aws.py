"""core.aws: the service-model check (which the test suite runs over every AWS call it makes), names that fit,
S3 URIs, the one list of retriable errors."""

import pytest

pytest.importorskip("botocore")

from core import aws
from tests.plugins import aws_model_check


def test_requests_aws_refuses_are_found_that_moto_takes(aws_env):
    """A 65-character job name, an enum value AWS does not know, a count below the minimum, a tag with '#': moto
    creates the job, the service-model check names each problem (and the suite's plugin would fail the test)."""
    import boto3

    sm = boto3.client("sagemaker")
    sm.create_model(ModelName="m", ExecutionRoleArn="arn:aws:iam::123456789012:role/R",
                    PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1"})
    name = "a" * 40 + "-backfill-20261206-162100"
    sm.create_transform_job(  # moto takes it
        TransformJobName=name, ModelName="m",
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/in/"}}},
        TransformOutput={"S3OutputPath": "s3://b/out/"},
        TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
        Tags=[{"Key": "purpose", "Value": "a#b"}])
    assert sm.describe_transform_job(TransformJobName=name)["TransformJobName"] == name
    found = list(aws_model_check._problems)
    aws_model_check._problems.clear()  # recorded as expected: do not fail this test at teardown
    assert any("TransformJobName" in p and "above the maximum of 63" in p for p in found), found
    assert any("Tags[0].Value" in p and "pattern" in p for p in found), found
    problems = aws.request_problems("sagemaker", "CreateTransformJob", {
        "TransformJobName": "ok", "ModelName": "m",
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "Prefix", "S3Uri": "s3://b/in/"}}},
        "TransformOutput": {"S3OutputPath": "s3://b/out/"},
        "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 0}})
    assert any("S3DataType: 'Prefix' is not one of" in p for p in problems), problems
    assert any("InstanceCount: 0 value, below the minimum of 1" in p for p in problems), problems
    assert any("required member" in p for p in aws.request_problems("sagemaker", "CreateEndpoint",
                                                                    {"EndpointName": "e"}))


def test_every_call_of_the_test_is_recorded(aws_env, aws_calls):
    import boto3

    boto3.client("s3").create_bucket(Bucket="recorded")
    assert [(c.service, c.operation) for c in aws_calls][-1] == ("s3", "CreateBucket")


@pytest.mark.parametrize("prefix", ["e", "a-rather-long-endpoint-name-for-the-stage2-model-x", "x" * 63 + "-"])
def test_generated_names_fit_the_limit_and_pattern(prefix):
    name = aws.fit_name(prefix, "backfill-20261206-162100")
    assert len(name) <= 63 and name.endswith("-backfill-20261206-162100")
    assert aws.request_problems("sagemaker", "CreateModel", {"ModelName": name}) == []


def test_split_s3_and_retriable_errors():
    from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

    assert aws.split_s3("s3://b/k/x.json") == ("b", "k/x.json")
    with pytest.raises(ValueError, match="not an S3 URI"):
        aws.split_s3("https://b/k")

    def err(code, status):
        return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")

    assert aws.is_retriable(err("SlowDown", 503)) and aws.is_retriable(err("ThrottlingException", 400))
    assert not aws.is_retriable(err("ValidationException", 400))
    assert aws.is_retriable(EndpointConnectionError(endpoint_url="http://x"))
    timeout = ReadTimeoutError(endpoint_url="http://x")
    assert not aws.is_retriable(timeout) and aws.is_read_timeout(timeout)
    assert aws.RetryPolicy(retry_read_timeouts=True).should_retry(timeout)


def test_the_retry_policy_starts_no_retry_after_its_deadline():
    """The shared loop with a caller's deadline and rule (the SageMaker client uses both): it retries what the rule
    says, stops when the next retry would start after the deadline, and says how many attempts it made."""
    import random

    now, calls, sleeps = [0.0], [], []

    def flaky():
        calls.append(now[0])
        raise TimeoutError("busy")

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    policy = aws.RetryPolicy(max_attempts=50, base_delay=1.0, max_delay=1.0, sleep=sleep, clock=lambda: now[0],
                             rng=random.Random(0), retry_on=lambda err: isinstance(err, TimeoutError))
    with pytest.raises(aws.RetryDeadline, match=r"^call: the deadline passed after (\d+) attempt\(s\): TimeoutError"):
        policy.call("call", flaky, deadline=3.0)
    assert 2 <= len(calls) < 50 and all(t < 3.0 for t in calls) and sum(sleeps) < 3.0
    # the caller's rule replaces the default one: an error it does not name is not retried
    with pytest.raises(ValueError):
        aws.RetryPolicy(retry_on=lambda err: False, sleep=pytest.fail).call("call", lambda: int("x"))
