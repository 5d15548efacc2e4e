"""Text features of the embedded classifier, shared by training and serving so they cannot drift apart.

Word unigrams and bigrams, and character 3-5-grams within words (padded by a space): character n-grams carry
misspellings and partial words that word features miss. Features are binary (present or not), weighted by
inverse document frequency and L2-normalised: the classic, strong linear text-classification recipe.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[^\W_]+|[^\w\s]")  # words, and each symbol or emoji on its own
CHAR_NGRAMS = (3, 4, 5)


def extract(text: str) -> set[str]:
    """The set of feature strings of one text."""
    tokens = _TOKEN.findall(text.lower())
    feats = {"w " + t for t in tokens}
    feats.update("b " + a + " " + b for a, b in zip(tokens, tokens[1:]))
    for word in tokens:
        if len(word) < 2:
            continue
        padded = " " + word + " "
        size = len(padded)
        for n in CHAR_NGRAMS:
            if n > size:
                break
            feats.update(padded[i : i + n] for i in range(size - n + 1))
    return feats
