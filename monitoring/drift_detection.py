"""Drift between a reference window and a current window, with an alert status, reasons and a report.

    uv run python -m monitoring.drift_detection --reference data/train.jsonl \\
        --current sqlite:///predictions.db --current-start 24h --out reports/drift
    uv run python -m monitoring.drift_detection --reference sqlite:///predictions.db --reference-start 8d \\
        --reference-end 1d --current sqlite:///predictions.db --current-start 1d --out reports/drift
    uv run python -m monitoring.drift_detection --reference data/train.parquet \\
        --current s3://bucket/datacapture/endpoint/ --out reports/drift

Sources are described in monitoring/sources.py. Checks, each skipped (with the reason) when a window lacks
what it needs:

    text_length, char_<class>   PSI on reference-quantile bins + two-sample Kolmogorov-Smirnov
    labels                      PSI + chi-square on the label counts
    confidence                  PSI + KS on the chosen label's probability
    normalizer_hit_rate,        share of texts with any / each technique (two-proportion chi-square);
    technique_<name>            needs normalizer information in both windows (log, moderation results)
    disagreement                share of texts whose raw and normalized labels differ
    embedding                   classifier two-sample test on text embeddings: held-out AUC of telling
                                current from reference (only with --embedding-model)
    new_terms                   candidate new algospeak in flagged/borderline texts (needs texts)
    data_quality                unreadable rows in either window

A distribution check alerts when PSI >= psi_alert and the test's p-value < p_value (warns at psi_warn);
character shares also need their mean to move (char_min_delta, char_min_relative_change); a share
alerts when it moves by rate_delta_alert or more (warns at rate_delta_warn) with p < p_value.
Writes report.json, report.md, PNG plots and new_terms.json (draft entries) to --out.
Exit status: 0 no drift (warnings allowed unless --fail-on warn), 1 drift alert, 2 bad input.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by its path (python monitoring/drift_detection.py): the repository root on sys.path
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.labels import LABELS
from monitoring import MonitoringInputError
from monitoring.sources import Window, load_window, parse_time

CHAR_CLASSES = ("digit", "upper", "punct", "other", "non_ascii")
STATUS_ORDER = {"skipped": -1, "ok": 0, "warn": 1, "alert": 2}

Embedder = Callable[[list[str]], np.ndarray]


@dataclass
class DriftConfig:
    psi_warn: float = 0.1
    psi_alert: float = 0.25
    p_value: float = 0.001
    rate_delta_warn: float = 0.03
    rate_delta_alert: float = 0.05
    embedding_warn: float = 0.6  # held-out AUC of a reference-vs-current classifier on the embeddings
    embedding_alert: float = 0.7
    # A character-class share alerts only when its mean moves this much, relatively and absolutely: the
    # shares of long texts vary less than those of short ones, so a pure length shift moves their PSI.
    char_min_relative_change: float = 0.25
    char_min_delta: float = 0.002
    min_samples: int = 30
    bins: int = 10
    new_terms_alert: int = 1  # this many candidate new terms raise an alert; 0 turns the check off
    bad_rows_warn: float = 0.01  # share of unreadable rows that warns


@dataclass
class Check:
    name: str
    status: str  # ok | warn | alert | skipped
    reason: str
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class DriftReport:
    status: str
    reasons: list[str]
    checks: list[Check]
    reference: dict[str, Any]
    current: dict[str, Any]
    config: DriftConfig
    new_terms: list[Any] = field(default_factory=list)
    generated_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    plot_data: dict[str, Any] = field(default_factory=dict, repr=False)

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reasons": self.reasons,
            "generated_at": self.generated_at,
            "reference": self.reference,
            "current": self.current,
            "config": asdict(self.config),
            "checks": [asdict(c) for c in self.checks],
            "new_terms": [{k: v for k, v in asdict(c).items()} for c in self.new_terms],
        }


# ------------------------------------------------------------------------------------------ statistics


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray, eps: float = 1e-4) -> float:
    """Population stability index of two histograms over the same bins."""
    p = np.maximum(ref_counts / max(ref_counts.sum(), 1), eps)
    q = np.maximum(cur_counts / max(cur_counts.sum(), 1), eps)
    return float(np.sum((q - p) * np.log(q / p)))


def binned(ref: np.ndarray, cur: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts over bins cut at the reference's quantiles (right-closed, open-ended; ties merge bins)."""
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    if edges.size == 0:
        edges = np.array([float(np.min(ref))])
    n = edges.size + 1
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=n)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=n)
    return edges, ref_counts.astype(float), cur_counts.astype(float)


