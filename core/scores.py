"""What a classifier answers, and the one rule every answer passes.

The bottom of the classifier seam: the backends (`classifiers/`), the moderator, the inference core that the
SageMaker container runs (`core/llm_inference.py`) and the deployment smoke test all refuse an answer with the
same error and the same check. It lives in `core/` so that the container's code bundle and every layer above can
import it without reaching up into `classifiers/`.
"""

from __future__ import annotations

import math
from typing import Any

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
