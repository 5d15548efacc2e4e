"""Harm-category heads for the embedded model, judged on sources they did not train on.

    uv run --all-extras python -m training.categories                 # train, evaluate, write the artifact
    uv run --all-extras python -m training.categories --no-transfer   # skip leave-one-source-out (faster)

One binary logistic regression per category (core.categories) over the shipped severity model's own features
(its vocabulary and IDF), so serving scores severity and categories in one pass of the compiled kernel. Each head
trains only on texts whose source judged that category (data.categories: unknown is not negative), with weights
that give every source's positives and negatives the same total (a large source cannot teach its style), then
the positives as a whole the same total as the negatives. Probabilities are Platt-calibrated on the validation
split; each head's threshold is the lowest that flags at most FALSE_FLAG_BUDGET of the validation negatives
(averaged over the shared sources, each counting the same). For the categories routed to urgent or support
queues (MIN_RECALL: violence, self_harm) a threshold that leaves validation recall under 0.8 is lowered to the
highest that reaches it: there a miss costs more than a text routed there by mistake. A category with too few
positives to learn (fewer than MIN_POSITIVES) ships without a head and is said so: only Stage 1's decoded terms can
raise it. No shared set labels drugs: its head learns from the pattern database's examples alone (337 positives),
so it knows the database's drug words and little else, and fires on some casual safe text (models/embedded/README.md).

Reported, per category:
  transfer      for each source with at least 20 positives and 20 negatives of it: a head trained without that
                source (threshold from the other sources' validation split) scored on all of its texts: recall,
                false-flag rate, precision, AUC. This is the quality claim.
  home_test     the shipped head on the test split of the sources it trained on (not a quality claim).
  functional    the functional suite through the normalizer (plain and coded): how often each family's flagged
                cases route to the family's category (threats -> violence, self-harm -> self_harm, ...).
Writes models/embedded/categories.npz and categories.json (or --out).
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by its path (python training/categories.py): the repository root on sys.path
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import hashlib
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from core.categories import CATEGORIES, FUNCTIONAL_FAMILIES, stage1_categories
from data.categories import PATTERN_EXAMPLES
from training.transfer import split_of
from core.settings import ROOT

FALSE_FLAG_BUDGET = 0.03
ROUTING_BUDGET = 0.10  # harmful texts of other kinds given this category: a flagged text sent to the wrong queue
MIN_POSITIVES = 40
MIN_TRANSFER = 20
MIN_BUDGET_NEGATIVES = 50
MIN_TRANSFER_NEGATIVES = 100  # fewer safe texts than this (Stormfront: 23) make a false-flag rate noise
C = 4.0
# Categories whose flagged texts go to an urgent or support queue, where a miss costs more than a text sent there
# by mistake: the threshold is lowered, when the budgets leave validation recall below this, to the highest one
# that reaches it on the validation split (never on the functional suite).
MIN_RECALL: dict[str, float] = {"violence": 0.8, "self_harm": 0.8}


class Features:
    """The shipped severity model's features: binary n-grams over its vocabulary, IDF-weighted, L2-normalised
    (what `classifiers.kernel` computes when it serves the heads)."""

    def __init__(self, model_path: Path):
        with np.load(model_path, allow_pickle=False) as npz:
            self.vocab = npz["vocab"].astype(np.uint64)
            self.idf = np.sqrt(npz["idf2"].astype(np.float64))
        self.model_sha = hashlib.sha256(model_path.read_bytes()).hexdigest()

    def __call__(self, texts: list[str]):
        from scipy.sparse import diags

        from training.features import binary_matrix

        x = binary_matrix(texts, self.vocab) @ diags(self.idf)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return (diags(1.0 / norms) @ x).tocsr()


def balanced(y: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Weights: within each source each class it has the same total; then all positives the total of all negatives."""
    w = np.zeros(len(y), dtype=np.float64)
    for s in np.unique(source):
        for cls in (0, 1):
            m = (source == s) & (y == cls)
            if m.any():
                w[m] = 1.0 / m.sum()
    pos, neg = w[y == 1].sum(), w[y == 0].sum()
    if pos > 0:
        w[y == 1] *= neg / pos
    return w * (len(y) / w.sum())