def _level(psi_value: float, p: float, cfg: DriftConfig) -> str:
    if p >= cfg.p_value:
        return "ok"
    if psi_value >= cfg.psi_alert:
        return "alert"
    if psi_value >= cfg.psi_warn:
        return "warn"
    return "ok"


def numeric_check(name: str, title: str, ref: np.ndarray, cur: np.ndarray, cfg: DriftConfig,
                  unit: str = "") -> Check:
    from scipy.stats import ks_2samp

    _, rc, cc = binned(ref, cur, cfg.bins)
    value = psi(rc, cc)
    ks = ks_2samp(ref, cur)
    p = float(ks.pvalue)
    status = _level(value, p, cfg)
    rm, cm = float(np.median(ref)), float(np.median(cur))
    rmean, cmean = float(np.mean(ref)), float(np.mean(cur))
    fmt = (lambda x: f"{x:.0f}{unit}") if unit else (lambda x: f"{x:.3f}")
    reason = (f"{title}: PSI {value:.2f}, KS {ks.statistic:.2f} (p={p:.1e}); "
              f"median {fmt(rm)} -> {fmt(cm)}, mean {fmt(rmean)} -> {fmt(cmean)}")
    return Check(name, status, reason, {
        "psi": round(value, 4), "ks_statistic": round(float(ks.statistic), 4), "ks_pvalue": p,
        "reference_median": rm, "current_median": cm, "reference_mean": rmean, "current_mean": cmean,
    })


def share_check(name: str, title: str, ref_hits: int, ref_n: int, cur_hits: int, cur_n: int,
                cfg: DriftConfig) -> Check:
    from scipy.stats import chi2_contingency

    r, c = ref_hits / ref_n, cur_hits / cur_n
    table = np.array([[ref_hits, ref_n - ref_hits], [cur_hits, cur_n - cur_hits]], dtype=float)
    p = 1.0
    if (table.sum(axis=0) > 0).all():
        p = float(chi2_contingency(table)[1])
    delta = c - r
    status = "ok"
    if p < cfg.p_value and abs(delta) >= cfg.rate_delta_alert:
        status = "alert"
    elif p < cfg.p_value and abs(delta) >= cfg.rate_delta_warn:
        status = "warn"
    reason = f"{title}: {r:.1%} -> {c:.1%} ({delta:+.1%}, p={p:.1e})"
    return Check(name, status, reason, {"reference": r, "current": c, "delta": delta, "pvalue": p})


def labels_check(ref: list[str], cur: list[str], cfg: DriftConfig) -> Check:
    from scipy.stats import chi2_contingency

    rc = np.array([ref.count(lb) for lb in LABELS], dtype=float)
    cc = np.array([cur.count(lb) for lb in LABELS], dtype=float)
    value = psi(rc, cc)
    keep = (rc + cc) > 0
    p = 1.0
    if keep.sum() >= 2:
        p = float(chi2_contingency(np.vstack([rc[keep], cc[keep]]))[1])
    status = _level(value, p, cfg)
    rs, cs = rc / rc.sum(), cc / cc.sum()
    moves = sorted(range(len(LABELS)), key=lambda i: -abs(cs[i] - rs[i]))[:2]
    detail = ", ".join(f"{LABELS[i]} {rs[i]:.0%} -> {cs[i]:.0%}" for i in moves)
    reason = f"label mix: PSI {value:.2f}, chi-square p={p:.1e}; {detail}"
    return Check("labels", status, reason, {
        "psi": round(value, 4), "chi2_pvalue": p,
        "reference_shares": dict(zip(LABELS, rs.round(4).tolist())),
        "current_shares": dict(zip(LABELS, cs.round(4).tolist())),
    })


