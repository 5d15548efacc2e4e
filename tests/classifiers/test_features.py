"""The embedded model's features blind identity terms (what is said about a group decides, not which group) and read
through disguises that change how a word looks, not what it says."""

import numpy as np
import pytest

from classifiers.embedded import EmbeddedClassifier
from classifiers.features import IDENTITY_TERMS, IDENTITY_TOKEN, canonical_text, joined_text
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


@pytest.mark.parametrize("text", [
    "a" * 19_998 + " \u00e9",  # a long run beside a non-ASCII piece: was quadratic, 2 s
    "\u00e9 " + "!" * 19_998,
    "\ufdfa" * 20_000,  # one character that decomposes into 18: left as written, not blown up
    "k\u0456ll " * 4_000,
])
def test_the_canonical_reading_of_a_20k_character_text_is_cheap(text):
    import time

    started = time.perf_counter()
    joined_text(text)
    assert time.perf_counter() - started < 0.5  # about 0.01 s each on the 2-core machine


def test_sentences_of_splits_only_texts_of_several_sentences():
    from classifiers.features import sentences_of

    owner, parts = sentences_of(["One line only", "Hi there. I will stab you.  Bye!", "Why? Because.",
                                 "first line\n\nsecond line", "3.5 stars, fine", ""], "sentences")
    assert owner.tolist() == [1, 1, 1, 2, 2, 3, 3]
    assert parts == ["Hi there.", "I will stab you.", "Bye!", "Why?", "Because.", "first line", "second line"]


def test_clauses_are_read_as_well_as_sentences_cut_at_commas_semicolons_colons_and_spaced_dashes():
    from classifiers.features import sentences_of

    owner, parts = sentences_of(["great stream today, now go kill yourself", "3.5 stars,fine", "well-known",
                                 "one two; two three: three \u2014 four four - five five", "Hi. You, there, ok",
                                 "kill yourself. Hi there", "Muslims - welcome to the neighbourhood",
                                 "Gay people, welcome!", "Black women, Muslim communities, all welcome here"],
                                "clauses")
    assert owner.tolist() == [0, 0, 3, 3, 3, 3, 4, 5, 5, 6, 8]
    # each sentence, then each clause of one of several; a part of one word, or only a group's name, is not read
    # alone ("three", "Hi.", "You,", "Muslims", "Gay people,", "Black women,")
    assert parts == ["great stream today,", "now go kill yourself", "one two;", "two three:", "four four",
                     "five five", "You, there, ok", "kill yourself.", "Hi there", "welcome to the neighbourhood",
                     "all welcome here"]
