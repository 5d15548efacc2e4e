"""Upload a prepared dataset, its pattern database and its data card to S3 under a versioned prefix.

    uv run --all-extras python -m data.data_ingestion out/prepared --bucket my-bucket
    uv run --all-extras python -m data.data_ingestion out/prepared --dry-run
    S3_BUCKET=my-bucket S3_PREFIX=algospeak uv run --all-extras python -m data.data_ingestion out/prepared

Layout: s3://BUCKET/PREFIX/datasets/VERSION/{data/<split>.jsonl|.parquet, data_card.json, data_card.md,
pattern_db/<file>, manifest.json}. VERSION is a hash of every file's SHA-256 unless --version names it, so
the same inputs always land in the same place and a re-run finds them there and uploads nothing.

Every upload is checked: the object is read back and its SHA-256 compared with the local file's (the request
also carries ChecksumSHA256, which S3 itself checks in transit). Files from --multipart-threshold-mb up go in
parts. Throttling, 5xx answers and dropped connections are retried with exponential backoff and full jitter.
The manifest lists every object with its URI, size, SHA-256, row count and the git commit that uploaded it.

Errors (no bucket, no credentials, no such bucket, missing or changed input files) are one line and exit 1.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by its path (python data/data_ingestion.py): the repository root on sys.path
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import base64
import hashlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The one list of retriable errors, backoff policy and digest: core.aws (kept here under their old names).
from core.aws import RETRIABLE_CODES as RETRYABLE_CODES  # noqa: F401
from core.aws import RetryPolicy, sha256_file
from core.aws import is_retriable as is_retryable  # noqa: F401
from core.settings import ROOT, get_settings

MANIFEST_NAME = "manifest.json"
CARD_NAME = "data_card.json"
MiB = 1024 * 1024
CONTENT_TYPES = {
    ".jsonl": "application/x-ndjson",
    ".parquet": "application/vnd.apache.parquet",
    ".json": "application/json",
    ".md": "text/markdown; charset=utf-8",
}


class IngestError(RuntimeError):
    """A problem the user can fix (configuration, credentials, inputs); the message is one line."""


class ChecksumMismatch(IngestError):
    """The object read back from S3 is not the file that was sent."""


# --------------------------------------------------------------------------------------------- what to upload


@dataclass(frozen=True)
class LocalObject:
    """A local file and where it goes under the version prefix."""

    path: Path
    name: str  # key relative to the version prefix
    kind: str  # dataset | data_card | pattern_db
    size: int
    sha256: str
    rows: int | None = None




def plan_objects(dataset_dir: Path, pattern_db: Path | None = None) -> list[LocalObject]:
    """The files to upload, read from the data card, each checked against the card's size and SHA-256 so a
    file changed or truncated since `data.prepare` wrote it is refused."""
    card_path = dataset_dir / CARD_NAME
    if not dataset_dir.is_dir():
        raise IngestError(
            f"dataset folder {dataset_dir} not found: run `python -m data.prepare --out {dataset_dir}` first"
        )
    if not card_path.is_file():
        raise IngestError(f"{card_path} not found: run `python -m data.prepare --out {dataset_dir}` first")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
        outputs = card["outputs"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise IngestError(f"{card_path} is not a data card written by data.prepare ({err})") from None

    objects = [_dataset_object(dataset_dir, entry) for entry in outputs]
    for name in (CARD_NAME, "data_card.md"):
        path = dataset_dir / name
        if not path.is_file():
            raise IngestError(f"{path} not found: run `python -m data.prepare --out {dataset_dir}` again")
        objects.append(LocalObject(path, name, "data_card", path.stat().st_size, sha256_file(path)))
    db = _pattern_db_object(card, pattern_db)
    return objects + ([db] if db else [])


def _dataset_object(dataset_dir: Path, entry: dict[str, Any]) -> LocalObject:
    path = dataset_dir / entry["path"]
    if not path.is_file():
        raise IngestError(f"{path} is listed in the data card but missing: run data.prepare again")
    digest = sha256_file(path)
    if digest != entry["sha256"] or path.stat().st_size != entry["bytes"]:
        raise IngestError(f"{path} changed since data.prepare wrote it (SHA-256 differs from the data card)")
    return LocalObject(path, f"data/{path.name}", "dataset", entry["bytes"], digest, entry["rows"])


def _pattern_db_object(card: dict[str, Any], override: Path | None) -> LocalObject | None:
    """The pattern database the dataset was built with; it must still have the SHA-256 the card recorded."""
    recorded = card.get("pattern_database")
    if recorded is None and override is None:
        return None
    path = override or Path(recorded["path"])
    if not path.is_file():
        raise IngestError(f"pattern database {path} not found (pass --pattern-db)")
    digest = sha256_file(path)
    if recorded and digest != recorded["sha256"]:
        raise IngestError(
            f"pattern database {path} changed since the dataset was prepared (SHA-256 differs); re-run data.prepare"
        )
    return LocalObject(path, f"pattern_db/{path.name}", "pattern_db", path.stat().st_size, digest)


def dataset_version(objects: list[LocalObject]) -> str:
    """A version named by content: the same files give the same version, any change gives a new one."""
    digest = hashlib.sha256(
        "".join(f"{o.name}\0{o.sha256}\n" for o in sorted(objects, key=lambda o: o.name)).encode()
    )
    return f"v-{digest.hexdigest()[:12]}"


def _short(err: BaseException) -> str:
    from botocore.exceptions import ClientError

    if isinstance(err, ClientError):
        e = err.response.get("Error", {})
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{e.get('Code', 'error')} (HTTP {status}): {e.get('Message', '')}".strip()
    return f"{type(err).__name__}: {err}"


# --------------------------------------------------------------------------------------------- uploading


@dataclass
class Uploader:
    """Puts files into one bucket, verifying each; skips objects that already hold the same SHA-256."""

    client: Any
    bucket: str
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    multipart_threshold: int = 64 * MiB
    part_size: int = 16 * MiB
    workers: int = 4
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr)
    verify_attempts: int = 3

    def existing_sha256(self, key: str) -> str | None:
        """The SHA-256 recorded on an object, or None when there is no object."""
        from botocore.exceptions import ClientError

        try:
            head = self.retry.call(
                f"HEAD {key}", lambda: self.client.head_object(Bucket=self.bucket, Key=key), self.log
            )
        except ClientError as err:
            if err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise
        return head.get("Metadata", {}).get("sha256")

    def upload(self, obj: LocalObject, key: str) -> None:
        """Upload and read back; an object that reads back different is sent again, `verify_attempts` times
        in all, then ChecksumMismatch. (Each request also has its own retries.)"""
        for attempt in range(1, self.verify_attempts + 1):
            if obj.size >= self.multipart_threshold:
                self._put_multipart(obj, key)
            else:
                body = obj.path.read_bytes()
                self.retry.call(f"PUT {key}", lambda body=body: self._put(key, body, obj), self.log)
            try:
                self.verify(key, obj)
                return
            except ChecksumMismatch as err:
                if attempt == self.verify_attempts:
                    raise
                self.log(f"{err}; sending it again")

    def verify(self, key: str, obj: LocalObject) -> None:
        """Read the object back and compare its SHA-256 and size with the local file."""

        def read_back() -> tuple[str, int]:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            digest, size = hashlib.sha256(), 0
            for chunk in iter(lambda: body.read(MiB), b""):
                digest.update(chunk)
                size += len(chunk)
            return digest.hexdigest(), size

        digest, size = self.retry.call(f"GET {key}", read_back, self.log)
        if digest != obj.sha256 or size != obj.size:
            raise ChecksumMismatch(
                f"s3://{self.bucket}/{key}: read back {size} bytes with SHA-256 {digest[:16]}..., "
                f"sent {obj.size} bytes with {obj.sha256[:16]}..."
            )

    def _put(self, key: str, body: bytes, obj: LocalObject) -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType=_content_type(obj.path),
            ChecksumSHA256=_b64_sha256(body),
            Metadata={"sha256": obj.sha256},
        )

    def _put_multipart(self, obj: LocalObject, key: str) -> None:
        created = self.retry.call(
            f"CreateMultipartUpload {key}",
            lambda: self.client.create_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                ContentType=_content_type(obj.path),
                ChecksumAlgorithm="SHA256",
                Metadata={"sha256": obj.sha256},
            ),
            self.log,
        )
        upload_id = created["UploadId"]
        try:
            offsets = range(0, obj.size, self.part_size)
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                parts = list(
                    pool.map(lambda n_off: self._put_part(obj, key, upload_id, *n_off), enumerate(offsets, 1))
                )
            self.retry.call(
                f"CompleteMultipartUpload {key}",
                lambda: self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                ),
                self.log,
            )
        except BaseException:
            self._abort(key, upload_id)
            raise

    def _put_part(
        self, obj: LocalObject, key: str, upload_id: str, number: int, offset: int
    ) -> dict[str, Any]:
        with obj.path.open("rb") as f:
            f.seek(offset)
            body = f.read(self.part_size)
        checksum = _b64_sha256(body)
        answer = self.retry.call(
            f"UploadPart {number} of {key}",
            lambda: self.client.upload_part(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
                ChecksumSHA256=checksum,
            ),
            self.log,
        )
        return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum}

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except Exception as err:  # noqa: BLE001 - the original error matters more; lifecycle rules clean up
            self.log(f"could not abort the multipart upload of {key}: {_short(err)}")


def _b64_sha256(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def _content_type(path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix, "application/octet-stream")


# --------------------------------------------------------------------------------------------- ingest


@dataclass(frozen=True)
class IngestResult:
    """What happened: the manifest, where it is, and which objects were uploaded or already there."""

    manifest: dict[str, Any]
    manifest_uri: str
    uploaded: list[str]
    unchanged: list[str]
    dry_run: bool
    up_to_date: bool = False


def git_commit() -> str:
    """The checkout's commit (with "-dirty" when files differ from it), or "unknown" outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def make_client(region: str, endpoint_url: str | None):
    """An S3 client whose own retries are off, so the backoff policy here is the only one (and is tested)."""
    # A fresh session, so credentials are looked up now rather than reused from an earlier client.
    from core import aws

    return aws.client("s3", region, endpoint_url, connect_timeout=10, read_timeout=60, attempts=1,
                      request_checksum_calculation="when_required", response_checksum_validation="when_required")