def categories_check(ref: list[list[str]], cur: list[list[str]], cfg: DriftConfig) -> Check:
    """The harm-category mix: the share of texts flagged with each category (a text may count for several;
    "none" counts texts with no category), compared as the label mix is."""
    from scipy.stats import chi2_contingency

    from core.categories import CATEGORIES

    names = (*CATEGORIES, "none")

    def counts(window: list[list[str]]) -> np.ndarray:
        return np.array([sum(c in flagged for flagged in window) for c in CATEGORIES]
                        + [sum(not flagged for flagged in window)], dtype=float)

    rc, cc = counts(ref), counts(cur)
    value = psi(rc, cc)
    keep = (rc + cc) > 0
    p = float(chi2_contingency(np.vstack([rc[keep], cc[keep]]))[1]) if keep.sum() >= 2 else 1.0
    status = _level(value, p, cfg)
    rs, cs = rc / max(len(ref), 1), cc / max(len(cur), 1)
    moves = sorted(range(len(names)), key=lambda i: -abs(cs[i] - rs[i]))[:2]
    detail = ", ".join(f"{names[i]} {rs[i]:.1%} -> {cs[i]:.1%}" for i in moves)
    return Check("categories", status, f"harm-category mix: PSI {value:.2f}, chi-square p={p:.1e}; {detail}", {
        "psi": round(value, 4), "chi2_pvalue": p,
        "reference_shares": dict(zip(names, rs.round(4).tolist())),
        "current_shares": dict(zip(names, cs.round(4).tolist())),
    })


# ------------------------------------------------------------------------------------------ detection


def _fractions(window: Window, cls: str) -> np.ndarray:
    return np.array([s.chars.get(cls, 0) / s.length if s.length else 0.0 for s in window.samples])


def detect_drift(
    reference: Window,
    current: Window,
    config: DriftConfig | None = None,
    *,
    patterns: Any = None,
    embedder: Embedder | None = None,
    embedding_skip_reason: str = "no embedding model (pass --embedding-model)",
) -> DriftReport:
    """Compare the windows. `patterns` (a new_terms.PatternIndex) enables the new-term check."""
    cfg = config or DriftConfig()
    check_sizes(reference, current, cfg)
    checks: list[Check] = []
    plot: dict[str, Any] = {}

    ref_len = np.array([s.length for s in reference.samples], dtype=float)
    cur_len = np.array([s.length for s in current.samples], dtype=float)
    checks.append(numeric_check("text_length", "text length", ref_len, cur_len, cfg, unit=" chars"))
    plot["text_length"] = (ref_len, cur_len)
    for cls in CHAR_CLASSES:
        rf, cf = _fractions(reference, cls), _fractions(current, cls)
        check = numeric_check(f"char_{cls}", f"{cls} character share", rf, cf, cfg)
        change = abs(check.stats["current_mean"] - check.stats["reference_mean"])
        if check.status != "ok" and (change < cfg.char_min_delta
                                     or change < cfg.char_min_relative_change * check.stats["reference_mean"]):
            check.status = "ok"
            check.reason += " (mean share moved too little to matter)"
        checks.append(check)
        plot[f"char_{cls}"] = (rf, cf)

    if reference.has_labels and current.has_labels:
        rl = [s.label for s in reference.samples if s.label]
        cl = [s.label for s in current.samples if s.label]
        checks.append(labels_check(rl, cl, cfg))  # type: ignore[arg-type]
        plot["labels"] = (rl, cl)
    else:
        checks.append(Check("labels", "skipped", _lacks(reference, current, "has_labels", "labels")))

    rk = [s.categories for s in reference.samples if s.categories is not None]
    ck = [s.categories for s in current.samples if s.categories is not None]
    if len(rk) >= len(reference.samples) / 2 and len(ck) >= len(current.samples) / 2 and rk and ck:
        checks.append(categories_check(rk, ck, cfg))
    else:
        checks.append(Check("categories", "skipped", "harm categories are not recorded in both windows "
                                                    "(logs written before categories existed, or data files)"))

    if reference.has_confidence and current.has_confidence:
        rc = np.array([s.confidence for s in reference.samples if s.confidence is not None])
        cc = np.array([s.confidence for s in current.samples if s.confidence is not None])
        checks.append(numeric_check("confidence", "confidence", rc, cc, cfg))
        plot["confidence"] = (rc, cc)
    else:
        checks.append(Check("confidence", "skipped", _lacks(reference, current, "has_confidence", "confidences")))

    checks.extend(_normalizer_checks(reference, current, cfg, plot))
    checks.append(_embedding_check(reference, current, cfg, embedder, embedding_skip_reason))
    new_terms, check = _new_terms_check(reference, current, cfg, patterns)
    checks.append(check)
    checks.append(_quality_check(reference, current, cfg))

    worst = max((c.status for c in checks), key=lambda s: STATUS_ORDER[s])
    status = worst if worst in ("warn", "alert") else "ok"
    reasons = [f"{c.status}: {c.reason}" for c in sorted(checks, key=lambda c: -STATUS_ORDER[c.status])
               if c.status in ("warn", "alert")]
    return DriftReport(
        status=status, reasons=reasons, checks=checks, config=cfg, new_terms=new_terms,
        reference=_describe(reference), current=_describe(current), plot_data=plot,
    )


