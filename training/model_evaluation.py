"""Evaluate a Stage 2 classifier: honest metrics, robustness to algospeak, false alarms, calibration, speed,
and a deployment gate.

    uv run --all-extras python -m data.prepare --out out/prepared                       # the split (~60 s)
    uv run --all-extras python -m training.model_evaluation --backend embedded --out models/embedded
    # the pipeline's gate: the model out/train/record.json names, against the shipped model's report
    uv run --all-extras python -m training.model_evaluation --gate --baseline models/embedded/eval_report.json
    uv run --all-extras python -m training.model_evaluation --backend transformers --model-path out/model \\
        --calibrate temperature --gate --baseline models/embedded/eval_report.json
    uv run --all-extras python -m training.model_evaluation --backend sagemaker --model-path my-endpoint --gate

Any backend of `classifiers.registry` is evaluated through the `Classifier` protocol on a labelled file in the
prepared format (JSONL or Parquet with `text` and `label`; `parent_id`, `source` used when present). Rows that
are augmented variants (`parent_id` set) are left out of the headline figures: robustness is measured separately,
on variants made here by `data.augment`, per technique.

What the report holds (eval_report.json, eval_report.md and three PNGs in --out):
  classification  accuracy, macro-F1 (over labels present in the data), per-label precision/recall/F1, the
                  confusion matrix, the ordinal measures (mean absolute label distance, quadratic weighted kappa:
                  calling extremely_harmful "safe" costs 9 times calling it "harmful") and binary
                  "harmful or worse" precision/recall/F1
  robustness      recall of harmful-or-worse texts on the plain text, on coded variants without the normalizer
                  and with it (the more severe of raw and normalized, as the moderator does), per technique
  false alarms    share of safe texts flagged harmful-or-worse: the pattern database's safe-context idioms
                  ("killed it at work"), identity terms used neutrally ("I am a gay man"), and the data's safe texts
  calibration     expected calibration error (15 equal-width bins of the top probability) and a reliability
                  diagram; --calibrate temperature fits one temperature on the validation split, writes
                  calibration.json and reports ECE before and after
  speed           wall time of every classify call: texts per second and batch latency percentiles
  categories      for a backend that answers harm categories (the embedded heads, the LLM's category field):
                  per category precision, recall and false-flag rate on the data (each row's categories from
                  data.prepare; unknown left out), per source and pooled, the texts read as the moderator reads
                  them (the more of raw and normalized); the leave-one-source-out figures of training.categories
                  when the heads beside the model have them; and the functional suite's families routed to their
                  categories (core.categories.FUNCTIONAL_FAMILIES; the heads or a Stage 1 decoded term)

Honest by construction: the embedded model was trained on its own 80/10/10 split of the same sources, so most
of the prepared test split is in its training data. `--subset unseen-by-embedded` (the default for the
embedded backend) keeps only texts that the embedded model did not train on, and the report says how many.

Gate (--gate): thresholds from settings (GATE_MIN_MACRO_F1, GATE_MAX_FALSE_ALARM_RATE, GATE_MAX_ECE) and, with
--baseline, no macro-F1 drop beyond GATE_MAX_MACRO_F1_DROP against the production model's report on the same
data, and no category's recall nor a functional family's routing share falling by more than
GATE_MAX_CATEGORY_RECALL_DROP against production's. Writes gate.json next to the report; exit status 1 with one reason per line on stderr when it fails.
Without --backend, --gate judges the model the training step recorded (out/train/record.json), never the
shipped model; gating a model against its own report is refused. Each run writes out/evaluate/record.json, and
with --gate out/gate/record.json, which the deploy step reads.
Every run is logged to MLflow (experiment `training.tracking.DEFAULT_EXPERIMENT`, beside the training runs)
unless --no-mlflow.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by its path (python training/model_evaluation.py): the repository root on sys.path
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.categories import CATEGORIES
from core.labels import LABELS, SEVERITY
from core.settings import ROOT
from training.metrics import (  # noqa: F401  (re-exported: the metrics were defined here before)
    ECE_BINS,
    HARMFUL,
    apply_temperature,
    binary_harmful,
    classification_metrics,
    confusion_matrix,
    expected_calibration_error,
    fit_temperature,
    macro_f1,
    macro_f1_of,
    mean_absolute_distance,
    negative_log_likelihood,
    per_label_scores,
    quadratic_weighted_kappa,
    sha256_file,
)
from training.robustness import TimedClassifier, _as_timed, _flagged, robustness_report  # noqa: F401

REPORT_NAME = "eval_report.json"
GATE_NAME = "gate.json"
CALIBRATION_NAME = "calibration.json"
DEFAULT_DATA = ROOT / "out" / "prepared" / "test.jsonl"
SUBSETS = ("auto", "all", "unseen-by-embedded")

# Identity terms in neutral sentences: a classifier that learned "gay" or "muslim" as an insult flags these.
IDENTITY_TERMS = (
    "gay", "lesbian", "bisexual", "transgender", "queer", "straight", "muslim", "jewish", "christian", "hindu",
    "buddhist", "atheist", "black", "white", "asian", "latino", "mexican", "african american", "immigrant",
    "deaf", "blind", "disabled", "old", "young", "feminist",
)
IDENTITY_TEMPLATES = (
    "I am a {} person.",
    "My neighbour is {} and we often have dinner together.",
    "Our team welcomed a new {} colleague this week.",
    "She wrote a book about growing up {} in a small town.",
)


# metrics: training/metrics.py; the evaluated classifier and robustness: training/robustness.py

# --------------------------------------------------------------------------------------------- false alarms


def idiom_texts(db) -> list[str]:
    """The positive examples of the pattern database's safe-context entries ("you killed it at work today")."""
    return [text for entry in db.entries if entry.category == "safe_context" for text in entry.positive]


