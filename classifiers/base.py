"""The classifier seam: one method over a batch of texts, a probability for each label per text.

Every backend (embedded, sagemaker, transformers) implements `classify`; the moderator, the evaluation and
the benchmarks only ever see this protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

# The answer type, the error and the score and category rules live in core/scores.py (the inference core the
# container runs needs them too, from below); the classifier seam re-exports them.
from core.scores import (  # noqa: F401
    SUM_TOLERANCE,
    ClassifierError,
    LabelScores,
    check_categories,
    check_scores,
)


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


class AnswerCategories:
    """How the moderator flags the categories of a backend whose model answers them itself (the LLM's category
    field, core.prompt): a category is flagged when the model says " yes" more likely than " no" (probability
    at least `threshold`). The embedded model's heads carry their own thresholds (classifiers.embedded)."""

    def __init__(self, threshold: float = 0.5):
        from core.categories import CATEGORIES

        self.thresholds = dict.fromkeys(CATEGORIES, threshold)

    def flagged(self, probabilities: dict[str, float]) -> list[str]:
        return [c for c, t in self.thresholds.items() if probabilities[c] >= t]
