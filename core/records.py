"""Step records: one `out/<step>/record.json` per pipeline step, each naming what the step made, where, from
which inputs (the previous step's record, by path and checksum), with which versions.

    prepare -> ingest -> train -> evaluate -> gate -> deploy -> monitor

A step reads its inputs from the previous step's record (`read`) and refuses one that does not fit what it is
asked to do (`RecordError`, a one-line reason): a missing record, a missing artifact, a record written for
another model. It lives in `core/` and imports only `core`, so every step can use it and no step imports
`pipeline/`, which runs them.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.aws import sha256_file
from core.settings import ROOT

STEPS = ("prepare", "ingest", "train", "evaluate", "gate", "deploy", "monitor")
RECORD_NAME = "record.json"
DEFAULT_ROOT = ROOT / "out"
SCHEMA = 1


class RecordError(RuntimeError):
    """A record is missing or does not fit the step reading it; the message is one line and says what to run."""


def out_root() -> Path:
    """Where records go: PIPELINE_OUT (set by `python -m pipeline --out`), else out/ in the repository."""
    return Path(os.environ.get("PIPELINE_OUT") or DEFAULT_ROOT)


def record_path(step: str, root: Path | None = None) -> Path:
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; steps: {', '.join(STEPS)}")
    return Path(root or out_root()) / step / RECORD_NAME


def sha256_tree(path: str | Path) -> str:
    """A checksum of a file, or of a directory's files (relative names and contents, in name order)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode("utf-8") + b"\0" + bytes.fromhex(sha256_file(file)))
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("numpy", "polars", "torch", "transformers", "peft", "boto3", "sagemaker"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def write(step: str, outputs: dict[str, Any], inputs: dict[str, Path] | None = None,
          root: Path | None = None, **extra: Any) -> Path:
    """Write `<root>/<step>/record.json`: outputs, the input records (path and sha256, so a later step can tell
    a record that changed under it), versions, the command line. Returns its path."""
    path = record_path(step, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    linked = {}
    for name, input_path in (inputs or {}).items():
        input_path = Path(input_path)
        linked[name] = {"record": str(input_path), "sha256": sha256_file(input_path)}
    doc = {
        "schema": SCHEMA,
        "step": step,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": linked,
        "outputs": outputs,
        **extra,
        "versions": _versions(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read(step: str, root: Path | None = None, path: str | Path | None = None) -> dict[str, Any]:
    """The record of `step` (at `path`, else `<root>/<step>/record.json`); RecordError when it is missing,
    unreadable, or another step's, and when an input record it names changed since."""
    path = Path(path) if path else record_path(step, root)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError(f"no {step} record at {_show(path)}: run `python -m pipeline --from {step}` "
                          f"(or the {step} step) first") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise RecordError(f"cannot read the {step} record {_show(path)}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("step") != step:
        found = doc.get("step") if isinstance(doc, dict) else None
        raise RecordError(f"{_show(path)} is not a {step} record (step {found!r})")
    for name, link in (doc.get("inputs") or {}).items():
        linked = Path(link["record"])
        if linked.is_file() and sha256_file(linked) != link.get("sha256"):
            raise RecordError(f"the {step} record {_show(path)} is stale: its {name} record {_show(linked)} changed "
                              f"after it was written; run the {step} step again")
    doc["_path"] = str(path)
    return doc


def require_file(record: dict[str, Any], key: str, what: str) -> Path:
    """The local file or directory a record's output `key` names; RecordError when it is gone."""
    value = (record.get("outputs") or {}).get(key)
    if not value:
        raise RecordError(f"the {record.get('step')} record {_show(record.get('_path', '?'))} names no {what} ({key})")
    path = Path(value)
    if not path.exists():
        raise RecordError(f"the {what} {_show(path)} named by the {record.get('step')} record is missing")
    return path


def _show(path: str | Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)
