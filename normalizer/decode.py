"""Generic decoding: leetspeak, masking, repetition and spacing, without an entry per word.

A token is rewritten only when a decoding of it is a known term (a database form or replacement word).
That gate is what keeps IDs, prices, years, coordinates and "sooo good" untouched: "k1ll" becomes
"kill" because "kill" is known; "b4", "2024", "a1b2c3" and "$100" decode to nothing known.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
import re

# Each look-alike digit or symbol and the letters it can stand for. "*" masks a vowel ("f*ck").
LEET: dict[str, str] = {
    "0": "o", "1": "il", "3": "e", "4": "a", "5": "s", "6": "gb", "7": "t", "8": "b", "9": "g",
    "@": "a", "$": "s", "!": "i", "|": "il", "+": "t", "€": "e", "¡": "i", "*": "aeiou",
}  # fmt: skip
_LEET_CHARS = re.escape("".join(LEET))
_MAX_VARIANTS = 64
_MAX_TOKEN = 40  # longer "words" are not words: never decoded

_TRAILING_SYMBOLS = "!.*$@|+"
_SEPARATORS = " .-_*·•,~/\\"  # what may stand between the letters of a spaced-out word: "k.i.l.l", "k_i_l_l"
_SEP_CLASS = re.escape(_SEPARATORS)
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_" + "".join(LEET))
# Cheap scans find the few places worth decoding; most texts have none or one or two.
_LEET_CHAR = re.compile(f"[{_LEET_CHARS}]")
_TRIPLE = re.compile(r"([a-z])\1\1")
_SPACED = re.compile(
    rf"(?<![\w{_LEET_CHARS}])(?:[\w{_LEET_CHARS}][{_SEP_CLASS}]{{1,3}}){{2,}}[\w{_LEET_CHARS}](?![\w{_LEET_CHARS}])"
)


def _token_at(text: str, i: int) -> tuple[int, int]:
    """The span of the token (letters, digits, look-alike symbols) around position i."""
    start = i
    while start > 0 and (text[start - 1] in _TOKEN_CHARS or text[start - 1].isalnum()):
        start -= 1
    end = i + 1
    n = len(text)
    while end < n and (text[end] in _TOKEN_CHARS or text[end].isalnum()):
        end += 1
    return start, end


def find_candidates(text: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(spaced runs, tokens) worth decoding, as sorted non-overlapping spans of `text`."""
    spaced: list[tuple[int, int]] = []
    if sum(map(text.count, _SEPARATORS)) >= 2:
        spaced = [m.span() for m in _SPACED.finditer(text)]
    tokens: list[tuple[int, int]] = []
    last_end = -1
    hits = [m.start() for m in _LEET_CHAR.finditer(text)]
    if _TRIPLE.search(text):
        hits.extend(m.start() for m in _TRIPLE.finditer(text))
        hits.sort()
    spaced_starts = [a for a, _ in spaced]
    for i in hits:
        if i < last_end:
            continue
        start, end = _token_at(text, i)
        k = bisect_right(spaced_starts, start) - 1
        if k >= 0 and start < spaced[k][1]:  # inside a spaced run: decoded as part of it
            last_end = end
            continue
        if text[start] == "@" and end - start > 4:  # an @mention, not "@ss"
            last_end = end
            continue
        tokens.append((start, end))
        last_end = end
    return spaced, tokens


_RUN = re.compile(r"(.)\1{2,}")
_NOT_SEPARATOR = re.compile(f"[^{_SEP_CLASS}]")


def _letters_outnumber_digits(token: str) -> bool:
    letters = sum(c.isalpha() for c in token)
    digits = sum(c.isdigit() for c in token)
    return letters >= 1 and digits <= letters


def _leet_variants(token: str) -> list[str]:
    choices = [LEET.get(c, c) if c in LEET else c for c in token]
    count = 1
    for options in choices:
        count *= len(options)
    if count > _MAX_VARIANTS:  # too ambiguous: take the first reading of each character
        return ["".join(options[0] for options in choices)]
    return ["".join(p) for p in itertools.product(*choices)]


def _collapse_variants(word: str) -> list[str]:
    """"kiiiilll" -> {"kil", "kill", "kiil", "kiill"}: each run of 3+ becomes one or two letters."""
    runs = list(_RUN.finditer(word))
    if not runs:
        return [word]
    if len(runs) > 3:
        return [_RUN.sub(r"\1", word), _RUN.sub(r"\1\1", word)]
    variants = []
    for lengths in itertools.product((1, 2), repeat=len(runs)):
        out, last = [], 0
        for run, n in zip(runs, lengths):
            out.append(word[last : run.start()])
            out.append(run.group(1) * n)
            last = run.end()
        out.append(word[last:])
        variants.append("".join(out))
    return variants


def decode_token(token: str, known: dict[str, object]) -> tuple[str, list[str], int] | None:
    """The known term a token decodes to, the techniques used, and how many characters of the token it
    covers (trailing punctuation such as the "!" of "k!ll!" stays outside), or None."""
    if len(token) > _MAX_TOKEN or token in known:  # a known term stays itself: "bbbj" is a form, not "bj"
        return None
    base = token.rstrip(_TRAILING_SYMBOLS)
    if len(base) >= 3 and known.get(base, ("part",))[0] != "part":  # type: ignore[index]
        return None  # "suicide$" is a plain word and a symbol, not "suicides"
    stripped = token.rstrip("!.*")
    for candidate in dict.fromkeys((token, stripped)):
        if not candidate or candidate[0] == "*" or not _letters_outnumber_digits(candidate):
            continue  # a leading "*" is decoration ("*whore*"), not a masked letter
        has_leet = any(c in LEET for c in candidate)
        for variant in _leet_variants(candidate) if has_leet else [candidate]:
            for word in _collapse_variants(variant):
                if word in known and word != candidate:
                    techniques = []
                    if any(c in LEET and c != "*" for c in candidate):
                        techniques.append("leetspeak")
                    if "*" in candidate:
                        techniques.append("masking")
                    if word != variant:
                        techniques.append("repetition")
                    return word, techniques, len(candidate)
    return None


def decode_spaced(run: str, known: dict[str, object]) -> list[tuple[int, int, str, list[str]]]:
    """Spaced-out words inside a run of single characters: "a k i l l" -> [(2, 9, "kill", ["spacing"])].

    Offsets are relative to the run. The longest known word wins; runs are short, so trying every
    sub-run is cheap.
    """
    chars = [(m.start(), m.group()) for m in _NOT_SEPARATOR.finditer(run)]
    if len(chars) > _MAX_TOKEN:
        return []
    found: list[tuple[int, int, str, list[str]]] = []
    i = 0
    while i <= len(chars) - 3:
        hit = None
        for j in range(len(chars), i + 2, -1):
            joined = "".join(c for _, c in chars[i:j])
            decoded = decode_token(joined, known) if any(c in LEET for c in joined) else None
            if decoded and decoded[2] == len(joined):
                hit = (j, decoded[0], ["spacing", *decoded[1]])
            elif joined in known:
                hit = (j, joined, ["spacing"])
            if hit:
                break
        if hit:
            j, word, techniques = hit
            found.append((chars[i][0], chars[j - 1][0] + 1, word, techniques))
            i = j
        else:
            i += 1
    return found