def check_sizes(reference: Window, current: Window, cfg: DriftConfig) -> None:
    for name, w in (("reference", reference), ("current", current)):
        if len(w) < cfg.min_samples:
            raise MonitoringInputError(
                f"the {name} window ({w.source}) has {len(w)} samples; need at least {cfg.min_samples} "
                "(widen the window or lower --min-samples)"
            )


def _lacks(reference: Window, current: Window, attr: str, what: str) -> str:
    missing = [n for n, w in (("reference", reference), ("current", current)) if not getattr(w, attr)]
    return f"the {' and '.join(missing)} window has no {what}"


def _describe(w: Window) -> dict[str, Any]:
    times = [s.ts for s in w.samples if s.ts is not None]
    from monitoring.sources import utc_iso

    return {"source": w.source, "samples": len(w), "bad_rows": w.bad_rows, "problems": w.problems,
            "first": utc_iso(min(times)) if times else None, "last": utc_iso(max(times)) if times else None,
            "has_text": w.has_text, "has_labels": w.has_labels, "has_normalizer": w.has_normalizer}


def _normalizer_checks(reference: Window, current: Window, cfg: DriftConfig, plot: dict) -> list[Check]:
    if not (reference.has_normalizer and current.has_normalizer):
        reason = _lacks(reference, current, "has_normalizer", "normalizer information (log or moderation results)")
        return [Check("normalizer_hit_rate", "skipped", reason), Check("disagreement", "skipped", reason)]
    ref = [s for s in reference.samples if s.techniques is not None]
    cur = [s for s in current.samples if s.techniques is not None]
    checks = [share_check("normalizer_hit_rate", "normalizer hit rate (any technique)",
                          sum(bool(s.techniques) for s in ref), len(ref),
                          sum(bool(s.techniques) for s in cur), len(cur), cfg)]
    techniques = sorted({t for s in ref + cur for t in s.techniques or ()})
    shares = {}
    for t in techniques:
        rh = sum(t in (s.techniques or ()) for s in ref)
        ch = sum(t in (s.techniques or ()) for s in cur)
        checks.append(share_check(f"technique_{t}", f"{t} hit rate", rh, len(ref), ch, len(cur), cfg))
        shares[t] = (rh / len(ref), ch / len(cur))
    plot["techniques"] = shares
    rd = [s for s in ref if s.label is not None]
    cd = [s for s in cur if s.label is not None]
    if rd and cd:
        checks.append(share_check("disagreement", "raw vs normalized label disagreement",
                                  sum(bool(s.disagreement) for s in rd), len(rd),
                                  sum(bool(s.disagreement) for s in cd), len(cd), cfg))
    else:
        checks.append(Check("disagreement", "skipped", "no labels with normalizer information"))
    return checks


