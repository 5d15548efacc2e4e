"""Text features of the embedded classifier, shared by training and serving so they cannot drift apart.

Word unigrams and bigrams, and character 3-5-grams of the lower-cased, token-joined text (they span word
boundaries, so they also see short word pairs): character n-grams carry misspellings and partial words that word
features miss. Features are binary, weighted by inverse document frequency and L2-normalised (the classic linear
text-classification recipe).

Identity terms are blinded: every word of `IDENTITY_TERMS` (women, Muslims, gay, Black, immigrants, ...) becomes
one token, `IDENTITY_TOKEN`, before any feature is taken. The shared sets mention some groups mostly in their
hateful rows (a sexism set's positives name women; its negatives were screened), so an n-gram model learns
"women" or "trans" as harm and flags "Women are an important part of our community". Blinded, the model can only
learn what is said about a group, and what it learns from one group's sentences holds for every group: the
counterfactual-fairness remedy of Dixon et al. (2018), applied as feature blinding. Slurs are not identity terms
and stay as written.

Disguises that change how a word looks but not what it says are undone first (`canonical_text`): look-alike and
styled letters (Cyrillic "а" in a Latin word, "𝐤𝐢𝐥𝐥") as the normalizer reads them, a letter held three or more
times ("sooooo", "wiiiill") shortened to two, and a word spelled out letter by letter with one separator
("p-e-o-p-l-e", "T.o.n.i.g.h.t", "a_g_a_i_n") joined. The normalizer rewrites such a word only when it decodes to
a known harmful term; every other disguised word reached the model as written, and a model that has seen
disguises mostly in harmful training texts learns the disguise as harm ("see you t.o.n.i.g.h.t" flagged) while
"Gay p-e-o-p-l-e are vermin" lost its words.

Each feature is a 64-bit hash, computed for a whole batch at once with numpy (polynomial hashes over the Unicode
code points, modulo 2**64): Python touches each text once to tokenise it, never each n-gram. The model keeps a
vocabulary of selected hashes; a text's features are the hashes found in it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from normalizer.unicode import canonicalize

VERSION = "hash64-w12-c345-v5-canon"
CHAR_NGRAMS = (3, 4, 5)
_TOKEN = re.compile(r"[^\W_]+|[^\w\s\x00-\x1f]")  # words, and each symbol or emoji on its own
_P = np.uint64(1_000_003)  # odd, so invertible modulo 2**64
_P_INV = np.uint64(pow(1_000_003, -1, 2**64))
_MIX = np.uint64(0x9E3779B97F4A7C15)
_SALTS = {name: np.uint64((i * 0x632BE59BD9B4E019 + 1) % 2**64) for i, name in enumerate(("w1", "w2", "c3", "c4", "c5"))}


def _avalanche(h: np.ndarray, salt: np.uint64) -> np.ndarray:
    h = (h ^ salt) * _MIX
    return h ^ (h >> np.uint64(29))


_POWERS: dict[int, np.ndarray] = {}


def _powers(base: np.uint64, n: int) -> np.ndarray:
    """base**0 .. base**(n-1) modulo 2**64, from a table that grows as longer batches arrive."""
    key = int(base)
    table = _POWERS.get(key)
    if table is None or len(table) < n:
        size = max(n, 4096, 2 * len(table) if table is not None else 0)
        table = np.empty(size, dtype=np.uint64)
        table[0] = 1
        table[1:] = base
        with np.errstate(over="ignore"):
            np.cumprod(table[1:], out=table[1:])
        _POWERS[key] = table
    return table[:n]


# Identity terms, one word each (a name of a group in several words is one token: see _GROUP_NOUNS): the
# single-word identity terms of Dixon et al. (2018, "Measuring and mitigating unintended bias in text
# classification", their bias-madlibs list), the identity columns of Jigsaw Unintended Bias (religion, race,
# gender, sexual orientation, disability), and the HatEval (SemEval-2019 task 5) targets, immigrants and women;
# with plurals. Words whose everyday sense outweighs the identity one ("man", "straight", "old", "young") are left
# out. Changing this list changes the features: bump VERSION and retrain.
_IDENTITY_WORDS = """
    woman women female females male males men
    gay gays lesbian lesbians bisexual bisexuals trans transgender transgenders homosexual homosexuals
    heterosexual heterosexuals lgbt lgbtq nonbinary
    black blacks white whites asian asians african africans hispanic hispanics latino latinos latina latinas
    latinx mexican mexicans chinese japanese indian indians european europeans arab arabs american americans
    canadian canadians
    jew jews jewish muslim muslims moslem moslems islamic christian christians catholic catholics protestant
    protestants hindu hindus buddhist buddhists sikh sikhs atheist atheists mormon mormons
    disabled blind deaf paralyzed autistic elderly
    immigrant immigrants migrant migrants refugee refugees
