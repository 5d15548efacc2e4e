"""What a classifier answers, and the rules every answer passes (labels: `check_scores`; harm categories:
`check_categories`).

The bottom of the classifier seam: the backends (`classifiers/`), the moderator, the inference core that the
SageMaker container runs (`core/llm_inference.py`) and the deployment smoke test all refuse an answer with the
same error and the same check. It lives in `core/` so that the container's code bundle and every layer above can
import it without reaching up into `classifiers/`.
"""

from __future__ import annotations

import math
from typing import Any

from core.categories import CATEGORIES
from core.labels import LABELS

LabelScores = dict[str, float]  # {label: probability} over LABELS, summing to 1

SUM_TOLERANCE = 1e-3  # how far from 1 a backend's probabilities may sum (float32 softmax, rounding in JSON)


class ClassifierError(RuntimeError):
    """The backend could not classify (unreachable, timed out, bad artifact, non-finite output...)."""


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
