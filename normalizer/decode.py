"""Generic decoding: leetspeak, masking, repetition and spacing, without an entry per word.

A token is rewritten only when a decoding of it is a known term (a database form or replacement word).
That gate is what keeps IDs, prices, years, coordinates and "sooo good" untouched: "k1ll" becomes
"kill" because "kill" is known; "b4", "2024", "a1b2c3" and "$100" decode to nothing known.
"""

from __future__ import annotations

import itertools
import re
from bisect import bisect_right
from collections.abc import Callable

# Each look-alike digit or symbol and the letters it can stand for. "*" masks a vowel ("f*ck").
LEET: dict[str, str] = {
    "0": "o", "1": "il", "3": "e", "4": "a", "5": "s", "6": "gb", "7": "t", "8": "b", "9": "g",
    "@": "a", "$": "s", "!": "i", "|": "il", "+": "t", "€": "e", "¡": "i", "*": "aeiou",
}  # fmt: skip
_LEET_CHARS = re.escape("".join(LEET))
_MAX_VARIANTS = 64
_MAX_TOKEN = 40  # longer "words" are not words: never decoded

_TRAILING_SYMBOLS = "!.*$@|+"
_SEPARATORS = " .-_*·•,~/\\\u2010\u2011\u2013\u2014"  # what may stand between the letters of a spaced-out word:
# "k.i.l.l", "k_i_l_l", "k—i—l—l" (hyphens and dashes of every width)
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


def _repeats_as_written(candidate: str, variant: str) -> bool:
    """Whether every run of 3+ letters in `variant` comes from a character written 3+ times in `candidate`."""
    for run in _RUN.finditer(variant):
        written = candidate[run.start() : run.end()]
        if max(written.count(c) for c in written) < 3:  # not repeated as written: "e*3" is not "eee", "ll1" not "lll"
            return False
    return True


def decode_token(
    token: str, known: dict[str, object], trie: KnownTrie | None = None, budget: Budget | None = None
) -> tuple[str, list[str], int] | None:
    """The known term a token decodes to, the techniques used, and how many characters of the token it
    covers (trailing punctuation such as the "!" of "k!ll!" stays outside), or None.

    With `trie` (the known words' `KnownTrie`), a candidate no reading of which can spell a known word is
    dismissed in one linear walk instead of trying its up to 64 x 8 spellings; `budget` is charged one unit
    per spelling tried (at most 1,024 per call)."""
    if len(token) > _MAX_TOKEN or token in known:  # a known term stays itself: "bbbj" is a form, not "bj"
        return None
    base = token.rstrip(_TRAILING_SYMBOLS)
    if len(base) >= 3 and known.get(base, ("part",))[0] != "part":  # type: ignore[index]
        return None  # "suicide$" is a plain word and a symbol, not "suicides"
    stripped = token.rstrip("!.*")
    for candidate in dict.fromkeys((token, stripped)):
        if not candidate or candidate[0] == "*" or not _letters_outnumber_digits(candidate):
            continue  # a leading "*" is decoration ("*whore*"), not a masked letter
        if trie is not None:
            if budget is not None:
                budget.spend(len(candidate))
            if not trie.spells(candidate):
                continue
        has_leet = any(c in LEET for c in candidate)
        for variant in _leet_variants(candidate) if has_leet else [candidate]:
            # A run that only reading symbols created ("cocaine*3" read as "cocaineee") is not repetition.
            words = _collapse_variants(variant) if _repeats_as_written(candidate, variant) else [variant]
            if budget is not None:
                budget.spend(len(words))
            for word in words:
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


def squeeze(word: str) -> str:
    """Every run of one repeated character cut to one: "kiiilll" -> "kil". Collapsing repetition never changes it."""
    return "".join(c for k, c in enumerate(word) if k == 0 or word[k - 1] != c)


# Each character and every letter it can be read as (itself included: "1488" is a known form as written).
_READINGS: dict[str, str] = {c: c + LEET[c] for c in LEET}