def _embedding_check(reference: Window, current: Window, cfg: DriftConfig, embedder: Embedder | None,
                     skip_reason: str) -> Check:
    if embedder is None:
        return Check("embedding", "skipped", skip_reason)
    if not (reference.has_text and current.has_text):
        return Check("embedding", "skipped", _lacks(reference, current, "has_text", "texts"))
    rng = np.random.default_rng(0)
    ref_texts, cur_texts = reference.texts(), current.texts()
    n = min(len(ref_texts), len(cur_texts), 2000)  # balanced samples: chance level is then AUC 0.5
    a = np.asarray(embedder([ref_texts[i] for i in rng.choice(len(ref_texts), n, replace=False)]), dtype=float)
    b = np.asarray(embedder([cur_texts[i] for i in rng.choice(len(cur_texts), n, replace=False)]), dtype=float)
    auc = domain_classifier_auc(a, b, rng)
    ca, cb = a.mean(axis=0), b.mean(axis=0)
    distance = float(1 - ca @ cb / max(np.linalg.norm(ca) * np.linalg.norm(cb), 1e-12))
    status = "alert" if auc >= cfg.embedding_alert else "warn" if auc >= cfg.embedding_warn else "ok"
    reason = (f"embeddings: a classifier tells current from reference texts with AUC {auc:.2f} "
              f"(0.5 = indistinguishable); centroid cosine distance {distance:.3f}")
    return Check("embedding", status, reason, {"domain_auc": auc, "centroid_cosine_distance": distance})


def domain_classifier_auc(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, steps: int = 300) -> float:
    """Held-out AUC of a logistic regression separating rows of `a` from rows of `b` (a two-sample test).

    Trained on half of each, scored on the other half, so over-fitting cannot inflate it.
    """
    x = np.vstack([a, b])
    y = np.concatenate([np.zeros(len(a)), np.ones(len(b))])
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    half = len(x) // 2
    xtr, ytr, xte, yte = x[:half], y[:half], x[half:], y[half:]
    mu, sd = xtr.mean(axis=0), xtr.std(axis=0) + 1e-9
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    w, b0 = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(xtr @ w + b0)))
        w -= 0.1 * (xtr.T @ (p - ytr) / len(ytr) + 1e-2 * w)
        b0 -= 0.1 * float(np.mean(p - ytr))
    scores = xte @ w
    pos, neg = scores[yte == 1], scores[yte == 0]
    if not len(pos) or not len(neg):
        return 0.5
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _new_terms_check(reference: Window, current: Window, cfg: DriftConfig, patterns: Any) -> tuple[list, Check]:
    if cfg.new_terms_alert <= 0:
        return [], Check("new_terms", "skipped", "turned off (--new-terms-alert 0)")
    if patterns is None:
        return [], Check("new_terms", "skipped", "no pattern database given")
    if not (reference.has_text and current.has_text):
        why = _lacks(reference, current, "has_text", "texts (the log keeps texts only with LOG_TEXT=true)")
        return [], Check("new_terms", "skipped", why)
    from monitoring.new_terms import find_new_terms

    found = find_new_terms(reference, current, patterns)
    status = "alert" if len(found) >= cfg.new_terms_alert else "ok"
    shown = ", ".join(repr(c.term) for c in found[:5]) + (", ..." if len(found) > 5 else "")
    reason = (f"{len(found)} candidate new algospeak term(s) rising in flagged/borderline texts: {shown}"
              if found else "no candidate new terms")
    return found, Check("new_terms", status, reason, {"count": len(found), "terms": [c.term for c in found]})


def _quality_check(reference: Window, current: Window, cfg: DriftConfig) -> Check:
    parts, worst = [], 0.0
    for name, w in (("reference", reference), ("current", current)):
        share = w.bad_rows / (w.bad_rows + len(w))
        worst = max(worst, share)
        if w.bad_rows:
            parts.append(f"{name}: {w.bad_rows} unreadable rows ({share:.1%}; e.g. {w.problems[0]})")
    status = "warn" if worst >= cfg.bad_rows_warn else "ok"
    return Check("data_quality", status, "; ".join(parts) or "all rows readable", {"worst_bad_share": worst})


# ------------------------------------------------------------------------------------------ report


