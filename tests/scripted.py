"""Scripted Stage 2 backends for tests that check the moderator's rules: the test decides every probability.

    Scripted({"go k1ll yourself": EXTREME}, default=SAFE)   # scores by exact text, a default for the rest
    Tagged()                                               # scores from a "HARM<n>" tag in the text
    BlackHole()                                            # Tagged, but holds every call until released

Each one records the batches it was called with (`calls`), so a test can see what the moderator asked.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence

from classifiers.base import ClassifierError
from core.labels import LABELS

SAFE = {"safe": 0.9, "potentially_harmful": 0.05, "harmful": 0.03, "extremely_harmful": 0.02}
POTENTIALLY = {"safe": 0.4, "potentially_harmful": 0.45, "harmful": 0.1, "extremely_harmful": 0.05}
HARMFUL = {"safe": 0.2, "potentially_harmful": 0.1, "harmful": 0.6, "extremely_harmful": 0.1}
EXTREME = {"safe": 0.05, "potentially_harmful": 0.05, "harmful": 0.1, "extremely_harmful": 0.8}


class Scripted:
    """A backend whose answer for each text is a table look-up (or whatever `answer` returns for the batch)."""

    def __init__(
        self,
        table: dict[str, dict] | None = None,
        default: dict | None = None,
        *,
        name: str = "scripted",
        version: str = "v1",
        thresholds: dict[str, float] | None = None,
        answer: Callable[[list[str]], object] | None = None,
        error: Exception | None = None,
    ):
        self.name = name
        self.version = version
        self.thresholds = thresholds
        self.table = table or {}
        self.default = default if default is not None else SAFE
        self.answer = answer
        self.error = error
        self.calls: list[list[str]] = []

    def classify(self, texts: Sequence[str]) -> list[dict]:
        texts = list(texts)
        self.calls.append(texts)
        if self.error is not None:
            raise self.error
        if self.answer is not None:
            return self.answer(texts)  # type: ignore[return-value]
        return [dict(self.table.get(t, self.default)) for t in texts]


_TAG = re.compile(r"HARM(\d+)")


def tagged_scores(n: int) -> dict[str, float]:
    """Scores that decide LABELS[n % 4] (thresholds 0.5) and that no other tag shares: the top probability is
    0.6 + n/10000, the rest split evenly."""
    top = 0.6 + n / 10_000
    rest = (1.0 - top) / 3
    return {label: (top if i == n % 4 else rest) for i, label in enumerate(LABELS)}


class Tagged:
    """A thread-safe backend whose scores depend on the text alone: a text holding "HARM<n>" gets
    `tagged_scores(n)`, any other text is safe. `delay` seconds per call keep the event loop busy, so that
    concurrent requests pile up and the API's micro-batcher merges them."""

    name = "tagged"
    version = "t1"
    thresholds = None

    def __init__(self, delay: float = 0.0, probe: Callable[[], object] | None = None):
        self.delay = delay
        self.probe = probe
        self.calls: list[list[str]] = []
        self._lock = threading.Lock()

    def classify(self, texts: Sequence[str]) -> list[dict]:
        texts = list(texts)
        with self._lock:
            self.calls.append(texts)
        if texts == ["readiness probe"] and self.probe is not None:
            return self.probe()  # type: ignore[return-value]
        if self.delay:
            time.sleep(self.delay)
        out = []
        for text in texts:
            m = _TAG.search(text)
            out.append(tagged_scores(int(m.group(1))) if m else dict(SAFE))
        return out


def down(message: str = "endpoint timed out after 5.0 s") -> Scripted:
    """A backend that is down."""
    return Scripted(name="sagemaker", version="endpoint-v7", error=ClassifierError(message))


class BlackHole(Tagged):
    """A Stage 2 that never answers until released (a silent endpoint)."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)

    def classify(self, texts):
        self.entered.release()
        self.release.wait(30)
        return super().classify(texts)
