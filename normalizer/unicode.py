"""Unicode canonicalisation for matching, with a map back to the original text.

`canonicalize(text)` returns the text the matcher searches: case-folded, compatibility-decomposed
(fullwidth and styled letters such as 𝐤𝐢𝐥𝐥 or ⓚⓘⓛⓛ become plain letters), combining marks and invisible
characters (control characters, format characters such as zero-width and bidi controls, tag characters,
variation selectors, emoji skin tones) removed with their offsets kept,
whitespace runs collapsed to one space, and Cyrillic/Greek look-alike letters folded to Latin in
mixed-script words only, so that Russian or Greek text stays as it is.

The canonical text is only ever searched, never shown: what the user sees is built from the original text
and the matches, so every change the user sees is explained by a match.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_CONFUSABLES: dict[str, str] = json.loads(
    Path(__file__).with_name("confusables_latin.json").read_text(encoding="utf-8")
)

_INVISIBLE_RANGES = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x061C, 0x061C),  # Arabic letter mark
    (0x115F, 0x1160),  # Hangul fillers
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),  # Mongolian variation selectors and vowel separator
    (0x200B, 0x200F),  # zero-width space/non-joiner/joiner, LRM, RLM
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, bidi isolates
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFEFF, 0xFEFF),  # byte-order mark / zero-width no-break space
    (0xFFA0, 0xFFA0),
    (0x1D173, 0x1D17A),  # musical formatting
    (0x1F3FB, 0x1F3FF),  # emoji skin-tone modifiers
    (0xE0000, 0xE0FFF),  # tag characters and variation selectors supplement
)


@lru_cache(maxsize=1 << 16)  # per character: emoji and other astral text ask again for every occurrence
def is_invisible(char: str) -> bool:
    """Removed before matching: control characters (U+0000-U+001F, U+007F-U+009F) other than whitespace, every
    format character (category Cf: zero-width, bidi, tags, ...) and the fillers and selectors listed above.
    A superset of what the API counts as invisible, so "k\\x00ill" and "un\\x01alive" are read as words."""
    cp = ord(char)
    if cp < 0xAD:
        return (cp < 0x20 or 0x7F <= cp <= 0x9F) and not char.isspace()
    for lo, hi in _INVISIBLE_RANGES:
        if lo <= cp <= hi:
            return True
    return unicodedata.category(char) in ("Cc", "Cf") and not char.isspace()


_WORD = re.compile(r"\w+")
# Printable ASCII separated by single spaces: copied in bulk (the common case), the rest character by character.
_ASCII_RUN = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")
_CONFUSABLE_SET = frozenset(_CONFUSABLES)


@dataclass(slots=True)
class Canonical:
    """The searchable text and, for each of its characters, the original span it came from.

    `starts`/`ends` are None when the canonical text is the lower-cased original character for character.
    """

    text: str
    starts: list[int] | None
    ends: list[int] | None

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        if self.starts is None:
            return start, end
        return self.starts[start], self.ends[end - 1]  # type: ignore[index]


@lru_cache(maxsize=1 << 16)
def _fold_char(char: str) -> str:
    if is_invisible(char):
        return ""
    if char.isspace():
        return " "
    decomposed = unicodedata.normalize("NFKD", char)
    # Every mark goes (Mn, Mc, Me): combining() misses enclosing marks such as U+0489 and U+20DD.
    kept = "".join(c for c in decomposed if not unicodedata.category(c).startswith("M"))
    return kept.casefold()


def canonicalize(text: str) -> Canonical:
    if text.isascii() and text.isprintable() and "  " not in text:
        return Canonical(text.lower(), None, None)

    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    previous_space = False
    position = 0
    length = len(text)
    while position < length:
        run = _ASCII_RUN.match(text, position)
        if run is not None and not (previous_space and text[position] == " "):
            a, b = run.span()
            out.append(run.group().lower())
            starts.extend(range(a, b))
            ends.extend(range(a + 1, b + 1))
            previous_space = False
            position = b
            continue
        char = text[position]
        i = position
        position += 1
        folded = _fold_char(char)
        for piece in folded:
            if piece.isspace():
                if previous_space:
                    ends[-1] = i + 1  # the extra space joins the previous one
                    continue
                piece = " "
                previous_space = True
            else:
                previous_space = False
            out.append(piece)
            starts.append(i)
            ends.append(i + 1)
        if not folded and ends:
            ends[-1] = i + 1  # an invisible character belongs to the character before it

    canon = "".join(out)
    if not _CONFUSABLE_SET.isdisjoint(canon):
        canon = _fold_mixed_script(canon)
    return Canonical(canon, starts, ends)


def _fold_mixed_script(canon: str) -> str:
    """Fold look-alike letters to Latin in words that also contain ASCII letters ("kіll" with Cyrillic і)."""
    pieces: list[str] = []
    last = 0
    for m in _WORD.finditer(canon):
        word = m.group()
        if word.isascii() or not any(c.isascii() and c.isalpha() for c in word):
            continue
        if not any(c in _CONFUSABLES for c in word):
            continue
        pieces.append(canon[last : m.start()])
        pieces.append("".join(_CONFUSABLES.get(c, c) for c in word))
        last = m.end()
    if not pieces:
        return canon
    pieces.append(canon[last:])
    return "".join(pieces)


def fold_form(form: str) -> str:
    """Canonicalise a database form exactly as text is canonicalised, so forms and text meet."""
    return canonicalize(form).text.strip()


def _is_emoji_presentation(char: str, context: str) -> bool:
    """Variation selectors, skin tones, and ZWJ inside emoji are part of how emoji are written, not tricks."""
    cp = ord(char)
    if 0xFE00 <= cp <= 0xFE0F or 0x1F3FB <= cp <= 0x1F3FF:
        return True
    return cp == 0x200D and any(unicodedata.category(c) == "So" for c in context)


def describe_change(original: str) -> list[str]:
    """Which Unicode techniques a span of original text uses (for match reports)."""
    techniques: list[str] = []
    if any(is_invisible(c) and not _is_emoji_presentation(c, original) for c in original):
        techniques.append("character_insertion")
    visible = [c for c in original if not is_invisible(c)]
    if any(not c.isascii() and c.lower() in _CONFUSABLES for c in visible):
        techniques.append("homoglyph")
    if any(
        not c.isascii() and c.lower() not in _CONFUSABLES and _fold_char(c).isascii() and not c.isspace()
        for c in visible
    ):
        techniques.append("unicode_style")
    return techniques