"""
IDENTITY_TERMS = frozenset(_IDENTITY_WORDS.split())
IDENTITY_TOKEN = "idgrp"
_BLIND = {word: IDENTITY_TOKEN for word in IDENTITY_TERMS}
# Words that, after an identity term, name the same group: "gay people", "Black women", "the Muslim community"
# are one token, as "gays", "women" and "Muslims" are. Otherwise "idgrp people" is a feature of its own, learned
# from the groups the data names that way (mostly in its hateful rows), and "Gay people are an important part of
# our community" scores worse than "Women are an important part of our community".
_GROUP_NOUNS = frozenset({IDENTITY_TOKEN, "people", "person", "persons", "folk", "folks", "guys", "community",
                          "communities"})


_LETTER = r"[^\W\d_]"
# A whitespace-separated piece with a non-ASCII character. The look-behind makes a match start only where a piece
# starts: without it, "a" * 20000 + " é" was tried from every "a" and took 2 s (quadratic).
_NON_ASCII_WORD = re.compile(r"(?<!\S)\S*[^\x00-\x7f]\S*")
_HELD = re.compile(rf"({_LETTER})\1{{2,}}")  # a letter three or more times in a row
# Cheap tests that every text the exact patterns change passes (13% and 4% of real texts): the exact ones cost 2-4x
# more per text, and most texts have nothing to change.
_HELD_ANY = re.compile(r"(.)\1\1")
_SPELLED_ANY = re.compile(r"[\W_]\w[ ._*·~-]\w[ ._*·~-]")
_SPELLED_FIRST = re.compile(r"\w[ ._*·~-]\w[ ._*·~-]")  # .match: a spelled word that starts the text
# Three or more single letters, each followed by the same separator as the first: "p-e-o-p-l-e", "k i l l".
_SPELLED = re.compile(rf"(?<![^\W_]){_LETTER}([ ._*·~-])(?:{_LETTER}\1)+{_LETTER}(?![^\W_])")


def canonical_text(text: str) -> str:
    """`text` lower-cased, each piece with a non-ASCII character read as the normalizer reads it
    (`normalizer.unicode.canonicalize`: styled letters plain, invisible characters and marks removed, look-alike
    letters folded in mixed-script words, so Russian or Greek words stay as they are), held letters shortened to
    two and spelled-out words joined."""
    text = text.lower()
    if not text.isascii():
        text = _NON_ASCII_WORD.sub(_canonical_piece, text)
    if _HELD_ANY.search(text):
        text = _HELD.sub(_two, text)  # a function, not the template r"\1\1": 2.5x faster on "aaab" * 5000
    if _SPELLED_ANY.search(text) or _SPELLED_FIRST.match(text):
        text = _SPELLED.sub(_join_spelled, text)
    return text


def _canonical_piece(m: re.Match) -> str:
    """The piece as the normalizer reads it; a piece that would grow more than fourfold (compatibility forms such
    as "\ufdfa", one character that decomposes into 18) stays as written, so no text costs the features more
    than a few times its length."""
    piece = m[0]
    if len(unicodedata.normalize("NFKD", piece)) > 4 * len(piece):  # C speed: decides before the Python loop
        return piece
    return canonicalize(piece).text


def _two(m: re.Match) -> str:
    return m[0][:2]


def _join_spelled(m: re.Match) -> str:
    return m.group(0).replace(m.group(1), "")


# Where "sentence max" cuts a text into the parts it reads beside the whole (`sentences_of`), by the name a model's
# meta stores as `cut`: a model is served with the cut its decision was fitted on. Each cut is a list of levels,
# each level cutting the parts of the one before, and whether a part must pass `says_something` to be read
# alone (`filtered`).
# - "sentences": end punctuation and white space, or a line break (the shipped model, of 2026-12-07 14:30);
# - "clauses": each sentence, and each clause of a sentence (after a comma, semicolon or colon and white space, or
#   at a dash between spaces), each of two words or more. Friendly words run on in the harm's own sentence then no
#   longer dilute it ("great stream today, kys" is safe read by sentence). Measured, not shipped: the false-flag
#   budget refitted on clause readings raised the threshold so far that "kys." went under it (README).
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\s*\n\s*")
_CLAUSE_BREAK = re.compile(r"(?<=[,;:])\s+|\s+[-\u2013\u2014]+\s+")


class Cut(NamedTuple):
    levels: tuple[re.Pattern, ...]
    filtered: bool


CUTS = {"sentences": Cut((_SENTENCE_BREAK,), False), "clauses": Cut((_SENTENCE_BREAK, _CLAUSE_BREAK), True)}
DEFAULT_CUT = "sentences"


def says_something(part: str) -> bool:
    """Whether a part is worth reading on its own: two words or more, one of them not a group's name. A lone word
    has no context to judge ("Kill - that's the only word the parrot knows", "Her - the Spike Jonze movie"), and a
    lone group name, blinded to one token, reads as the hate that names groups most often in the training data:
    "Muslims - welcome to the neighbourhood" was flagged as hate by its first clause."""
    words = [w for w in joined_text(part).split() if w[0].isalnum()]
    return len(words) >= 2 and any(w != IDENTITY_TOKEN for w in words)


def sentences_of(texts: Sequence[str], cut: str = DEFAULT_CUT) -> tuple[np.ndarray, list[str]]:
    """(owner, part) for the parts of each text at every level of `CUTS[cut]`: its sentences when it has several,
    then the clauses of each sentence that has several, and so on (a text of one part has none; with a `filtered`
    cut, only the parts that pass `says_something`). A model that serves "sentence max"
    (`classifiers.embedded.harshest_reading`) scores these beside the texts."""
    levels, filtered = CUTS[cut]
    owner: list[int] = []
    parts: list[str] = []
    for i, text in enumerate(texts):
        level = [text]
        for pattern in levels:
            cut_level: list[str] = []
            for piece in level:
                found = [s for s in pattern.split(piece) if s.strip()]
                if len(found) > 1:
                    read = [s for s in found if says_something(s)] if filtered else found
                    owner += [i] * len(read)
                    parts += read
                cut_level += found
            level = cut_level
    return np.asarray(owner, dtype=np.int64), parts


def joined_text(text: str) -> str:
    """The words and symbols of `canonical_text(text)`, identity terms blinded (a group named in several words is
    one token), space-joined with a space each side."""
    get = _BLIND.get
    words = [get(w, w) for w in _TOKEN.findall(canonical_text(text))]
    if IDENTITY_TOKEN in words:
        words = _one_token_per_group(words)
    return " " + " ".join(words) + " "


def _one_token_per_group(words: list[str]) -> list[str]:
    out: list[str] = []
    for word in words:
        if out and out[-1] == IDENTITY_TOKEN and word in _GROUP_NOUNS:
            continue
        out.append(word)
    return out


def hash_features(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(text index, feature hash) for every feature occurrence in a batch (duplicates included)."""
    parts = [joined_text(t) for t in texts]
    lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    big = "\x00".join(parts)
    c = np.frombuffer(big.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
    owner = np.repeat(np.arange(len(parts), dtype=np.int64), lengths + 1)[: len(c)]
    with np.errstate(over="ignore"):
        ids, hashes = [], []
        several = len(parts) > 1
        h = c
        for n in range(2, max(CHAR_NGRAMS) + 1):
            if len(c) < n:
                break
            h = h[:-1] * _P + c[n - 1 :]  # the hash of each n-gram, from that of each (n-1)-gram
            if n not in CHAR_NGRAMS:
                continue
            if several:  # drop n-grams that straddle two texts
                ok = (owner[: len(h)] == owner[n - 1 :]) & (c[n - 1 :] != 0)
                ids.append(owner[: len(h)][ok])
                hashes.append(_avalanche(h[ok], _SALTS[f"c{n}"]))
            else:
                ids.append(np.zeros(len(h), dtype=np.int64))
                hashes.append(_avalanche(h, _SALTS[f"c{n}"]))

        # Words: the segments between spaces (and text separators); hashed from prefix sums.
        boundary = (c == 32) | (c == 0)
        starts = np.flatnonzero(~boundary & np.concatenate(([True], boundary[:-1])))
        ends = np.flatnonzero(~boundary & np.concatenate((boundary[1:], [True]))) + 1
        if len(starts):
            prefix = np.concatenate(([np.uint64(0)], np.cumsum(c * _powers(_P, len(c)), dtype=np.uint64)))
            inverse = _powers(_P_INV, len(c) + 1)
            words = (prefix[ends] - prefix[starts]) * inverse[starts]
            word_owner = owner[starts]
            ids.append(word_owner)
            hashes.append(_avalanche(words, _SALTS["w1"]))
            same = word_owner[:-1] == word_owner[1:]
            pairs = (prefix[ends[1:]] - prefix[starts[:-1]]) * inverse[starts[:-1]]
            ids.append(word_owner[:-1][same])
            hashes.append(_avalanche(pairs[same], _SALTS["w2"]))
    if not ids:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64)
    return np.concatenate(ids), np.concatenate(hashes)


