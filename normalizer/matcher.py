"""The normalizer: one compiled matcher over the whole pattern database.

    normalizer = Normalizer(load_database())
    result = normalizer.normalize("ppl who say unal1ve lol")
    result.text           # "ppl who say kill lol"
    result.matches[0]     # span in the original and in the normalized text, entry id, technique, category

How a text is normalized:
1. Unicode canonicalisation (normalizer.unicode) gives the searchable text and a map to the original.
2. One regular-expression scan finds generic candidates (leetspeak, masking, repetition, spacing); each is
   decoded only if the result is a known term (normalizer.decode).
3. One Aho-Corasick automaton over every form and safe-context phrase finds the database's terms in the
   decoded text; hits that are not at word boundaries, or whose context rule fails, are dropped. The
   database's few regular expressions run as one combined pattern.
4. Safe contexts claim their spans first; then leftmost-longest hits win, and decodings that no hit
   explains and that are not known words themselves are dropped.
5. The normalized text is the original with each rewrite applied; nothing changes without a match.
6. A text that changed is read again, to a fixed point (at most three readings sharing one work budget): a
   rewrite can make a new token of its neighbours. The readings are composed into one match per change.

Cost is linear in the text length and independent of the database size: the automaton walks the text once.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from functools import lru_cache
from dataclasses import dataclass, field

import ahocorasick

from normalizer.database import Entry, PatternDatabase
from normalizer.regex_safety import compile_linear
from normalizer.decode import Budget, KnownTrie, decode_spaced, decode_token, find_candidates
from normalizer.unicode import canonicalize, describe_change, fold_form
from normalizer.vocabulary import OpenDecoder, candidate_tokens, harm_lexicon

_WORD_RE = re.compile(r"\w+")
_WORD_FORM = re.compile(r"\w+(?: \w+)*")
_NON_WORD = re.compile(r"\W")
_ASCII_PROJECTION = str.maketrans({chr(c): " " for c in range(128) if not (chr(c).isalnum() or chr(c) == "_")})


@dataclass(slots=True)
class Match:
    """One explained change (or annotation) of the input text."""

    start: int  # span in the original text
    end: int
    norm_start: int  # span in the normalized text
    norm_end: int
    original: str
    replacement: str  # what the normalized text holds at norm_start:norm_end
    meaning: str  # the plain meaning (equals replacement for rewrites)
    entry_id: str
    rule: str  # "pattern", "decode", or "safe_context"
    techniques: list[str]
    category: str
    severity: int
    action: str  # rewrite, annotate or protect

    def as_dict(self) -> dict:
        # Spelled out: dataclasses.asdict deep-copies field by field and costs ten times as much.
        return {
            "start": self.start, "end": self.end, "norm_start": self.norm_start, "norm_end": self.norm_end,
            "original": self.original, "replacement": self.replacement, "meaning": self.meaning,
            "entry_id": self.entry_id, "rule": self.rule, "techniques": list(self.techniques),
            "category": self.category, "severity": self.severity, "action": self.action,
        }  # fmt: skip


@dataclass(slots=True)
class NormalizationResult:
    original: str
    text: str
    matches: list[Match] = field(default_factory=list)
    db_version: str = ""
    # True when the text's decoding budget ran out and some of it was left undecoded (the cheaper path):
    # the moderator reports it as stage1_status "degraded".
    degraded: bool = False

    @property
    def algospeak_detected(self) -> bool:
        return any(m.action != "protect" for m in self.matches)

    @property
    def changed(self) -> bool:
        return self.text != self.original

    def as_dict(self, max_matches: int | None = None) -> dict:
        """With `max_matches`, at most that many matches, and `matches_omitted` counting the rest."""
        shown = self.matches if max_matches is None else self.matches[:max_matches]
        out = {
            "original_text": self.original,
            "normalized_text": self.text,
            "algospeak_detected": self.algospeak_detected,
            "matches": [m.as_dict() for m in shown],
            "pattern_db_version": self.db_version,
        }
        if max_matches is not None:
            out["matches_omitted"] = len(self.matches) - len(shown)
        return out


@dataclass(frozen=True, slots=True)
class _Form:
    entry: Entry
    key: str  # the folded form
    length: int
    left_word: bool  # needs a word boundary on the left
    right_word: bool


@dataclass(slots=True)
class _Hit:
    start: int  # span in the decoded text
    end: int
    entry: Entry
    key: str
    rule: str
    techniques: list[str]
    rewrite: bool = False  # an annotated entry whose rewrite_when context holds here


@dataclass(slots=True)
class _Decoding:
    start: int  # span in the canonical text
    end: int
    word: str
    techniques: list[str]
    kind: str  # "form", "replacement" or "part"
    entry: Entry


_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def _overlaps_any(starts: list[int], spans: list, a: int, b: int) -> bool:
    """Whether [a, b) overlaps one of `spans` (non-overlapping, sorted, with .start/.end; `starts` their starts)."""
    i = bisect_right(starts, b - 1) - 1
    return i >= 0 and spans[i].end > a


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


# Characters that join a word written in for a symbol into one token: letters and digits, and the look-alikes
# the decoders read as letters ("🍑€" is not "butt€", which a second reading takes for "butte"), and the marks
# that open a hashtag or a handle. Sentence punctuation ("!", ".", "(") is not among them.
_FUSING = frozenset("€£¢¥§ø¡ß|@$+#©µ")


def _fuses(c: str) -> bool:
    return c.isalnum() or c == "_" or c in _FUSING


_MAX_PASSES = 3


def _compose(first: NormalizationResult, second: NormalizationResult) -> NormalizationResult:
    """One result for two readings: `second` normalized `first.text`. Each change of the second reading becomes
    one match on the original text, absorbing the first reading's matches it overlaps (their techniques
    included); the second reading's other matches are reported where the first had none."""
    text, mid = first.original, first.text
    # Both lists are sorted and non-overlapping in the first reading's text, so their ends rise with their
    # starts: a position's neighbours are found by bisection (a linear scan per match was quadratic in the
    # number of matches: 0.5 s for a 20 KB text that changes on its second reading).
    edits = [m for m in first.matches if m.replacement != m.original]
    edit_ends = [m.norm_end for m in edits]
    match_ends = [m.norm_end for m in first.matches]

    def to_original(pos: int, is_end: bool) -> int:
        """A position of the first reading's text in the original: a position inside an edit, or at the edge
        that belongs to it, maps to that edit's edge; any other is shifted by the edits before it."""
        k = bisect_right(edit_ends, pos)  # edits[:k] end at or before pos
        if is_end:  # an end at a non-empty edit's end is that edit's end, not after a deletion that follows it
            for m in edits[bisect_left(edit_ends, pos) : k]:
                if m.norm_end > m.norm_start:
                    return m.end
        if k < len(edits) and edits[k].norm_start < pos:  # inside edits[k]
            return edits[k].end if is_end else edits[k].start
        # shifted by the edits before pos (a start at an edit's start lands on that edit's start this way too)
        return pos + (edits[k - 1].end - edits[k - 1].norm_end if k else 0)

    def overlapping(a: int, b: int) -> list[Match]:
        """The first reading's matches whose span meets [a, b), in order."""
        out, matches = [], first.matches
        for i in range(bisect_right(match_ends, a), len(matches)):  # those ending after a ...
            if matches[i].norm_start >= b:  # ... and starting before b
                break
            out.append(matches[i])
        return out

    groups: list[list] = []  # [mid start, mid end, second-reading matches, first-reading matches absorbed]
    for m2 in second.matches:
        if m2.replacement == m2.original:
            continue
        a, b = m2.start, m2.end
        absorbed = overlapping(a, b)
        for m in absorbed:
            a, b = min(a, m.norm_start), max(b, m.norm_end)
        if groups and a < groups[-1][1]:
            last = groups[-1]
            last[1] = max(last[1], b)
            last[2].append(m2)
            last[3].extend(m for m in absorbed if m not in last[3])
        else:
            groups.append([a, b, [m2], absorbed])
    taken = {id(m) for g in groups for m in g[3]}
    pieces: list[tuple[int, int, Match]] = []  # (start, end) in the original, and the match
    for m in first.matches:
        if id(m) not in taken:
            pieces.append((m.start, m.end, m))
    for a, b, changes, absorbed in groups:
        start, end = to_original(a, False), to_original(b, True)
        for m in absorbed:
            start, end = min(start, m.start), max(end, m.end)
        out, last = [], a
        for m2 in changes:
            out.append(mid[last : m2.start])
            out.append(m2.replacement)
            last = m2.end
        out.append(mid[last:b])
        lead = changes[0]
        techniques: list[str] = []
        for t in (*(t for m in absorbed for t in m.techniques), *(t for m2 in changes for t in m2.techniques)):
            if t not in techniques:
                techniques.append(t)
        pieces.append((start, end, Match(
            start=start, end=end, norm_start=0, norm_end=0, original=text[start:end], replacement="".join(out),
            meaning=" ".join(m2.meaning for m2 in changes), entry_id=lead.entry_id, rule=lead.rule,
            techniques=techniques, category=lead.category, severity=max(m2.severity for m2 in changes),
            action=lead.action,
        )))  # fmt: skip
    for m2 in second.matches:
        if m2.replacement == m2.original and not overlapping(m2.start, m2.end):
            start, end = to_original(m2.start, False), to_original(m2.end, True)
            pieces.append((start, end, Match(
                start=start, end=end, norm_start=0, norm_end=0, original=text[start:end], replacement=text[start:end],
                meaning=m2.meaning, entry_id=m2.entry_id, rule=m2.rule, techniques=list(m2.techniques),
                category=m2.category, severity=m2.severity, action=m2.action,
            )))  # fmt: skip
    pieces.sort(key=lambda p: (p[0], p[1]))
    out_text: list[str] = []
    matches: list[Match] = []
    last = length = 0
    for start, end, m in pieces:
        if start < last:
            continue
        out_text.append(text[last:start])
        length += start - last
        m.norm_start, m.norm_end = length, length + len(m.replacement)
        out_text.append(m.replacement)
        length += len(m.replacement)
        matches.append(m)
        last = end
    out_text.append(text[last:])
    return NormalizationResult(text, "".join(out_text), matches, first.db_version)


