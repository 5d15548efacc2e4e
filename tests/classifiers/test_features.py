"""The embedded model's features blind identity terms (what is said about a group decides, not which group) and read
through disguises that change how a word looks, not what it says."""

import numpy as np
import pytest

from classifiers.embedded import EmbeddedClassifier
from classifiers.features import IDENTITY_TERMS, IDENTITY_TOKEN, NEGATED, canonical_text, joined_text
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


@pytest.mark.parametrize("disguised, plain", [
    ("Gay p-e-o-p-l-e are vermin.", "gay people are vermin."),      # spelled out, one separator
    ("see you t.o.n.i.g.h.t", "see you tonight"),
    ("C h r i s t i a n s are", "christians are"),
    ("cutting a_g_a_i_n", "cutting again"),
    ("Hope someone puts a bull\u0435t in you", "hope someone puts a bullet in you"),  # Cyrillic e
    ("\U0001d424\U0001d422\U0001d425\U0001d425 them", "kill them"),                 # mathematical bold
    ("Thaaaanks sooooo much", "thaanks soo much"),                   # held letters: two are left
])
def test_disguises_that_keep_the_words_are_read_through(disguised, plain):
    assert canonical_text(disguised) == plain


@pytest.mark.parametrize("text", [
    "the price went from 1000 to 2000",   # digits are never shortened
    "well-to-do people e-mail me",        # hyphenated words are words, not letters spelled out
    "J. R. R. Tolkien",                   # initials with ". " are not one word
    "Привет, как дела",                   # a Russian sentence keeps its letters
    "good coffee, all well",              # a doubled letter stays doubled
])
def test_ordinary_text_is_only_lower_cased(text):
    assert canonical_text(text) == text.lower()


def test_the_shipped_model_scores_a_disguised_sentence_as_its_plain_one(model):
    for disguised, plain in [("see you t.o.n.i.g.h.t", "see you tonight"),
                             ("Gay p-e-o-p-l-e are vermin.", "Gay people are vermin."),
                             ("Hope someone puts a bull\u0435t in you", "Hope someone puts a bullet in you")]:
        assert model.classify([disguised])[0] == pytest.approx(model.classify([plain])[0], abs=1e-9)


def test_words_in_a_negations_scope_are_marked_up_to_punctuation_or_but():
    n = NEGATED
    assert joined_text("I would never say that women are inferior.") == \
        f" i would never {n}say {n}that {n}{IDENTITY_TOKEN} {n}are {n}inferior . "
    assert joined_text("I can't stand it, but ok") == f" i can ' t {n}stand {n}it , but ok "
    assert joined_text("you are not welcome here but stay") == f" you are not {n}welcome {n}here but stay "
    assert joined_text("women are inferior") == f" {IDENTITY_TOKEN} are inferior "  # no cue, nothing marked
    assert joined_text("it's fine") == " it ' s fine "  # an apostrophe alone is no cue


def test_the_shipped_model_does_not_flag_a_denial_more_than_the_statement_it_denies(model):
    def harmful_or_worse(text: str) -> float:
        p = model.classify([text])[0]
        return p["harmful"] + p["extremely_harmful"]

    assert harmful_or_worse("I would never say that women are inferior.") < harmful_or_worse("Women are inferior.")
