"""Candidate new algospeak: terms rising in flagged or borderline texts that the pattern database misses.

    uv run python -m monitoring.new_terms --reference data/train.jsonl --current capture/ --out drafts.json

The finder needs texts. The prediction log stores only a hash of each text unless LOG_TEXT is on, so read
the current window from a log written with LOG_TEXT=true, from SageMaker capture files (local or
s3://...), or from a JSONL/Parquet file of texts (see monitoring/sources.py for every source form).

How it ranks: each window is cut to its flagged or borderline texts (label above safe, or a prediction
whose confidence is under `borderline_confidence`; all texts when a window has no labels). For every
word and word pair it counts the texts containing it and compares its share of all term occurrences
(each term counted once per text) between the windows: a smoothed log-odds ratio (current vs reference,
+0.5 per cell) and its z-score. Sharing out by occurrences keeps longer texts from lifting every word.
Terms the database covers (a form, a replacement word, or a regular-expression pattern) are left out.
Two kinds of candidates come out:

- variants of known harmful words (leet, repetition, masking, separators, edit distance 1-2 from a
  database form or replacement): proposed as `rewrite` entries with that word's replacement;
- new rising terms: proposed as `annotate` entries, category and severity guessed from co-occurring
  known words and the texts' labels.

The output is a list of draft entries in the pattern database's entry shape, each wrapped as
{"status": "draft", ...scores..., "entry": {...}}, for a human to review. The examples quote user texts:
treat the draft file like the texts themselves.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by its path (python monitoring/new_terms.py): the repository root on sys.path
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import itertools
import json
import logging
import math
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

from core.labels import CATEGORIES, SEVERITY
from monitoring import MonitoringInputError
from monitoring.sources import Sample, Window, load_window, parse_time

log = logging.getLogger(__name__)

SOURCE_KEY = "monitoring_discovery"
FALLBACK_CATEGORY = "harassment"  # the schema needs a category; a guess without evidence says so in notes

_STRIP = "\"'.,;:!?()[]{}<>«»“”‘’`…"
_LEET = str.maketrans({"4": "a", "@": "a", "3": "e", "1": "i", "!": "i", "0": "o", "5": "s", "$": "s",
                       "7": "t", "+": "t", "8": "b", "9": "g", "|": "l", "€": "e"})
_SEPARATORS = re.compile(r"[.\-_~·•]+")
_RUN3 = re.compile(r"(.)\1{2,}")
_RUN2 = re.compile(r"(.)\1+")


# --------------------------------------------------------------------------------------------- config


@dataclass
class NewTermConfig:
    borderline_confidence: float = 0.7  # a prediction below this confidence counts as borderline
    min_docs: int = 5  # a new term must be in at least this many current texts...
    min_log_odds: float = 1.5  # ...with odds at least e^1.5 (about 4.5x) those of the reference...
    min_z: float = 3.5  # ...and a rise this significant (one-sided binomial test, as a z-score)
    variant_min_docs: int = 3  # disguised known harmful words need less evidence
    variant_min_log_odds: float = 1.0
    variant_min_z: float = 1.0
    misspelling_min_z: float = 2.0  # edit-distance look-alikes ("skill" ~ "kill") need more than other variants
    max_candidates: int = 50
    bigrams: bool = True
    all_texts: bool = False  # compare all texts instead of flagged/borderline ones
    examples: int = 3


# --------------------------------------------------------------------------------------------- pattern DB


@dataclass
class KnownWord:
    word: str
    entry_id: str
    replacement: str
    category: str
    severity: int


@dataclass
class PatternIndex:
    """What the pattern database covers, and the harmful words whose variants are worth proposing."""

    forms: set[str] = field(default_factory=set)
    replacements: set[str] = field(default_factory=set)
    patterns: list[re.Pattern[str]] = field(default_factory=list)
    known: dict[str, KnownWord] = field(default_factory=dict)
    version: str | None = None
    path: str | None = None

    @classmethod
    def load(cls, path: str | Path) -> PatternIndex:
        """Read the database as plain JSON (entries[].forms, .replacement, .patterns; it may be small)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise MonitoringInputError(f"cannot read pattern database {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise MonitoringInputError(f"pattern database {path} is not JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
            raise MonitoringInputError(f"pattern database {path} has no entries list")
        index = cls(version=data.get("version"), path=str(path))
        for entry in data["entries"]:
            if isinstance(entry, dict):
                index.add(entry)
        return index

    def add(self, entry: dict[str, Any]) -> None:
        replacement = str(entry.get("replacement") or "").lower().strip()
        replacements = [replacement] + [str(v).lower() for v in (entry.get("replacements") or {}).values()]
        forms = [str(f).lower().strip() for f in entry.get("forms") or [] if str(f).strip()]
        self.forms.update(forms)
        self.replacements.update(r for r in replacements if r)
        for pattern in entry.get("patterns") or []:
            try:
                self.patterns.append(re.compile(pattern, re.IGNORECASE))
            except (re.error, TypeError):
                log.warning("pattern database: skipping bad pattern %r in %s", pattern, entry.get("id"))
        severity = entry.get("severity") if isinstance(entry.get("severity"), int) else 0
        category = entry.get("category") if entry.get("category") in CATEGORIES else FALLBACK_CATEGORY
        if severity < 1 or category == "safe_context" or entry.get("action") == "protect":
            return
        for word in forms + [w for r in replacements for w in r.split()]:
            if len(word) >= 3 and word.isalpha() and word not in self.known:
                self.known[word] = KnownWord(word, str(entry.get("id")), replacement or word, category, severity)

    def form_mask(self) -> re.Pattern[str] | None:
        """One regular expression matching every form as a whole word (longest first)."""
        if not self.forms:
            return None
        alternatives = "|".join(re.escape(f) for f in sorted(self.forms, key=len, reverse=True))
        return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")

    def covers(self, term: str) -> bool:
        if term in self.forms or term in self.replacements:
            return True
        if " " in term and any(part in self.forms for part in term.split()):
            return True
        return any(p.fullmatch(term) for p in self.patterns)


# --------------------------------------------------------------------------------------------- text


_BREAK = "\x00"


def tokens(text: str, mask: re.Pattern[str] | None = None) -> list[str]:
    """Lower-cased words with their surrounding punctuation stripped (inner symbols kept: k1ll, s.e.x).

    `mask` matches what is already covered (the database's forms); each match becomes a break, so neither
    it nor a pair across it becomes a term.
    """
    text = text.lower()
    if mask is not None:
        text = mask.sub(f" {_BREAK} ", text)
    out = []
    for raw in text.split():
        tok = raw.strip(_STRIP)
        if tok == _BREAK or len(tok) >= 2 and any(ch.isalnum() for ch in tok) and not tok.startswith(("http", "www.")):
            out.append(tok)
    return out


def terms_of(text: str, bigrams: bool, mask: re.Pattern[str] | None = None) -> set[str]:
    toks = tokens(text, mask)
    terms = {t for t in toks if t != _BREAK}
    if bigrams:
        terms.update(f"{a} {b}" for a, b in itertools.pairwise(toks) if _BREAK not in (a, b))
    return terms


def log_odds(y_cur: int, n_cur: int, y_ref: int, n_ref: int, prior: float = 0.5) -> tuple[float, float]:
    """Smoothed log-odds ratio of a term's share (current vs reference), and how significant the rise is.

    The significance is a one-sided binomial test of the term's y_cur + y_ref occurrences falling in the
    current window at least y_cur times, when each falls there with probability n_cur / (n_cur + n_ref);
    it is returned as a z-score. (The Wald z of the smoothed ratio cannot exceed about delta / 1.4 for a
    term absent from the reference, however often it appears now.)
    """
    from scipy.stats import binom, norm

    delta = _smoothed(y_cur, n_cur, y_ref, n_ref, prior)
    p = float(binom.sf(y_cur - 1, y_cur + y_ref, n_cur / (n_cur + n_ref)))
    return delta, float(min(norm.isf(max(p, 1e-300)), 37.0))


def _smoothed(y_cur: int, n_cur: int, y_ref: int, n_ref: int, prior: float = 0.5) -> float:
    return math.log((y_cur + prior) / (n_cur - y_cur + prior)) - math.log((y_ref + prior) / (n_ref - y_ref + prior))


def levenshtein(a: str, b: str, cutoff: int) -> int:
    """Edit distance, or cutoff + 1 as soon as it must exceed cutoff."""
    if abs(len(a) - len(b)) > cutoff:
        return cutoff + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > cutoff:
            return cutoff + 1
        previous = current
    return previous[-1]


def _deleet_all(term: str) -> set[str]:
    base = term.translate(_LEET)
    return {base, term.replace("1", "l").translate(_LEET)}


def variant_of(term: str, patterns: PatternIndex) -> tuple[KnownWord, str] | None:
    """The known harmful word a single-word term disguises, with the technique; None if none."""
    if " " in term or not patterns.known:
        return None
    known = patterns.known
    if "*" in term:
        rx = re.compile(re.escape(term).replace(r"\*", "[a-z]{1,3}"))
        for word, kw in known.items():
            if rx.fullmatch(word):
                return kw, "masking"
    joined = _SEPARATORS.sub("", term)
    if joined != term and joined in known:
        return known[joined], "character_insertion"
    for plain in _deleet_all(joined):
        if plain != joined and plain in known:
            return known[plain], "leetspeak"
    for plain in _deleet_all(joined) | {joined}:
        if _RUN3.search(plain):
            collapsed = _RUN2.sub(r"\1", plain)
            for word, kw in known.items():
                if _RUN2.sub(r"\1", word) == collapsed:
                    return kw, "repetition"
    plain = joined.translate(_LEET)
    if len(plain) >= 4 and plain.isalpha():
        best: tuple[int, KnownWord] | None = None
        for word, kw in known.items():
            cutoff = 1 if len(word) <= 6 else 2
            if len(word) < 4:
                continue
            dist = levenshtein(plain, word, cutoff)
            if 0 < dist <= cutoff and (best is None or dist < best[0]):
                best = (dist, kw)
        if best is not None:
            technique = "leetspeak" if plain != joined else "misspelling"
            return best[1], technique
    return None


def guess_technique(term: str) -> str:
    if "*" in term:
        return "masking"
    if term.replace(" ", "").isdigit():
        return "code_number"
    if any(ch.isdigit() for ch in term) or any(ch in "@$!|€" for ch in term):
        return "leetspeak"
    if _RUN3.search(term):
        return "repetition"
    if _SEPARATORS.search(term.strip(".")):
        return "character_insertion"
    return "euphemism"


# --------------------------------------------------------------------------------------------- finder


@dataclass
class Candidate:
    term: str
    z: float
    log_odds: float
    docs_current: int
    docs_reference: int
    n_current: int
    n_reference: int
    technique: str
    category: str
    severity: int
    replacement: str
    variant_of: str | None = None
    variant_entry: str | None = None
    examples: list[str] = field(default_factory=list)
    category_evidence: int = 0


def flagged(samples: Sequence[Sample], borderline_confidence: float, use_all: bool) -> list[Sample]:
    """Texts labelled above safe or predicted with low confidence; all texts when there are no labels."""
    with_text = [s for s in samples if s.text is not None]
    labelled = [s for s in with_text if s.label is not None]
    if use_all or len(labelled) < len(with_text) / 2:
        return with_text
    return [
        s for s in labelled
        if s.label != "safe" or (s.confidence is not None and s.confidence < borderline_confidence)
    ]


def find_new_terms(
    reference: Window, current: Window, patterns: PatternIndex, config: NewTermConfig | None = None
) -> list[Candidate]:
    """Ranked candidates (highest smoothed log-odds first). Raises MonitoringInputError when a window has no texts."""
    config = config or NewTermConfig()
    for name, window in (("reference", reference), ("current", current)):
        if not window.has_text:
            raise MonitoringInputError(
                f"the {name} window ({window.source}) has no texts: use a log written with LOG_TEXT=true, "
                "capture files or a JSONL/Parquet file of texts"
            )
    cur = flagged(current.samples, config.borderline_confidence, config.all_texts)
    ref = flagged(reference.samples, config.borderline_confidence, config.all_texts)
    if len(ref) < 20:  # too few flagged reference texts to say what is normal: compare with all of them
        ref = [s for s in reference.samples if s.text is not None]
    if not cur:
        return []
    mask = patterns.form_mask()
    cur_terms = [terms_of(s.text or "", config.bigrams, mask) for s in cur]
    ref_terms = [terms_of(s.text or "", config.bigrams, mask) for s in ref]
    df_cur = Counter(t for terms in cur_terms for t in terms)
    df_ref = Counter(t for terms in ref_terms for t in terms if t in df_cur)
    # Odds are taken per distinct term occurrence, not per text, so longer texts do not make every
    # word look like it is rising; counting a term once per text keeps one spammy text from weighing more.
    n_cur, n_ref = sum(map(len, cur_terms)), sum(map(len, ref_terms))

    min_docs = min(config.min_docs, config.variant_min_docs)
    min_delta = min(config.min_log_odds, config.variant_min_log_odds)
    found: dict[str, Candidate] = {}
    for term, y in df_cur.items():
        if y < min_docs or patterns.covers(term):
            continue
        # The smoothed ratio alone is cheap; it rules out most terms before the test and the variant search.
        if _smoothed(y, n_cur, df_ref.get(term, 0), n_ref) < min_delta:
            continue
        delta, z = log_odds(y, n_cur, df_ref.get(term, 0), n_ref)
        variant = variant_of(term, patterns)
        if variant is not None:
            need_z = config.misspelling_min_z if variant[1] == "misspelling" else config.variant_min_z
            ok = y >= config.variant_min_docs and delta >= config.variant_min_log_odds and z >= need_z
        else:
            ok = y >= config.min_docs and delta >= config.min_log_odds and z >= config.min_z
        if not ok:
            continue
        found[term] = Candidate(
            term=term, z=round(z, 3), log_odds=round(delta, 3), docs_current=y,
            docs_reference=df_ref.get(term, 0), n_current=len(cur), n_reference=len(ref),
            technique=variant[1] if variant else guess_technique(term),
            category=variant[0].category if variant else FALLBACK_CATEGORY,
            severity=variant[0].severity if variant else 1,
            replacement=variant[0].replacement if variant else "",
            variant_of=variant[0].word if variant else None,
            variant_entry=variant[0].entry_id if variant else None,
        )
    _drop_redundant(found)
    ranked = sorted(found.values(), key=lambda c: (-c.log_odds, c.term))[: config.max_candidates]
    _describe(ranked, cur, cur_terms, patterns, config)
    return ranked


def _drop_redundant(found: dict[str, Candidate]) -> None:
    """One candidate per finding: a phrase whose words only occur together ("sewer slide") is kept as the
    phrase; a phrase around a word that is itself a candidate ("seggs tonight") is dropped for the word."""
    for term in [t for t in found if " " in t]:
        pair = found[term]
        parts = [found.get(p) for p in term.split()]
        if all(p is not None and p.variant_of is None and p.docs_current <= 1.25 * pair.docs_current
               for p in parts):
            for part in term.split():
                found.pop(part, None)
        elif any(p is not None for p in parts):
            del found[term]


def _describe(
    ranked: list[Candidate], cur: list[Sample], cur_terms: list[set[str]], patterns: PatternIndex,
    config: NewTermConfig,
) -> None:
    """Examples, and for new terms a category (co-occurring known words) and severity (labels)."""
    for cand in ranked:
        docs = [s for s, terms in zip(cur, cur_terms) if cand.term in terms]
        cand.examples = _examples(cand.term, docs, config.examples)
        if cand.variant_of is not None:
            continue
        categories: Counter[str] = Counter()
        for s in docs:  # known words around it, database forms included (they were masked for counting)
            for t in set(tokens(s.text or "")) - set(cand.term.split()):
                kw = patterns.known.get(t) or patterns.known.get(t.translate(_LEET))
                if kw is not None:
                    categories[kw.category] += 1
        if categories:
            cand.category, cand.category_evidence = categories.most_common(1)[0]
        severities = [SEVERITY[s.label] for s in docs if s.label is not None]
        if severities:
            cand.severity = max(1, min(3, round(median(severities))))


def _examples(term: str, docs: Iterable[Sample], n: int, width: int = 60) -> list[str]:
    out: list[str] = []
    for s in docs:
        text = s.text or ""
        i = text.lower().find(term)
        if i < 0:
            i = text.lower().find(term.split()[0])
        lo, hi = max(0, i - width), min(len(text), i + len(term) + width)
        snippet = ("…" if lo else "") + text[lo:hi].strip() + ("…" if hi < len(text) else "")
        if snippet not in out:
            out.append(snippet)
        if len(out) >= n:
            break
    return out


# --------------------------------------------------------------------------------------------- drafts


def _slug(term: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", term.translate(_LEET).lower()).strip("_")
    return slug or "term"


def draft_entry(cand: Candidate) -> dict[str, Any]:
    """An entry in algospeak_patterns.schema.json's shape (every required field, no extra keys)."""
    if cand.variant_of:
        notes = (f"Variant ({cand.technique}) of '{cand.variant_of}' from entry {cand.variant_entry}; "
                 "consider adding it to that entry's forms instead.")
    elif cand.category_evidence:
        notes = (f"New term; category from {cand.category_evidence} co-occurring known words. "
                 "Replacement unknown: fill it in or keep action 'annotate'.")
    else:
        notes = ("New term; category is a placeholder (no co-occurring known words) and the replacement is "
                 "unknown: review both.")
    notes += (f" Found in {cand.docs_current}/{cand.n_current} flagged or borderline current texts vs "
              f"{cand.docs_reference}/{cand.n_reference} reference texts (log-odds {cand.log_odds:.2f}, "
              f"z {cand.z:.1f}).")
    return {
        "id": f"{cand.category}.draft_{_slug(cand.term)}",
        "forms": [cand.term],
        "replacement": cand.replacement,
        "technique": cand.technique,
        "category": cand.category,
        "severity": int(cand.severity),
        "action": "rewrite" if cand.variant_of and cand.replacement else "annotate",
        "examples": {"positive": cand.examples or [cand.term], "negative": []},
        "source": [SOURCE_KEY],
        "notes": notes,
    }


def drafts_document(
    candidates: list[Candidate], *, reference: Window, current: Window, patterns: PatternIndex
) -> dict[str, Any]:
    seen_ids: set[str] = set()
    drafts = []
    for cand in candidates:
        entry = draft_entry(cand)
        base, k = entry["id"], 2
        while entry["id"] in seen_ids:
            entry["id"], k = f"{base}_{k}", k + 1
        seen_ids.add(entry["id"])
        scores = {k: v for k, v in asdict(cand).items() if k not in ("examples", "term")}
        drafts.append({"status": "draft", "term": cand.term, **scores, "entry": entry})
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "pattern_db": patterns.path,
        "pattern_db_version": patterns.version,
        "reference": {"source": reference.source, "texts": len(reference.texts())},
        "current": {"source": current.source, "texts": len(current.texts())},
        "sources": {SOURCE_KEY: {"title": "Candidate terms surfaced by monitoring.new_terms from production "
                                          "texts (reviewed by a human before merging)"}},
        "drafts": drafts,
    }


def load_patterns(path: str | Path | None) -> PatternIndex:
    """The pattern index from `path` (default: settings), or an empty one with a warning when absent."""
    if path is None:
        from core.settings import get_settings

        path = get_settings().pattern_db_path
    if not Path(path).exists():
        print(f"warning: no pattern database at {path}; nothing counts as covered", file=sys.stderr)
        return PatternIndex(path=str(path))
    return PatternIndex.load(path)


# --------------------------------------------------------------------------------------------- CLI


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(
        prog="python -m monitoring.new_terms",
        description="Find candidate new algospeak and write draft pattern-database entries.",
        epilog="Examples:\n"
               "  python -m monitoring.new_terms --reference data/train.jsonl --current s3://bucket/capture/ "
               "--out drafts.json\n"
               "  python -m monitoring.new_terms --reference sqlite:///predictions.db --reference-end 7d "
               "--current sqlite:///predictions.db --current-start 7d --out drafts.json   # needs LOG_TEXT=true",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--reference", required=True, help="log URL, JSONL/Parquet file, capture folder or s3://")
    parser.add_argument("--current", required=True, help="same forms as --reference")
    parser.add_argument("--reference-start"), parser.add_argument("--reference-end")
    parser.add_argument("--current-start"), parser.add_argument("--current-end")
    parser.add_argument("--patterns", help="pattern database JSON (default: PATTERN_DB_PATH)")
    parser.add_argument("--out", required=True, help="where to write the draft entries (JSON)")
    parser.add_argument("--top", type=int, default=NewTermConfig.max_candidates)
    parser.add_argument("--min-docs", type=int, default=NewTermConfig.min_docs)
    parser.add_argument("--min-z", type=float, default=NewTermConfig.min_z)
    parser.add_argument("--all-texts", action="store_true", help="use all texts, not only flagged/borderline")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        reference = load_window(args.reference, since=parse_time(args.reference_start),
                                until=parse_time(args.reference_end))
        current = load_window(args.current, since=parse_time(args.current_start),
                              until=parse_time(args.current_end))
        patterns = load_patterns(args.patterns)
        config = NewTermConfig(max_candidates=args.top, min_docs=args.min_docs, min_z=args.min_z,
                               all_texts=args.all_texts)
        candidates = find_new_terms(reference, current, patterns, config)
        doc = drafts_document(candidates, reference=reference, current=current, patterns=patterns)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except MonitoringInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    for cand in candidates:
        tag = f"variant of {cand.variant_of} ({cand.technique})" if cand.variant_of else cand.technique
        print(f"{cand.z:6.1f}  {cand.term!r:28} {cand.docs_current:5d}/{cand.n_current} vs "
              f"{cand.docs_reference}/{cand.n_reference}  {tag}")
    print(f"{len(candidates)} draft entries written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
