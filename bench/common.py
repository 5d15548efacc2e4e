"""Helpers shared by the benchmarks: real texts from shared/data, one-core pinning, result files."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from core.settings import ROOT

RESULTS = ROOT / "bench" / "results"


def pin_one_core() -> None:
    """Run on one core, as the targets are stated per core."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def real_texts(limit: int | None = None) -> list[str]:
    """Texts from every shared data set, in a fixed shuffled order."""
    import random

    from data.readers import load_shared_sources

    texts = load_shared_sources()["text"].to_list()
    random.Random(0).shuffle(texts)
    return texts[:limit] if limit else texts


def machine() -> dict:
    return {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}


def write_result(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path
