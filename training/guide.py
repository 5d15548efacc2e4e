"""The label guide's head: harm as the team's seed corpus defines it, beside the severity model.

    uv run --all-extras python -m training.guide          # after train_embedded --promote: writes guide.npz

The severity model learns what 13 shared sets call harmful, and they label different harms (sexism, hate,
toxicity, abuse of a chatbot, API policy categories): a plain threat or a suicide plan that none of them labels
harmful scores low ("I'm going to find where you live and hurt you." P(harmful or worse) 0.04, "I want to kill
myself tonight." 0.10, the model of 2026-12-07 14:30). The team's seed corpus (data/dataset/seed_corpus.json) is
our label guide written down. This head is one binary logistic regression over the severity model's own features,
trained on the seed's harmful-or-worse sentences against the seed's safe ones and the shared sets' safe training
texts (each half of the negative weight): harm as the guide defines it, and what real safe text looks like.

It may only raise a text (`classifiers.embedded.raised_by_guide`): where its logit reaches a threshold that lets
it flag at most GUIDE_BUDGET of the validation split's safe texts beyond those the severity model flags, the served
P(harmful or worse) becomes the guide's own calibrated probability (Platt scaling on the validation split, classes
balanced, then shifted to the stated traffic mix) when that is the higher. Each text is read as the severity model
reads it: whole and sentence by sentence, the guide's highest logit kept.

Leave-one-domain-out fits it in every fold (`training.transfer --guide-budget`), on that fold's features and
data. Writes models/embedded/guide.npz (bound to the model's sha256, like the category heads) and guide.json.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by its path (python training/guide.py): the repository root on sys.path
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.labels import SEVERITY
from core.settings import ROOT

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
    from classifiers.features import sentences_of

    texts = list(texts)
    if not texts:
        return np.zeros(0)
    owner, parts = sentences_of(texts, cut) if cut else (np.zeros(0, dtype=np.int64), [])
    z = np.asarray(features([*texts, *parts]) @ coef).ravel() + intercept
    h = z[: len(texts)].copy()
    if len(parts):
        np.maximum.at(h, owner, z[len(texts) :])
    return h


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


def guide_harm(texts: Sequence[str], families: Sequence[str] = GUIDE_FAMILIES) -> np.ndarray:
    """Which of these seed texts are harmful sentences of the guide's `families` (matched by near-duplicate key
    to data.seed's expansion)."""
    from data.seed import load_seed
    from training.transfer import near_duplicate_keys

    rows = load_seed()
    keys = near_duplicate_keys([r.text for r in rows])
    wanted = {k for k, r in zip(keys, rows) if r.family in families and SEVERITY[r.label] >= HARMFUL}
    return np.array([k in wanted for k in near_duplicate_keys(list(texts))], dtype=bool)


