"""Augmentation: the reverse pattern database, the generic techniques, tags and determinism."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data.augment import HOMOGLYPHS, LEET, Augmenter, homoglyph, leetspeak, repetition, reverse_index, spacing
from normalizer import Normalizer, load_database

CYRILLIC = set(HOMOGLYPHS.values())


@pytest.fixture
def db(pattern_db_path):
    return load_database(pattern_db_path)


def test_reverse_index_uses_rewrite_entries_only(db):
    index = reverse_index(db)
    assert {plain: [c.form for c in codings] for plain, codings in index.items()} == {
        "kill": ["unalive"],
        "killed": ["unalived"],  # the per-form override, reversed
        "suicide": ["sewer slide"],
    }  # the annotate-only entry ("zzhate") and the safe context ("kill time") are not used
    assert index["suicide"][0].technique == "phonetic_respelling"


def test_database_variant_replaces_the_plain_word_and_is_tagged(db):
    [variant] = Augmenter.from_database(db, seed=1).variants("They killed him.", parent_id="a", n=1)
    assert variant.text == "They unalived him."
    assert variant.techniques == ("euphemism",)
    assert variant.pattern_ids == ("violence.unalive",)


def test_database_variant_keeps_capitalisation(db):
    [variant] = Augmenter.from_database(db, seed=1).variants("KILL them all", parent_id="a", n=1)
    assert variant.text == "UNALIVE them all"


@pytest.mark.parametrize("word", ["kill", "hate", "stupid", "Idiot"])
def test_generic_techniques_change_the_word_in_their_own_way(word):
    rng = random.Random(0)
    leet = leetspeak(word, rng)
    assert leet != word and len(leet) == len(word)
    assert all(a == b or LEET.get(a.lower()) == b for a, b in zip(word, leet))
    spaced = spacing(word, rng)
    assert spaced[1] in " .-_" and spaced.replace(spaced[1], "") == word
    stretched = repetition(word, rng)
    assert len(word) + 2 <= len(stretched) <= len(word) + 4
    glyphs = homoglyph(word, rng)
    assert glyphs is None or (
        CYRILLIC & set(glyphs.lower())
        and all(a == b or HOMOGLYPHS[a.lower()] == b.lower() for a, b in zip(word, glyphs))
    )


def test_homoglyphs_keep_the_case():
    out = homoglyph("CAPS", random.Random(1))
    assert out != "CAPS" and out.isupper()
    assert all(a == b or HOMOGLYPHS[a.lower()].upper() == b for a, b in zip("CAPS", out))


def test_techniques_that_cannot_apply_say_so():
    rng = random.Random(0)
    assert leetspeak("muh", rng) is None  # no letter with a digit look-alike
    assert homoglyph("thumb", rng) is None  # no letter with a Cyrillic look-alike
    assert spacing("a", rng) is None


def test_variants_are_deterministic_and_independent_of_order(db):
    texts = [f"I will kill you {i}" for i in range(20)] + ["You stupid idiot", "go die in a fire"]
    first = Augmenter.from_database(db, seed=7)
    forward = {t: first.variants(t, parent_id=t, n=3) for t in texts}
    backward = {t: Augmenter.from_database(db, seed=7).variants(t, parent_id=t, n=3) for t in reversed(texts)}
    assert forward == backward
    other_seed = {t: Augmenter.from_database(db, seed=8).variants(t, parent_id=t, n=3) for t in texts}
    assert other_seed != forward


def test_variants_differ_from_the_text_and_each_other(db):
    variants = Augmenter.from_database(db, seed=3).variants("You are a stupid idiot", parent_id="p", n=4)
    texts = [v.text for v in variants]
    assert len(texts) == 4 and len(set(texts)) == 4 and "You are a stupid idiot" not in texts
    assert all(
        v.techniques and set(v.techniques) <= {"leetspeak", "spacing", "repetition", "homoglyph"}
        for v in variants
    )


def test_generic_only_when_no_database(db):
    variants = Augmenter.from_database(None, seed=3).variants("I will kill you", parent_id="p", n=2)
    assert variants and all(not v.pattern_ids and "euphemism" not in v.techniques for v in variants)


def test_unknown_technique_is_refused():
    with pytest.raises(ValueError, match="unknown technique"):
        Augmenter({}, techniques=("leetspeak", "pig_latin"))


def test_stage_one_decodes_the_variants_back(db):
    """What augmentation encodes, the normalizer (Stage 1, same database) decodes: the variants are the
    algospeak the product is built to read, not noise."""
    normalizer = Normalizer(db)
    augmenter = Augmenter.from_database(db, seed=5)
    variants = [v for i in range(10) for v in augmenter.variants("they will kill him", parent_id=str(i), n=3)]
    assert {t for v in variants for t in v.techniques} >= {
        "euphemism",
        "leetspeak",
        "spacing",
        "repetition",
        "homoglyph",
    }
    for variant in variants:
        assert normalizer.normalize(variant.text).text == "they will kill him", variant


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60), st.integers(0, 3)
)
def test_any_text_gives_distinct_changed_variants(text, n):
    variants = Augmenter({}, seed=1).variants(text, parent_id="p", n=n)
    assert len(variants) <= n
    assert len({v.text for v in variants}) == len(variants)
    assert all(v.text != text and v.techniques for v in variants)


def test_multi_word_phrases_are_found_when_only_spaces_separate_them():
    from data.augment import Coding

    augmenter = Augmenter(
        {
            "kill myself": [Coding("kms", "abbreviation", "self_harm.kms")],
            "kill": [Coding("unalive", "euphemism", "v.u")],
        }
    )
    assert augmenter.find_plain("I want to KILL   myself now") == [(10, 23, "kill myself")]
    assert augmenter.find_plain("kill, myself") == [(0, 4, "kill")]
    [variant] = augmenter.variants("I want to kill myself", parent_id="p", n=1)
    assert variant.text == "I want to kms" and variant.pattern_ids == ("self_harm.kms",)
