"""S3 ingestion against a real moto_server over HTTP, with faults injected by a loopback proxy."""

from __future__ import annotations

import hashlib
import json
import random

import boto3
import polars as pl
import pytest
from botocore.exceptions import ClientError

from data.data_ingestion import (
    ChecksumMismatch,
    IngestError,
    LocalObject,
    RetryPolicy,
    Uploader,
    dataset_version,
    ingest,
    main,
    make_client,
)
from data.prepare import PrepareConfig, prepare
from tests.data.conftest import PATTERN_DB, SHARED_ROOT, jigsaw_row, write_jigsaw_csv, write_mini_shared

BUCKET = "algospeak-test"


def fast_retry() -> RetryPolicy:
    return RetryPolicy(max_attempts=5, base_delay=0.001, max_delay=0.01)


def quiet(_msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def real_dataset(tmp_path_factory):
    """The real shared data plus a small file with the real Jigsaw schema, prepared (sampled to keep it quick)."""
    root = tmp_path_factory.mktemp("real")
    db = root / "patterns.json"
    db.write_text(json.dumps(PATTERN_DB), encoding="utf-8")
    rows = [
        jigsaw_row(i, f"jigsaw comment {i} you {'kill' if i % 3 else 'nice'} them", (i % 10) / 10)
        for i in range(60)
    ]
    jigsaw = write_jigsaw_csv(root / "train.csv", rows)
    mix = {"safe": 0.3, "potentially_harmful": 0.2, "harmful": 0.25, "extremely_harmful": 0.25}
    config = PrepareConfig(
        out_dir=root / "prepared",
        shared_root=SHARED_ROOT,
        jigsaw_train=jigsaw,
        pattern_db=db,
        target_size=4000,
        label_mix=mix,
        seed=11,
    )
    card = prepare(config, log=quiet)
    return config.out_dir, card


@pytest.fixture
def small_dataset(tmp_path):
    db = tmp_path / "patterns.json"
    db.write_text(json.dumps(PATTERN_DB), encoding="utf-8")
    shared = write_mini_shared(tmp_path / "shared")
    config = PrepareConfig(out_dir=tmp_path / "prepared", shared_root=shared, pattern_db=db, seed=3)
    prepare(config, log=quiet)
    return config.out_dir


@pytest.fixture
def bucket(aws_env):
    boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    return BUCKET


def bucket_contents(endpoint: str) -> dict[str, bytes]:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for o in page.get("Contents", [])
    ]
    return {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


@pytest.mark.shared_data
@pytest.mark.slow
def test_prepare_then_ingest_real_data_and_the_manifest_is_the_bucket(
    real_dataset, bucket, fault_proxy, aws_env
):
    out_dir, card = real_dataset
    from data.readers import SHARED_SOURCE_NAMES

    assert set(card["steps"]["rows_read"]) == {*SHARED_SOURCE_NAMES, "jigsaw_unintended_bias"}

    result = ingest(
        out_dir,
        bucket=bucket,
        prefix="algospeak",
        endpoint_url=fault_proxy.url,
        retry=fast_retry(),
        log=quiet,
    )
    manifest = result.manifest
    contents = bucket_contents(aws_env)

    # The bucket holds exactly the manifest and what it lists, byte for byte.
    manifest_key = f"{manifest['prefix']}/manifest.json"
    assert set(contents) == {o["key"] for o in manifest["objects"]} | {manifest_key}
    assert json.loads(contents[manifest_key]) == manifest
    for obj in manifest["objects"]:
        body = contents[obj["key"]]
        assert obj["uri"] == f"s3://{BUCKET}/{obj['key']}"
        assert (len(body), hashlib.sha256(body).hexdigest()) == (obj["size"], obj["sha256"])
    # Row counts are the real row counts of the uploaded files.
    for obj in manifest["objects"]:
        if obj["key"].endswith(".parquet"):
            local = out_dir / obj["key"].rsplit("/", 1)[1]
            assert obj["rows"] == pl.read_parquet(local).height
    assert {o["kind"] for o in manifest["objects"]} == {"dataset", "data_card", "pattern_db"}
    assert manifest["prefix"].startswith("algospeak/datasets/v-") and manifest["git_commit"]
    assert manifest["dataset"]["records"] == card["counts"]["total"]

    # Unchanged inputs: the re-run reads, writes nothing, and says so.
    puts_before = sum(1 for method, _, _ in fault_proxy.log if method in ("PUT", "POST"))
    again = ingest(
        out_dir,
        bucket=bucket,
        prefix="algospeak",
        endpoint_url=fault_proxy.url,
        retry=fast_retry(),
        log=quiet,
    )
    assert again.up_to_date and again.uploaded == []
    assert sum(1 for method, _, _ in fault_proxy.log if method in ("PUT", "POST")) == puts_before
    assert bucket_contents(aws_env) == contents


def test_cli_rerun_says_up_to_date(small_dataset, bucket, aws_env, capsys):
    args = [str(small_dataset), "--bucket", bucket, "--endpoint-url", aws_env]
    assert main(args) == 0
    assert capsys.readouterr().out.startswith("uploaded 9 file(s), 0 already there")
    assert main(args) == 0
    assert capsys.readouterr().out.startswith(
        "up to date, nothing uploaded: s3://algospeak-test/algospeak/datasets/v-"
    )


def test_dry_run_uploads_nothing(small_dataset, bucket, aws_env, capsys):
    assert main([str(small_dataset), "--bucket", bucket, "--endpoint-url", aws_env, "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("would upload 9 file(s)")
    assert bucket_contents(aws_env) == {}


def test_uploads_survive_throttling_errors_and_dropped_connections(
    small_dataset, bucket, fault_proxy, aws_env
):
    for kind in ("throttle", "error500", "drop", "throttle"):
        fault_proxy.add(kind, method="PUT")
    fault_proxy.add("error500", method="HEAD")
    fault_proxy.add("drop", method="GET")
    logs: list[str] = []
    result = ingest(
        small_dataset,
        bucket=bucket,
        prefix="p",
        endpoint_url=fault_proxy.url,
        retry=fast_retry(),
        log=logs.append,
    )
    assert fault_proxy.injected() == ["error500", "throttle", "error500", "drop", "throttle", "drop"]
    assert sum("retry" in line for line in logs) == 6
    assert any("SlowDown (HTTP 503)" in line for line in logs) and any(
        "ConnectionClosedError" in line for line in logs
    )
    contents = bucket_contents(aws_env)
    for obj in result.manifest["objects"]:
        assert hashlib.sha256(contents[obj["key"]]).hexdigest() == obj["sha256"]


def test_multipart_upload_survives_a_connection_dropped_mid_part(tmp_path, bucket, fault_proxy, aws_env):
    path = tmp_path / "big.bin"
    path.write_bytes(random.Random(0).randbytes(10_000))
    obj = LocalObject(
        path, "big.bin", "dataset", path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest()
    )
    fault_proxy.add("drop", method="PUT", path_contains="partNumber=2")
    fault_proxy.add("throttle", method="PUT", path_contains="partNumber=3")
    fault_proxy.add("error500", method="POST", path_contains="uploadId=")  # CompleteMultipartUpload
    uploader = Uploader(
        make_client("us-east-1", fault_proxy.url),
        bucket,
        fast_retry(),
        multipart_threshold=4096,
        part_size=4096,
        log=quiet,
    )
    uploader.upload(obj, "x/big.bin")
    assert sorted(fault_proxy.injected()) == ["drop", "error500", "throttle"]
    assert sum(1 for method, p, _ in fault_proxy.log if method == "PUT" and "partNumber=" in p) == 3 + 2
    assert bucket_contents(aws_env)["x/big.bin"] == path.read_bytes()


def test_a_corrupted_upload_is_caught_and_sent_again(small_dataset, bucket, fault_proxy, aws_env):
    fault_proxy.add("corrupt", method="PUT", path_contains="train.parquet")
    logs: list[str] = []
    result = ingest(
        small_dataset,
        bucket=bucket,
        prefix="p",
        endpoint_url=fault_proxy.url,
        retry=fast_retry(),
        log=logs.append,
    )
    assert fault_proxy.injected() == ["corrupt"]
    assert any("train.parquet: read back" in line and "sending it again" in line for line in logs)
    key = next(o["key"] for o in result.manifest["objects"] if o["key"].endswith("train.parquet"))
    assert bucket_contents(aws_env)[key] == (small_dataset / "train.parquet").read_bytes()


def test_persistent_corruption_fails_without_a_manifest(small_dataset, bucket, fault_proxy, aws_env, capsys):
    fault_proxy.add("corrupt", method="PUT", path_contains="data_card.md", times=10)
    code = main(
        [str(small_dataset), "--bucket", bucket, "--endpoint-url", fault_proxy.url, "--max-attempts", "2"]
    )
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1 and err.startswith("error: s3://algospeak-test/") and "data_card.md: read back" in err
    assert not any(key.endswith("manifest.json") for key in bucket_contents(aws_env))


# --------------------------------------------------------------------------------------------- user errors


def one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = [line for line in captured.err.splitlines() if not line.startswith("retry")]
    assert len(lines) == 1, captured.err
    return lines[0]


def test_no_bucket_configured(small_dataset, aws_env, capsys):
    assert main([str(small_dataset), "--endpoint-url", aws_env]) == 1
    assert one_line_error(capsys) == "error: no S3 bucket: pass --bucket or set S3_BUCKET"


def test_bucket_from_settings(small_dataset, bucket, aws_env, monkeypatch, capsys):
    from core.settings import get_settings

    monkeypatch.setenv("S3_BUCKET", bucket)
    monkeypatch.setenv("S3_PREFIX", "from-env")
    get_settings.cache_clear()
    assert main([str(small_dataset)]) == 0  # endpoint from AWS_ENDPOINT_URL, bucket and prefix from settings
    assert all(key.startswith("from-env/datasets/v-") for key in bucket_contents(aws_env))


def test_missing_bucket(small_dataset, aws_env, capsys):
    assert main([str(small_dataset), "--bucket", "no-such-bucket", "--endpoint-url", aws_env]) == 1
    assert (
        one_line_error(capsys)
        == "error: bucket s3://no-such-bucket does not exist: create it, or pass --bucket / set S3_BUCKET"
    )


def test_missing_credentials(small_dataset, bucket, aws_env, monkeypatch, capsys):
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    assert main([str(small_dataset), "--bucket", bucket, "--endpoint-url", aws_env]) == 1
    assert one_line_error(capsys).startswith("error: no AWS credentials found")


def test_missing_or_changed_inputs(small_dataset, tmp_path, bucket, aws_env, capsys):
    assert main([str(tmp_path / "nowhere"), "--bucket", bucket, "--endpoint-url", aws_env]) == 1
    assert "nowhere not found: run `python -m data.prepare --out" in one_line_error(capsys)

    with (small_dataset / "test.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"extra": 1}\n')
    assert main([str(small_dataset), "--bucket", bucket, "--endpoint-url", aws_env]) == 1
    assert one_line_error(capsys).endswith(
        "test.jsonl changed since data.prepare wrote it (SHA-256 differs from the data card)"
    )

    (small_dataset / "test.jsonl").unlink()
    assert main([str(small_dataset), "--bucket", bucket, "--endpoint-url", aws_env]) == 1
    assert "test.jsonl is listed in the data card but missing" in one_line_error(capsys)
    assert bucket_contents(aws_env) == {}


def test_changed_pattern_database_is_refused(small_dataset, bucket, aws_env):
    card = json.loads((small_dataset / "data_card.json").read_text(encoding="utf-8"))
    with open(card["pattern_database"]["path"], "a", encoding="utf-8") as f:
        f.write("\n")
    with pytest.raises(IngestError, match="changed since the dataset was prepared"):
        ingest(small_dataset, bucket=bucket, prefix="p", endpoint_url=aws_env, log=quiet)


# --------------------------------------------------------------------------------------------- parts


def test_retry_policy_backs_off_exponentially_with_jitter_and_gives_up():
    sleeps: list[float] = []
    policy = RetryPolicy(
        max_attempts=5, base_delay=1.0, max_delay=6.0, sleep=sleeps.append, rng=random.Random(0)
    )
    throttled = ClientError(
        {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject"
    )
    calls = []

    def always_throttled():
        calls.append(1)
        raise throttled

    with pytest.raises(ClientError):
        policy.call("PUT x", always_throttled, quiet)
    assert len(calls) == 5 and len(sleeps) == 4
    caps = [2.0, 4.0, 6.0, 6.0]  # base * 2**attempt, capped at max_delay
    assert all(0 <= s <= cap for s, cap in zip(sleeps, caps))
    assert len(set(sleeps)) == 4  # jittered, not fixed


def test_retry_policy_does_not_retry_what_a_retry_cannot_fix():
    policy = RetryPolicy(sleep=lambda _: pytest.fail("slept"))
    denied = ClientError(
        {"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject"
    )
    calls = []

    def fn():
        calls.append(1)
        raise denied

    with pytest.raises(ClientError):
        policy.call("PUT x", fn, quiet)
    assert calls == [1]


def test_version_follows_content(tmp_path):
    def obj(name, digest):
        return LocalObject(tmp_path / name, name, "dataset", 1, digest)

    a = dataset_version([obj("a", "1" * 64), obj("b", "2" * 64)])
    assert a == dataset_version([obj("b", "2" * 64), obj("a", "1" * 64)])
    assert a != dataset_version([obj("a", "1" * 64), obj("b", "3" * 64)])
    assert a.startswith("v-") and len(a) == 14


def test_checksum_mismatch_is_an_ingest_error():
    assert issubclass(ChecksumMismatch, IngestError)