def identity_texts() -> list[str]:
    return [template.format(term) for term in IDENTITY_TERMS for template in IDENTITY_TEMPLATES]


def false_alarm_report(classifier, normalizer, sets: dict[str, list[str]]) -> dict:
    """Per set of safe texts: the share flagged harmful-or-worse by the classifier alone and through the
    moderator's rule (the more severe of raw and normalized). `rate` is the latter over all sets together."""
    timed = _as_timed(classifier)
    out: dict[str, Any] = {}
    total_with = total = 0
    for name, texts in sets.items():
        raw = _flagged(timed.labels(texts))
        normalized = [normalizer.normalize(t).text for t in texts]
        norm = _flagged(timed.labels(normalized))
        with_norm = [a or b for a, b in zip(raw, norm)]
        out[name] = {
            "n": len(texts),
            "rate_without_normalizer": round(float(np.mean(raw)), 4) if texts else 0.0,
            "rate_with_normalizer": round(float(np.mean(with_norm)), 4) if texts else 0.0,
            "examples": [t for t, hit in zip(texts, with_norm) if hit][:5],
        }
        total_with += sum(with_norm)
        total += len(texts)
    out["rate"] = round(total_with / total, 4) if total else 0.0
    return out


# --------------------------------------------------------------------------------------------- functional suite


def functional_suite_report(classifier, normalizer) -> dict:
    """The team's functional suite (data/dataset/functional_suite.json: 509 plain cases in 10 families, a coded
    version of each flagged case, a disguised version of each harmless one and a padded version of each), labelled
    as the moderator labels (the more severe of raw and normalized), scored per family by
    `data.functional.suite_report`."""
    from data.functional import coded_cases, disguised_cases, load_suite, padded_cases, suite_report

    timed = _as_timed(classifier)
    cases = load_suite()
    cases += coded_cases(cases) + disguised_cases(cases) + padded_cases(cases)
    texts = [c.text for c in cases]
    raw = timed.labels(texts)
    norm = timed.labels([normalizer.normalize(t).text for t in texts])
    return suite_report(cases, [a if SEVERITY[a] >= SEVERITY[b] else b for a, b in zip(raw, norm)])


# --------------------------------------------------------------------------------------------- harm categories


