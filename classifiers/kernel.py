"""The embedded classifier's serving kernel: features, vocabulary lookup and the linear model in one pass.

`classifiers.features` defines the features (and training builds its matrices from it). This module computes
the same features with numba, one text at a time, and never materialises them: each n-gram's hash is probed
in the vocabulary table as it is made, the known ones are deduplicated, and their weights summed into the
logits. Serving a batch costs one tokenisation per text in Python and one compiled loop; the numpy path makes
a dozen passes over arrays of every feature occurrence in the batch. Tests hold the two to the same logits.

The vocabulary table is `FeatureIndex`'s open-addressing layout with each feature's hash, weights and IDF side
by side in one 32-byte record, so a probe reads one cache line: the table is larger than the core's L2 cache,
and memory reads, not arithmetic, are what this loop waits on.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
from numba import njit

from classifiers.features import _MIX, _P, _SALTS, CHAR_NGRAMS, FeatureIndex, joined_text

if CHAR_NGRAMS != (3, 4, 5):  # the loop below is written for these three
    raise ImportError(f"classifiers.kernel computes character 3-5-grams; features.py asks for {CHAR_NGRAMS}")

_EMPTY = np.uint64(0)


def vocabulary_table(index: FeatureIndex, weights: np.ndarray, idf2: np.ndarray) -> np.ndarray:
    """One record per slot of `index`'s open-addressing table: the feature hash (0 when empty) as uint64, then
    as float32 the feature's weight for each output and its squared IDF. 32 bytes for up to 5 outputs (the
    severity model), 64 for up to 13 (severity and category heads): a probe that hits reads everything the
    feature contributes from one cache line (the table starts on a 64-byte boundary)."""
    outputs = weights.shape[1]
    if outputs > 13:
        raise ValueError("a 64-byte record holds at most 13 outputs' weights")
    words = 4 if outputs <= 5 else 8
    raw = np.zeros(len(index.keys) * words + 8, dtype=np.uint64)
    skip = (-raw.ctypes.data % 64) // 8  # start the first record on a cache-line boundary
    table = raw[skip : skip + len(index.keys) * words].reshape(len(index.keys), words)
    table[:, 0] = index.keys
    floats = table.view(np.float32)  # (slots, 2 * words): [key, key, w0 .. w(outputs-1), idf2, pad]
    used = index.values >= 0
    floats[used, 2 : 2 + weights.shape[1]] = weights[index.values[used]]
    floats[used, 2 + weights.shape[1]] = idf2[index.values[used]]
    return table


@njit(cache=True, inline="always")
def _avalanche(h, salt, mix):
    h = (h ^ salt) * mix
    return h ^ (h >> np.uint64(29))


@njit(cache=True, inline="always")
def _find(table, mask, h):
    """The slot holding feature hash `h`, or -1."""
    slot = h & mask
    while True:
        key = table[slot, 0]
        if key == h:
            return np.int64(slot)
        if key == 0:
            return np.int64(-1)
        slot = (slot + np.uint64(1)) & mask


@njit(cache=True, inline="always")
def _add(slot, mark, seen, floats, n_labels, sums):
    """Count the feature in `slot` for the text marked `mark`, once (features are binary); returns its squared
    IDF, or 0 when the slot is empty or already counted."""
    if slot < 0 or seen[slot] == mark:
        return 0.0
    seen[slot] = mark
    for c in range(n_labels):
        sums[c] += floats[slot, 2 + c]
    return floats[slot, 2 + n_labels]


@njit(cache=True)
def _logits(codes, offsets, table, floats, n_labels, mask, intercept, p, mix, salts, seen, base):
    n_texts = len(offsets) - 1
    out = np.empty((n_texts, n_labels), dtype=np.float64)
    sums = np.zeros(n_labels, dtype=np.float64)
    s_w1, s_w2, s_c3, s_c4, s_c5 = salts[0], salts[1], salts[2], salts[3], salts[4]
    for t in range(n_texts):
        lo, hi = offsets[t], offsets[t + 1]
        mark = base + t + 1
        sums[:] = 0.0
        norm = 0.0
        # Character 3-, 4- and 5-grams ending at each position (Horner hashes, as features.py builds them).
        for i in range(lo, hi):
            for n in range(3, 6):
                start = i - n + 1
                if start < lo:
                    break
                h = codes[start]
                for j in range(start + 1, i + 1):
                    h = h * p + codes[j]
                salt = s_c3 if n == 3 else (s_c4 if n == 4 else s_c5)
                norm += _add(_find(table, mask, _avalanche(h, salt, mix)), mark, seen, floats, n_labels, sums)
        # Words (segments between spaces) and pairs of neighbouring words: sum of c[j] * p**(j - start).
        prev_start = -1
        i = lo
        while i < hi:
            if codes[i] == 32:
                i += 1
                continue
            start = i
            h = np.uint64(0)
            power = np.uint64(1)
            while i < hi and codes[i] != 32:
                h += codes[i] * power
                power *= p
                i += 1
            norm += _add(_find(table, mask, _avalanche(h, s_w1, mix)), mark, seen, floats, n_labels, sums)
            if prev_start >= 0:
                h = np.uint64(0)
                power = np.uint64(1)
                for j in range(prev_start, i):
                    h += codes[j] * power
                    power *= p
                norm += _add(_find(table, mask, _avalanche(h, s_w2, mix)), mark, seen, floats, n_labels, sums)
            prev_start = start
        # IDF-weighted, L2-normalised: the weights already carry the IDF; divide by the norm of the IDFs.
        scale = 1.0 / np.sqrt(norm) if norm > 0 else 0.0
        for c in range(n_labels):
            out[t, c] = intercept[c] + sums[c] * scale
    return out


_SALT_ARRAY = np.array([_SALTS[name] for name in ("w1", "w2", "c3", "c4", "c5")], dtype=np.uint64)


class Scorer:
    """The compiled scoring of one model: `Scorer(index, weights, idf2, intercept).logits(texts)`.

    Thread-safe. It keeps one "seen" mark per table slot between calls (clearing 2 MB per call would cost
    more than scoring a short batch); each text gets a fresh mark, and the marks restart from zero before
    they would overflow.
    """

    def __init__(self, index: FeatureIndex, weights: np.ndarray, idf2: np.ndarray, intercept: np.ndarray):
        self.table = vocabulary_table(index, weights, idf2)
        self.floats = self.table.view(np.float32)
        self.mask = index.mask
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self._seen = np.zeros(len(self.table), dtype=np.int32)
        self._base = 0
        self._lock = threading.Lock()
        self.logits([""])  # compile (or load the compiled kernel from numba's cache) now, not on a request

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), n_labels) float64 logits; the same as the numpy path in `EmbeddedClassifier`."""
        parts = [joined_text(t) for t in texts]
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, parts), dtype=np.int64, count=len(parts)), out=offsets[1:])
        codes = np.frombuffer("".join(parts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        codes = codes.astype(np.uint64)
        with self._lock:
            if self._base + len(parts) >= 2**31 - 1:
                self._seen[:] = 0
                self._base = 0
            base = self._base
            self._base += len(parts)
            return _logits(codes, offsets, self.table, self.floats, len(self.intercept), self.mask,
                           self.intercept, _P, _MIX, _SALT_ARRAY, self._seen, base)