def build_manifest(objects: list[LocalObject], bucket: str, base: str, version: str) -> dict[str, Any]:
    card = json.loads(next(o.path for o in objects if o.name == CARD_NAME).read_text(encoding="utf-8"))
    db = card.get("pattern_database") or {}
    return {
        "version": version,
        "bucket": bucket,
        "prefix": base,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "dataset": {
            "records": card["counts"]["total"],
            "by_split": card["counts"]["by_split"],
            "pattern_database_version": db.get("version"),
        },
        "objects": [
            {
                "key": f"{base}/{o.name}",
                "uri": f"s3://{bucket}/{base}/{o.name}",
                "kind": o.kind,
                "size": o.size,
                "sha256": o.sha256,
                "rows": o.rows,
            }
            for o in objects
        ],
    }


def ingest(
    dataset_dir: Path,
    *,
    bucket: str | None,
    prefix: str,
    client=None,
    region: str = "us-east-1",
    endpoint_url: str | None = None,
    version: str | None = None,
    pattern_db: Path | None = None,
    dry_run: bool = False,
    retry: RetryPolicy | None = None,
    multipart_threshold: int = 64 * MiB,
    part_size: int = 16 * MiB,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
) -> IngestResult:
    """Upload what is missing or different, then the manifest; with `dry_run`, only say what would happen."""
    if not bucket:
        raise IngestError("no S3 bucket: pass --bucket or set S3_BUCKET")
    objects = plan_objects(dataset_dir, pattern_db)
    version = version or dataset_version(objects)
    base = "/".join(p for p in (prefix.strip("/"), "datasets", version) if p)
    uploader = Uploader(
        client or make_client(region, endpoint_url),
        bucket,
        retry or RetryPolicy(),
        multipart_threshold,
        part_size,
        log=log,
    )
    with _aws_errors(bucket, endpoint_url):
        _check_bucket(uploader)
        pending = [o for o in objects if uploader.existing_sha256(f"{base}/{o.name}") != o.sha256]
        manifest_key = f"{base}/{MANIFEST_NAME}"
        previous = _read_manifest(uploader, manifest_key)
        if not pending and previous is not None and _same_objects(previous, objects, bucket, base):
            return IngestResult(
                previous, f"s3://{bucket}/{manifest_key}", [], [o.name for o in objects], dry_run, True
            )
        manifest = build_manifest(objects, bucket, base, version)
        if dry_run:
            return IngestResult(
                manifest,
                f"s3://{bucket}/{manifest_key}",
                [o.name for o in pending],
                [o.name for o in objects if o not in pending],
                True,
            )
        for obj in pending:
            log(f"uploading {obj.name} ({obj.size / MiB:.1f} MiB)")
            uploader.upload(obj, f"{base}/{obj.name}")
        _upload_manifest(uploader, manifest, manifest_key)
    return IngestResult(
        manifest,
        f"s3://{bucket}/{manifest_key}",
        [o.name for o in pending],
        [o.name for o in objects if o not in pending],
        False,
    )


