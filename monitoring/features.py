"""What monitoring keeps of one moderated text, computed the same way everywhere.

The prediction log stores these fields per record (the text itself only as a hash unless `log_text`
is on), and drift detection computes the same fields for reference data that never went through the
log (training JSONL/Parquet, SageMaker capture files), so the two windows are always comparable.

Character classes partition the text: alpha + digit + space + punct + other == length, where punct is
ASCII punctuation and other is everything else (emoji, symbols, non-ASCII punctuation). `upper` and
`non_ascii` overlap the partition.
"""

from __future__ import annotations

import hashlib
import hmac
import string
from collections.abc import Mapping
from typing import Any

from core.labels import LABELS, SEVERITY

CHAR_CLASSES: tuple[str, ...] = ("alpha", "digit", "upper", "space", "punct", "other", "non_ascii")
_PUNCT = frozenset(string.punctuation)


def text_sha256(text: str) -> str:
    """The plain SHA-256 of a text. Not for stored texts: short ones are recovered by guessing (use text_hmac)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def text_hmac(text: str, key: bytes) -> str:
    """HMAC-SHA256 of a text under a secret key: equal texts still get equal digests (counting repeats works),
    but without the key nobody can test a guess against a stored digest."""
    return hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def _char_class(ch: str) -> str:
    """One letter per character: A upper letter, a other letter, U upper non-letter (e.g. Roman numerals),
    d digit, s space, p ASCII punctuation, o anything else."""
    if ch.isalpha():
        return "A" if ch.isupper() else "a"
    if ch.isupper():
        return "U"
    if ch.isdigit():
        return "d"
    if ch.isspace():
        return "s"
    return "p" if ch in _PUNCT else "o"


class _Classes(dict):
    """A str.translate table that classifies each character the first time it is seen, then from memory."""

    def __missing__(self, codepoint: int) -> str:
        self[codepoint] = value = _char_class(chr(codepoint))
        return value


_CLASSES = _Classes()
_CLASSES_LIMIT = 100_000  # distinct characters remembered (a few MB at most), then the table starts over


def char_stats(text: str) -> dict[str, int]:
    """Counts per character class (see the module docstring); `length` is in code points.

    One C-level `translate` maps every character to its class letter and a few `count`s read the totals.
    """
    if len(_CLASSES) > _CLASSES_LIMIT:
        _CLASSES.clear()
    classes = text.translate(_CLASSES)
    big, small = classes.count("A"), classes.count("a")
    alpha = big + small
    digit, space, punct = classes.count("d"), classes.count("s"), classes.count("p")
    n = len(text)
    return {
        "length": n, "alpha": alpha, "digit": digit, "upper": big + classes.count("U"), "space": space,
        "punct": punct, "other": n - alpha - digit - space - punct,
        "non_ascii": 0 if text.isascii() else n - len(text.encode("ascii", "ignore")),
    }  # fmt: skip


def normalize_label(value: Any) -> str | None:
    """A label name from a name or an ordinal index; None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 0 <= value < len(LABELS):
        return LABELS[value]
    if isinstance(value, str):
        name = value.strip().lower().replace("-", "_").replace(" ", "_")
        if name in SEVERITY:
            return name
        if name.isdigit() and int(name) < len(LABELS):
            return LABELS[int(name)]
    return None


def techniques_of(matches: Any) -> list[str]:
    """Distinct techniques of a result's normalizer matches, in first-seen order."""
    seen: dict[str, None] = {}
    for m in matches or ():
        if not isinstance(m, Mapping):
            continue
        techs = m.get("techniques")
        if techs is None and m.get("technique"):
            techs = [m["technique"]]
        for t in techs or ():
            if isinstance(t, str):
                seen.setdefault(t, None)
    return list(seen)


def entry_ids_of(matches: Any) -> list[str]:
    seen: dict[str, None] = {}
    for m in matches or ():
        if isinstance(m, Mapping) and isinstance(m.get("entry_id"), str):
            seen.setdefault(m["entry_id"], None)
    return list(seen)


def disagrees(label: str | None, raw_label: str | None) -> bool:
    """Whether the un-normalized text got a different label (only defined when the normalizer changed it)."""
    return raw_label is not None and label is not None and raw_label != label
