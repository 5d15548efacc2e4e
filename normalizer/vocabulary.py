"""Open-vocabulary decoding: obfuscated tokens decoded to any English word, not only to database terms.

    decoder = OpenDecoder(harm={"hate": "hate", ...})
    decoder.decode("h@te")       # ("hate", ["leetspeak"], 0, 4)
    decoder.decode("gr8")        # None: no reading of it is an English word
    decoder.decode("hello")      # None: a word as written is never rewritten

The word list is SymSpell's English frequency dictionary (82,765 words with corpus counts, shipped inside the
`symspellpy` wheel; only its text file is read). Candidate readings of a token come from substitution tables
(leet digits and symbols, currency and letter look-alikes, "v" for "u", "()" for "o"), masking ("*" for a
letter), in-word punctuation ("sui.cide", "k-i-l-l") and collapsed repetition. A token is rewritten only when:

- it is not itself a word (nor a number, a time, a price, a version, a handle, a hashtag or part of a URL:
  those never reach the decoder, see `candidate_tokens`);
- some reading is a word, and the most frequent reading is at least `_CLEAR_RATIO` times as frequent as the
  next one (otherwise it is ambiguous and stays as written);
- readings that use only weak evidence (repetition: "sooo"; "v" for "u"; in-word punctuation: "e-mail";
  masking: "*really*") reach a harm-relevant word: one the pattern database or the harm lexicon knows
  (`data/dataset/harm_lexicon.json`). "sooo good" and "e-mail" stay as written; "fvck", "sui.cide" do not.

Cost: one regular-expression scan per text; each candidate token tries at most `_MAX_VARIANTS` spellings
(set look-ups), and results are memoised by the caller.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from bisect import bisect_left
from functools import lru_cache
from importlib import resources
from pathlib import Path

HARM_LEXICON_PATH = Path(__file__).resolve().parent.parent / "data" / "dataset" / "harm_lexicon.json"

# Each look-alike and the letters it may stand for (a letter stands for itself).
SUBSTITUTIONS: dict[str, str] = {
    "0": "o", "1": "il", "2": "z", "3": "e", "4": "a", "5": "s", "6": "gb", "7": "t", "8": "b", "9": "g",
    "@": "a", "$": "s", "!": "i", "|": "il", "+": "t", "€": "e", "¡": "i", "<": "c",
    "¢": "c", "£": "fle", "¥": "y", "§": "s", "ø": "o", "(": "c", "ß": "b",
}  # fmt: skip
_MASK = "*"
# Multi-character look-alikes (the leet table's "|<" for k, "/\\" for a, ...), read before single characters.
MULTI: dict[str, str] = {
    "|\\/|": "m", "/\\/\\": "m", "|\\|": "n", "|_|": "u", "(_)": "u", "|-|": "h", "/\\": "a", "\\/": "v",
    "|<": "k", "|)": "d", "|2": "r", "|=": "f", "><": "x", "()": "o", "^": "a", "©": "c", "µ": "u",
}  # fmt: skip
_MULTI_ORDER = sorted(MULTI, key=len, reverse=True)
# Look-alikes only this decoder reads (normalizer.decode's LEET table lacks them).
_EXTRA_SYMBOLS = frozenset("¢£¥§ø(ß")
_JOINERS = ".-_·•~"
_WEAK = {"repetition", "u_for_v", "punctuation", "masking", "weak"}
# Tokens shaped like identifiers ("perl5", "ssse3", "r1b", "mp3") decode only to harm-relevant words.
_IDENTIFIER = re.compile(r"[a-z]+\d+|[a-z]\d[a-z]|\d[a-z]{1,2}")
_MAX_VARIANTS = 256
_MAX_DERIVED = 64  # at most this many spellings are looked up as inflections and compounds, or read with "l" as i
_MAX_TOKEN = 40
_MIN_WORD = 3  # decoded words shorter than this ("as", "is") are never produced
_CLEAR_RATIO = 5.0
_KNOWN_COUNT = 1_000_000  # the count given to harm words the frequency list lacks ("xanax", "heil")
# A harm word the frequency list lacks may still be spelt: an inflection of a harm word ("fuckers", "skanks",
# "fuckin") or a compound of a harm word and another word ("dipshit", "cockhead", "dicksucker"). Such readings
# are harm words of the part's category, ranked below every listed word.
_SUFFIXES = ("s", "es", "ed", "ing", "in", "er", "ers", "y")
_DERIVED_COUNT = 1
_COMMON = 1_000_000  # a compound's parts are common words (SymSpell counts: "dip" 5.8M, "sucker" 1.5M)
# Letter look-alikes inside ASCII words ("dlck", "nucles", "clrugs"): read only when nothing else reads, and only
# to harm words.
_LETTER_PAIRS = (("cl", "d"), ("rn", "m"), ("vv", "w"))

_SYMBOLS = re.escape("".join(SUBSTITUTIONS) + _MASK + ")<>/\\^©µ")
_CHAR = rf"[\w{_SYMBOLS}]"
# A token: look-alike characters and letters, with single joiners between them ("sui.cide", "k-i-l-l").
TOKEN = re.compile(rf"{_CHAR}+(?:[{re.escape(_JOINERS)}]{_CHAR}+)*")
# Never decoded: URLs, emails, @handles, #hashtags, inline code (see `_PROTECT_PARTS`). ASCII character classes,
# so that a neighbour rewritten on the first pass cannot change what is protected.
_URL_CHARS = r"[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]"
# Numbers with units, ordinals, times, versions: "1st", "10am", "4x4", "v2", "mp3", "3d", "5g", "100k".
_NUMBER_LIKE = re.compile(r"\d+[a-z]{0,3}|[a-z]{1,3}\d+|\d+x\d+|v\d+(?:[._]\d+)*|\d+(?:[.,:_-]\d+)+[a-z]{0,3}")
_RUN = re.compile(r"([a-z])\1{2,}")


@lru_cache(maxsize=1)
def english_counts() -> dict[str, int]:
    """SymSpell's English dictionary: word -> corpus count (82,765 words)."""
    counts: dict[str, int] = {}
    text = resources.files("symspellpy").joinpath("frequency_dictionary_en_82_765.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        word, _, count = line.partition(" ")
        if word and count:
            counts[word] = int(count)
    return counts


@lru_cache(maxsize=4)
def harm_lexicon(path: str | None = None) -> dict[str, str]:
    """Plain harm words -> category, from `data/dataset/harm_lexicon.json`."""
    document = json.loads(Path(path or HARM_LEXICON_PATH).read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    for category, words in document["words"].items():
        for word in words:
            out.setdefault(word.casefold(), category)
    return out


def _letters_outnumber_digits(token: str) -> bool:
    letters = sum(c.isalpha() for c in token)
    digits = sum(c.isdigit() for c in token)
    return letters >= 2 and digits <= letters


def _has_letters(token: str) -> bool:
    """Some letter or letter-like symbol: "5h17" and "@55" may be words, "2024" and "12:30" are not."""
    return any(c.isalpha() or (c in SUBSTITUTIONS and not c.isdigit()) or c == _MASK for c in token)


def _collapse(word: str) -> list[str]:
    runs = list(_RUN.finditer(word))
    if not runs:
        return [word]
    if len(runs) > 3:
        return [_RUN.sub(r"\1", word), _RUN.sub(r"\1\1", word)]
    out = []
    for lengths in itertools.product((1, 2), repeat=len(runs)):
        pieces, last = [], 0
        for run, n in zip(runs, lengths):
            pieces.append(word[last : run.start()])
            pieces.append(run.group(1) * n)
            last = run.end()
        pieces.append(word[last:])
        out.append("".join(pieces))
    return out


class OpenDecoder:
    """Decodes one token to the English word it most clearly spells, with the techniques used."""

    def __init__(self, harm: dict[str, str], words: dict[str, int] | None = None):
        """`harm`: harm-relevant words -> category (the database's known terms and the harm lexicon)."""
        base = english_counts() if words is None else words
        self.harm = harm
        self.counts = dict(base)
        for word in harm:
            if " " not in word and word not in self.counts:
                self.counts[word] = _KNOWN_COUNT
        self._derived_cache: dict[str, str | None] = {}
        self._masked: dict[int, list[str]] = {}  # length -> harm words, for tokens with several masks
        for word in harm:
            if " " not in word and word.isalpha():
                self._masked.setdefault(len(word), []).append(word)

    def is_word(self, token: str) -> bool:
        return token in self.counts

    def category(self, word: str) -> str | None:
        """The harm category of a word: the database's or the lexicon's, or that of the harm word it inflects or
        compounds ("fuckers", "dipshit"); None for other words."""
        found = self.harm.get(word)
        return found if found is not None else self._inflected(word) or self._compound(word)

    def _inflected(self, word: str) -> str | None:
        listed = word in self.counts  # a listed word inflects only a longer harm word: not "hoeing", "plugin"
        for suffix in _SUFFIXES:
            base = len(word) - len(suffix)
            if listed and suffix in ("in", "y"):
                continue
            shortest = 4 if listed or suffix in ("in", "y") else _MIN_WORD
            if word.endswith(suffix) and base >= shortest and word[:base] in self.harm:
                return self.harm[word[: -len(suffix)]]
        return None

    def _compound(self, word: str) -> str | None:
        cache = self._derived_cache
        if word in cache:
            return cache[word]
        found = None
        if word not in self.counts:  # a listed word is not a compound ("therapist")
            counts, harm = self.counts, self.harm
            for i in range(_MIN_WORD, len(word) - _MIN_WORD + 1):
                left, right = word[:i], word[i:]
                common = counts.get(left, 0) >= _COMMON and counts.get(right, 0) >= _COMMON
                if common and (left in harm or right in harm):
                    found = harm.get(left) or harm[right]
                    break
        if len(cache) > 100_000:
            cache.clear()
        cache[word] = found
        return found

    def decode(self, token: str, budget=None) -> tuple[str, list[str], int, int] | None:
        """(word, techniques, start, end) with the span of `token` the word replaces, or None.

        `token` is casefolded. Decoration around it stays as written: "*whore*" -> "*" + "whore" + "*"."""
        if len(token) > _MAX_TOKEN:
            return None
        core = token.rstrip("!.*$@|+-_~·•()#")
        lead = len(core) - len(core.lstrip("*(_-~.·•"))
        core = core[lead:]
        if len(core) < _MIN_WORD or core in self.counts or _NUMBER_LIKE.fullmatch(core):
            return None
        if "(" in core and "()" not in core and core.index("(") == 0:
            return None
        if not _has_letters(core):
            return None
        mostly_digits = not _letters_outnumber_digits(core)  # "5h17", "@55": only to a harm word
        if core[0] in _EXTRA_SYMBOLS and core[1:] in self.counts:
            return None  # "£whore": a symbol before a word, the way the generic decoder reads it too
        best = self._best(core, weak=mostly_digits, budget=budget)
        if best is None and token.endswith(_MASK) and not core.endswith(_MASK) and len(token) - lead - len(core) == 1:
            core = core + _MASK  # a final mask, not decoration: "overdos*"
            best = self._best(core, budget=budget)
        if best is None and "ph" in core:
            best = self._best(core.replace("ph", "f"), weak=mostly_digits, budget=budget)  # "phuck"
        if best is None and "x" in core and core.replace("x", "") and not core.startswith("x"):
            best = self._best(core.replace("x", _MASK), weak=True, budget=budget)  # "x" as a mask: "fxck", harm words only
        if best is None and _MASK in core.strip(_MASK):
            best = self._best(core.replace(_MASK, "."), weak=mostly_digits, budget=budget)  # "*" between letters: "r*i*f*l*e"
        if best is None and core[0].isalpha() and core[-1].isalpha():
            symbols = [c for c in core if c in SUBSTITUTIONS and not c.isalpha()]
            if len(symbols) == 1 and not mostly_digits:
                # A look-alike that reads as no word stands for a hidden letter, as a mask does: "f@ck", "f0ck".
                best = self._best(core.replace(symbols[0], _MASK), weak=True, budget=budget)
        if best is None and not mostly_digits and not any(j in core for j in _JOINERS) and (
            "l" in core or any(a in core for a, _ in _LETTER_PAIRS)
        ):
            swapped = core
            for pair, letter in _LETTER_PAIRS:
                swapped = swapped.replace(pair, letter)
            best = self._best(swapped, weak=True, letter_l=True, budget=budget)  # "dlck", "nucles", "k1llecl"
        if best is None or best[0] == core:
            return None  # no reading, or the token as written ("navbars", read as a compound of words)
        word, techniques = best
        return word, techniques, lead, lead + len(core)

    # ------------------------------------------------------------------ internals
    def _best(self, core: str, weak: bool = False, letter_l: bool = False, budget=None) -> tuple[str, list[str]] | None:
        """The clearest reading of `core`. Each spelling tried is one unit of `budget` (normalizer.decode.Budget),
        the text's work budget; with none left, no reading."""
        techniques: set[str] = {"weak"} if weak else set()
        text = core
        # Collapse repetition only when the token itself repeats ("kiiill", "k!!!ll"), not when joining pieces,
        # reading symbols or multi-character look-alikes makes a run ("ss.suicide", "cocaine*3", "fuck|<k").
        repeated = _RUN.search(core) is not None or any(c * 3 in core for c in SUBSTITUTIONS if c in core)
        if any(c in text for c in "|()/\\<>^©µ"):
            for seq in _MULTI_ORDER:
                if seq in text:
                    text = text.replace(seq, MULTI[seq])
                    techniques.add("leetspeak")
        if any(c in text for c in ")/\\>"):
            return None
        joined = text
        for j in _JOINERS:
            joined = joined.replace(j, "")
        if joined != text:
            techniques.add("punctuation")
            pieces = re.split(f"[{re.escape(_JOINERS)}]", text)
            if any(piece.isdigit() for piece in pieces):
                return None  # "qt-5", "ar-10", "gen.1", "13-if": numbers, not letters
            if any(len(p) == 1 for p in pieces) and any(len(p) > 1 for p in pieces):
                return None  # a letter joined to a word ("e-mail", "t-shirt", "x-ray", "e.whore"), not a word split
        # Weak evidence: a leading "$" or "+" ("$end", "$watch" in code, "+had"), a Nordic "ø" ("møtt"),
        # an identifier's shape ("perl5", "r1b").
        if text[0] in "$+" and not any(c in SUBSTITUTIONS for c in text[1:]) or "ø" in text or _IDENTIFIER.fullmatch(text):
            techniques.add("weak")
        if len(joined) < _MIN_WORD or not joined:
            return None
        # Compounds ("dipsh1t") only from strong evidence: a look-alike read as a letter, no mask, no joined
        # pieces ("anti-fascist" is two words), no weak reading ("ho@user" is not "hoe" + "user").
        compounds = (
            not techniques & {"punctuation", "weak"} and not letter_l and _MASK not in joined
            and any(c in SUBSTITUTIONS and c not in "ø" for c in joined)
        )  # fmt: skip
        choices: list[str] = []
        count = 1
        for c in joined:
            if c in SUBSTITUTIONS:
                options = SUBSTITUTIONS[c]
            elif c == _MASK:
                options = "aeiou"
            elif c == "v":
                options = "vu"
            elif c == "l" and letter_l:
                options = "li"
            else:
                options = c
            choices.append(options)
            count *= len(options)
        if count > _MAX_VARIANTS or letter_l and count > _MAX_DERIVED:
            return None
        if budget is not None:
            budget.spend(count)
            if budget.exhausted:
                return None
        # Inflections and compounds are looked up only for a few spellings, none of them stretched (cost).
        derive = not repeated and count <= _MAX_DERIVED and "punctuation" not in techniques
        scored: dict[str, set[str]] = {}
        counts = self.counts
        derived: dict[str, int] = {}
        for letters in itertools.product(*choices):
            variant = "".join(letters)
            for word in _collapse(variant) if repeated else (variant,):
                if len(word) < _MIN_WORD:
                    continue
                if word not in counts:
                    if not derive or len(word) < _MIN_WORD + 1 or not (
                        self._inflected(word) or compounds and self._compound(word)
                    ):
                        continue
                    derived[word] = _DERIVED_COUNT
                used = set(techniques)
                for c, r in zip(joined, variant):
                    if c in SUBSTITUTIONS:
                        used.add("leetspeak")
                    elif c == _MASK:
                        used.add("masking")
                    elif c == "v" and r == "u" or letter_l:
                        used.add("u_for_v")
                if word != variant:
                    used.add("repetition")
                if word not in scored or len(used) < len(scored[word]):
                    scored[word] = used
        if derived and any(w not in derived for w in scored):
            scored = {w: t for w, t in scored.items() if w not in derived}  # a listed word outranks a derived one
        if not scored and _MASK in joined:
            # Several masks ("f**k", "n****r"): only harm words of that length, the reason masks are used.
            pattern = re.compile(re.escape(joined).replace(re.escape(_MASK), "[a-z]"))
            for word in self._masked.get(len(joined), ()):
                if pattern.fullmatch(word):
                    scored[word] = techniques | {"masking"}
        if not scored:
            return None
        def count(w: str) -> int:
            return counts.get(w) or derived[w]

        ranked = sorted(scored, key=lambda w: (-count(w), w))
        if all("masking" in scored[w] for w in ranked):
            # What is masked is what may not be written: a reading that is a harm word is the reason for the mask
            # ("no*se" is "noose" rather than "noise", "d*e" is "die").
            harmful = [w for w in ranked if self.category(w) is not None]
            if harmful and harmful[0] != ranked[0]:
                ranked = harmful
        word = ranked[0]
        used = scored[word]
        harm_word = self.category(word) is not None
        if (used <= _WEAK or "weak" in used) and not harm_word:
            return None  # weak evidence only: "sooo", "e-mail", "lovve" stay as written
        if len(ranked) > 1:
            runner_up = ranked[1]
            ratio = count(word) / max(1, count(runner_up))
            if ratio < _CLEAR_RATIO and not (harm_word and self.category(runner_up) is None and "masking" in used):
                return None  # ambiguous: "he11" could be "hell" or "heil" only if their counts were close
        order = ["leetspeak", "masking", "punctuation", "u_for_v", "repetition"]
        names = {"punctuation": "character_insertion", "u_for_v": "homoglyph"}
        return word, [names.get(t, t) for t in order if t in used] or ["leetspeak"]


# Where a token may need decoding: a look-alike symbol or mask, a digit, a joiner between letters, a letter
# tripled. Plain words with "v", "x" or "ph" are candidates only when they are not words as written.
_STRONG = re.compile(rf"[{re.escape(''.join(c for c in SUBSTITUTIONS if not c.isalnum()) + _MASK + '<>/^©µ')}]|\d|[a-z][{re.escape(_JOINERS)}][a-z]|([a-z])\1\1")
_SOFT = re.compile(r"v|x|ph")
# A run of letters with "v", "x" or "ph" in it (matched from its first letter).
_SOFT_WORD = re.compile(r"(?<![a-z])[a-z]*?(?:v|x|ph)[a-z]*")
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_" + "".join(SUBSTITUTIONS) + _MASK + ")<>/\\^©µ")
_PROTECT_PARTS = (
    (("://", "www."), re.compile(rf"(?:https?://|www\.){_URL_CHARS}+")),
    (("@",), re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}|(?<![A-Za-z0-9_])@\w{4,}")),
    (("#",), re.compile(r"(?<![A-Za-z0-9_])#\w+")),
    (("`",), re.compile(r"`[^`]*`")),
    ((".com", ".org", ".net", ".io", ".gov", ".edu", ".co", ".uk"),
     re.compile(rf"[A-Za-z0-9.-]+\.(?:com|org|net|io|gov|edu|co|uk)\b{_URL_CHARS}*")),
)


_EDGE_PUNCTUATION = ".,!?;:\"'()[]{}"


def _protected_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for needles, pattern in _PROTECT_PARTS:
        if any(n in text for n in needles):
            spans.extend(m.span() for m in pattern.finditer(text))
    spans.sort()
    return spans


class _Spans:
    """Spans sorted by start (they may overlap each other), asked in O(log n) whether one meets [a, b): among
    those starting before b, does the furthest end reach past a?"""

    def __init__(self, spans: list[tuple[int, int]]):
        self.starts = [pa for pa, _ in spans]
        self.reach = list(itertools.accumulate((pb for _, pb in spans), max))

    def meets(self, a: int, b: int) -> bool:
        k = bisect_left(self.starts, b)
        return k > 0 and self.reach[k - 1] > a


_HIT = re.compile(rf"[{re.escape(''.join(c for c in SUBSTITUTIONS if not c.isalnum()) + _MASK + '<>/^©µ')}\d]|[{re.escape(_JOINERS)}](?=[a-z])")


def _expand(text: str, i: int) -> tuple[int, int] | None:
    """The token around position i, or None when it is longer than 64 characters."""
    start = i
    while start > 0 and i - start <= 64:
        c = text[start - 1]
        if c in _TOKEN_CHARS or c.isalnum() or (c in _JOINERS and start > 1 and (text[start - 2] in _TOKEN_CHARS or text[start - 2].isalnum())):
            start -= 1
        else:
            break
    if i - start > 64:
        return None
    m = TOKEN.match(text, start)
    if m is None:
        return None
    return start, m.end()


def candidate_tokens(text: str, is_word=None) -> list[tuple[int, int]]:
    """Spans of `text` (canonical, casefolded) worth open-vocabulary decoding, outside protected spans (URLs,
    emails, handles, hashtags, inline code). `is_word` tells plain words with "v", "x" or "ph" to skip.

    Hits come from scans in C (a look-alike, a mask, a digit, a joiner before a letter, a letter tripled) and
    from the few whitespace-separated words with "v", "x" or "ph" that are not words; each hit expands to its
    token once, and tokens over 64 characters are skipped. Linear in the text."""
    hits = [m.start() for m in _HIT.finditer(text)]
    if is_word is not None and ("v" in text or "x" in text or "ph" in text):
        for m in _SOFT_WORD.finditer(text):
            if not is_word(m.group()):
                hits.append(m.start())
    if _RUN.search(text):
        hits.extend(m.start() for m in _RUN.finditer(text))
    if not hits:
        return []
    hits.sort()
    out: list[tuple[int, int]] = []
    last_end = -1
    code = [m.span() for m in _PROTECT_PARTS[3][1].finditer(text)] if "`" in text else []
    chunk_start = chunk_end = -1  # the last token's chunk (the text between the spaces around it) ...
    spans, many = [], None  # ... and its protected spans
    for i in hits:
        if i < last_end:
            continue
        span = _expand(text, i)
        if span is None:
            last_end = i + 1
            continue
        a, b = span
        last_end = max(b, i + 1)
        if b <= i or b - a > 64:
            continue
        token = text[a:b]
        if token.isdigit():
            continue
        if not (_STRONG.search(token) or (is_word is not None and _SOFT.search(token) and not is_word(token))):
            continue
        if not (chunk_start <= a and b <= chunk_end):
            # Found once per chunk, not once per token (a token has no space, so a token inside the last chunk has
            # that chunk): a 20 KB text without spaces is one chunk with thousands of tokens, and searching it
            # again for each ("a1#" * 6667) took 2.6 s.
            chunk_start = text.rfind(" ", 0, a) + 1
            chunk_end = text.find(" ", b)
            chunk_end = len(text) if chunk_end < 0 else chunk_end
            chunk = text[chunk_start:chunk_end]
            spans = _protected_spans(chunk) if any(c in chunk for c in "/@#.") else []
            many = _Spans(spans) if len(spans) > 8 else None  # bisection where a scan would cost
        if spans:
            ra, rb = a - chunk_start, b - chunk_start
            if many.meets(ra, rb) if many is not None else any(pa < rb and ra < pb for pa, pb in spans):
                continue
        if code and any(ca < b and a < cb for ca, cb in code):
            continue
        out.append((a, b))
    return out


def zipf(count: int, total: float = 1e12) -> float:
    """A count on the Zipf scale (log10 of occurrences per billion words), for reports."""
    return round(math.log10(count * 1e9 / total), 2) if count else 0.0