def rows(corpus, seed_source: str, families: Sequence[str] | None = GUIDE_FAMILIES
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mask, y, from_seed) of the texts a guide learns from: the seed's harmful-or-worse sentences of `families`
    (y = 1; None: of every family), its safe sentences (0), and the shared sets' safe texts (0). The shared sets'
    harmful texts are not used: their labels are what the guide is there to stand beside."""
    from_seed = corpus.source == seed_source
    positive = np.zeros(len(corpus), dtype=bool)
    seed_harm = np.flatnonzero(from_seed & (corpus.label >= HARMFUL))
    positive[seed_harm] = (True if families is None
                           else guide_harm([corpus.text[i] for i in seed_harm], families))
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
    threshold = float(np.nextafter(candidates[k], np.inf)) if k < len(candidates) else float(candidates.min())
    return Guide(coef, intercept, a, b, threshold, budget)


def main(argv: list[str] | None = None) -> int:
    from data.readers import DEFAULT_SHARED_ROOT

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED_ROOT, help="the shared data root")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "embedded" / "model.npz",
                        help="the severity model whose features and decision the guide uses")
    parser.add_argument("--out", type=Path, help="where guide.npz and guide.json go (default: beside --model)")
    parser.add_argument("--budget", type=float, default=GUIDE_BUDGET,
                        help=f"validation safe texts it may flag beyond the model's (default {GUIDE_BUDGET})")
    parser.add_argument("--c", type=float, default=GUIDE_C, help=f"inverse regularisation (default {GUIDE_C})")
    args = parser.parse_args(argv)
    if not 0.0 <= args.budget < 0.5:
        parser.error(f"--budget must be in [0, 0.5), got {args.budget}")
    out = args.out or args.model.parent

    from classifiers.base import ClassifierError
    from classifiers.embedded import GUIDE_ARTIFACT, EmbeddedClassifier
    from data.readers import DataError
    from training import transfer
    from training.categories import Features

    t0 = time.time()
    try:
        features = Features(args.model)
        severity = EmbeddedClassifier(args.model, guide=False)  # fitted against the severity model alone
        corpus = transfer.load_corpus(args.shared, clean_sentences=6000, seed=severity.meta.get("seed", 13),
                                      team_seed=True)
    except (OSError, ValueError, ClassifierError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if severity.thresholds is None:
        print(f"error: {args.model} has no fitted decision; retrain it with training.train_embedded", file=sys.stderr)
        return 2
    keep, _ = transfer.screen_single_harm(corpus, seed_weight=severity.meta.get("seed_weight", transfer.SEED_WEIGHT))
    train = corpus.take((corpus.split == "train") & keep)
    val = corpus.take((corpus.split == "validation") & keep)
    test = corpus.take(corpus.split == "test")
    print(f"{len(train)} training, {len(val)} validation texts ({time.time() - t0:.0f} s)", flush=True)

    def served_harm(texts: list[str]) -> np.ndarray:
        p = np.array([[s[label] for label in ("harmful", "extremely_harmful")] for s in severity.classify(texts)])
        return p.sum(axis=1)

    t_harm = severity.thresholds["harmful"]
    flagged_val = served_harm(val.text) >= t_harm
    try:
        guide = fit_guide(features, train, val, flagged_val, severity.cut, args.budget, args.c)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    # What it adds, on the validation split it was fitted on and the test split it was not.
    from classifiers.embedded import GuideHead, raised_by_guide

    head = GuideHead(guide.coef * features.idf, guide.intercept, guide.a, guide.b, guide.threshold, guide.budget)

    def figures(part) -> dict[str, Any]:
        before = served_harm(part.text) >= t_harm
        h = logits_of(features, guide.coef, guide.intercept, part.text, severity.cut)
        z = raised_by_guide(severity.logits(part.text), h, head, severity.temperature, severity.bias,
                            harm_share=float(sum(severity.prior[HARMFUL:])))
        p = transfer.softmax(z / severity.temperature + severity.bias)
        raised = p[:, HARMFUL:].sum(axis=1) >= t_harm
        safe, harm = part.label == 0, part.label >= HARMFUL
        return {"texts": len(part), "false_flags_before": round(float(before[safe].mean()), 4),
                "false_flags_after": round(float(raised[safe].mean()), 4),
                "recall_before": round(float(before[harm].mean()), 4),
                "recall_after": round(float(raised[harm].mean()), 4)}

    report = {"model_sha256": features.model_sha, "budget": guide.budget, "c": args.c,
              "families": list(GUIDE_FAMILIES), "seed_corpus": seed_version(),
              "threshold": round(guide.threshold, 4), "platt": [round(guide.a, 4), round(guide.b, 4)],
              "validation": figures(val), "test": figures(test), "seconds": round(time.time() - t0)}
    out.mkdir(parents=True, exist_ok=True)
    save(out / GUIDE_ARTIFACT, head.weights, guide, features.model_sha)
    (out / "guide.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=1))
    print(f"wrote {out / GUIDE_ARTIFACT} and guide.json ({report['seconds']} s)")
    return 0


def seed_version() -> str:
    from data.seed import DEFAULT_SEED_CORPUS

    return str(json.loads(DEFAULT_SEED_CORPUS.read_text(encoding="utf-8")).get("version"))


def save(path: Path, weights: np.ndarray, guide: Guide, model_sha: str) -> None:
    meta = {"model_sha256": model_sha, **guide.as_meta()}
    with open(path, "wb") as f:
        np.savez_compressed(f, weights=weights.astype(np.float32), meta=np.array(json.dumps(meta)))


if __name__ == "__main__":
    sys.exit(main())
