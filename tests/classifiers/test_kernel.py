"""The compiled scoring kernel must give the logits the numpy feature definitions give, text by text."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classifiers.embedded import EmbeddedClassifier
from core.settings import DEFAULT_EMBEDDED_MODEL


@pytest.fixture(scope="module")
def model() -> EmbeddedClassifier:
    return EmbeddedClassifier(DEFAULT_EMBEDDED_MODEL)


EDGE_CASES = [
    "", " ", "a", "ab", "abc", "k1ll", "unalive yourself", "💀💀💀", "s.u.i.c.i.d.e", "sеggs",  # Cyrillic е
    "I killed it at work today!!", "ПРИВЕТ мир", "日本語のテキスト", "a" * 3000, "word " * 400, "x_y_z", "\u200bhi",
]


def test_kernel_matches_numpy_definition(model):
    texts = EDGE_CASES + ["go unalive urself", "you are a great person", "i will find you and hurt you"] * 3
    np.testing.assert_allclose(model.logits(texts), model.reference_logits(texts), rtol=0, atol=1e-5)


def test_batch_equals_one_by_one(model):
    """A feature counted for one text must still count for the next (binary features are per text)."""
    texts = ["kill them all", "kill them all", "you should unalive", "kill", "", "kill them all"]
    together = model.logits(texts)
    alone = np.vstack([model.logits([t]) for t in texts])
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-12)
    assert not np.allclose(together[0], together[4])  # an empty text gets the intercept only


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=80), min_size=1, max_size=8))
def test_kernel_matches_numpy_on_any_text(model, texts):
    np.testing.assert_allclose(model.logits(texts), model.reference_logits(texts), rtol=0, atol=1e-5)


def test_marks_restart_before_overflow(model):
    scorer = model._scorer
    saved = scorer._base
    scorer._base = 2**31 - 3  # the next batch of 4 would overflow the int32 marks
    try:
        texts = ["kill them all", "kill them all", "hello there", "hello there"]
        np.testing.assert_allclose(model.logits(texts), model.reference_logits(texts), rtol=0, atol=1e-5)
        assert scorer._base == 4
    finally:
        scorer._base = max(saved, scorer._base)
