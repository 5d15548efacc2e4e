"""Windows of samples for drift detection and new-term discovery, from wherever predictions or texts live.

A source is one string:

    sqlite:///predictions.db, postgresql://...   the prediction log (time window with since/until)
    data/train.jsonl, data/train.parquet         training data: rows with `text` and `label`
                                                 (moderation results with `original_text`/`classification` too)
    capture/ or capture/file.jsonl               SageMaker data-capture files (local copies)
    s3://bucket/prefix                           SageMaker data-capture files on S3

Capture lines look like {"captureData": {"endpointInput": {"data": ..., "encoding": "BASE64"|"JSON"|"CSV",
"observedContentType": ...}, "endpointOutput": {...}}, "eventMetadata": {"inferenceTime": ...}}; the
payloads are decoded and texts paired with predictions (several payload shapes are understood, see
`_texts_of` and `_outputs_of`).

Texts: the prediction log keeps them only when LOG_TEXT is on; training files and capture files always
have them. Features that need texts (new-term discovery, embeddings) are skipped for windows without.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitoring import MonitoringInputError
from monitoring.features import char_stats, normalize_label, techniques_of

_CHAR_KEYS = ("alpha", "digit", "upper", "space", "punct", "other", "non_ascii")


@dataclass
class Sample:
    length: int
    chars: dict[str, int]
    text: str | None = None
    label: str | None = None
    confidence: float | None = None
    raw_label: str | None = None
    techniques: list[str] | None = None  # None: no normalizer information (not "no matches")
    ts: float | None = None
    categories: list[str] | None = None  # flagged harm categories; None: not recorded (not "none flagged")

    @property
    def disagreement(self) -> bool | None:
        if self.techniques is None or self.label is None:
            return None
        return self.raw_label is not None and self.raw_label != self.label


@dataclass
class Window:
    source: str
    samples: list[Sample]
    bad_rows: int = 0
    problems: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def _share(self, attr: str) -> float:
        if not self.samples:
            return 0.0
        return sum(getattr(s, attr) is not None for s in self.samples) / len(self.samples)

    # A window "has" a feature when most of its samples carry it.
    @property
    def has_text(self) -> bool:
        return self._share("text") >= 0.5

    @property
    def has_labels(self) -> bool:
        return self._share("label") >= 0.5

    @property
    def has_confidence(self) -> bool:
        return self._share("confidence") >= 0.5

    @property
    def has_normalizer(self) -> bool:
        return self._share("techniques") >= 0.5

    def texts(self) -> list[str]:
        return [s.text for s in self.samples if s.text is not None]


# ------------------------------------------------------------------------------------------ samples


def sample_from_mapping(row: Mapping[str, Any], ts: float | None = None) -> Sample:
    """A sample from a dataset row, a moderation result, a decoded prediction-log row or a capture output.

    Raises ValueError when the row has neither a text nor logged text statistics.
    """
    text = _first(row, "text", "original_text", "content", "input")
    if text is not None and not isinstance(text, str):
        raise ValueError("text is not a string")
    if text is not None:
        stats = char_stats(text)
        length = stats.pop("length")
    elif isinstance(row.get("text_length"), int):  # prediction-log row with hashed text
        length = row["text_length"]
        stats = {k: int(row.get(f"n_{k}") or 0) for k in _CHAR_KEYS}
    else:
        raise ValueError("row has no text")
    raw_label_value = _first(row, "label", "classification", "prediction", "predicted_label")
    label = normalize_label(raw_label_value)
    if raw_label_value is not None and label is None:
        raise ValueError(f"unknown label {raw_label_value!r}")
    confidence = row.get("confidence")
    if not isinstance(confidence, (int, float)) or isinstance(confidence, bool):
        scores = row.get("scores")
        confidence = max(scores.values()) if isinstance(scores, Mapping) and scores and label else None
    techniques: list[str] | None = None
    if isinstance(row.get("techniques"), list):
        techniques = [t for t in row["techniques"] if isinstance(t, str)]
    elif isinstance(row.get("matches"), list):
        techniques = techniques_of(row["matches"])
    raw = normalize_label(_first(row, "raw_label", "raw_classification"))
    flagged = _first(row, "flagged_categories", "categories")
    categories = [c for c in flagged if isinstance(c, str)] if isinstance(flagged, list) else None
    if ts is None and isinstance(row.get("ts"), (int, float)):
        ts = float(row["ts"])
    elif ts is None and isinstance(row.get("timestamp"), str):
        ts = _iso_ts(row["timestamp"])
    return Sample(
        length=length, chars=stats, text=text, label=label,
        confidence=float(confidence) if confidence is not None else None,
        raw_label=raw, techniques=techniques, ts=ts, categories=categories,
    )


def _first(row: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if row.get(key) is not None:
            return row[key]
    return None


# ------------------------------------------------------------------------------------------ time


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(value: str | None, *, now: float | None = None) -> float | None:
    """Unix seconds from an ISO date/time (UTC unless it says otherwise), 'now', or an age like '7d', '12h'."""
    if value is None or value == "":
        return None
    value = value.strip()
    now = datetime.now(UTC).timestamp() if now is None else now
    if value == "now":
        return now
    if m := _RELATIVE.match(value):
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    ts = _iso_ts(value)
    if ts is None:
        raise MonitoringInputError(f"not a time: {value!r} (use 2024-05-01, 2024-05-01T12:00, 7d, 12h or now)")
    return ts


def _iso_ts(value: str) -> float | None:
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


# ------------------------------------------------------------------------------------------ loading


def load_window(
    source: str,
    *,
    since: float | None = None,
    until: float | None = None,
    limit: int | None = 500_000,
    aws_region: str | None = None,
    aws_endpoint_url: str | None = None,
) -> Window:
    """Load a window of samples; raises MonitoringInputError (one-line message) for unusable input."""
    source = str(source)
    if source.startswith("s3://"):
        window = Window(source, [])
        for name, data in _s3_objects(source, aws_region, aws_endpoint_url):
            _read_lines(window, name, _maybe_gunzip(data, name))
    elif "://" in source:
        window = _from_log(source, since, until, limit)
    else:
        path = Path(source)
        if not path.exists():
            raise MonitoringInputError(f"no such file or folder: {source}")
        window = Window(source, [])
        files = sorted(p for p in path.rglob("*") if p.is_file() and _is_data_file(p)) if path.is_dir() else [path]
        if not files:
            raise MonitoringInputError(f"no .jsonl, .json or .parquet files under {source}")
        for f in files:
            _read_file(window, f)
    if since is not None or until is not None:
        window.samples = [
            s for s in window.samples
            if s.ts is None or ((since is None or s.ts >= since) and (until is None or s.ts < until))
        ]
    if limit is not None and len(window.samples) > limit:
        window.samples = window.samples[-limit:]
    if not window.samples:
        detail = f" ({window.bad_rows} unreadable rows, e.g. {window.problems[0]})" if window.problems else ""
        raise MonitoringInputError(f"no usable samples in {source}{detail}")
    return window


def _is_data_file(p: Path) -> bool:
    name = p.name.lower()
    return name.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz", ".parquet"))


def _from_log(url: str, since: float | None, until: float | None, limit: int | None) -> Window:
    from monitoring.prediction_log import read_records

    result = read_records(url, since=since, until=until, limit=limit)
    window = Window(url, [], bad_rows=result.bad_rows, problems=list(result.problems))
    for row in result.records:
        try:
            window.samples.append(sample_from_mapping(row))
        except ValueError as exc:
            _bad(window, f"row {row.get('id')}: {exc}")
    return window


def _bad(window: Window, problem: str) -> None:
    window.bad_rows += 1
    if len(window.problems) < 5:
        window.problems.append(problem)


def _maybe_gunzip(data: bytes, name: str) -> bytes:
    if name.endswith(".gz") or data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise MonitoringInputError(f"cannot decompress {name}: {exc}") from None
    return data


def _read_file(window: Window, path: Path) -> None:
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            try:
                import polars as pl
            except ImportError:
                raise MonitoringInputError(
                    "reading Parquet needs polars: uv sync --extra data"
                ) from None
            try:
                rows = pl.read_parquet(path).to_dicts()
            except Exception as exc:
                raise MonitoringInputError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
            for i, row in enumerate(rows):
                _add_row(window, row, f"{path.name}:{i + 1}")
            return
        data = _maybe_gunzip(path.read_bytes(), name)
    except OSError as exc:
        raise MonitoringInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if name.endswith((".json", ".json.gz")) and data.lstrip()[:1] == b"[":
        try:
            rows = json.loads(data)
        except ValueError as exc:
            raise MonitoringInputError(f"cannot parse {path}: {exc}") from None
        for i, row in enumerate(rows):
            _add_row(window, row, f"{path.name}[{i}]")
        return
    _read_lines(window, str(path), data)


def _read_lines(window: Window, name: str, data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    for lineno, line in enumerate(io.StringIO(text), 1):
        line = line.strip()
        if not line:
            continue
        where = f"{Path(name).name}:{lineno}"
        try:
            row = json.loads(line)
        except ValueError:
            _bad(window, f"{where}: not JSON")
            continue
        _add_row(window, row, where)


def _add_row(window: Window, row: Any, where: str) -> None:
    if not isinstance(row, Mapping):
        _bad(window, f"{where}: not a JSON object")
        return
    try:
        if "captureData" in row:
            window.samples.extend(parse_capture_record(row))
        else:
            window.samples.append(sample_from_mapping(row))
    except (ValueError, TypeError, KeyError) as exc:
        _bad(window, f"{where}: {exc}")


def _s3_objects(uri: str, region: str | None, endpoint_url: str | None) -> Iterator[tuple[str, bytes]]:
    try:
        import boto3  # noqa: F401 - only whether it is installed
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise MonitoringInputError("reading s3:// needs boto3: uv sync --extra monitoring") from None
    from core.settings import get_settings

    settings = get_settings()
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    from core import aws

    s3 = aws.client("s3", region or settings.aws_region, endpoint_url)
    found = 0
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if not key.lower().endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz")):
                    continue
                found += 1
                yield key, s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (BotoCoreError, ClientError) as exc:
        raise MonitoringInputError(f"cannot read {uri}: {str(exc).splitlines()[0]}") from None
    if not found:
        raise MonitoringInputError(f"no capture files (.jsonl) under {uri}")


# ------------------------------------------------------------------------------------------ capture


def parse_capture_record(record: Mapping[str, Any]) -> list[Sample]:
    """Samples from one SageMaker data-capture line: the input texts paired with the output predictions."""
    data = record["captureData"]
    if not isinstance(data, Mapping) or not isinstance(data.get("endpointInput"), Mapping):
        raise ValueError("captureData has no endpointInput")
    inferred = (record.get("eventMetadata") or {}).get("inferenceTime")
    ts = _iso_ts(inferred) if isinstance(inferred, str) else None
    texts = _texts_of(_decode_payload(data["endpointInput"]))
    if not texts:
        raise ValueError("no texts in endpointInput")
    outputs: list[Mapping[str, Any]] = []
    if isinstance(data.get("endpointOutput"), Mapping):
        outputs = _outputs_of(_decode_payload(data["endpointOutput"]))
    if outputs and len(outputs) != len(texts):
        raise ValueError(f"{len(texts)} inputs but {len(outputs)} outputs")
    samples = []
    for i, text in enumerate(texts):
        row: dict[str, Any] = dict(outputs[i]) if outputs else {}
        row["text"] = text
        samples.append(sample_from_mapping(row, ts=ts))
    return samples


def _decode_payload(payload: Mapping[str, Any]) -> Any:
    data = payload.get("data")
    encoding = str(payload.get("encoding") or "").upper()
    content_type = str(payload.get("observedContentType") or "").lower()
    if data is None:
        raise ValueError("capture payload has no data")
    if encoding == "BASE64":
        try:
            data = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, TypeError) as exc:
            raise ValueError(f"bad base64 payload ({exc})") from None
    if not isinstance(data, str):
        return data  # already JSON-decoded
    if "csv" in content_type or encoding == "CSV" or "text/plain" in content_type:
        return [line for line in data.splitlines() if line.strip()]
    try:
        return json.loads(data)
    except ValueError:
        return data  # a bare text payload


_TEXT_KEYS = ("inputs", "texts", "text", "instances", "input", "original_text", "content")


def _texts_of(payload: Any) -> list[str]:
    if isinstance(payload, str):
        return [payload]
    if isinstance(payload, list):
        out: list[str] = []
        for item in payload:
            out.extend(_texts_of(item))
        return out
    if isinstance(payload, Mapping):
        for key in _TEXT_KEYS:
            if key in payload:
                return _texts_of(payload[key])
    return []


_OUTPUT_LIST_KEYS = ("predictions", "results", "outputs", "items")


def _outputs_of(payload: Any) -> list[Mapping[str, Any]]:
    if isinstance(payload, Mapping):
        for key in _OUTPUT_LIST_KEYS:
            if isinstance(payload.get(key), list):
                return _outputs_of(payload[key])
        if any(k in payload for k in ("label", "classification", "prediction")):
            return [payload]
        return []
    if isinstance(payload, str):
        return [{"label": payload}]
    if isinstance(payload, list):
        out: list[Mapping[str, Any]] = []
        for item in payload:
            if isinstance(item, list) and item and all(isinstance(x, Mapping) and "score" in x for x in item):
                # a text-classification pipeline's top-k list: the best label, all scores
                best = max(item, key=lambda x: x["score"])
                out.append({"label": best.get("label"), "confidence": best["score"],
                            "scores": {x.get("label"): x["score"] for x in item}})
            elif isinstance(item, (Mapping, str)):
                out.extend(_outputs_of(item))
        return out
    return []


def utc_iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


__all__ = ["Sample", "Window", "load_window", "parse_capture_record", "parse_time", "sample_from_mapping",
           "utc_iso"]