@lru_cache(maxsize=4096)
def _kinds_of_terms(terms: frozenset[str]) -> tuple[frozenset[str], tuple[str, ...], tuple[str, ...]]:
    """A context's terms as (single words, phrases padded with spaces, emoji or symbol terms), split once: an emoji
    entry lists dozens of terms, and a text of 2,000 emoji asked each of them of every hit (110 ms)."""
    words = frozenset(t for t in terms if t[0].isalnum() and " " not in t)
    phrases = tuple(f" {t} " for t in terms if t[0].isalnum() and " " in t)
    return words, phrases, tuple(t for t in terms if not t[0].isalnum())


class Normalizer:
    """Compiled from one PatternDatabase; immutable and safe to share between threads."""

    def __init__(self, db: PatternDatabase):
        self.db = db
        self.version = db.version
        self._automaton = ahocorasick.Automaton()  # word forms, padded with spaces, over the projection
        self._symbols = ahocorasick.Automaton()  # forms with symbols or emoji, boundary-checked
        self._token_cache: dict[str, object] = {}  # decode_token results, for tokens and spaced runs alike
        # Known terms for generic decoding: single-word forms, replacement words, words of phrases.
        self._known: dict[str, tuple[str, Entry]] = {}
        pending: dict[str, list[_Form]] = {}
        regex_parts: list[str] = []
        self._regex_entries: dict[str, Entry] = {}
        self._regex_edges: dict[str, tuple[bool, bool]] = {}  # a \b at the start, at the end

        for entry in db.entries:
            for form in entry.forms:
                key = fold_form(form)
                pending.setdefault(key, []).append(
                    _Form(entry, key, len(key), _is_word_char(key[0]), _is_word_char(key[-1]))
                )
                if entry.action == "protect":
                    continue
                words = key.split(" ")
                if len(words) == 1:
                    self._known.setdefault(key, ("form", entry))
                else:
                    for word in words:
                        self._known.setdefault(word, ("part", entry))
            for pattern in entry.patterns:
                group = f"p{len(self._regex_entries)}"
                self._regex_entries[group] = entry
                self._regex_edges[group] = (pattern.startswith(r"\b"), pattern.endswith(r"\b") and not pattern.endswith(r"\\b"))
                regex_parts.append(f"(?P<{group}>{pattern})")
        for entry in db.entries:
            if entry.action == "rewrite" and entry.replacement:
                for word in [entry.replacement, *entry.replacements.values()]:
                    folded = fold_form(word)
                    if " " not in folded and self._known.get(folded, ("part",))[0] == "part":
                        self._known[folded] = ("replacement", entry)

        words = symbols = 0
        for key, forms in pending.items():
            if _WORD_FORM.fullmatch(key):
                self._automaton.add_word(" " + key + " ", tuple(forms))
                words += 1
            else:
                self._symbols.add_word(key, tuple(forms))
                symbols += 1
        if words:
            self._automaton.make_automaton()
        if symbols:
            self._symbols.make_automaton()
        self._has_words, self._has_symbols = bool(words), bool(symbols)
        self._known_trie = KnownTrie(self._known)
        # Open-vocabulary decoding (normalizer.vocabulary): any English word, with the category the database
        # or the harm lexicon gives it. Database terms keep their own entries; other words get one per category.
        harm: dict[str, str] = dict(harm_lexicon())
        for word, (kind, entry) in self._known.items():
            if kind != "part" and entry.category != "safe_context":
                harm[word] = entry.category
        self._open = OpenDecoder(harm)
        # Tokens of the database's own symbol forms ("|<ill" of "|<ill yourself"): the database reads them.
        self._symbol_tokens = frozenset(
            token for key in pending if not _WORD_FORM.fullmatch(key) for token in key.split(" ") if not token.isalnum()
        )
        self._open_entries = {
            category: Entry(
                id=f"open_vocabulary.{category}", forms=(), replacement="", technique="leetspeak",
                category=category, severity=0 if category == "none" else 1, source=("symspell_en_82765",),
            )
            for category in {*harm.values(), "none"}
        }  # fmt: skip
        # RE2: linear in the text whatever the patterns (normalizer.regex_safety); each was checked on loading.
        self._regex = compile_linear("|".join(regex_parts)) if regex_parts else None
        self._regex_groups = [(name, self._regex.groupindex[name]) for name in self._regex_entries] if regex_parts else []

    # ------------------------------------------------------------------ public API
    def normalize(self, text: str) -> NormalizationResult:
        """Normalized to a fixed point: a text that changed is read again (at most `_MAX_PASSES` readings, one
        work budget for all), since a rewrite can make a new token of its neighbours: "k.i.l.lsss" reads
        "kill.lsss" once, and that reads "kills". Most texts change nothing and are read once."""
        if not isinstance(text, str):
            raise TypeError(f"normalize() takes a str, not {type(text).__name__}")
        budget = Budget.for_text(len(text))
        result = self._normalize_once(text, budget)
        for _ in range(_MAX_PASSES - 1):
            if not result.changed:
                break
            again = self._normalize_once(result.text, budget)
            if again.text == result.text:
                break
            result = _compose(result, again)
        result.degraded = budget.degraded
        return result

    def _normalize_once(self, text: str, budget: Budget) -> NormalizationResult:
        canon = canonicalize(text)
        decodings = self._decode(canon.text, budget)
        if canon.starts is not None and decodings:
            # A decoding must not split one original character: "⅚" folds to "5⁄6", and "b0ll⅚" is not "bolls".
            starts = canon.starts
            n = len(starts)
            decodings = [
                d for d in decodings
                if (d.start == 0 or starts[d.start] != starts[d.start - 1]) and (d.end >= n or starts[d.end] != starts[d.end - 1])
            ]
        if canon.starts is not None:
            decodings = self._merge(decodings, self._unicode_decodings(text, canon))
        decoded, spans = self._apply_decodings(canon.text, decodings)
        deferred: list[_Hit] = []
        hits = self._find(decoded, deferred)
        chosen, kept = self._resolve(hits, decodings, spans)
        if deferred or any(h.entry.rewrite_when is not None and not h.rewrite for h in chosen):
            # Contexts judged on the text as it will read, so that a second pass judges them the same way.
            extra = self._judge_on_reading(decoded, chosen, deferred)
            if extra:
                chosen, kept = self._resolve(hits + extra, decodings, spans)
                self._judge_on_reading(decoded, chosen, [])
        return self._assemble(text, canon, spans, chosen, [decodings[i] for i in kept])

    # ------------------------------------------------------------------ steps
    def _decode(self, canon: str, budget: Budget | None = None) -> list[_Decoding]:
        known = self._known
        found: list[_Decoding] = []
        spaced, tokens = find_candidates(canon)
        cache = self._token_cache
        for start, end in spaced:
            for a, b, word, techniques in decode_spaced(canon[start:end], known, self._known_trie, cache, budget,
                                                            self._open.is_word):
                if word in known:
                    kind, entry = known[word]
                else:  # an ordinary word spelled out: read only when it is a harm word ("k i l l e r s")
                    category = self._open.category(word)
                    if category is None:
                        continue
                    kind, entry = "open", self._open_entries[category]
                found.append(_Decoding(start + a, start + b, word, techniques, kind, entry))
        for start, end in tokens:
            token = canon[start:end]
            decoded = cache.get(token, False)
            if decoded is False:
                if budget is not None and budget.exhausted:
                    continue  # out of budget: the token stays as written (the result says degraded)
                decoded = decode_token(token, known, self._known_trie, budget)
                if len(cache) > 100_000:
                    cache.clear()
                cache[token] = decoded
            if decoded:
                word, techniques, covered = decoded
                kind, entry = known[word]
                found.append(_Decoding(start, start + covered, word, list(techniques), kind, entry))
        if spaced and tokens:
            found.sort(key=lambda d: d.start)
        self._superseded: set[int] = set()
        opened = self._decode_open(canon, found, budget)
        if self._superseded:
            found = [d for d in found if id(d) not in self._superseded]
        if opened:
            # A word of a phrase ("world" of "clown world") decoded on its own stands as an English word; inside
            # the phrase, the phrase's hit still explains it.
            starts = [o.start for o in opened]
            found = [d for d in found if d.kind != "part" or not _overlaps_any(starts, opened, d.start, d.end)]
            return self._merge(found, opened)
        return found

    def _decode_open(self, canon: str, found: list[_Decoding], budget: Budget | None) -> list[_Decoding]:
        """Tokens no database term explains, decoded to the English word they most clearly spell."""
        spans = candidate_tokens(canon, self._open.is_word)
        if not spans:
            return []
        taken = sorted((d for d in found if d.kind != "part"), key=lambda d: d.start)  # non-overlapping
        taken_starts = [d.start for d in taken]
        out: list[_Decoding] = []
        cache = self._token_cache
        known = self._known
        for start, end in spans:
            if end - start > 64:
                continue
            inside: list[_Decoding] = []
            if _overlaps_any(taken_starts, taken, start, end):
                # A decoding of part of the token ("k1ll" of "k1ll£|2"): the whole token's reading, if there is
                # one, replaces it, since a second pass would read the whole token ("kill£|2" -> "killer").
                lo = bisect_left(taken_starts, start)
                hi = bisect_left(taken_starts, end)
                inside = taken[lo:hi]
                if lo > 0 and taken[lo - 1].end > start or not inside or any(d.end > end for d in inside) or (
                    len(inside) == 1 and inside[0].start == start and inside[0].end == end
                ):
                    continue
            token = canon[start:end]
            if token in self._symbol_tokens:
                continue
            key = "\x00" + token
            decoded = cache.get(key, False)
            if decoded is False:
                if budget is not None:
                    if budget.exhausted:
                        continue
                    budget.spend(len(token))
                decoded = self._open.decode(token, budget)
                if budget is None or not budget.exhausted:  # a reading cut short by this text's budget is not
                    if len(cache) > 100_000:                # the token's reading: later texts decode it afresh
                        cache.clear()
                    cache[key] = decoded
            if not decoded:
                continue
            word, techniques, a, b = decoded  # type: ignore[misc]
            if inside:
                if any(d.start < start + a or d.end > start + b for d in inside):
                    continue  # the whole reading does not cover the partial one: keep the partial one
                self._superseded.update(id(d) for d in inside)
            if word in known and known[word][0] != "part":
                kind, entry = known[word]  # a database term: its entry explains it (or, failing its context, nothing)
            else:
                kind, entry = "open", self._open_entries[self._open.category(word) or "none"]
            out.append(_Decoding(start + a, start + b, word, list(techniques), kind, entry))
        return out

    def _unicode_decodings(self, text: str, canon) -> list[_Decoding]:
        """Known words that only Unicode folding revealed ("kіll" with a Cyrillic і, "k\u200bill", "ｋｉｌｌ"), and
        harm words of the open vocabulary revealed the same way ("tеrrоrіst" with Cyrillic letters, "ｍｅｔｈ")."""
        found: list[_Decoding] = []
        for m in _WORD_RE.finditer(canon.text):
            word = m.group()
            known = self._known.get(word)
            if known is not None and known[0] != "replacement":
                continue
            if known is None and (len(word) < 3 or not word.isascii()):
                continue
            o_start, o_end = canon.original_span(m.start(), m.end())
            if text[o_start:o_end].casefold() == word:
                continue
            if known is not None:
                found.append(_Decoding(m.start(), m.end(), word, [], known[0], known[1]))
            elif (category := self._open.category(word)) is not None:
                found.append(_Decoding(m.start(), m.end(), word, [], "open", self._open_entries[category]))
        return found

    @staticmethod
    def _merge(first: list[_Decoding], second: list[_Decoding]) -> list[_Decoding]:
        if not second:
            return first
        merged = sorted(first + second, key=lambda d: (d.start, -(d.end - d.start)))
        out: list[_Decoding] = []
        for d in merged:
            if not out or d.start >= out[-1].end:
                out.append(d)
        return out

    @staticmethod
    def _apply_decodings(canon: str, decodings: list[_Decoding]) -> tuple[str, list[tuple[int, int, int, int]]]:
        """The decoded text, and for each decoding (decoded start, decoded end, canon start, canon end)."""
        if not decodings:
            return canon, []
        pieces: list[str] = []
        spans: list[tuple[int, int, int, int]] = []
        last = 0
        length = 0
        for d in decodings:
            pieces.append(canon[last : d.start])
            length += d.start - last
            pieces.append(d.word)
            spans.append((length, length + len(d.word), d.start, d.end))
            length += len(d.word)
            last = d.end
        pieces.append(canon[last:])
        return "".join(pieces), spans

    def _find(self, text: str, deferred: list[_Hit] | None = None) -> list[_Hit]:
        """Hits in the decoded text; hits whose context rule fails go to `deferred` (judged again on the text as
        it will read, see `_judge_on_reading`)."""
        hits: list[_Hit] = []
        n = len(text)
        if self._has_words:
            # Every non-word character becomes a space (length-preserving), so a padded form " corn star "
            # can only match whole words: no boundary checks, no hits inside "acorn".
            projected = " " + (text.translate(_ASCII_PROJECTION) if text.isascii() else _NON_WORD.sub(" ", text)) + " "
            for end_index, forms in self._automaton.iter(projected):
                end = end_index - 1  # projected index end_index is the trailing space = text index end_index - 1
                for form in forms:
                    start = end - form.length
                    rule = "safe_context" if form.entry.action == "protect" else "pattern"
                    hit = _Hit(start, end, form.entry, form.key, rule, [form.entry.technique],
                               self._rewrites(text, start, end, form.entry))
                    if form.entry.context and not self._context_ok(text, start, end, form.entry):
                        if deferred is not None:
                            deferred.append(hit)
                        continue
                    hits.append(hit)
        if self._has_symbols:
            for end_index, forms in self._symbols.iter(text):
                end = end_index + 1
                for form in forms:
                    start = end - form.length
                    if form.left_word and start > 0 and _is_word_char(text[start - 1]):
                        continue
                    if form.right_word and end < n and _is_word_char(text[end]):
                        continue
                    rule = "safe_context" if form.entry.action == "protect" else "pattern"
                    hit = _Hit(start, end, form.entry, form.key, rule, [form.entry.technique],
                               self._rewrites(text, start, end, form.entry))
                    if form.entry.context and not self._context_ok(text, start, end, form.entry):
                        if deferred is not None:
                            deferred.append(hit)
                        continue
                    hits.append(hit)
        if self._regex is not None:
            for m in self._regex.finditer(text):
                if m.end() == m.start():
                    continue
                group = next(name for name, index in self._regex_groups if m.start(index) >= 0)
                entry = self._regex_entries[group]
                left_b, right_b = self._regex_edges[group]
                # RE2's \b is ASCII: hold an edge \b to the Unicode word rule ("kys" is not a word in "kysя").
                if left_b and m.start() > 0 and _is_word_char(text[m.start() - 1]) and _is_word_char(text[m.start()]):
                    continue
                if right_b and m.end() < n and _is_word_char(text[m.end()]) and _is_word_char(text[m.end() - 1]):
                    continue
                rule = "safe_context" if entry.action == "protect" else "pattern"
                hit = _Hit(m.start(), m.end(), entry, m.group().lower(), rule, [entry.technique],
                           self._rewrites(text, m.start(), m.end(), entry))
                if entry.context and not self._context_ok(text, m.start(), m.end(), entry):
                    if deferred is not None:
                        deferred.append(hit)
                    continue
                hits.append(hit)
        return hits

    def _judge_on_reading(self, decoded: str, chosen: list[_Hit], deferred: list[_Hit]) -> list[_Hit]:
        """Emoji codes (rewrite_when) and context-gated hits judged on the text as it will read, with the chosen
        rewrites applied: "fu(k 🍑" reads "fuck 🍑", and "in:0❄1488" reads "in:0 cocaine 1488", and a second pass
        sees exactly that. Sets `rewrite` on chosen emoji hits; returns the deferred hits whose context now holds."""
        pieces: list[str] = []
        moved: list[tuple[int, int, _Hit]] = []
        shifts: list[tuple[int, int]] = []  # (decoded end of a chosen hit, cumulative shift after it)
        last = length = shift = 0
        for h in chosen:
            pieces.append(decoded[last : h.start])
            length += h.start - last
            written = decoded[h.start : h.end]
            out = h.entry.replacement_for(h.key) if h.entry.action == "rewrite" or h.rewrite else written
            if out != written:
                if h.start > 0 and _is_word_char(out[0]) and _fuses(decoded[h.start - 1]):
                    out = " " + out
                if h.end < len(decoded) and _is_word_char(out[-1]) and _fuses(decoded[h.end]):
                    out = out + " "
            pieces.append(out)
            moved.append((length, length + len(out), h))
            length += len(out)
            shift += len(out) - (h.end - h.start)
            shifts.append((h.end, shift))
            last = h.end
        pieces.append(decoded[last:])
        reading = "".join(pieces)
        for start, end, h in moved:
            if h.entry.rewrite_when is not None and not h.rewrite:
                h.rewrite = self._rewrites(reading, start, end, h.entry)
        if not deferred:
            return []
        ends = [e for e, _ in shifts]
        starts = [h.start for h in chosen]
        accepted: list[_Hit] = []
        for d in deferred:
            i = bisect_right(starts, d.end - 1) - 1
            if i >= 0 and chosen[i].end > d.start:
                continue  # overlaps a chosen hit
            k = bisect_right(ends, d.start) - 1
            offset = shifts[k][1] if k >= 0 else 0
            a, b = d.start + offset, d.end + offset
            if self._context_ok(reading, a, b, d.entry):
                d.rewrite = self._rewrites(reading, a, b, d.entry)
                accepted.append(d)
        return accepted

    @classmethod
    def _rewrites(cls, text: str, start: int, end: int, entry: Entry) -> bool:
        return entry.rewrite_when is not None and cls._context_ok(text, start, end, entry, entry.rewrite_when)

    @staticmethod
    def _context_ok(text: str, start: int, end: int, entry: Entry, ctx=None) -> bool:
        ctx = ctx or entry.context
        assert ctx is not None
        reach = ctx.window * 16
        left, right = text[max(0, start - reach) : start], text[end : end + reach]
        before = _WORD_RE.findall(left)[-ctx.window :]
        after = _WORD_RE.findall(right)[: ctx.window]
        nearby = before + after
        near_text = " " + " ".join(nearby) + " "

        def any_present(terms: frozenset[str]) -> bool:
            words, phrases, symbols = _kinds_of_terms(terms)
            if not words.isdisjoint(nearby) or any(p in near_text for p in phrases):
                return True
            # an emoji or symbol term: anywhere in the window's characters
            return any(t in left[-ctx.window * 2 :] or t in right[: ctx.window * 2] for t in symbols)
        if ctx.require_any and not any_present(ctx.require_any):
            return False
        if ctx.forbid_any and any_present(ctx.forbid_any):
            return False
        return True

    @staticmethod
    def _resolve(
        hits: list[_Hit], decodings: list[_Decoding], spans: list[tuple[int, int, int, int]]
    ) -> tuple[list[_Hit], list[int]]:
        """Safe contexts first, then leftmost-longest; and which decodings stand on their own."""
        protected = sorted((h for h in hits if h.entry.action == "protect"), key=lambda h: (h.start, h.start - h.end))
        safe: list[_Hit] = []
        for h in protected:
            if not safe or h.start >= safe[-1].end:
                safe.append(h)
        safe_starts = [h.start for h in safe]

        def overlaps(starts: list[int], chosen: list[_Hit], a: int, b: int) -> _Hit | None:
            """The chosen hit (non-overlapping, sorted) that overlaps [a, b), if any."""
            i = bisect_right(starts, b - 1) - 1
            if i >= 0 and chosen[i].end > a:
                return chosen[i]
            return None

        others = sorted(
            (h for h in hits if h.entry.action != "protect" and not overlaps(safe_starts, safe, h.start, h.end)),
            key=lambda h: (h.start, h.start - h.end),
        )
        picked: list[_Hit] = []
        for h in others:
            if not picked or h.start >= picked[-1].end:
                picked.append(h)
        chosen = sorted(safe + picked, key=lambda h: h.start)
        starts = [h.start for h in chosen]

        # A decoding inside a chosen hit lends it its techniques; one outside stands alone only when it
        # decodes to a known word in its own right (not merely a word of a phrase).
        kept: list[int] = []
        for i, (ds, de, _cs, _ce) in enumerate(spans):
            hit = overlaps(starts, chosen, ds, de)
            if hit is not None:
                if hit.start <= ds and de <= hit.end and hit.rule != "safe_context":
                    for t in decodings[i].techniques:
                        if t not in hit.techniques:
                            hit.techniques.insert(0, t)
                continue
            if decodings[i].kind in ("replacement", "open"):
                kept.append(i)
        return chosen, kept

    def _assemble(self, text, canon, spans, chosen, kept: list[_Decoding]) -> NormalizationResult:
        # Map a span of the decoded text to the canonical text, then to the original text.
        span_starts = [ds for ds, _, _, _ in spans]

        def to_canon(pos: int, is_end: bool) -> int:
            i = (bisect_left if is_end else bisect_right)(span_starts, pos) - 1
            if i < 0:
                return pos
            ds, de, cs, ce = spans[i]
            if pos < de or (is_end and pos == de):
                return ce if is_end else cs
            return pos + (ce - de)

        def to_original(a: int, b: int) -> tuple[int, int]:
            ca, cb = (to_canon(a, False), to_canon(b, True)) if spans else (a, b)
            return canon.original_span(ca, cb)

        edits: list[tuple[int, int, str, str, Entry, str, list[str], str]] = []
        for h in chosen:
            o_start, o_end = to_original(h.start, h.end)
            if h.entry.action == "rewrite" or h.rewrite:
                meaning = h.entry.replacement_for(h.key)
                out = meaning
            else:
                meaning = h.entry.replacement_for(h.key)
                out = text[o_start:o_end]
            action = "rewrite" if h.rewrite else h.entry.action
            edits.append((o_start, o_end, out, meaning, h.entry, h.rule, h.techniques, action))
        for d in kept:
            o_start, o_end = canon.original_span(d.start, d.end)
            edits.append((o_start, o_end, d.word, d.word, d.entry, "decode", list(d.techniques), "rewrite"))
        edits.sort(key=lambda e: e[0])

        pieces: list[str] = []
        matches: list[Match] = []
        last = 0
        length = 0
        for o_start, o_end, out, meaning, entry, rule, techniques, action in edits:
            if o_start < last:  # cannot happen for well-formed spans; never emit overlapping edits
                continue
            # Bidi controls inside a rewritten span are kept after the replacement: an override or isolate opened
            # before a rewrite keeps its closing mark ("\u202ek1ll\u202c" -> "\u202ekill\u202c", not an
            # unterminated override that reverses the rest of the text).
            if out != text[o_start:o_end] and rule != "safe_context":
                controls = "".join(c for c in text[o_start:o_end] if c in _BIDI_CONTROLS)
                if controls:
                    out = out + controls
            pieces.append(text[last:o_start])
            length += o_start - last
            original = text[o_start:o_end]
            techniques = list(techniques)
            if rule != "safe_context":
                for t in describe_change(original) if not (original.isascii() and original.isprintable()) else ():
                    if t not in techniques:
                        techniques.insert(0, t)
            if out != original and out:
                # A word replacing a symbol must not fuse with a neighbouring word ("❄eee" is not
                # "cocaineeee", which a second pass would read as "cocaine" stretched out).
                if o_start > 0 and _is_word_char(out[0]) and _fuses(text[o_start - 1]):
                    out = " " + out
                if o_end < len(text) and _is_word_char(out[-1]) and _fuses(text[o_end]):
                    out = out + " "
            pieces.append(out)
            matches.append(
                Match(
                    start=o_start, end=o_end, norm_start=length, norm_end=length + len(out),
                    original=original, replacement=out, meaning=meaning, entry_id=entry.id, rule=rule,
                    techniques=techniques, category=entry.category, severity=entry.severity,
                    action=action,
                )
            )
            length += len(out)
            last = o_end
        pieces.append(text[last:])
        return NormalizationResult(text, "".join(pieces), matches, self.version)
