"""Classification metrics shared by training and evaluation: the confusion matrix, macro-F1, the ordinal
measures, "harmful or worse" precision/recall, calibration error and temperature scaling.

Small on purpose: `training/train_script.py` imports it, and the SageMaker training job ships it, without the
evaluation report, plots or MLflow code (`training/model_evaluation.py`). numpy and `core.labels` only (scipy
for fit_temperature, imported when called).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.aws import sha256_file  # noqa: F401  (re-exported: the project's one definition, shipped with the job)
from core.labels import LABELS, SEVERITY

HARMFUL = SEVERITY["harmful"]  # "harmful or worse" is the binary decision the robustness and alarm figures use
ECE_BINS = 15


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str]) -> np.ndarray:
    """Counts, rows = true label, columns = predicted label, both in LABELS order."""
    cm = np.zeros((len(LABELS), len(LABELS)), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        cm[SEVERITY[t], SEVERITY[p]] += 1
    return cm


def per_label_scores(cm: np.ndarray) -> dict[str, dict[str, float]]:
    out = {}
    for i, label in enumerate(LABELS):
        tp = int(cm[i, i])
        predicted, support = int(cm[:, i].sum()), int(cm[i, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[label] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "support": support}
    return out


def macro_f1_of(cm: np.ndarray) -> float:
    """Mean F1 over the labels that occur (row sum > 0) of a confusion matrix (rows true, columns predicted)."""
    f1s = []
    for i in range(cm.shape[0]):
        if cm[i, :].sum():
            tp, fp, fn = cm[i, i], cm[:, i].sum() - cm[i, i], cm[i, :].sum() - cm[i, i]
            f1s.append(2 * tp / (2 * tp + fp + fn))  # = 2PR/(P+R), unrounded
    return float(np.mean(f1s)) if f1s else 0.0


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str]) -> tuple[float, dict[str, dict[str, float]]]:
    """Mean F1 over the labels that occur in `y_true` (a label absent from the data is not scored), and the
    per-label precision/recall/F1/support."""
    cm = confusion_matrix(y_true, y_pred)
    return macro_f1_of(cm), per_label_scores(cm)


def quadratic_weighted_kappa(cm: np.ndarray) -> float:
    """Cohen's kappa with weights (i-j)^2/(K-1)^2: 1 is perfect agreement, 0 is chance."""
    cm = np.asarray(cm, dtype=np.float64)
    k = cm.shape[0]
    n = cm.sum()
    if n == 0:
        return 0.0
    idx = np.arange(k)
    weights = (idx[:, None] - idx[None, :]) ** 2 / (k - 1) ** 2
    expected = np.outer(cm.sum(axis=1), cm.sum(axis=0)) / n
    denominator = (weights * expected).sum()
    return float(1.0 - (weights * cm).sum() / denominator) if denominator else 1.0


def mean_absolute_distance(cm: np.ndarray) -> float:
    """Mean |true severity - predicted severity| in label steps (0 to 3)."""
    cm = np.asarray(cm, dtype=np.float64)
    idx = np.arange(cm.shape[0])
    return float((np.abs(idx[:, None] - idx[None, :]) * cm).sum() / cm.sum()) if cm.sum() else 0.0


def binary_harmful(cm: np.ndarray) -> dict[str, float]:
    """Precision/recall/F1 of "harmful or worse" against everything milder."""
    cm = np.asarray(cm)
    tp = int(cm[HARMFUL:, HARMFUL:].sum())
    fp = int(cm[:HARMFUL, HARMFUL:].sum())
    fn = int(cm[HARMFUL:, :HARMFUL].sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "support": tp + fn}


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS,
                               weights: np.ndarray | None = None) -> tuple[float, list[dict]]:
    """ECE over `bins` equal-width bins (lo, hi] of the top probability (the first bin includes 0):
    sum over bins of (share of texts) * |accuracy - mean confidence|, each text counted with its weight (default
    1; weights that give the data another label mix measure the calibration that mix sees). Returns it and the
    per-bin table (n is the number of texts in the bin)."""
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y)
    if len(probs) == 0:
        return 0.0, []
    weights = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    total = weights.sum()
    ece, table = 0.0, []
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        row = {"lo": round(b / bins, 4), "hi": round((b + 1) / bins, 4), "n": n, "accuracy": None, "confidence": None}
        w = weights[mask]
        if n and w.sum() > 0:
            acc, conf = float(np.average(correct[mask], weights=w)), float(np.average(confidence[mask], weights=w))
            ece += w.sum() / total * abs(acc - conf)
            row.update(accuracy=round(acc, 4), confidence=round(conf, 4))
        table.append(row)
    return float(ece), table


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): temperature scaling on a backend that only returns probabilities (log p differs
    from the logits by a per-row constant, which softmax ignores)."""
    z = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def negative_log_likelihood(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))))


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of the true labels (searched in log space)."""
    from scipy.optimize import minimize_scalar

    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(apply_temperature(probs, math.exp(log_t)), y),
        bounds=(math.log(0.05), math.log(20.0)), method="bounded", options={"xatol": 1e-4},
    )
    return float(math.exp(result.x))


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, Any]:
    cm = confusion_matrix(y_true, y_pred)
    f1, per = macro_f1(y_true, y_pred)
    return {
        "n": len(y_true),
        "accuracy": round(float(np.trace(cm) / cm.sum()), 4) if cm.sum() else 0.0,
        "macro_f1": round(f1, 4),
        "per_label": per,
        "confusion_matrix": cm.tolist(),
        "quadratic_weighted_kappa": round(quadratic_weighted_kappa(cm), 4),
        "mean_absolute_distance": round(mean_absolute_distance(cm), 4),
        "harmful_or_worse": binary_harmful(cm),
    }