class KnownTrie:
    """The known words as a trie of their squeezed spellings, for a linear filter of spaced-out sub-runs.

    A sub-run of characters can decode to a known word only if some reading of its characters (each one itself or
    a letter it stands for) squeezes to a known word squeezed: leetspeak keeps the length, collapsing repetition
    keeps the squeezed spelling. Walking the trie from one start reads every end that passes in one pass; only
    those ends reach `decode_token`, so most sub-runs (all of them, in "4.l.i.k.l.3.$.0") cost one trie step.
    """

    __slots__ = ("children", "terminal", "last")

    def __init__(self, known: dict[str, object]):
        self.children: list[dict[str, int]] = [{}]
        self.terminal: list[bool] = [False]
        self.last: list[str] = [""]
        for word in known:
            node = 0
            for c in squeeze(word):
                nxt = self.children[node].get(c)
                if nxt is None:
                    nxt = len(self.children)
                    self.children[node][c] = nxt
                    self.children.append({})
                    self.terminal.append(False)
                    self.last.append(c)
                node = nxt
            self.terminal[node] = True

    def spells(self, chars: str) -> bool:
        """Whether some reading of all of `chars` squeezes to a known word squeezed."""
        children, last = self.children, self.last
        states = {0}
        for char in chars:
            readings = _READINGS.get(char, char)
            following: set[int] = set()
            for s in states:
                for r in readings:
                    if r == last[s]:
                        following.add(s)
                    else:
                        nxt = children[s].get(r)
                        if nxt is not None:
                            following.add(nxt)
            if not following:
                return False
            states = following
        return any(self.terminal[s] for s in states)

    def ends(self, chars: list[str], start: int, budget: "Budget | None" = None) -> list[int]:
        """Every j > start + 2 for which chars[start:j] may decode to a known word, longest first."""
        children, terminal, last = self.children, self.terminal, self.last
        states = {0}
        found: list[int] = []
        for j in range(start, len(chars)):
            readings = _READINGS.get(chars[j], chars[j])
            following: set[int] = set()
            for s in states:
                for r in readings:
                    if r == last[s]:
                        following.add(s)  # a repeated letter: squeezed away
                    else:
                        nxt = children[s].get(r)
                        if nxt is not None:
                            following.add(nxt)
            if budget is not None:
                budget.spend(1 + len(states))
            if not following:
                break
            states = following
            if j - start >= 2 and any(terminal[s] for s in states):
                found.append(j + 1)
        found.reverse()
        return found


class Budget:
    """Work units one text may spend on generic decoding: a trie step, or one spelling `decode_token` tries, is
    one unit (each well under a microsecond). When it runs out, the rest of the text's candidates are left
    undecoded and `exhausted` says so: cost stays bounded by the length of the text, never by how the text is
    built."""

    __slots__ = ("remaining", "spent", "exhausted", "capped")

    def __init__(self, units: int):
        self.remaining = units
        self.spent = 0
        self.exhausted = False  # the text's budget ran out: later runs were not decoded
        self.capped = False  # a run reached its own cap of decode_token calls: its rest was not decoded

    @property
    def degraded(self) -> bool:
        return self.exhausted or self.capped

    @classmethod
    def for_text(cls, length: int) -> "Budget":
        return cls(4_096 + 64 * length)

    def spend(self, units: int) -> None:
        self.spent += units
        self.remaining -= units
        if self.remaining < 0:
            self.exhausted = True


_MAX_CALLS_PER_RUN = 64  # decode_token calls one spaced run may make (each start's candidates count)


def decode_spaced(
    run: str,
    known: dict[str, object],
    index: KnownTrie | None = None,
    cache: dict[str, object] | None = None,
    budget: Budget | None = None,
    is_word: Callable[[str], bool] | None = None,
) -> list[tuple[int, int, str, list[str]]]:
    """Spaced-out words inside a run of single characters: "a k i l l" -> [(2, 9, "kill", ["spacing"])].

    A run that spells one ordinary word (`is_word`, and not itself a known term) is that word, not the known
    term inside it: "S K I L L" is "skill", not "s kill"; the whole run is returned as that word (the caller keeps
    it only when it is a harm word: "k i l l e r s", not "t h e r a p i s t" or "p.a.s.s").

    Offsets are relative to the run. The longest known word wins. Bounded: a run has at most 40 characters,
    the trie filter (`KnownTrie`) passes only sub-runs that can still spell a known word, `decode_token`
    results are memoised in `cache` (shared across texts), a run makes at most 64 uncached calls, and `budget`
    caps the whole text's decoding work.
    """
    chars = [(m.start(), m.group()) for m in _NOT_SEPARATOR.finditer(run)]
    if len(chars) > _MAX_TOKEN:
        return []
    if index is None:
        index = KnownTrie(known)
    if cache is None:
        cache = {}
    letters = [c for _, c in chars]
    if is_word is not None:
        whole = "".join(letters)
        if whole not in known and is_word(whole):
            return [(chars[0][0], chars[-1][0] + 1, whole, ["spacing"])]
    found: list[tuple[int, int, str, list[str]]] = []
    calls = 0
    i = 0
    while i <= len(chars) - 3:
        if budget is not None and budget.exhausted:
            break
        hit = None
        for j in index.ends(letters, i, budget):
            joined = "".join(letters[i:j])
            if any(c in LEET for c in joined):
                decoded = cache.get(joined, False)
                if decoded is False:
                    if calls >= _MAX_CALLS_PER_RUN or (budget is not None and budget.exhausted):
                        if budget is not None:  # the rest of this run stays as written, and the result says so
                            budget.capped = True
                        return found
                    calls += 1
                    decoded = decode_token(joined, known, index, budget)
                    if len(cache) > 100_000:
                        cache.clear()
                    cache[joined] = decoded
            else:
                decoded = None
            if decoded and decoded[2] == len(joined):  # type: ignore[index]
                hit = (j, decoded[0], ["spacing", *decoded[1]])  # type: ignore[index]
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
