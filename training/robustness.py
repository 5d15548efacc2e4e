"""The evaluated classifier (batches, probabilities, the decision as served, timings) and the robustness
report: recall of "harmful or worse" on plain texts, their algospeak variants, and the variants normalized.
Used by the evaluation (`training/model_evaluation.py`) and the embedded model's training
(`training/train_embedded.py`), which no longer import each other.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.labels import LABELS, SEVERITY
from training.metrics import HARMFUL




@dataclass
class TimedClassifier:
    """Wraps a classifier: batches, probability matrices in LABELS order, and the wall time of every call. A
    backend that answers harm categories with its labels (`classify_with_categories`) is asked for both, and the
    categories are kept by text (`categories_of`), so the category report does not score those texts again (for an
    LLM, a second pass over the evaluation)."""

    classifier: Any
    batch_size: int = 64
    calls: list[tuple[int, float]] = field(default_factory=list)  # (texts, seconds) per classify call
    categories_of: dict[str, dict[str, float]] = field(default_factory=dict)

    def probs(self, texts: Sequence[str], desc: str = "scoring") -> np.ndarray:
        from core.progress import progress

        with_categories = getattr(self.classifier, "classify_with_categories", None)
        out = np.zeros((len(texts), len(LABELS)))
        starts = range(0, len(texts), self.batch_size)
        for i in progress(starts, desc=f"{desc} ({len(texts)} texts)", unit="batches"):
            batch = list(texts[i : i + self.batch_size])
            started = time.perf_counter()
            if with_categories is None:
                scores = self.classifier.classify(batch)
            else:
                scores, categories = with_categories(batch)
                if categories is not None and len(categories) == len(batch):
                    self.categories_of.update(zip(batch, categories))
            self.calls.append((len(batch), time.perf_counter() - started))
            if len(scores) != len(batch):
                raise RuntimeError(f"{self.classifier.name} returned {len(scores)} results for {len(batch)} texts")
            out[i : i + len(batch)] = [[s[label] for label in LABELS] for s in scores]
        return out

    @property
    def thresholds(self) -> dict[str, float]:
        """The decision as served: the model's own thresholds (or 0.5), as the moderator resolves them."""
        from moderator import resolve_thresholds

        return resolve_thresholds({}, self.classifier)

    def decide(self, probs: np.ndarray) -> list[str]:
        from training.transfer import decide_many

        return [LABELS[i] for i in decide_many(probs, self.thresholds)] if len(probs) else []

    def labels(self, texts: Sequence[str]) -> list[str]:
        return self.decide(self.probs(texts)) if len(texts) else []

    def speed(self) -> dict[str, Any]:
        if not self.calls:
            return {"texts": 0}
        texts = sum(n for n, _ in self.calls)
        seconds = sum(s for _, s in self.calls)
        per_batch = np.array([s for _, s in self.calls]) * 1000
        return {
            "texts": texts,
            "calls": len(self.calls),
            "batch_size": self.batch_size,
            "seconds": round(seconds, 3),
            "texts_per_second": round(texts / seconds, 1) if seconds else None,
            "ms_per_text": round(seconds * 1000 / texts, 3),
            "batch_ms_p50": round(float(np.percentile(per_batch, 50)), 3),
            "batch_ms_p95": round(float(np.percentile(per_batch, 95)), 3),
        }


def _as_timed(classifier) -> TimedClassifier:
    return classifier if isinstance(classifier, TimedClassifier) else TimedClassifier(classifier)


def _flagged(labels: Sequence[str]) -> list[bool]:
    return [SEVERITY[label] >= HARMFUL for label in labels]


# --------------------------------------------------------------------------------------------- robustness


def robustness_report(classifier, normalizer, augmenter, texts: list[str], labels: list[str], n_variants: int = 2) -> dict:
    """Recall of "harmful or worse" on plain test texts, their algospeak variants, and the variants normalized
    (taking the more severe of raw and normalized, as the moderator does), per technique."""
    timed = _as_timed(classifier)
    harmful = [(i, t) for i, (t, label) in enumerate(zip(texts, labels)) if SEVERITY[label] >= HARMFUL]
    plain = _flagged(timed.labels([t for _, t in harmful]))
    made: list[tuple[bool, tuple[str, ...], str, str]] = []  # (plain hit, techniques, variant, normalized)
    for (i, text), plain_hit in zip(harmful, plain):
        for variant in augmenter.variants(text, parent_id=f"test{i}", n=n_variants):
            made.append((plain_hit, variant.techniques, variant.text, normalizer.normalize(variant.text).text))
    raw_hits = _flagged(timed.labels([m[2] for m in made]))
    norm_hits = _flagged(timed.labels([m[3] for m in made]))
    per_technique: dict[str, list[tuple[bool, bool, bool]]] = {}
    for (plain_hit, techniques, _, _), raw_hit, norm_hit in zip(made, raw_hits, norm_hits):
        for technique in techniques:
            per_technique.setdefault(technique, []).append((plain_hit, raw_hit, raw_hit or norm_hit))

    def rate(values) -> float:
        return round(float(np.mean(values)), 4)

    table = {
        technique: {
            "n": len(rows),
            "plain_recall": rate([r[0] for r in rows]),
            "variant_recall_without_normalizer": rate([r[1] for r in rows]),
            "variant_recall_with_normalizer": rate([r[2] for r in rows]),
        }
        for technique, rows in sorted(per_technique.items())
    }
    overall = {
        "n": len(made),
        "variant_recall_without_normalizer": rate(raw_hits) if made else None,
        "variant_recall_with_normalizer": rate([a or b for a, b in zip(raw_hits, norm_hits)]) if made else None,
    }
    return {
        "harmful_texts": len(harmful),
        "plain_recall": rate(plain) if plain else None,
        "variants": overall,
        "by_technique": table,
    }