class FeatureIndex:
    """Vocabulary lookup: an open-addressing hash table over the (already random) 64-bit feature hashes.

    One or two memory reads per feature instead of the ~18 of a binary search over the sorted vocabulary,
    which matters because every read of a multi-megabyte table misses the cache.
    """

    def __init__(self, vocabulary: np.ndarray):
        self.size = len(vocabulary)
        bits = max(4, int(np.ceil(np.log2(max(1, self.size) * 2.5))))
        self.mask = np.uint64((1 << bits) - 1)
        self.keys = np.zeros(1 << bits, dtype=np.uint64)  # 0 marks an empty slot (no feature hashes to 0)
        self.values = np.full(1 << bits, -1, dtype=np.int64)
        pending = np.arange(self.size)
        slots = vocabulary & self.mask
        while len(pending):  # insert, one probe round at a time; later rounds take the next slot
            slot = slots[pending]
            free = self.keys[slot] == 0
            first = np.zeros(len(pending), dtype=bool)
            _, first_index = np.unique(slot[free], return_index=True)
            first[np.flatnonzero(free)[first_index]] = True
            self.keys[slot[first]] = vocabulary[pending[first]]
            self.values[slot[first]] = pending[first]
            pending = pending[~first]
            slots[pending] = (slots[pending] + np.uint64(1)) & self.mask

    def lookup(self, hashes: np.ndarray) -> np.ndarray:
        """The vocabulary index of each hash, or -1."""
        out = np.full(len(hashes), -1, dtype=np.int64)
        todo = np.arange(len(hashes))
        slot = hashes & self.mask
        while len(todo):
            keys = self.keys[slot]
            hit = keys == hashes[todo]
            out[todo[hit]] = self.values[slot[hit]]
            more = ~hit & (keys != 0)
            todo, slot = todo[more], (slot[more] + np.uint64(1)) & self.mask
        return out


def feature_matrix_indices(texts: Sequence[str], index: FeatureIndex) -> tuple[np.ndarray, np.ndarray]:
    """(text index, vocabulary index) of each distinct known feature per text, sorted by text."""
    owner, hashes = hash_features(texts)
    if not index.size or not len(hashes):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    position = index.lookup(hashes)
    known = position >= 0
    keys = owner[known] * index.size + position[known]
    keys.sort()  # a plain sort and a neighbour test: numpy's unique() is several times slower here
    if len(keys):
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    return keys // index.size, keys % index.size