def write_report(report: DriftReport, out_dir: str | Path, *, plots: bool = True) -> dict[str, Path]:
    """Write report.json, report.md, the PNG plots and (when there are any) new_terms.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"json": out / "report.json", "markdown": out / "report.md"}
    images = _plots(report, out) if plots else {}
    written.update(images)
    written["json"].write_text(json.dumps(report.to_dict(), indent=2, default=_json_default) + "\n")
    written["markdown"].write_text(_markdown(report, images))
    return written


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def _markdown(report: DriftReport, images: dict[str, Path]) -> str:
    icon = {"ok": "OK", "warn": "WARN", "alert": "ALERT", "skipped": "skipped"}
    lines = [f"# Drift report: {icon[report.status]}", "", f"Generated {report.generated_at}.", ""]
    for name, w in (("Reference", report.reference), ("Current", report.current)):
        span = f", {w['first']} to {w['last']}" if w.get("first") else ""
        lines.append(f"- **{name}**: `{w['source']}`, {w['samples']} samples{span}, {w['bad_rows']} unreadable rows")
    lines += ["", "## Reasons", ""]
    lines += [f"- {r}" for r in report.reasons] or ["- none: no check crossed its threshold"]
    lines += ["", "## Checks", "", "| check | status | detail |", "|---|---|---|"]
    for c in report.checks:
        lines.append(f"| {c.name} | {icon[c.status]} | {c.reason.replace('|', '/')} |")
    if report.new_terms:
        lines += ["", "## Candidate new terms", "",
                  "Draft entries are in `new_terms.json`; review before adding them to the pattern database.", "",
                  "| term | z | texts (current / reference) | guess |", "|---|---|---|---|"]
        for c in report.new_terms:
            guess = f"variant of {c.variant_of} ({c.technique})" if c.variant_of else f"{c.technique}, {c.category}"
            lines.append(f"| `{c.term}` | {c.z:.1f} | {c.docs_current}/{c.n_current} / "
                         f"{c.docs_reference}/{c.n_reference} | {guess} |")
    if images:
        lines += ["", "## Plots", ""] + [f"![{k}]({p.name})" for k, p in images.items()]
    return "\n".join(lines) + "\n"


def _plots(report: DriftReport, out: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data, images = report.plot_data, {}

    def save(fig: Any, name: str) -> None:
        path = out / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        images[name] = path

    ref, cur = data["text_length"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    hi = float(np.quantile(np.concatenate([ref, cur]), 0.99)) or 1.0
    bins = np.linspace(0, hi, 40)
    ax.hist(ref, bins=bins, alpha=0.5, density=True, label="reference")
    ax.hist(cur, bins=bins, alpha=0.5, density=True, label="current")
    ax.set(title="Text length", xlabel="characters", ylabel="density")
    ax.legend()
    save(fig, "text_length")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(len(CHAR_CLASSES))
    ax.bar(x - 0.2, [data[f"char_{c}"][0].mean() for c in CHAR_CLASSES], 0.4, label="reference")
    ax.bar(x + 0.2, [data[f"char_{c}"][1].mean() for c in CHAR_CLASSES], 0.4, label="current")
    ax.set_xticks(x, CHAR_CLASSES)
    ax.set(title="Mean character-class share per text", ylabel="share")
    ax.legend()
    save(fig, "char_classes")

    if "labels" in data:
        rl, cl = data["labels"]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        x = np.arange(len(LABELS))
        ax.bar(x - 0.2, [rl.count(lb) / len(rl) for lb in LABELS], 0.4, label="reference")
        ax.bar(x + 0.2, [cl.count(lb) / len(cl) for lb in LABELS], 0.4, label="current")
        ax.set_xticks(x, [lb.replace("_", "\n") for lb in LABELS])
        ax.set(title="Label mix", ylabel="share")
        ax.legend()
        save(fig, "labels")

    if "confidence" in data:
        rc, cc = data["confidence"]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        bins = np.linspace(0, 1, 21)
        ax.hist(rc, bins=bins, alpha=0.5, density=True, label="reference")
        ax.hist(cc, bins=bins, alpha=0.5, density=True, label="current")
        ax.set(title="Confidence", xlabel="probability of the chosen label", ylabel="density")
        ax.legend()
        save(fig, "confidence")

    if data.get("techniques"):
        shares = data["techniques"]
        fig, ax = plt.subplots(figsize=(7, 3.5))
        x = np.arange(len(shares))
        ax.bar(x - 0.2, [v[0] for v in shares.values()], 0.4, label="reference")
        ax.bar(x + 0.2, [v[1] for v in shares.values()], 0.4, label="current")
        ax.set_xticks(x, list(shares), rotation=30, ha="right")
        ax.set(title="Normalizer hit rate per technique", ylabel="share of texts")
        ax.legend()
        save(fig, "techniques")
    return images


# ------------------------------------------------------------------------------------------ CLI


def _sentence_transformer(name: str) -> tuple[Embedder | None, str]:
    try:
        from sentence_transformers import SentenceTransformer  # optional, not a project dependency
    except ImportError:
        return None, "sentence-transformers is not installed; embedding drift skipped"
    try:
        model = SentenceTransformer(name)
    except Exception as exc:  # a missing or broken model only skips this check
        return None, f"cannot load embedding model {name!r} ({str(exc).splitlines()[0]}); skipped"
    return (lambda texts: model.encode(texts, batch_size=64, show_progress_bar=False)), ""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m monitoring.drift_detection",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Exit status: 0 no drift, 1 drift alert, 2 bad input. Times: ISO dates, 'now' or ages (7d, 12h).",
    )
    parser.add_argument("--reference", required=True, help="training JSONL/Parquet, log URL, capture folder, s3://")
    parser.add_argument("--current", required=True, help="log URL, capture folder, s3://, or a JSONL/Parquet file")
    parser.add_argument("--out", required=True, help="report folder")
    for which in ("reference", "current"):
        parser.add_argument(f"--{which}-start", help=f"{which} window start (log and capture sources)")
        parser.add_argument(f"--{which}-end", help=f"{which} window end (exclusive)")
    parser.add_argument("--limit", type=int, default=500_000, help="most recent samples per window")
    parser.add_argument("--patterns", help="pattern database for the new-term check (default: PATTERN_DB_PATH)")
    parser.add_argument("--embedding-model", help="sentence-transformers model name or path (optional)")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--fail-on", choices=("alert", "warn"), default="alert",
                        help="exit 1 on alerts only (default) or on warnings too")
    defaults = DriftConfig()
    for f in fields(DriftConfig):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(defaults, f.name)),
                            default=getattr(defaults, f.name), help=f"threshold (default {getattr(defaults, f.name)})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = DriftConfig(**{f.name: getattr(args, f.name) for f in fields(DriftConfig)})
    try:
        reference = load_window(args.reference, since=parse_time(args.reference_start),
                                until=parse_time(args.reference_end), limit=args.limit)
        current = load_window(args.current, since=parse_time(args.current_start),
                              until=parse_time(args.current_end), limit=args.limit)
        check_sizes(reference, current, config)
        patterns = None
        if config.new_terms_alert > 0 and reference.has_text and current.has_text:
            from monitoring.new_terms import load_patterns

            patterns = load_patterns(args.patterns)
        embedder, why = (None, "no embedding model (pass --embedding-model)")
        if args.embedding_model:
            embedder, why = _sentence_transformer(args.embedding_model)
        report = detect_drift(reference, current, config, patterns=patterns, embedder=embedder,
                              embedding_skip_reason=why)
        paths = write_report(report, args.out, plots=not args.no_plots)
        if report.new_terms:
            from monitoring.new_terms import drafts_document

            doc = drafts_document(report.new_terms, reference=reference, current=current, patterns=patterns)
            (Path(args.out) / "new_terms.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    except MonitoringInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # a base install: the statistics and plots are the monitoring extra
        print(f"error: drift detection needs {exc.name}, in the monitoring extra: uv sync --extra monitoring "
              "(or pip install 'algospeak-moderation[monitoring]')", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write the report to {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"drift status: {report.status.upper()}")
    for reason in report.reasons:
        print(f"  {reason}")
    print(f"report: {paths['markdown']}", file=sys.stderr)
    if report.status == "alert" or (report.status == "warn" and args.fail_on == "warn"):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