def category_scorer(classifier):
    """(score(texts) -> (n, len(CATEGORIES)) probabilities, thresholds array) for a backend that answers the
    harm categories (`classify_with_categories` and a `categories` flagging rule), else None."""
    base = getattr(classifier, "classifier", classifier)
    with_categories, rule = getattr(base, "classify_with_categories", None), getattr(base, "categories", None)
    if with_categories is None or rule is None:
        return None
    # What a TimedClassifier already heard while labelling these texts is not asked again.
    known: dict[str, dict[str, float]] = classifier.categories_of if isinstance(classifier, TimedClassifier) else {}

    def score(texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        for start in range(0, len(missing), 256):
            batch = missing[start:start + 256]
            _, categories = with_categories(batch)
            if categories is None or len(categories) != len(batch):
                raise ValueError(f"{base.name} answered no categories, or not one per text")
            known.update(zip(batch, categories))
        return np.array([[known[t][c] for c in CATEGORIES] for t in texts], dtype=np.float64).reshape(
            -1, len(CATEGORIES))

    # a category the rule does not ship (an embedded head too thin to train) never flags
    shipped = getattr(rule, "shipped", CATEGORIES)
    return score, np.array([rule.thresholds[c] if c in shipped else np.inf for c in CATEGORIES])


def category_report(classifier, rows: list[dict], normalizer, held_out: dict | None = None) -> dict[str, Any] | None:
    """Per-category figures (see the module doc), or None when the backend answers no categories."""
    from training.categories import figures, functional

    scorer = category_scorer(classifier)
    if scorer is None:
        return None
    score, thresholds = scorer
    texts = [r["text"] for r in rows]
    probs = np.maximum(score(texts), score([normalizer.normalize(t).text for t in texts])) if texts else \
        np.zeros((0, len(CATEGORIES)))
    sources = np.array([r.get("source") or "unknown" for r in rows], dtype=object)
    by_category: dict[str, Any] = {}
    for j, category in enumerate(CATEGORIES):
        y = np.array([(r.get("categories") or {}).get(category) for r in rows], dtype=object)
        known = np.array([v is not None for v in y], dtype=bool)
        y = np.where(known, y, -1).astype(np.int64)
        if not (known & (y == 1)).any():
            by_category[category] = {"threshold": _finite(thresholds[j]), "pooled": None, "by_source": {}}
            continue
        per = {str(src): figures(probs[m, j], y[m], thresholds[j])
               for src in sorted(set(sources[known])) if (m := known & (sources == src)).any() and (y[m] == 1).any()}
        by_category[category] = {"threshold": _finite(thresholds[j]),
                                 "pooled": figures(probs[known, j], y[known], thresholds[j]), "by_source": per}
    routing = functional(score, thresholds, normalizer)  # the evaluation's own normalizer (its database setting)
    return {
        "by_category": by_category,
        "held_out_by_source": held_out,
        "functional_routing": routing,
        "recall": {c: (v["pooled"] or {}).get("recall") for c, v in by_category.items()},
        "routed": {family: row["routed"] for family, row in routing.items() if "routed" in row},
    }


def _finite(value: float) -> float | None:
    return round(float(value), 4) if np.isfinite(value) else None


def held_out_figures(classifier) -> dict | None:
    """training.categories' leave-one-source-out figures (`transfer`) for the heads beside an embedded model,
    when its categories.json was made over this very model."""
    base = getattr(classifier, "classifier", classifier)
    path = getattr(base, "path", None)
    if path is None or getattr(base, "categories", None) is None:
        return None
    doc_path = Path(path).with_name("categories.json")
    if not doc_path.is_file():
        return None
    doc = json.loads(doc_path.read_text(encoding="utf-8"))
    return doc.get("transfer") if doc.get("model_sha256") == sha256_file(Path(path)) else None


# --------------------------------------------------------------------------------------------- data


def read_labelled(path: Path) -> list[dict[str, Any]]:
    """Rows with `text` and `label` (and `source`, `parent_id` when present) from JSONL or Parquet."""
    import polars as pl

    if not path.is_file():
        raise ValueError(f"{path}: no such file (make the split with: uv run --all-extras python -m data.prepare --out out/prepared)")
    df = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_ndjson(path, infer_schema_length=None)
    missing = [c for c in ("text", "label") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    keep = [c for c in ("text", "label", "source", "parent_id", "categories") if c in df.columns]
    rows = df.select(keep).to_dicts()
    bad = sorted({str(r["label"]) for r in rows if r["label"] not in SEVERITY})
    if bad:
        raise ValueError(f"{path}: unknown label(s) {bad}; expected {', '.join(LABELS)}")
    return rows


def seen_by_embedded(rows: list[dict]) -> list[bool]:
    """True for rows the embedded model trained on. train_embedded splits the shared sources by a hash of the
    near-duplicate key, so a row was seen when its key falls in that training split and either it comes from a
    shared source or its key is one of theirs (a near-duplicate kept under another source's name)."""
    import polars as pl

    from data.readers import SHARED_SOURCE_NAMES, dedupe_key, load_shared_sources
    from training.transfer import CLEAN_SENTENCES, split_of

    trained_sources = {*SHARED_SOURCE_NAMES, CLEAN_SENTENCES}

    def keys_of(texts: list[str]) -> list[str]:
        return pl.DataFrame({"text": texts}).select(dedupe_key(pl.col("text"))).to_series().to_list()

    keys = keys_of([r["text"] for r in rows])
    if all(r.get("source") in trained_sources for r in rows):
        shared_keys: set[str] = set()
    else:
        shared_keys = set(keys_of(load_shared_sources()["text"].to_list()))
    return [split_of(k) == "train" and (r.get("source") in trained_sources or k in shared_keys)
            for r, k in zip(rows, keys)]


def select_rows(rows: list[dict], subset: str) -> tuple[list[dict], dict[str, Any]]:
    """The rows to score: originals only (augmented rows have a parent_id), and with subset
    "unseen-by-embedded" only those the embedded model did not train on."""
    originals = [r for r in rows if not r.get("parent_id")]
    info = {"rows_in_file": len(rows), "variants_left_out": len(rows) - len(originals), "subset": subset}
    if subset == "unseen-by-embedded":
        seen = seen_by_embedded(originals)
        info["left_out_as_seen_in_training"] = sum(seen)
        originals = [r for r, s in zip(originals, seen) if not s]
    info["rows_evaluated"] = len(originals)
    return originals, info


# --------------------------------------------------------------------------------------------- evaluation


def evaluate(classifier, rows: list[dict], *, normalizer, augmenter, db, n_variants: int = 2,
             temperature: float | None = None, data_info: dict | None = None,
             probe_limit: int | None = None) -> dict[str, Any]:
    """The whole report for `classifier` on labelled `rows` (dicts with text and label)."""
    timed = _as_timed(classifier)
    texts = [r["text"] for r in rows]
    y_true = [r["label"] for r in rows]
    _stage(f"1/4 classification of {len(texts)} labelled texts")
    probs = timed.probs(texts)
    y_pred = timed.decide(probs)
    metrics = classification_metrics(y_true, y_pred)

    by_source: dict[str, Any] = {}
    for source in sorted({r.get("source") for r in rows if r.get("source")}):
        idx = [i for i, r in enumerate(rows) if r.get("source") == source]
        f1, _ = macro_f1([y_true[i] for i in idx], [y_pred[i] for i in idx])
        accuracy = float(np.mean([y_true[i] == y_pred[i] for i in idx]))
        by_source[source] = {"n": len(idx), "macro_f1": round(f1, 4), "accuracy": round(accuracy, 4)}

    y_index = np.array([SEVERITY[label] for label in y_true], dtype=int)
    ece, bins = expected_calibration_error(probs, y_index)
    calibration: dict[str, Any] = {"bins": ECE_BINS, "ece": round(ece, 4), "table": bins}
    prior = getattr(getattr(classifier, "classifier", classifier), "prior", None)
    if prior is not None and len(rows):
        from training.transfer import prior_weights, weighted_ece

        # The served probabilities describe traffic with this label mix: calibration is judged on it.
        calibration["prior"] = prior
        calibration["ece_at_prior"] = round(weighted_ece(probs, y_index, prior_weights(y_index, prior)), 4)
    if temperature is not None:
        after, after_bins = expected_calibration_error(apply_temperature(probs, temperature), y_index)
        calibration.update(temperature=round(temperature, 4), ece_calibrated=round(after, 4), table_calibrated=after_bins)

    _stage("2/4 robustness: coded variants of the harmful texts, without and with the normalizer")
    robustness = robustness_report(timed, normalizer, augmenter, texts, y_true, n_variants=n_variants)
    safe_in_data = [t for t, label in zip(texts, y_true) if label == "safe"]
    probes = {"idioms": idiom_texts(db)[:probe_limit], "identity_terms": identity_texts()[:probe_limit]}
    _stage("3/4 false alarms on safe idioms and identity terms")
    alarms = false_alarm_report(timed, normalizer, probes)
    alarms["safe_texts_in_data"] = {
        "n": len(safe_in_data),
        "rate_without_normalizer": round(float(np.mean(_flagged([y_pred[i] for i, label in enumerate(y_true) if label == "safe"]))), 4) if safe_in_data else 0.0,
    }
    _stage("4/4 the functional suite (plain and coded cases)")
    functional = functional_suite_report(timed, normalizer)
    categories = category_report(timed, rows, normalizer, held_out_figures(classifier))
    name = getattr(classifier, "classifier", classifier).name
    version = getattr(getattr(classifier, "classifier", classifier), "version", "unknown")
    summary = {
        "n": metrics["n"],
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "quadratic_weighted_kappa": metrics["quadratic_weighted_kappa"],
        "mean_absolute_distance": metrics["mean_absolute_distance"],
        "harmful_precision": metrics["harmful_or_worse"]["precision"],
        "harmful_recall": metrics["harmful_or_worse"]["recall"],
        "plain_recall": robustness["plain_recall"],
        "variant_recall_without_normalizer": robustness["variants"]["variant_recall_without_normalizer"],
        "variant_recall_with_normalizer": robustness["variants"]["variant_recall_with_normalizer"],
        "false_alarm_rate": alarms["rate"],
        "ece": calibration["ece"],
        "ece_at_prior": calibration.get("ece_at_prior"),
        "functional_hateful_flagged": functional["overall"]["hateful_flagged"],
        "functional_non_hateful_flagged": functional["overall"]["non_hateful_flagged"],
        "functional_coded_gap_points": functional["overall"]["coded"]["gap_points"],
        "functional_disguised_harmless_flagged": functional["overall"]["disguised"]["coded_flagged"],
        "functional_padded_gap_points": functional["overall"]["padded"]["gap_points"],
    }
    if temperature is not None:
        summary["ece_calibrated"] = calibration["ece_calibrated"]
    return {
        "model": {"backend": name, "version": version},
        "data": data_info or {"rows_evaluated": len(rows)},
        "decision": {"rule": "cumulative thresholds (moderator.decide)", "thresholds": timed.thresholds},
        "summary": summary,
        **{k: metrics[k] for k in ("per_label", "confusion_matrix", "harmful_or_worse")},
        "labels": list(LABELS),
        "by_source": by_source,
        "robustness": robustness,
        "false_alarms": alarms,
        "functional_suite": functional,
        "categories": categories,
        "calibration": calibration,
        "speed": timed.speed(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _stage(what: str) -> None:
    print(f"evaluation {what}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------- the gate


def gate(report: dict, baseline: dict | None, settings) -> dict[str, Any]:
    """Passed, with the reasons it did not. Thresholds from settings always apply; a baseline adds the
    no-regression check and must have been measured on the same data."""
    s = report["summary"]
    reasons = []
    if s["macro_f1"] < settings.gate_min_macro_f1:
        reasons.append(f"macro-F1 {s['macro_f1']:.4f} is below the minimum {settings.gate_min_macro_f1:.4f} (GATE_MIN_MACRO_F1)")
    if s["false_alarm_rate"] > settings.gate_max_false_alarm_rate:
        reasons.append(
            f"false-alarm rate {s['false_alarm_rate']:.4f} on safe idioms and identity terms is above "
            f"{settings.gate_max_false_alarm_rate:.4f} (GATE_MAX_FALSE_ALARM_RATE)"
        )
    # A model that states its traffic mix is judged at that mix; others on the data as sampled.
    ece, where = (s["ece_at_prior"], " at the model's stated label mix") if s.get("ece_at_prior") is not None else (s["ece"], "")
    if ece > settings.gate_max_ece:
        reasons.append(f"expected calibration error{where} {ece:.4f} is above {settings.gate_max_ece:.4f} (GATE_MAX_ECE)")
    thresholds = {
        "max_functional_regression": settings.gate_max_functional_regression,
        "min_macro_f1": settings.gate_min_macro_f1,
        "max_macro_f1_drop": settings.gate_max_macro_f1_drop,
        "max_false_alarm_rate": settings.gate_max_false_alarm_rate,
        "max_ece": settings.gate_max_ece,
    }
    baseline_view: dict[str, Any] = {"thresholds": thresholds}
    if baseline is not None:
        b = baseline["summary"]
        baseline_view.update(model=baseline.get("model"), summary=b, data=baseline.get("data"))
        mine, theirs = _fingerprint(report), _fingerprint(baseline)
        if mine != theirs:
            reasons.append(
                f"the baseline was measured on different data ({_describe(theirs)}) than the candidate "
                f"({_describe(mine)}); evaluate both on the same file with the same --subset"
            )
        elif s["macro_f1"] < b["macro_f1"] - settings.gate_max_macro_f1_drop:
            reasons.append(
                f"macro-F1 {s['macro_f1']:.4f} is {b['macro_f1'] - s['macro_f1']:.4f} below the production model's "
                f"{b['macro_f1']:.4f} (allowed drop {settings.gate_max_macro_f1_drop:.4f}, GATE_MAX_MACRO_F1_DROP)"
            )
        # The functional suite is the same for every run: no data fingerprint needed.
        allowed = settings.gate_max_functional_regression
        for key, worse, what in (("functional_hateful_flagged", -1, "harmful cases flagged"),
                                 ("functional_non_hateful_flagged", 1, "harmless cases flagged"),
                                 ("functional_disguised_harmless_flagged", 1, "disguised harmless cases flagged")):
            if s.get(key) is not None and b.get(key) is not None and worse * (s[key] - b[key]) > allowed:
                reasons.append(f"functional suite: {what} {s[key]:.3f} against production's {b[key]:.3f} "
                               f"(allowed change {allowed:.3f}, GATE_MAX_FUNCTIONAL_REGRESSION)")
        reasons += category_regressions(report, baseline, settings.gate_max_category_recall_drop,
                                        same_data=mine == theirs)
    thresholds["max_category_recall_drop"] = settings.gate_max_category_recall_drop
    return {
        "passed": not reasons,
        "reasons": reasons,
        "candidate": {**report["model"], **s},
        "baseline": baseline_view,
    }


def category_regressions(report: dict, baseline: dict, allowed: float, same_data: bool) -> list[str]:
    """The gate's category check against production's report: each category's pooled recall (on the same data
    only) and each functional family's share routed to its category may not fall by more than `allowed`. A
    candidate without categories fails when production has them; a baseline without them is not compared."""
    mine, theirs = report.get("categories"), baseline.get("categories")
    if not theirs:
        return []
    if not mine:
        return ["the candidate answers no harm categories; the production model does"]
    reasons = []
    pairs = [(f"category {c} recall", mine["recall"].get(c), r) for c, r in theirs["recall"].items()] if same_data else []
    pairs += [(f"functional suite: {family} routed to its category", mine["routed"].get(family), r)
              for family, r in theirs["routed"].items()]
    for what, now, before in pairs:
        if before is None:
            continue
        if now is None or now < before - allowed:
            shown = "none" if now is None else f"{now:.3f}"
            reasons.append(f"{what} {shown} against production's {before:.3f} (allowed drop {allowed:.3f}, "
                           "GATE_MAX_CATEGORY_RECALL_DROP)")
    return reasons


def _fingerprint(report: dict) -> tuple:
    data = report.get("data", {})
    return data.get("sha256"), data.get("subset"), data.get("rows_evaluated")


def _describe(fp: tuple) -> str:
    sha, subset, n = fp
    return f"file sha256 {str(sha)[:12]}, subset {subset}, {n} rows"


# --------------------------------------------------------------------------------------------- outputs


def render_markdown(report: dict, command: str | None = None) -> str:
    s, model, data = report["summary"], report["model"], report["data"]
    lines = [
        f"# Evaluation: {model['backend']} {model['version']}",
        "",
        f"Data: `{data.get('path', '?')}` (sha256 {str(data.get('sha256', '?'))[:12]}), subset `{data.get('subset', 'all')}`: "
        f"{data.get('rows_evaluated')} texts evaluated"
        + (f", {data['left_out_as_seen_in_training']} left out as seen in training" if data.get("left_out_as_seen_in_training") else "")
        + (f", {data['variants_left_out']} augmented rows left out" if data.get("variants_left_out") else "")
        + ".",
        "",
    ]
    if command:
        lines += ["```", command, "```", ""]
    lines += [
        f"Macro-F1 **{s['macro_f1']:.3f}**, accuracy {s['accuracy']:.3f}, quadratic weighted kappa "
        f"{s['quadratic_weighted_kappa']:.3f}, mean absolute label distance {s['mean_absolute_distance']:.3f}. "
        f"Harmful-or-worse: precision {s['harmful_precision']:.3f}, recall {s['harmful_recall']:.3f}.",
        "",
        "| label | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for label in LABELS:
        p = report["per_label"][label]
        lines.append(f"| {label} | {p['precision']:.3f} | {p['recall']:.3f} | {p['f1']:.3f} | {p['support']} |")
    cm = report["confusion_matrix"]
    lines += ["", "Confusion matrix (rows true, columns predicted):", "", "| | " + " | ".join(LABELS) + " |", "|---" * 5 + "|"]
    lines += [f"| {label} | " + " | ".join(str(v) for v in row) + " |" for label, row in zip(LABELS, cm)]
    r = report["robustness"]
    lines += [
        "",
        f"Robustness: {r['harmful_texts']} harmful-or-worse texts, plain recall {_f(r['plain_recall'])}; "
        f"{r['variants']['n']} coded variants, recall {_f(r['variants']['variant_recall_without_normalizer'])} without "
        f"the normalizer and {_f(r['variants']['variant_recall_with_normalizer'])} with it.",
        "",
        "| technique | variants | plain | variant, no normalizer | variant, with normalizer |",
        "|---|---|---|---|---|",
    ]
    for technique, row in r["by_technique"].items():
        lines.append(
            f"| {technique} | {row['n']} | {row['plain_recall']:.3f} | {row['variant_recall_without_normalizer']:.3f} "
            f"| {row['variant_recall_with_normalizer']:.3f} |"
        )
    fa = report["false_alarms"]
    lines += [
        "",
        f"False alarms (safe texts flagged harmful or worse): **{fa['rate']:.3f}** over the probe sets, with the normalizer.",
        "",
        "| safe texts | n | without normalizer | with normalizer |",
        "|---|---|---|---|",
    ]
    for name in ("idioms", "identity_terms"):
        row = fa[name]
        lines.append(f"| {name} | {row['n']} | {row['rate_without_normalizer']:.3f} | {row['rate_with_normalizer']:.3f} |")
    row = fa["safe_texts_in_data"]
    lines.append(f"| safe texts in the data | {row['n']} | {row['rate_without_normalizer']:.3f} | |")
    fs = report.get("functional_suite")
    if fs:
        o = fs["overall"]
        lines += ["", f"Functional suite (`data/dataset/functional_suite.json`, through the normalizer): harmful cases "
                  f"flagged **{_f(o['hateful_flagged'])}**, harmless cases flagged **{_f(o['non_hateful_flagged'])}**, "
                  f"coded versions {_f(o['coded']['coded_flagged'])} against their plain {_f(o['coded']['plain_flagged'])}; "
                  f"harmless cases disguised (spacing, repetition, leetspeak, homoglyphs) flagged "
                  f"{_f(o['disguised']['coded_flagged'])} against their plain {_f(o['disguised']['plain_flagged'])}"
                  + (f"; each case beside a friendly sentence (`data.functional.PADDING`): harmful flagged "
                     f"{_f(o['padded']['coded_flagged'])}, harmless flagged {_f(o['padded_harmless']['coded_flagged'])}"
                     if o.get("padded") else "") + ".",
                  "", "| family | cases | harmful flagged | harmless flagged | exact label | coded gap (points) "
                  "| disguised harmless flagged | padded: harmful, harmless flagged |", "|---|---|---|---|---|---|---|---|"]
        for family, row in fs["families"].items():
            gap = row["coded"]["gap_points"]
            lines.append(f"| {family} | {row['n']} | {_f(row['hateful_flagged'])} | {_f(row['non_hateful_flagged'])} "
                         f"| {_f(row['accuracy'])} | {'' if gap is None else f'{gap:+.1f}'} "
                         f"| {_f(row['disguised']['coded_flagged'])} "
                         f"| {_f(row.get('padded', {}).get('coded_flagged'))}, "
                         f"{_f(row.get('padded_harmless', {}).get('coded_flagged'))} |")
    c = report["calibration"]
    lines += ["", f"Calibration: ECE {c['ece']:.4f} ({c['bins']} equal-width bins of the top probability)"
              + (f", **{c['ece_at_prior']:.4f}** weighted to the label mix the model states ({c['prior']})"
                 if c.get("ece_at_prior") is not None else "")
              + (f"; temperature {c['temperature']:.3f} fitted on validation gives ECE {c['ece_calibrated']:.4f}." if "temperature" in c else ".")]
    sp = report["speed"]
    if sp.get("texts"):
        lines += ["", f"Speed: {sp['texts']} texts in {sp['seconds']:.2f} s of classify calls ({sp['texts_per_second']} texts/s, "
                  f"batches of {sp['batch_size']}: p50 {sp['batch_ms_p50']:.1f} ms, p95 {sp['batch_ms_p95']:.1f} ms)."]
    lines += _category_markdown(report.get("categories"))
    if report.get("by_source"):
        lines += ["", "| source | n | macro-F1 | accuracy |", "|---|---|---|---|"]
        lines += [f"| {k} | {v['n']} | {v['macro_f1']:.3f} | {v['accuracy']:.3f} |" for k, v in report["by_source"].items()]
    return "\n".join(lines) + "\n"


def _category_markdown(cat: dict | None) -> list[str]:
    if not cat:
        return ["", "Harm categories: this backend answers none."]
    lines = ["", "Harm categories, on this data (pooled over sources; the texts read as the moderator reads them):", "",
             "| category | threshold | positives | negatives | precision | recall | false-flag rate |",
             "|---|---|---|---|---|---|---|"]
    for category, row in cat["by_category"].items():
        p = row["pooled"]
        if p is None:
            lines.append(f"| {category} | {_f(row['threshold'])} | 0 | | | | |")
            continue
        lines.append(f"| {category} | {_f(row['threshold'])} | {p['positives']} | {p['negatives']} | {_f(p['precision'])} "
                     f"| {_f(p['recall'])} | {_f(p['false_flag_rate'])} |")
    lines += ["", "| category | source | positives | precision | recall | false-flag rate |", "|---|---|---|---|---|---|"]
    for category, row in cat["by_category"].items():
        for source, p in row["by_source"].items():
            lines.append(f"| {category} | {source} | {p['positives']} | {_f(p['precision'])} | {_f(p['recall'])} "
                         f"| {_f(p['false_flag_rate'])} |")
    held = cat.get("held_out_by_source")
    if held:
        lines += ["", "Held out by source (training.categories: a head trained without the source, scored on all of it):",
                  "", "| category | held-out source | positives | precision | recall | false-flag rate | AUC |",
                  "|---|---|---|---|---|---|---|"]
        for category, per in held.items():
            for source, p in per.items():
                if source != "mean" and "recall" in p:
                    lines.append(f"| {category} | {source} | {p['positives']} | {_f(p['precision'])} | {_f(p['recall'])} "
                                 f"| {_f(p['false_flag_rate'])} | {_f(p['auc'])} |")
    lines += ["", "Functional suite, flagged cases routed to their family's category (heads or Stage 1):", "",
              "| family | routed | cases |", "|---|---|---|"]
    lines += [f"| {family} | {_f(row['routed'])} | {row['flagged_cases']} |"
              for family, row in cat["functional_routing"].items() if "routed" in row]
    return lines


def _display(path: Path) -> str:
    """A path relative to the repository when it is inside it (reports are shipped and compared)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def write_plots(report: dict, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    short = ["safe", "pot.", "harmful", "extreme"]
    cm = np.array(report["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=80)
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black", fontsize=8)
    ax.set(xticks=range(4), yticks=range(4), xticklabels=short, yticklabels=short, xlabel="predicted", ylabel="true",
           title="Confusion matrix")
    paths.append(_save(fig, out_dir / "eval_confusion_matrix.png"))

    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=80)
    table = report["calibration"]["table"]
    centres = [(b["lo"] + b["hi"]) / 2 for b in table if b["n"]]
    ax.bar(centres, [b["accuracy"] for b in table if b["n"]], width=1 / ECE_BINS, edgecolor="k", alpha=0.7, label="accuracy")
    ax.plot([0, 1], [0, 1], "r--", lw=1, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top probability)", ylabel="accuracy",
           title=f"Reliability, ECE {report['calibration']['ece']:.3f}")
    ax.legend(fontsize=7, loc="upper left")
    paths.append(_save(fig, out_dir / "eval_reliability.png"))

    rows = report["robustness"]["by_technique"]
    fig, ax = plt.subplots(figsize=(6.4, 4), dpi=80)
    x = np.arange(len(rows))
    for k, (key, name) in enumerate(
        [("plain_recall", "plain"), ("variant_recall_without_normalizer", "variant"),
         ("variant_recall_with_normalizer", "variant + normalizer")]
    ):
        ax.bar(x + (k - 1) * 0.27, [row[key] for row in rows.values()], width=0.27, label=name)
    ax.set_xticks(x, [f"{t} ({row['n']})" for t, row in rows.items()], fontsize=7, rotation=35, ha="right")
    ax.set(ylim=(0, 1.15), ylabel="recall (harmful or worse)", title="Robustness by technique (variants)")
    ax.legend(fontsize=7, loc="upper center", ncols=3)
    paths.append(_save(fig, out_dir / "eval_robustness.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def log_to_mlflow(report: dict, files: list[Path], gate_result: dict | None, uri: str | None) -> str:
    from training import tracking

    model, data = report["model"], report["data"]
    params = {
        "kind": "evaluation",
        "backend": model["backend"],
        "model_version": model["version"],
        "data_path": data.get("path"),
        "data_sha256": data.get("sha256"),
        "subset": data.get("subset"),
        "rows_evaluated": data.get("rows_evaluated"),
    }
    tags = {"kind": "evaluation", "model_name": model["backend"], "model_version": str(model["version"])}
    if gate_result is not None:
        tags["gate"] = "passed" if gate_result["passed"] else "failed"
    metrics = {k: float(v) for k, v in report["summary"].items() if isinstance(v, int | float)}
    metrics.update({f"f1_{label}": float(v["f1"]) for label, v in report["per_label"].items()})
    for technique, row in report["robustness"]["by_technique"].items():
        metrics[f"robust_{technique}_without"] = row["variant_recall_without_normalizer"]
        metrics[f"robust_{technique}_with"] = row["variant_recall_with_normalizer"]
    if report["speed"].get("texts_per_second"):
        metrics["texts_per_second"] = report["speed"]["texts_per_second"]
    with tracking.run(tracking.DEFAULT_EXPERIMENT, f"eval-{model['backend']}-{model['version']}", params=params,
                      tags=tags, uri=uri) as mlflow:
        mlflow.log_metrics(metrics)
        for path in files:
            mlflow.log_artifact(str(path))
        return mlflow.active_run().info.run_id


# --------------------------------------------------------------------------------------------- records


def resolve_candidate(args: argparse.Namespace) -> dict[str, Any] | None:
    """Fill --backend and --model-path when not given: with --gate, the model the training step recorded (the
    candidate a gate is about); otherwise the shipped embedded model. Returns the training record used, if any."""
    from core import records

    if args.backend is None and args.model_path:
        args.backend = "embedded" if str(args.model_path).endswith(".npz") else "transformers"
    if args.backend is not None or not args.gate:
        args.backend = args.backend or "embedded"
        return None
    record = records.read("train", path=args.training_record)
    outputs = record.get("outputs") or {}
    artifact = str(outputs.get("model_dir") or "")
    if not artifact and str(outputs.get("model_artifact_uri") or "").startswith("s3://"):
        artifact = str(fetch_s3_artifact(outputs["model_artifact_uri"], records.out_root() / "train" / "artifact"))
    if not artifact or not Path(artifact).is_dir():
        raise records.RecordError(f"the training record {record['_path']} names no local model directory "
                                  f"(got {artifact!r}); pass --backend transformers --model-path DIR")
    args.backend, args.model_path = "transformers", artifact
    print(f"gating the trained model {artifact} (from {record['_path']})", file=sys.stderr)
    return record


def fetch_s3_artifact(uri: str, target: Path) -> Path:
    """A SageMaker job's model.tar.gz, downloaded and unpacked into `target` (once per artifact)."""
    import tarfile

    from core import aws

    done = target / ".source"
    if done.is_file() and done.read_text() == uri:
        return target
    target.mkdir(parents=True, exist_ok=True)
    bucket, key = aws.split_s3(uri)
    archive = target.parent / "model.tar.gz"
    print(f"downloading {uri}", file=sys.stderr)
    try:
        aws.client("s3").download_file(bucket, key, str(archive))
    except Exception as exc:  # noqa: BLE001 - botocore's errors: one line
        raise ValueError(f"cannot download the trained model {uri}: {str(exc).splitlines()[0]}") from None
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    archive.unlink()
    done.write_text(uri)
    return target


def _same_model(classifier, baseline: dict) -> bool:
    model = baseline.get("model") or {}
    return model.get("backend") == classifier.name and str(model.get("version")) == str(classifier.version)


def write_records(report: dict, report_path: Path, gate_result: dict | None, gate_path: Path,
                  train_record: dict | None) -> None:
    """out/evaluate/record.json (and with --gate, out/gate/record.json) for the next steps."""
    from core import records

    inputs = {"train": Path(train_record["_path"])} if train_record else {}
    evaluate = records.write("evaluate", {"report": str(report_path), "report_sha256": records.sha256_file(report_path),
                                          "model": report["model"], "data": report["data"],
                                          "summary": report["summary"]}, inputs)
    if gate_result is not None:
        records.write("gate", {"gate": str(gate_path), "gate_sha256": records.sha256_file(gate_path),
                               "passed": gate_result["passed"], "reasons": gate_result["reasons"],
                               "candidate": report["model"]}, {"evaluate": evaluate})
    print(f"records: {evaluate}" + ("" if gate_result is None else f", {records.record_path('gate')}"),
          file=sys.stderr)


# --------------------------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.model_evaluation", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["embedded", "transformers", "sagemaker"],
                        help="default: with --gate, the model the training step recorded (transformers; "
                             "out/train/record.json); else the shipped embedded model")
    parser.add_argument("--model-path", help="embedded: model.npz; transformers: model directory; sagemaker: endpoint "
                                             "name (default: the training record's model with --gate)")
    parser.add_argument("--training-record", type=Path,
                        help="the training step's record (default: out/train/record.json) whose model --gate judges")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="labelled JSONL or Parquet (default: the prepared test split)")
    parser.add_argument("--validation", type=Path, help="labelled file for --calibrate (default: validation.* beside --data)")
    parser.add_argument("--subset", choices=SUBSETS, default="auto",
                        help="auto: the baseline's subset; without one, unseen-by-embedded for embedded, else all")
    parser.add_argument("--out", type=Path, help="report folder (default: out/eval/<backend>-<version>)")
    parser.add_argument("--calibrate", choices=["temperature"], help="fit a temperature on the validation split")
    parser.add_argument("--variants", type=int, default=2, help="coded variants per harmful text for robustness")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit", type=int, help="evaluate at most this many texts (a smoke run)")
    parser.add_argument("--probe-limit", type=int, help="use at most this many texts of each false-alarm probe set")
    parser.add_argument("--seed", type=int, default=13, help="augmentation seed")
    parser.add_argument("--gate", action="store_true", help="apply the deployment gate; exit 1 when it fails")
    parser.add_argument("--baseline", type=Path, help="the production model's eval_report.json to compare with")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log the run to MLflow")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or ./mlruns)")
    return parser


def _classifier(backend: str, model_path: str | None, settings):
    from classifiers.registry import create_classifier

    update: dict[str, Any] = {}
    if model_path:
        key = {"embedded": "embedded_model_path", "transformers": "transformers_model_path",
               "sagemaker": "sagemaker_endpoint_name"}[backend]
        update[key] = model_path if backend == "sagemaker" else Path(model_path)
    return create_classifier(settings.model_copy(update=update), backend)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from classifiers.base import ClassifierError
    from core.settings import get_settings
    from data.augment import Augmenter
    from normalizer import Normalizer, PatternDatabaseError, load_database
    from core.records import RecordError

    settings = get_settings()
    try:
        train_record = resolve_candidate(args)
        baseline = json.loads(args.baseline.read_text(encoding="utf-8")) if args.baseline else None
        # auto: the baseline's subset (so the two are compared on the same texts), else the backend's default.
        subset = args.subset
        if subset == "auto":
            default = "unseen-by-embedded" if args.backend == "embedded" else "all"
            subset = (baseline or {}).get("data", {}).get("subset") or default
        classifier = _classifier(args.backend, args.model_path, settings)
        db = load_database(settings.pattern_db_path)
        rows, info = select_rows(read_labelled(args.data), subset)
        if args.gate and baseline is not None and _same_model(classifier, baseline):
            raise ValueError(
                f"the candidate is the baseline itself ({classifier.name} {classifier.version}): gating a model "
                "against its own report passes by construction; gate the trained model (the training record's, "
                "the default without --backend, or --backend transformers --model-path DIR)")
    except (ClassifierError, PatternDatabaseError, ValueError, OSError, RecordError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.limit:
        rows = rows[: args.limit]
        info["rows_evaluated"] = len(rows)
    info.update(path=_display(args.data), sha256=sha256_file(args.data))
    timed = TimedClassifier(classifier, args.batch_size)
    out = args.out or ROOT / "out" / "eval" / f"{classifier.name}-{classifier.version}"
    out.mkdir(parents=True, exist_ok=True)

    temperature = None
    calibration_file = None
    if args.calibrate:
        val_path = args.validation or next(
            (p for p in (args.data.with_name(f"validation{args.data.suffix}"),) if p.is_file()), None
        )
        if val_path is None:
            print("error: --calibrate needs --validation (no validation file beside --data)", file=sys.stderr)
            return 1
        try:
            val_rows, val_info = select_rows(read_labelled(val_path), subset)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        val_probs = TimedClassifier(classifier, args.batch_size).probs([r["text"] for r in val_rows])
        val_y = np.array([SEVERITY[r["label"]] for r in val_rows], dtype=int)
        temperature = fit_temperature(val_probs, val_y)
        calibration_file = out / CALIBRATION_NAME
        calibration_file.write_text(json.dumps({
            "method": "temperature",
            "temperature": round(temperature, 6),
            "applies_to": "softmax(log(p) / temperature) over the backend's probabilities",
            "model": {"backend": classifier.name, "version": classifier.version},
            "fitted_on": {"path": _display(val_path), "sha256": sha256_file(val_path), **val_info},
            "validation_nll_before": round(negative_log_likelihood(val_probs, val_y), 4),
            "validation_nll_after": round(negative_log_likelihood(apply_temperature(val_probs, temperature), val_y), 4),
        }, indent=2) + "\n", encoding="utf-8")

    started = time.time()
    print(f"evaluating {classifier.name} {classifier.version} on {len(rows)} texts of {args.data}", file=sys.stderr)
    try:
        report = evaluate(timed, rows, normalizer=Normalizer(db), augmenter=Augmenter.from_database(db, seed=args.seed),
                          db=db, n_variants=args.variants, temperature=temperature, data_info=info,
                          probe_limit=args.probe_limit)
    except ClassifierError as exc:
        print(f"error: the classifier failed: {exc}", file=sys.stderr)
        return 1
    command = "uv run --all-extras python -m training.model_evaluation " + " ".join(sys.argv[1:] if argv is None else argv)
    report["command"] = command
    report["seconds"] = round(time.time() - started, 1)

    report_path = out / REPORT_NAME
    report_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    md_path = out / "eval_report.md"
    md_path.write_text(render_markdown(report, command), encoding="utf-8")
    files = [report_path, md_path, *write_plots(report, out)]
    if calibration_file:
        files.append(calibration_file)

    gate_result = None
    if args.gate:
        gate_result = gate(report, baseline, settings)
        gate_path = out / GATE_NAME
        gate_path.write_text(json.dumps(gate_result, indent=2) + "\n", encoding="utf-8")
        files.append(gate_path)
    if not args.no_mlflow:
        try:
            run_id = log_to_mlflow(report, files, gate_result, args.tracking_uri)
            print(f"logged MLflow run {run_id}", file=sys.stderr)
        except Exception as exc:  # tracking must not hide the result; say so and carry on
            print(f"warning: could not log to MLflow: {exc}", file=sys.stderr)
    print(json.dumps(report["summary"], indent=2))
    print(f"wrote {report_path}, {md_path.name} and plots in {out}", file=sys.stderr)
    write_records(report, report_path, gate_result, out / GATE_NAME, train_record)
    if gate_result is not None:
        if not gate_result["passed"]:
            print("gate: FAILED", file=sys.stderr)
            for reason in gate_result["reasons"]:
                print(reason, file=sys.stderr)
            return 1
        print("gate: passed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