def _read_manifest(uploader: Uploader, key: str) -> dict[str, Any] | None:
    if uploader.existing_sha256(key) is None:
        return None
    body = uploader.retry.call(
        f"GET {key}",
        lambda: uploader.client.get_object(Bucket=uploader.bucket, Key=key)["Body"].read(),
        uploader.log,
    )
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        return None


def _same_objects(manifest: dict[str, Any], objects: list[LocalObject], bucket: str, base: str) -> bool:
    listed = {(o["uri"], o["sha256"]) for o in manifest.get("objects", [])}
    return listed == {(f"s3://{bucket}/{base}/{o.name}", o.sha256) for o in objects}


def _upload_manifest(uploader: Uploader, manifest: dict[str, Any], key: str) -> None:
    """The manifest goes last, so its presence means every object it lists is in place and verified."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / MANIFEST_NAME
        path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        uploader.upload(
            LocalObject(path, MANIFEST_NAME, "manifest", path.stat().st_size, sha256_file(path)), key
        )


def _check_bucket(uploader: Uploader) -> None:
    """Fail early, in one line, when the bucket is missing or not ours."""
    from botocore.exceptions import ClientError

    bucket = uploader.bucket
    try:
        uploader.retry.call(
            f"HEAD bucket {bucket}", lambda: uploader.client.head_bucket(Bucket=bucket), uploader.log
        )
    except ClientError as err:
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404:
            raise IngestError(
                f"bucket s3://{bucket} does not exist: create it, or pass --bucket / set S3_BUCKET"
            ) from None
        raise


@contextmanager
def _aws_errors(bucket: str, endpoint_url: str | None):
    """Turn AWS failures a user can fix into one-line IngestErrors; anything else propagates unchanged."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    try:
        yield
    except (NoCredentialsError, PartialCredentialsError):
        raise IngestError(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
        ) from None
    except EndpointConnectionError as err:
        raise IngestError(f"cannot reach S3 at {endpoint_url or 'the AWS endpoint'}: {err}") from None
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 403 or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise IngestError(
                f"access to s3://{bucket} denied ({code}): check the AWS credentials and the bucket policy"
            ) from None
        raise IngestError(f"S3 refused the request: {_short(err)}") from None