def budget_sources(negatives: np.ndarray, source: np.ndarray) -> list[str]:
    """The sources whose false-flag rates a budget averages: shared sets with at least MIN_BUDGET_NEGATIVES of the
    `negatives` (a mask; the pattern database's negative examples are hard cases written to sit beside the
    positives, and a handful of texts make a rate noise)."""
    names, n = np.unique(source[negatives], return_counts=True)
    return [s for s, k in zip(names, n) if s != PATTERN_EXAMPLES and k >= MIN_BUDGET_NEGATIVES]


class Head:
    """One category's logistic regression, its Platt calibration and threshold."""

    def __init__(self, c: float = C):
        self.c = c

    def fit(self, x, y: np.ndarray, source: np.ndarray) -> "Head":
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        self.model = LogisticRegression(C=self.c, max_iter=200, tol=1e-4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(x, y, sample_weight=balanced(y, source))
        self.a, self.b, self.threshold = 1.0, 0.0, 0.5
        return self

    def raw(self, x) -> np.ndarray:
        return x @ self.model.coef_[0] + self.model.intercept_[0]

    def calibrate(self, x, y: np.ndarray, source: np.ndarray, harmful: np.ndarray | None = None,
                  budget: float = FALSE_FLAG_BUDGET, routing_budget: float = ROUTING_BUDGET,
                  min_recall: float | None = None) -> "Head":
        """Platt scaling on held-back texts, then the lowest threshold within both budgets: at most `budget` of
        the negatives flagged (averaged over sources), and at most `routing_budget` of the harmful negatives
        (texts harmful in another way: where a wrong category would send a flagged text to the wrong queue)."""
        from sklearn.linear_model import LogisticRegression

        z = self.raw(x)
        if len(np.unique(y)) == 2:
            platt = LogisticRegression(C=1e4).fit(z[:, None], y)
            self.a, self.b = float(platt.coef_[0, 0]), float(platt.intercept_[0])
        p = self.prob_of(z)
        candidates = np.unique(np.round(p, 4))  # ascending: the first within budget flags the most
        def mean_rate(negatives: np.ndarray) -> np.ndarray:
            rates = [1.0 - np.searchsorted(np.sort(p[m]), candidates, "left") / m.sum()
                     for m in ((source == s) & negatives for s in budget_sources(negatives, source))]
            return np.mean(rates, axis=0) if rates else np.zeros(len(candidates))

        ok = mean_rate(y == 0) <= budget
        if harmful is not None:
            ok &= mean_rate((y == 0) & harmful) <= routing_budget
        within = np.flatnonzero(ok)
        self.threshold = float(max(candidates[within[0]], 1e-4)) if len(within) else 1.0
        positives = np.sort(p[y == 1])
        if min_recall is not None and len(positives) and (positives >= self.threshold).mean() < min_recall:
            # the highest threshold flagging at least min_recall of the validation positives
            self.threshold = float(max(positives[int(np.floor((1.0 - min_recall) * len(positives)))], 1e-4))
        return self

    def prob_of(self, z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.a * z + self.b)))

    def prob(self, x) -> np.ndarray:
        return self.prob_of(self.raw(x))


