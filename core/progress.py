"""Progress for long loops: a tqdm bar on a terminal; elsewhere (CI, SageMaker and CloudWatch logs, a pipe) one
plain line per interval with the count, the total, the elapsed time and an ETA, instead of silence or a bar
redrawn with carriage returns."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it",
             interval: float = 15.0, stream=None) -> Iterator[T]:
    """Yield `items`, reporting progress on `stream` (stderr): tqdm when it is a terminal, else a line every
    `interval` seconds and one at the end."""
    stream = stream or sys.stderr
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if getattr(stream, "isatty", lambda: False)():
        from tqdm import tqdm

        yield from tqdm(items, total=total, desc=desc, unit=unit, file=stream, mininterval=0.5)
        return
    started = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= interval:
            last = now
            print(_line(desc, done, total, now - started, unit), file=stream, flush=True)
    if done and time.monotonic() - started >= interval:
        print(_line(desc, done, total, time.monotonic() - started, unit), file=stream, flush=True)


def _line(desc: str, done: int, total: int | None, elapsed: float, unit: str) -> str:
    if total:
        eta = (total - done) * elapsed / done if done else float("nan")
        return f"{desc}: {done}/{total} {unit} ({100 * done / total:.0f}%), {elapsed:.0f}s elapsed, eta {eta:.0f}s"
    return f"{desc}: {done} {unit}, {elapsed:.0f}s elapsed"
