"""The embedded model's features blind identity terms: what is said about a group decides, not which group."""

import numpy as np
import pytest

from classifiers.embedded import EmbeddedClassifier
from classifiers.features import IDENTITY_TERMS, IDENTITY_TOKEN, joined_text
from core.settings import DEFAULT_EMBEDDED_MODEL

FRAMES = [
    "{} are my neighbours and I like them",
    "{} are vermin and should be driven out",
    "I can't stand {}",
    "my teacher said {} have a long history here",
]
GROUPS = ["women", "Muslims", "Jews", "gay", "trans", "Black", "immigrants", "Asians", "Christians", "disabled",
          "gay people", "Black women", "disabled folks", "Muslim communities"]


@pytest.fixture(scope="module")
def model() -> EmbeddedClassifier:
    return EmbeddedClassifier(DEFAULT_EMBEDDED_MODEL)


def test_identity_words_become_one_token_and_other_words_stay():
    assert joined_text("Trans people are GREAT, women_rights!") == f" {IDENTITY_TOKEN} are great , {IDENTITY_TOKEN} rights ! "
    # A group named in several words is one token, like a group named in one.
    assert joined_text("Black women and the Muslim community") == f" {IDENTITY_TOKEN} and the {IDENTITY_TOKEN} "
    assert joined_text("the blind man, people") == f" the {IDENTITY_TOKEN} man , people "  # "man" is not a group noun
    assert joined_text("blackboard womens mankind") == " blackboard womens mankind "  # whole words only
    assert {"women", "muslims", "jews", "gay", "immigrants", "disabled"} <= IDENTITY_TERMS


@pytest.mark.parametrize("frame", FRAMES)
def test_the_shipped_model_scores_a_sentence_the_same_whichever_group_it_names(model, frame):
    probs = [model.classify([frame.format(group)])[0] for group in GROUPS]
    for p in probs[1:]:
        assert p == pytest.approx(probs[0], abs=1e-9)


def test_slurs_are_not_blinded_so_a_slur_still_scores_worse_than_the_group_name(model):
    def harmful_or_worse(text: str) -> float:
        p = model.classify([text])[0]
        return p["harmful"] + p["extremely_harmful"]

    assert harmful_or_worse("shut up, faggot") > harmful_or_worse("shut up, gay")
    assert not np.isclose(harmful_or_worse("you filthy kike"), harmful_or_worse("you filthy jew"))