# --------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m data.data_ingestion",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "dataset_dir",
        type=Path,
        nargs="?",
        default=ROOT / "out" / "prepared",
        help="folder written by data.prepare (default: %(default)s)",
    )
    parser.add_argument(
        "--bucket", default=settings.s3_bucket, help="S3 bucket (default: S3_BUCKET, now %(default)s)"
    )
    parser.add_argument(
        "--prefix", default=settings.s3_prefix, help="key prefix (default: S3_PREFIX, now %(default)s)"
    )
    parser.add_argument(
        "--region", default=settings.aws_region, help="AWS region (default: AWS_REGION, now %(default)s)"
    )
    parser.add_argument(
        "--endpoint-url", default=settings.aws_endpoint_url, help="S3 endpoint, e.g. a moto_server URL"
    )
    parser.add_argument("--version", help="version folder name (default: a hash of the files' contents)")
    parser.add_argument(
        "--pattern-db", type=Path, help="pattern database (default: the one named in the data card)"
    )
    parser.add_argument(
        "--multipart-threshold-mb",
        type=float,
        default=64,
        help="files this size and larger go in parts (default: 64)",
    )
    parser.add_argument(
        "--part-size-mb", type=float, default=16, help="multipart part size, at least 5 (default: 16)"
    )
    parser.add_argument(
        "--max-attempts", type=int, default=8, help="attempts per request before giving up (default: 8)"
    )
    parser.add_argument("--dry-run", action="store_true", help="check inputs and the bucket, upload nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.part_size_mb < 5:
        parser.error("--part-size-mb must be at least 5 (the S3 minimum for all parts but the last)")
    if args.max_attempts < 1:
        parser.error("--max-attempts must be at least 1")
    try:
        result = ingest(
            args.dataset_dir,
            bucket=args.bucket,
            prefix=args.prefix,
            region=args.region,
            endpoint_url=args.endpoint_url,
            version=args.version,
            pattern_db=args.pattern_db,
            dry_run=args.dry_run,
            retry=RetryPolicy(max_attempts=args.max_attempts),
            multipart_threshold=int(args.multipart_threshold_mb * MiB),
            part_size=int(args.part_size_mb * MiB),
        )
    except IngestError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(_summary(result))
    if not args.dry_run:
        _write_step_record(args, result)
    return 0


def _write_step_record(args: argparse.Namespace, result: IngestResult) -> None:
    """out/ingest/record.json: the manifest the training step reads, linked to the preparation record."""
    from core import records

    inputs = {}
    prepared = records.record_path("prepare")
    if prepared.is_file() and Path(records.read("prepare")["outputs"]["dataset_dir"]) == Path(args.dataset_dir).resolve():
        inputs["prepare"] = prepared
    outputs = {"manifest_uri": result.manifest_uri, "version": result.manifest.get("version"),
               "bucket": result.manifest.get("bucket"), "dataset_dir": str(Path(args.dataset_dir).resolve()),
               "objects": len(result.manifest.get("objects", [])), "uploaded": len(result.uploaded)}
    print(f"record: {records.write('ingest', outputs, inputs)}", file=sys.stderr)


def _summary(result: IngestResult) -> str:
    if result.up_to_date:
        return f"up to date, nothing uploaded: {result.manifest_uri} already lists these {len(result.unchanged)} files"
    verb = "would upload" if result.dry_run else "uploaded"
    lines = [
        f"{verb} {len(result.uploaded)} file(s), {len(result.unchanged)} already there; manifest {result.manifest_uri}"
    ]
    lines += [f"  {verb}: {name}" for name in result.uploaded]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
