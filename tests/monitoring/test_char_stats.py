"""char_stats: the character-class counts drift detection compares, checked against a plain definition."""

import string

from hypothesis import given
from hypothesis import strategies as st

from monitoring.features import char_stats


def reference(text: str) -> dict[str, int]:
    n = len(text)
    alpha = sum(c.isalpha() for c in text)
    digit = sum(c.isdigit() for c in text)
    space = sum(c.isspace() for c in text)
    punct = sum(c in string.punctuation for c in text)
    return {"length": n, "alpha": alpha, "digit": digit, "upper": sum(c.isupper() for c in text), "space": space,
            "punct": punct, "other": n - alpha - digit - space - punct, "non_ascii": sum(not c.isascii() for c in text)}


def test_hand_counted():
    # "Ⅷ" (Roman numeral eight) is upper case but not a letter: counted in upper and in other
    assert char_stats("Go K1LL, Ⅷ 😂!") == {"length": 13, "alpha": 5, "digit": 1, "upper": 5, "space": 3,
                                            "punct": 2, "other": 2, "non_ascii": 2}
    assert char_stats("") == {"length": 0, "alpha": 0, "digit": 0, "upper": 0, "space": 0, "punct": 0,
                              "other": 0, "non_ascii": 0}


@given(st.text(max_size=200))
def test_matches_the_plain_definition(text):
    assert char_stats(text) == reference(text)
