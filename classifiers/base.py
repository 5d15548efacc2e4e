"""The classifier seam: one method over a batch of texts, a probability for each label per text.

Every backend (embedded, sagemaker, transformers) implements `classify`; the moderator, the evaluation and
the benchmarks only ever see this protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from core.labels import LABELS

LabelScores = dict[str, float]  # {label: probability} over LABELS, summing to 1


class ClassifierError(RuntimeError):
    """The backend could not classify (unreachable, timed out, bad artifact, non-finite output...)."""


@runtime_checkable
class Classifier(Protocol):
    name: str  # backend name, e.g. "embedded"
    version: str  # model version, e.g. the artifact's sha256 prefix
    # The decision thresholds the model was tuned with ({label: P(label or worse) to reach}); None when it has
    # none, and the moderator then uses 0.5. Settings (THRESHOLD_*) override them.
    thresholds: dict[str, float] | None

    def classify(self, texts: Sequence[str]) -> list[LabelScores]:
        """Scores for each text, in order. Raises ClassifierError when it cannot answer."""
        ...


def top_label(scores: LabelScores) -> str:
    return max(LABELS, key=lambda label: scores[label])
