"""The classifier seam: one method over a batch of texts, a probability for each label per text.

Every backend (embedded, sagemaker, transformers) implements `classify`; the moderator, the evaluation and
the benchmarks only ever see this protocol.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from core.labels import LABELS

LabelScores = dict[str, float]  # {label: probability} over LABELS, summing to 1

SUM_TOLERANCE = 1e-3  # how far from 1 a backend's probabilities may sum (float32 softmax, rounding in JSON)


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


def check_scores(scores: Any, expected: int, source: str) -> list[LabelScores]:
    """The one rule for what a backend answers: a list of `expected` score dicts, each with exactly the labels
    of LABELS and, for each, a finite probability (a number in [0, 1], not a bool) summing to 1 within
    SUM_TOLERANCE. Returns them as floats in LABELS order; anything else is refused with ClassifierError
    (`source` names who answered). Used by the moderator, the /ready probe, the SageMaker client (over the
    inference core's response) and the deployment smoke test."""
    if not isinstance(scores, list) or len(scores) != expected:
        got = len(scores) if isinstance(scores, list) else type(scores).__name__
        raise ClassifierError(f"{source} returned {got} results for {expected} texts")
    out = []
    for item in scores:
        if not isinstance(item, dict) or item.keys() != _LABEL_SET:
            raise ClassifierError(f"{source} returned labels {sorted(item) if isinstance(item, dict) else item!r:.200}")
        values = [item[label] for label in LABELS]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and 0.0 <= v <= 1.0 for v in values) \
                or abs(math.fsum(values) - 1.0) > SUM_TOLERANCE:
            raise ClassifierError(f"{source} returned scores that are not finite probabilities summing to 1: {item}")
        out.append({label: float(v) for label, v in zip(LABELS, values)})
    return out


_LABEL_SET = frozenset(LABELS)


def check_categories(categories: Any, expected: int, source: str) -> list[dict[str, float]] | None:
    """What a backend answers for the harm categories: None (it has no category heads), or a list of `expected`
    dicts with exactly the categories of core.categories.CATEGORIES, each a probability in [0, 1] (independent:
    no sum). Anything else is refused with ClassifierError."""
    from core.categories import CATEGORIES

    if categories is None:
        return None
    if not isinstance(categories, list) or len(categories) != expected:
        got = len(categories) if isinstance(categories, list) else type(categories).__name__
        raise ClassifierError(f"{source} returned {got} category results for {expected} texts")
    out = []
    for item in categories:
        if not isinstance(item, dict) or item.keys() != frozenset(CATEGORIES):
            raise ClassifierError(f"{source} returned categories {sorted(item) if isinstance(item, dict) else item!r:.200}")
        values = [item[c] for c in CATEGORIES]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and 0.0 <= v <= 1.0 for v in values):
            raise ClassifierError(f"{source} returned category scores that are not probabilities: {item}")
        out.append({c: float(v) for c, v in zip(CATEGORIES, values)})
    return out


class AnswerCategories:
    """How the moderator flags the categories of a backend whose model answers them itself (the LLM's category
    field, core.prompt): a category is flagged when the model says " yes" more likely than " no" (probability
    at least `threshold`). The embedded model's heads carry their own thresholds (classifiers.embedded)."""

    def __init__(self, threshold: float = 0.5):
        from core.categories import CATEGORIES

        self.thresholds = dict.fromkeys(CATEGORIES, threshold)

    def flagged(self, probabilities: dict[str, float]) -> list[str]:
        return [c for c, t in self.thresholds.items() if probabilities[c] >= t]
