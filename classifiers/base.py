"""The classifier seam: one method over a batch of texts, a probability for each label per text.

Every backend (embedded, sagemaker, transformers) implements `classify`; the moderator, the evaluation and
the benchmarks only ever see this protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

# The answer type, the error and the score rule live in core/scores.py (the inference core the container runs
# needs them too, from below); the classifier seam re-exports them.
from core.scores import SUM_TOLERANCE, ClassifierError, LabelScores, check_scores  # noqa: F401


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
