"""Algospeak augmentation: coded variants of harmful texts, each tagged with the techniques that made it.

Two kinds of rewrite, both applied to whole words:
- the pattern database in reverse: a plain word that is the `replacement` of a rewrite entry becomes one of
  that entry's forms ("kill" -> "unalive"), tagged with the entry's technique and id;
- generic techniques on a salient word: leetspeak ("k1ll"), spacing ("k i l l", "k.i.l.l"), repetition
  ("kiiill") and homoglyphs (Cyrillic а е о р с х у in a Latin word).

A salient word is one the database knows as a plain word, else one from a short list of common harmful words,
else one of the longest words in the text. Everything is deterministic: the variants of a text depend only on
the seed, the text's id and the text, never on the order texts arrive in.

    from data.augment import Augmenter
    aug = Augmenter.from_database(load_database(), seed=13)
    aug.variants("I will kill you", parent_id="x1", n=2)
    # [Variant(text='I will unalive you', techniques=('euphemism',), pattern_ids=('violence.unalive',)), ...]
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from normalizer.database import PatternDatabase
from normalizer.unicode import fold_form

GENERIC_TECHNIQUES: tuple[str, ...] = ("leetspeak", "spacing", "repetition", "homoglyph")

LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7", "l": "1", "g": "9", "b": "8"}
# Cyrillic letters that render like Latin ones.
HOMOGLYPHS = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "y": "у", "i": "і", "s": "ѕ"}
VOWELS = "aeiouy"

# Used only when no database word occurs in the text: words people most often disguise.
COMMON_HARMFUL_WORDS = frozenset(
    [
        "kill",
        "killed",
        "killing",
        "murder",
        "die",
        "dead",
        "death",
        "suicide",
        "shoot",
        "shot",
        "stab",
        "rape",
        "hate",
        "hitler",
        "nazi",
        "nigga",
        "nigger",
        "faggot",
        "fag",
        "retard",
        "retarded",
        "bitch",
        "bitches",
        "slut",
        "whore",
        "cunt",
        "fuck",
        "fucking",
        "fucked",
        "shit",
        "idiot",
        "stupid",
        "moron",
        "dumb",
        "loser",
        "ugly",
        "pussy",
        "dick",
        "cock",
        "porn",
        "sex",
        "sexy",
        "naked",
        "drugs",
        "weed",
        "cocaine",
        "gun",
        "guns",
        "bomb",
        "terrorist",
        "hoe",
        "hoes",
        "trash",
        "ass",
        "asshole",
        "damn",
        "hell",
        "crap",
        "jerk",
        "fool",
        "pathetic",
        "kys",
    ]
)
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_TOKEN = re.compile(r"\w+(?:['’]\w+)*")


@dataclass(frozen=True, slots=True)
class Variant:
    """One coded rewrite of a text and how it was made."""

    text: str
    techniques: tuple[str, ...]
    pattern_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Coding:
    """A coded form that the database decodes to a plain word."""

    form: str
    technique: str
    entry_id: str


def reverse_index(db: PatternDatabase) -> dict[str, list[Coding]]:
    """Plain word (lower case) -> the coded forms that decode to it, from rewrite entries only.

    Entries that only annotate or protect, and safe-context entries, are left out: their forms do not stand
    for a plain word. Forms come back in database order, so the index is deterministic.
    """
    index: dict[str, list[Coding]] = {}
    for entry in db.entries:
        if entry.action != "rewrite" or entry.category == "safe_context" or entry.technique == "safe_context":
            continue
        for form in entry.forms:
            plain = entry.replacement_for(fold_form(form)).strip().lower()
            if plain and fold_form(form) != plain:
                index.setdefault(plain, []).append(Coding(form, entry.technique, entry.id))
    return index


# --------------------------------------------------------------------------------------------- generic techniques


def leetspeak(word: str, rng: random.Random) -> str | None:
    """Swap some letters for look-alike digits ("kill" -> "k1ll"); None when no letter has one."""
    return _swap_some(word, LEET, rng)


def homoglyph(word: str, rng: random.Random) -> str | None:
    """Swap some Latin letters for Cyrillic look-alikes ("hate" -> "hаte"); None when none has one."""
    return _swap_some(word, HOMOGLYPHS, rng)


def spacing(word: str, rng: random.Random) -> str | None:
    """Separate the letters ("kill" -> "k i l l" or "k.i.l.l"); None for a one-letter word."""
    if len(word) < 2:
        return None
    return rng.choice((" ", ".", "-", "_")).join(word)


def repetition(word: str, rng: random.Random) -> str | None:
    """Stretch one vowel, or the last letter, two to four extra times ("kill" -> "kiiill")."""
    positions = [i for i, ch in enumerate(word) if ch.lower() in VOWELS] or [len(word) - 1]
    i = rng.choice(positions)
    return word[: i + 1] + word[i] * rng.randint(2, 4) + word[i + 1 :]


def _swap_some(word: str, table: dict[str, str], rng: random.Random) -> str | None:
    candidates = [i for i, ch in enumerate(word) if ch.lower() in table]
    if not candidates:
        return None
    chosen = {i for i in candidates if rng.random() < 0.6} or {rng.choice(candidates)}
    swapped = (table[ch.lower()] if i in chosen else ch for i, ch in enumerate(word))
    return "".join(new.upper() if old.isupper() else new for old, new in zip(word, swapped))


GENERIC: dict[str, Callable[[str, random.Random], str | None]] = {
    "leetspeak": leetspeak,
    "spacing": spacing,
    "repetition": repetition,
    "homoglyph": homoglyph,
}


# --------------------------------------------------------------------------------------------- variants


def _match_case(form: str, original: str) -> str:
    if original.isupper() and len(original) > 1:
        return form.upper()
    if original[:1].isupper():
        return form[:1].upper() + form[1:]
    return form


@dataclass
class Augmenter:
    """Makes coded variants of texts with the reverse pattern database and the generic techniques."""

    index: dict[str, list[Coding]]
    seed: int = 13
    techniques: tuple[str, ...] = GENERIC_TECHNIQUES

    def __post_init__(self) -> None:
        unknown = [t for t in self.techniques if t not in GENERIC]
        if unknown:
            raise ValueError(f"unknown technique(s) {unknown}; choose from {', '.join(GENERIC)}")
        # Plain phrases by their first token, longest first: finding them is one dictionary look-up per token
        # of the text, many times faster than one big alternation regex.
        self._by_first: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for plain in sorted(self.index, key=lambda p: (-len(p), p)):
            tokens = tuple(_TOKEN.findall(plain))
            if tokens:
                self._by_first.setdefault(tokens[0], []).append((tokens, plain))

    @classmethod
    def from_database(
        cls, db: PatternDatabase | None, seed: int = 13, techniques=GENERIC_TECHNIQUES
    ) -> Augmenter:
        return cls(reverse_index(db) if db else {}, seed, tuple(techniques))

    def variants(self, text: str, parent_id: str, n: int = 1) -> list[Variant]:
        """Up to `n` distinct variants of `text`, each different from it. The first uses the database when
        one of its plain words occurs in the text; the others use generic techniques, one or two at a time."""
        if n <= 0:
            return []
        rng = random.Random(f"{self.seed}:{parent_id}:{text}")
        out: list[Variant] = []
        seen = {text}
        plain = self.find_plain(text)
        for recipe in self._recipes(bool(plain), rng, n):
            variant = self._apply(text, plain, recipe, rng)
            if variant and variant.text not in seen:
                seen.add(variant.text)
                out.append(variant)
            if len(out) == n:
                break
        return out

    def find_plain(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, plain phrase) for each database plain phrase in the text, longest first, no overlaps.
        Tokens of a phrase must be separated by whitespace only."""
        tokens = [(m.start(), m.end(), m.group(0).lower()) for m in _TOKEN.finditer(text)]
        found, i = [], 0
        while i < len(tokens):
            match = self._phrase_at(text, tokens, i)
            if match:
                n, plain = match
                found.append((tokens[i][0], tokens[i + n - 1][1], plain))
                i += n
            else:
                i += 1
        return found

    def _phrase_at(self, text: str, tokens: list[tuple[int, int, str]], i: int) -> tuple[int, str] | None:
        for phrase, plain in self._by_first.get(tokens[i][2], ()):
            span = tokens[i : i + len(phrase)]
            if tuple(t for _, _, t in span) == phrase and all(
                not text[a[1] : b[0]].strip() for a, b in itertools.pairwise(span)
            ):
                return len(phrase), plain
        return None

    def _recipes(self, has_plain: bool, rng: random.Random, n: int) -> list[tuple[str, ...]]:
        """Which techniques each variant uses: the database first when it applies, then shuffled generic
        techniques, then pairs of them; more recipes than `n` so a failed one has a substitute."""
        singles = [(t,) for t in self.techniques]
        pairs = [
            (a, b)
            for i, a in enumerate(self.techniques)
            for b in self.techniques[i + 1 :]
            if "spacing" not in (a, b)
        ]
        rng.shuffle(singles)
        rng.shuffle(pairs)
        recipes = singles + pairs
        if has_plain:
            recipes = [("pattern_db",), *[("pattern_db", *r) for r in singles[:1]], *recipes]
        return recipes[: max(n * 3, len(self.techniques))]

    def _apply(
        self, text: str, plain: list[tuple[int, int, str]], recipe: tuple[str, ...], rng: random.Random
    ) -> Variant | None:
        pattern_ids: list[str] = []
        techniques: list[str] = []
        coded: set[str] = set()
        if recipe[0] == "pattern_db":
            text, applied = self._apply_database(text, plain, rng)
            if not applied:
                return None
            for coding in applied:
                techniques.append(coding.technique)
                pattern_ids.append(coding.entry_id)
                coded.update(w.lower() for w in _WORD.findall(coding.form))
            recipe = recipe[1:]
        for name in recipe:
            changed = self._apply_generic(text, name, rng, prefer=coded)
            if changed is None:
                return None
            text = changed
            techniques.append(name)
        return Variant(text, tuple(dict.fromkeys(techniques)), tuple(dict.fromkeys(pattern_ids)))

    def _apply_database(
        self, text: str, plain: list[tuple[int, int, str]], rng: random.Random
    ) -> tuple[str, list[Coding]]:
        """Replace one or two occurrences of database plain phrases with a coded form of each."""
        if not plain:
            return text, []
        chosen = sorted(rng.sample(plain, k=min(len(plain), rng.choice((1, 2)))))
        applied: list[Coding] = []
        pieces, last = [], 0
        for start, end, phrase in chosen:
            coding = rng.choice(self.index[phrase])
            pieces += [text[last:start], _match_case(coding.form, text[start:end])]
            applied.append(coding)
            last = end
        return "".join(pieces) + text[last:], applied

    def _apply_generic(
        self, text: str, technique: str, rng: random.Random, prefer: set[str] = frozenset()
    ) -> str | None:
        """Apply one generic technique to a salient word (a just-inserted coded form first, so techniques
        stack on one word: "u.n.a.l.i.v.e"); None when the technique cannot change any."""
        words = list(_WORD.finditer(text))
        for m in self._salient(words, rng, prefer):
            changed = GENERIC[technique](m.group(0), rng)
            if changed and changed != m.group(0):
                return text[: m.start()] + changed + text[m.end() :]
        return None

    def _salient(self, words: list[re.Match], rng: random.Random, prefer: set[str]) -> list[re.Match]:
        """Words worth disguising, best first: preferred words, database plain words, common harmful words,
        then the three longest other words of four letters or more (in random order within each group)."""

        def group(m: re.Match) -> int:
            word = m.group(0).lower()
            if word in prefer:
                return 0
            if word in self.index:
                return 1
            return 2 if word in COMMON_HARMFUL_WORDS else 3

        ranked = [(group(m), m) for m in words]
        longest = sorted(
            (m for g, m in ranked if g == 3 and len(m.group(0)) >= 4), key=lambda m: -len(m.group(0))
        )[:3]
        groups = [[m for g, m in ranked if g == level] for level in range(3)] + [longest]
        for members in groups:
            rng.shuffle(members)
        return [m for members in groups for m in members]
