"""The two-stage pipeline: normalize (Stage 1), classify (Stage 2), apply the policy.

    from moderator import Moderator
    moderator = Moderator.from_settings()
    moderator.moderate("ppl who say unal1ve lol")["classification"]

When the normalizer changed the text, both the normalized and the original text are classified in one batch
and the more severe label wins: normalizing must never make a text look safer. Both readings are reported;
their gap (`evasion_gap`) is an evasion signal.

Policy: cumulative thresholds over the ordinal labels (flag "harmful" when P(harmful or worse) reaches its
threshold, and so on); when the classifier fails, the fallback classifier answers and `stage2_status` says so,
or ModerationUnavailable is raised (the API answers 503). A failure is never reported as "safe".

Command line (one text, or a file of texts to JSONL with a progress bar):

    uv run python moderator.py "time to unalive myself"
    uv run python moderator.py --file posts.txt --out results.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import uuid
from collections.abc import Sequence

from classifiers.base import Classifier, ClassifierError, LabelScores, check_categories, check_scores
from classifiers.registry import OFFLINE_BACKENDS
from core.categories import CATEGORIES, stage1_categories
from core.labels import LABELS, SEVERITY
from core.result import ModerationResult, rounded, rounded_categories
from core.settings import Settings, get_settings
from normalizer import NormalizationResult
from normalizer.reload import ReloadingNormalizer

log = logging.getLogger("moderator")


class ModerationUnavailable(RuntimeError):
    """Stage 2 failed and the fallback policy forbids answering without it."""


def decide(scores: LabelScores, thresholds: dict[str, float]) -> str:
    """The most severe label whose cumulative probability (that label or worse) reaches its threshold."""
    tail = 0.0
    for label in reversed(LABELS[1:]):
        tail += scores[label]
        if tail >= thresholds[label]:
            return label
    return LABELS[0]


DEFAULT_THRESHOLD = 0.5


def resolve_thresholds(configured: dict[str, float | None], classifier: Classifier) -> dict[str, float]:
    """Per label: the configured threshold, else the one the model was tuned with, else 0.5. extremely_harmful's
    is raised to harmful's when below it: P(extremely) <= P(harmful or worse), so a lower bar would let the more
    severe label through where the harmful bar was not met (e.g. THRESHOLD_HARMFUL=0.5 over a model's 0.225)."""
    own = getattr(classifier, "thresholds", None) or {}
    out = {label: configured.get(label) if configured.get(label) is not None else own.get(label, DEFAULT_THRESHOLD)
           for label in LABELS[1:]}
    out["extremely_harmful"] = max(out["extremely_harmful"], out["harmful"])
    return out


def confidence(scores: LabelScores, label: str) -> float:
    """The probability behind the decision: P(safe) for safe, else P(this label or worse)."""
    if label == LABELS[0]:
        return scores[label]
    return sum(scores[other] for other in LABELS[SEVERITY[label] :])


class Moderator:
    def __init__(
        self,
        normalizer: ReloadingNormalizer,
        classifier: Classifier,
        settings: Settings,
        fallback: Classifier | None = None,
    ):
        self.normalizer = normalizer
        self.classifier = classifier
        self.fallback = fallback
        self.settings = settings
        self.thresholds = resolve_thresholds(settings.thresholds, classifier)
        # The fallback decides with its own tuned thresholds (a different model's probabilities mean different
        # things), under the same THRESHOLD_* overrides.
        self.fallback_thresholds = resolve_thresholds(settings.thresholds, fallback) if fallback else None
        log.info("decision thresholds for %s: %s%s", classifier.name, self.thresholds,
                 " (THRESHOLD_* settings override the model's)" if any(v is not None for v in settings.thresholds.values()) else "")

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "Moderator":
        from classifiers.registry import create_classifier

        settings = settings or get_settings()
        normalizer = ReloadingNormalizer(settings.pattern_db_path, settings.pattern_db_reload_seconds,
                                         settings.pattern_db_last_good_path)
        classifier = create_classifier(settings)
        fallback = None
        if classifier.name not in OFFLINE_BACKENDS and settings.fallback_policy == "embedded":
            fallback = create_classifier(settings, "embedded")
        return cls(normalizer, classifier, settings, fallback)

    @property
    def mock_mode(self) -> bool:
        """True when Stage 2 is an offline model (embedded or encoder tier) rather than the tuned LLM."""
        return self.classifier.name in OFFLINE_BACKENDS

    # ------------------------------------------------------------------ pipeline
    def moderate(self, text: str, request_id: str | None = None) -> ModerationResult:
        return self.moderate_batch([text], [request_id] if request_id else None)[0]

    def moderate_batch(self, texts: Sequence[str], request_ids: Sequence[str] | None = None) -> list[ModerationResult]:
        started = time.perf_counter()
        normalizer = self.normalizer.current()
        stage1: list[NormalizationResult | None] = []
        for text in texts:
            try:
                stage1.append(normalizer.normalize(text))
            except Exception:  # a normalizer bug must not stop moderation: classify the original text
                log.exception("normalizer failed; classifying the original text")
                stage1.append(None)

        # One batch: every normalized text, plus the original of each text the normalizer changed.
        batch: list[str] = []
        slots: list[tuple[int, int | None]] = []
        for text, result in zip(texts, stage1):
            first = len(batch)
            batch.append(result.text if result else text)
            raw_index = None
            if result is not None and result.changed:
                raw_index = len(batch)
                batch.append(text)
            slots.append((first, raw_index))

        scores, categories, stage2_status, backend = self._classify(batch)
        thresholds = self.thresholds if backend is self.classifier else self.fallback_thresholds
        elapsed_ms = (time.perf_counter() - started) * 1000 / max(1, len(texts))
        results: list[ModerationResult] = []
        for i, (text, result, (first, raw_index)) in enumerate(zip(texts, stage1, slots)):
            normalized_scores = scores[first]
            normalized_label = decide(normalized_scores, thresholds)
            final_scores, label = normalized_scores, normalized_label
            raw_label = None
            raw_scores = None
            if raw_index is not None:
                raw_scores = scores[raw_index]
                raw_label = decide(raw_scores, thresholds)
                if SEVERITY[raw_label] > SEVERITY[normalized_label]:
                    final_scores, label = raw_scores, raw_label
            kinds = None
            if categories is not None:  # the more of the two readings, as for the label
                kinds = categories[first] if raw_index is None else {
                    c: max(categories[first][c], categories[raw_index][c]) for c in CATEGORIES}
            evidence = category_evidence(label, kinds, getattr(backend, "categories", None), result)
            results.append(
                ModerationResult(
                    request_id=request_ids[i] if request_ids else uuid.uuid4().hex,
                    original_text=text,
                    normalized_text=result.text if result else text,
                    algospeak_detected=result.algospeak_detected if result else False,
                    classification=label,
                    scores=rounded(final_scores),
                    confidence=round(confidence(final_scores, label), 6),
                    normalized_classification=normalized_label,
                    raw_classification=raw_label,
                    raw_scores=rounded(raw_scores) if raw_scores else None,
                    evasion_gap=SEVERITY[normalized_label] - SEVERITY[raw_label] if raw_label else 0,
                    # a bounded answer: at most MAX_MATCHES_PER_TEXT matches, and how many more there were
                    matches=[m.as_dict() for m in result.matches[: self.settings.max_matches_per_text]] if result else [],
                    matches_omitted=max(0, len(result.matches) - self.settings.max_matches_per_text) if result else 0,
                    # degraded: the text's decoding budget ran out and part of it was left as written
                    stage1_status=("degraded" if result.degraded else "ok") if result else "error",
                    stage2_status=stage2_status,
                    mock_mode=backend.name in OFFLINE_BACKENDS,
                    categories=rounded_categories(kinds) if kinds is not None else None,
                    flagged_categories=list(evidence),
                    category_evidence=evidence,
                    model={"backend": backend.name, "version": backend.version},
                    pattern_db_version=normalizer.version,
                    latency_ms=round(elapsed_ms, 3),
                )
            )
        return results

    def _classify(self, batch: list[str]) -> tuple[list[LabelScores], list[dict[str, float]] | None, str, Classifier]:
        try:
            return (*_scored(self.classifier, batch), "ok", self.classifier)
        except ClassifierError as exc:
            error = exc
        except Exception as exc:  # an unexpected backend bug is a failure, never a silent answer
            log.exception("classifier %s raised", self.classifier.name)
            error = exc
        if self.fallback is None:
            raise ModerationUnavailable(f"classifier {self.classifier.name} failed: {error}") from error
        log.warning("classifier %s failed (%s); answering with %s", self.classifier.name, error, self.fallback.name)
        try:
            return (*_scored(self.fallback, batch), f"fallback:{self.fallback.name}", self.fallback)
        except Exception as exc:
            raise ModerationUnavailable(f"classifier and fallback both failed: {error}; {exc}") from exc


def _scored(backend: Classifier, batch: list[str]) -> tuple[list[LabelScores], list[dict[str, float]] | None]:
    """Severity scores and, from a backend with category heads, category probabilities (one pass), both checked."""
    with_categories = getattr(backend, "classify_with_categories", None)
    if with_categories is None:
        return check_scores(backend.classify(batch), len(batch), backend.name), None
    scores, categories = with_categories(batch)
    return check_scores(scores, len(batch), backend.name), check_categories(categories, len(batch), backend.name)


def category_evidence(label: str, probabilities: dict[str, float] | None, heads, stage1: NormalizationResult | None
                      ) -> dict[str, list[str]]:
    """The flagged categories and what found each, in CATEGORIES order: none for a safe text (the severity is the
    decision; a category is where a flagged text goes); else each category whose probability reaches its head's
    threshold, and the category of each Stage 1 match that was not a safe context (a decoded or annotated term)."""
    if label == "safe":
        return {}
    found: dict[str, list[str]] = {}
    if probabilities is not None and heads is not None:
        for category in heads.flagged(probabilities):
            found.setdefault(category, []).append("classifier")
    for category in stage1_categories(stage1.matches) if stage1 is not None else ():
        found.setdefault(category, []).append("stage1")
    return {c: found[c] for c in CATEGORIES if c in found}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="moderator.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("text", nargs="*", help="a text to moderate")
    parser.add_argument("--file", help="one text per line ('-' for stdin); results as JSONL")
    parser.add_argument("--out", help="write results here instead of stdout")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)
    if not args.text and not args.file:
        parser.error("give a text, or --file PATH")

    from normalizer import PatternDatabaseError

    try:
        moderator = Moderator.from_settings()
    except (PatternDatabaseError, ClassifierError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.text:
        print(json.dumps(moderator.moderate(" ".join(args.text)), ensure_ascii=False, indent=2))
        return 0

    from tqdm import tqdm

    try:
        source = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8", errors="replace")
        out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    except OSError as exc:
        print(f"error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    with source, out:
        texts = [line.rstrip("\r\n") for line in source]
        counts = dict.fromkeys(LABELS, 0)
        with tqdm(total=len(texts), unit="text", file=sys.stderr, disable=None) as bar:
            for i in range(0, len(texts), args.batch_size):
                for result in moderator.moderate_batch(texts[i : i + args.batch_size]):
                    counts[result["classification"]] += 1
                    out.write(json.dumps(result, ensure_ascii=False) + "\n")
                bar.update(len(texts[i : i + args.batch_size]))
    print("labels: " + ", ".join(f"{k} {v}" for k, v in counts.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
