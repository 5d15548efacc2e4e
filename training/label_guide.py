"""The label guide's head: what it learns from, how it is fitted, calibrated and given its threshold.

Used by `training.guide` (the command that fits the shipped head) and by `training.transfer` (which fits one in
every leave-one-domain-out fold); served by `classifiers.embedded.raised_by_guide`. Why it exists and what it
changed: `training/guide.py` and the README ("The label guide's head").
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.labels import SEVERITY

GUIDE_BUDGET = 0.0025  # validation safe texts it may flag beyond the severity model's own (a share of all of them)
GUIDE_C = 4.0
# The seed families whose harmful sentences the guide learns: the harms the shared sets barely label. Hate
# (dehumanisation, implicit derogation) is labelled by most shared sets and the severity model catches it; taught
# to the guide too, it flagged counter-speech that quotes hate ("I'm tired of people saying X should not be
# allowed to vote."). Their sentences are left out of the guide's data altogether; every safe seed sentence stays.
GUIDE_FAMILIES = ("threat", "self_harm", "sexual", "profanity")
HARMFUL = SEVERITY["harmful"]


@dataclass
class Guide:
    """A fitted guide head: logistic-regression weights over a model's features (tf-idf, L2), its Platt
    calibration (`a * logit + b`, the log-likelihood ratio) and the raw-logit threshold at which it may raise."""

    coef: np.ndarray
    intercept: float
    a: float
    b: float
    threshold: float
    budget: float

    def as_meta(self) -> dict[str, float]:
        return {"intercept": self.intercept, "a": self.a, "b": self.b, "threshold": self.threshold,
                "budget": self.budget}


def logits_of(features: Callable[[list[str]], Any], coef: np.ndarray, intercept: float, texts: Sequence[str],
              cut: str | None) -> np.ndarray:
    """The guide's raw logit of each text: its highest over the whole text and, with a `cut`, each part
    (`classifiers.features.sentences_of`), as served."""
    from classifiers.embedded import highest_reading
    from classifiers.features import sentences_of

    texts = list(texts)
    if not texts:
        return np.zeros(0)
    owner, parts = sentences_of(texts, cut) if cut else (np.zeros(0, dtype=np.int64), [])
    z = np.asarray(features([*texts, *parts]) @ coef).ravel() + intercept
    return highest_reading(z[: len(texts)], owner, z[len(texts) :])


def _balanced(y: np.ndarray, from_seed: np.ndarray) -> np.ndarray:
    """Weights: the positives the same total as the negatives, and the negatives half the seed's, half the
    shared sets' (when both are present)."""
    w = np.zeros(len(y), dtype=np.float64)
    pos = y == 1
    w[pos] = 1.0 / max(pos.sum(), 1)
    groups = [m for m in (~pos & from_seed, ~pos & ~from_seed) if m.any()]
    for m in groups:
        w[m] = 1.0 / len(groups) / m.sum()
    return w * (len(w) / w.sum())


def guide_harm(texts: Sequence[str], families: Sequence[str] = GUIDE_FAMILIES, seed: int = 13) -> np.ndarray:
    """Which of these seed texts are harmful sentences of the guide's `families` (matched by near-duplicate key
    to data.seed's expansion with `seed`, the one the corpus holds: another expansion shares a quarter of them)."""
    from data.readers import near_duplicate_keys
    from data.seed import load_seed

    expansion = load_seed(seed=seed)
    keys = near_duplicate_keys([r.text for r in expansion])
    wanted = {k for k, r in zip(keys, expansion) if r.family in families and SEVERITY[r.label] >= HARMFUL}
    return np.array([k in wanted for k in near_duplicate_keys(list(texts))], dtype=bool)


def rows(corpus, seed_source: str, families: Sequence[str] | None = GUIDE_FAMILIES
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mask, y, from_seed) of the texts a guide learns from: the seed's harmful-or-worse sentences of `families`
    (y = 1; None: of every family), its safe sentences (0), and the shared sets' safe texts (0). The shared sets'
    harmful texts are not used: their labels are what the guide is there to stand beside."""
    from_seed = corpus.source == seed_source
    positive = np.zeros(len(corpus), dtype=bool)
    seed_harm = np.flatnonzero(from_seed & (corpus.label >= HARMFUL))
    positive[seed_harm] = (True if families is None else guide_harm(
        [corpus.text[i] for i in seed_harm], families, seed=corpus.info.get("seed", 13)))
    if families is not None and len(seed_harm) and not positive.any():
        raise ValueError("none of the corpus's harmful seed sentences is one of the guide's families: was the corpus "
                         "expanded with another seed than its info says?")
    mask = positive | (corpus.label == 0)
    return mask, positive[mask].astype(int), from_seed[mask]


def fit_guide(features: Callable[[list[str]], Any], train, val, flagged_val: np.ndarray, cut: str | None,
              budget: float = GUIDE_BUDGET, c: float = GUIDE_C,
              families: Sequence[str] | None = GUIDE_FAMILIES) -> Guide:
    """Fit a guide head on `train` (a transfer.Corpus, screened), calibrate it and set its threshold on `val`
    (screened), given which validation texts the severity model already flags (`flagged_val`). It learns harm
    from the seed's sentences of `families` (None: all)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    from data.seed import SOURCE as TEAM_SEED

    mask, y, from_seed = rows(train, TEAM_SEED, families)
    if y.sum() == 0 or (y == 0).sum() == 0:
        raise ValueError("the guide needs the seed corpus's harmful and safe sentences in the training split")
    texts = [t for t, m in zip(train.text, mask) if m]
    model = LogisticRegression(C=c, max_iter=3000, tol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(features(texts), y, sample_weight=_balanced(y, from_seed))
    coef, intercept = model.coef_[0].astype(np.float64), float(model.intercept_[0])

    h_val = logits_of(features, coef, intercept, val.text, cut)
    v_mask, v_y, v_seed = rows(val, TEAM_SEED, families)
    if v_y.sum() == 0:
        raise ValueError("the guide's calibration needs seed sentences in the validation split")
    platt = LogisticRegression(C=1e4, max_iter=1000)
    platt.fit(h_val[v_mask, None], v_y, sample_weight=_balanced(v_y, v_seed))
    a, b = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    if a <= 0:
        raise ValueError(f"the guide's calibration slope is {a}: it does not rank the validation texts")

    # The threshold: at most `budget` of all validation safe texts flagged by the guide and not by the model.
    safe = val.label == 0
    candidates = np.sort(h_val[safe & ~flagged_val])[::-1]
    if not len(candidates):
        raise ValueError("no validation safe text is left unflagged by the model: the guide's budget has nothing to "
                         "count against (check the model's decision and the validation split)")
    k = int(np.floor(budget * safe.sum()))
    if k >= len(candidates):
        threshold = float(candidates.min())
    elif k > 0 and candidates[k - 1] > candidates[k]:
        # halfway between the last text let through and the first held back: serving computes the logit in
        # float32, so a threshold a float64 ulp above a text could land on either side of it
        threshold = float((candidates[k - 1] + candidates[k]) / 2)
    else:
        threshold = float(np.nextafter(candidates[k], np.inf))
    return Guide(coef, intercept, a, b, threshold, budget)