def _auc(p: np.ndarray, y: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None


def figures(p: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, Any]:
    flag = p >= threshold
    pos, neg = y == 1, y == 0
    tp = int((flag & pos).sum())
    return {
        "positives": int(pos.sum()), "negatives": int(neg.sum()),
        "recall": round(float(tp / max(pos.sum(), 1)), 4),
        "false_flag_rate": round(float(flag[neg].mean()) if neg.any() else 0.0, 4),
        "precision": round(float(tp / flag.sum()), 4) if flag.any() else None,
        "auc": None if (a := _auc(p, y)) is None else round(a, 4),
    }  # fmt: skip


def fit_head(x, y, source, split, c: float = C, harmful: np.ndarray | None = None,
             min_recall: float | None = None) -> Head:
    train, val = split == "train", split == "validation"
    head = Head(c).fit(x[train], y[train], source[train])
    return head.calibrate(x[val], y[val], source[val], None if harmful is None else harmful[val],
                          min_recall=min_recall)


def transfer(corpus, x, split, c: float = C) -> dict[str, dict[str, Any]]:
    """Leave-one-source-out per category (sources with enough positives and negatives of it)."""
    out: dict[str, dict[str, Any]] = {}
    for j, category in enumerate(CATEGORIES):
        known = corpus.target[:, j] >= 0
        y_all = corpus.target[:, j]
        per: dict[str, Any] = {}
        for source in sorted(set(corpus.source[known]) - {PATTERN_EXAMPLES}):
            held = known & (corpus.source == source)
            if (y_all[held] == 1).sum() < MIN_TRANSFER or (y_all[held] == 0).sum() < MIN_TRANSFER_NEGATIVES:
                continue
            rest = known & (corpus.source != source)
            if (y_all[rest] == 1).sum() < MIN_TRANSFER:
                per[source] = {"skipped": "no other source labels enough positives"}
                continue
            t0 = time.time()
            idx = np.flatnonzero(rest)
            head = fit_head(x[idx], y_all[idx], corpus.source[idx], split[idx], c, corpus.label[idx] >= 1,
                            MIN_RECALL.get(category))
            p = head.prob(x[held])
            per[source] = figures(p, y_all[held], head.threshold)
            print(f"  {category:13s} held out {source:32s} {per[source]}  ({time.time() - t0:.0f} s)", flush=True)
        if per:
            scored = [v for v in per.values() if "recall" in v]
            if scored:
                per["mean"] = {k: round(float(np.mean([v[k] for v in scored if v[k] is not None])), 4)
                               for k in ("recall", "false_flag_rate", "auc")}
        out[category] = per
    return out


def routed(probs: np.ndarray, thresholds: np.ndarray, stage1: list[set[str]]) -> list[set[str]]:
    """Flagged categories: a head's probability at or above its threshold, or a Stage 1 decoded term of it."""
    flags = probs >= thresholds[None, :]
    return [{c for j, c in enumerate(CATEGORIES) if flags[i, j]} | stage1[i] for i in range(len(stage1))]


def functional(score, thresholds: np.ndarray, normalizer=None) -> dict[str, Any]:
    """The functional suite (plain and coded cases) through `normalizer` (default: one over the product
    database): per family, the share of its flagged cases routed to its category, and the share of its
    not-flagged cases routed to any category."""
    from data.functional import coded_cases, load_suite

    if normalizer is None:
        from normalizer import Normalizer, load_database
        from normalizer.database import DEFAULT_PATTERN_DB

        normalizer = Normalizer(load_database(DEFAULT_PATTERN_DB))
    cases = load_suite()
    cases += coded_cases(cases)
    results = [normalizer.normalize(c.text) for c in cases]
    probs = np.maximum(score([c.text for c in cases]), score([r.text for r in results]))
    flagged = routed(probs, thresholds, [set(stage1_categories(r.matches)) for r in results])
    report: dict[str, Any] = {}
    for family in sorted({c.family for c in cases}):
        for coded in (False, True):
            idx = [i for i, c in enumerate(cases) if c.family == family and (c.coded_of is not None) == coded]
            if not idx:
                continue
            want = FUNCTIONAL_FAMILIES.get(family)
            pos = [i for i in idx if cases[i].flagged]
            neg = [i for i in idx if not cases[i].flagged]
            row: dict[str, Any] = {}
            if want and pos:
                row["routed"] = round(sum(bool(flagged[i] & set(want)) for i in pos) / len(pos), 4)
                row["flagged_cases"] = len(pos)
            if neg:
                row["any_category_on_unflagged"] = round(sum(bool(flagged[i]) for i in neg) / len(neg), 4)
                row["unflagged_cases"] = len(neg)
            report[f"{family}{' (coded)' if coded else ''}"] = row
    return report


def main(argv: list[str] | None = None) -> int:
    from data.readers import DEFAULT_SHARED_ROOT

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED_ROOT, help="the shared data root")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "embedded" / "model.npz",
                        help="the severity model whose features the heads use")
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "embedded",
                        help="where categories.npz and categories.json go")
    parser.add_argument("--no-transfer", action="store_true", help="skip leave-one-source-out")
    parser.add_argument("--c", type=float, default=C, help=f"inverse regularisation of every head (default {C})")
    args = parser.parse_args(argv)
    from data.categories import counts, load_category_corpus
    from training.transfer import civil_clean_sentences

    t0 = time.time()
    try:
        corpus = load_category_corpus(args.shared, extra_safe=civil_clean_sentences(args.shared, 6000, 13),
                                      extra_source="civil_comments_clean_sentences")
        features = Features(args.model)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    split = np.array([split_of(k) for k in corpus.key])
    print(f"{len(corpus)} texts; hashing features ...", flush=True)
    x = features(corpus.text)
    print(f"features ready ({time.time() - t0:.0f} s)", flush=True)
    report: dict[str, Any] = {"counts": counts(corpus), "false_flag_budget": FALSE_FLAG_BUDGET,
                              "routing_budget": ROUTING_BUDGET, "min_recall": MIN_RECALL, "c": args.c,
                              "min_positives": MIN_POSITIVES, "model_sha256": features.model_sha}
    if not args.no_transfer:
        report["transfer"] = transfer(corpus, x, split, args.c)

    heads: dict[str, Head] = {}
    home: dict[str, Any] = {}
    for j, category in enumerate(CATEGORIES):
        known = np.flatnonzero(corpus.target[:, j] >= 0)
        y = corpus.target[known, j]
        if (y == 1).sum() < MIN_POSITIVES:
            home[category] = {"shipped": False, "positives": int((y == 1).sum()),
                              "why": f"fewer than {MIN_POSITIVES} labelled positives in the shared data"}
            continue
        head = fit_head(x[known], y, corpus.source[known], split[known], args.c, corpus.label[known] >= 1,
                        MIN_RECALL.get(category))
        test = split[known] == "test"
        home[category] = {"shipped": True, "threshold": round(head.threshold, 4),
                          **figures(head.prob(x[known][test]), y[test], head.threshold)}
        heads[category] = head
        print(f"  {category:13s} home test {home[category]}", flush=True)
    report["home_test"] = home

    weights, intercept, thresholds, a, b = heads_arrays(heads, features.idf)

    def score(texts: list[str]) -> np.ndarray:
        z = features(texts) @ (weights / features.idf[:, None]) + intercept
        return 1.0 / (1.0 + np.exp(-(a * z + b)))

    report["functional"] = functional(score, thresholds)
    report["seconds"] = round(time.time() - t0)
    args.out.mkdir(parents=True, exist_ok=True)
    save(args.out / "categories.npz", weights, intercept, thresholds, a, b, features.model_sha, report)
    (args.out / "categories.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report["functional"], indent=1))
    print(f"wrote {args.out / 'categories.npz'} and categories.json ({report['seconds']} s)")
    return 0


def heads_arrays(heads: dict[str, Head], idf: np.ndarray):
    """(weights with IDF folded in (n_vocab, n_categories), intercepts, thresholds, Platt a, Platt b); a
    category without a head has zero weights, a very low intercept and a threshold of 1 (it never fires)."""
    n = len(idf)
    weights = np.zeros((n, len(CATEGORIES)), dtype=np.float64)
    intercept = np.full(len(CATEGORIES), -30.0)
    thresholds = np.ones(len(CATEGORIES))
    a, b = np.ones(len(CATEGORIES)), np.zeros(len(CATEGORIES))
    for j, category in enumerate(CATEGORIES):
        head = heads.get(category)
        if head is None:
            continue
        weights[:, j] = head.model.coef_[0] * idf
        intercept[j] = head.model.intercept_[0]
        thresholds[j], a[j], b[j] = head.threshold, head.a, head.b
    return weights, intercept, thresholds, a, b


def save(path: Path, weights, intercept, thresholds, a, b, model_sha: str, report: dict) -> None:
    shipped = [c for c in CATEGORIES if report["home_test"].get(c, {}).get("shipped")]
    meta = {"categories": list(CATEGORIES), "shipped": shipped, "model_sha256": model_sha,
            "false_flag_budget": report["false_flag_budget"]}
    with open(path, "wb") as f:
        np.savez_compressed(f, categories=np.array(CATEGORIES), weights=weights.astype(np.float16),
                            intercept=intercept.astype(np.float32), thresholds=thresholds.astype(np.float32),
                            platt_a=a.astype(np.float32), platt_b=b.astype(np.float32),
                            meta=np.array(json.dumps(meta)))


if __name__ == "__main__":
    sys.exit(main())
