"""Progress for long work: a tqdm bar on a terminal; elsewhere (CI, SageMaker and CloudWatch logs, a pipe) one
plain line per interval with the count, the total, the elapsed time and an ETA, instead of silence or a bar
redrawn with carriage returns.

    for batch in progress(batches, desc="evaluating", unit="batches"): ...      # an iterable
    with Progress(total=steps, desc="training", unit="steps") as bar:           # updated by hand
        bar.update(1, loss=0.41)
    with Waiting("endpoint algospeak-stage2", limit_s=3600) as wait:            # a wait with a deadline
        wait.status("Creating")

A line reads `training: 120/400 steps (30%), 61s elapsed, eta 142s, loss=0.4100`; a last one is written when
the work ends (unless the line before already says it), so even work shorter than the interval says what it did.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
INTERVAL_S = 15.0  # seconds between two plain lines


def _is_terminal(stream) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


class Progress:
    """Counts `update`s towards `total` (None: unknown) and reports on `stream` (stderr by default): a tqdm bar
    when it is a terminal, else a plain line every `interval` seconds and one at the end (`close`, or leaving
    the `with` block). Keyword arguments of `update` (a loss, a status) are shown with the count."""

    def __init__(self, total: int | None = None, desc: str = "", unit: str = "it", interval: float = INTERVAL_S,
                 stream=None, initial: int = 0):
        self.stream = stream or sys.stderr
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.done = self.initial = initial
        self.extra: dict[str, Any] = {}
        self.started = self.last = time.monotonic()
        self.closed = False
        self.written: tuple | None = None  # what the last plain line reported (the final line is not repeated)
        self.bar = None
        if _is_terminal(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, mininterval=0.5, initial=initial)

    def update(self, n: int = 1, **extra: Any) -> None:
        self.done += n
        self.extra.update(extra)
        if self.bar is not None:
            if extra:
                self.bar.set_postfix({k: _fmt(v) for k, v in self.extra.items()}, refresh=False)
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._write(now)

    def line(self, now: float | None = None) -> str:
        """The plain line for the progress so far."""
        elapsed = (now or time.monotonic()) - self.started
        counted = self.done - self.initial  # the rate comes from this run's work (a resumed run starts later)
        if self.total:
            left = (self.total - self.done) * elapsed / counted if counted > 0 else math.nan
            text = (f"{self.desc}: {self.done}/{self.total} {self.unit} ({100 * self.done / self.total:.0f}%), "
                    f"{elapsed:.0f}s elapsed, eta {'?' if math.isnan(left) else f'{left:.0f}s'}")
        else:
            text = f"{self.desc}: {self.done} {self.unit}, {elapsed:.0f}s elapsed"
        return text + "".join(f", {key}={_fmt(value)}" for key, value in self.extra.items())

    def _key(self) -> tuple:
        return self.done, tuple(self.extra.items())

    def _write(self, now: float | None = None) -> None:
        self.written = self._key()
        print(self.line(now), file=self.stream, flush=True)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.close()
        elif self.written != self._key():  # something happened since the last line
            self._write()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(items: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it",
             interval: float = INTERVAL_S, stream=None) -> Iterator[T]:
    """Yield `items`, reporting progress (`Progress`): one update per item."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc, unit, interval, stream) as bar:
        for item in items:
            yield item
            bar.update(1)


class Waiting(Progress):
    """A wait with a deadline (a SageMaker endpoint or job reaching a state): the bar counts seconds towards
    `limit_s`, and `status` shows the state it is in; a change of state is written at once."""

    def __init__(self, desc: str, limit_s: float, interval: float = INTERVAL_S, stream=None):
        super().__init__(total=int(limit_s), desc=desc, unit="s", interval=interval, stream=stream)
        self.state: str | None = None

    def status(self, state: str) -> None:
        """Record the state now (call once per poll)."""
        seconds = int(time.monotonic() - self.started) - self.done
        changed = state != self.state
        self.state = state
        if self.bar is not None:
            self.bar.set_postfix_str(state, refresh=False)
            self.bar.update(max(seconds, 0))
            self.done += max(seconds, 0)
            return
        self.done += max(seconds, 0)
        self.extra["status"] = state
        now = time.monotonic()
        if changed or now - self.last >= self.interval:
            self.last = now
            self._write(now)

    def _key(self) -> tuple:
        return (self.state,)  # the seconds go on; the final line is worth writing when the state changed

    def line(self, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self.started
        state = f" {self.state}" if self.state else ""
        return f"{self.desc}:{state}, {elapsed:.0f}s elapsed (gives up after {self.total}s)"
