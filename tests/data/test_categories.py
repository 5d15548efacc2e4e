"""Harm-category targets read from the shared sets' labels: unknown is never taken for "no"."""

from __future__ import annotations

import polars as pl

from core.categories import CATEGORIES, EXTERNAL, STAGE1, stage1_category
from data.categories import PATTERN_EXAMPLES, SCORE_OF, pattern_examples, targets
from data.readers import SCORE_COLUMNS


def _frame(rows: list[dict]) -> pl.DataFrame:
    base = {"text": "t", "label": "harmful", "source": "all_harms", **{c: None for c in SCORE_COLUMNS}}
    return pl.DataFrame([base | r for r in rows], schema_overrides={c: pl.Float32 for c in SCORE_COLUMNS})


def test_scores_become_positive_negative_or_unknown():
    df = targets(_frame([
        {"threat": 1.0, "insult": 0.0, "identity_attack": 0.3},  # raters split on hate: unknown
        {"label": "safe"},  # a source that judged every harm calls it safe: negative for every category
    ]), single_harm=set())
    first, safe = df.row(0, named=True), df.row(1, named=True)
    assert (first["violence"], first["harassment"], first["hate"], first["sexual"]) == (1, 0, None, None)
    assert all(safe[c] == 0 for c in CATEGORIES)


def test_a_single_harm_sources_zeros_say_nothing():
    df = targets(_frame([
        {"source": "sexism_only", "identity_attack": 1.0, "threat": 0.0},
        {"source": "sexism_only", "label": "safe", "identity_attack": 0.0},
    ]), single_harm={"sexism_only"})
    sexist, not_sexist = df.row(0, named=True), df.row(1, named=True)
    assert sexist["hate"] == 1 and sexist["violence"] is None  # "not a sexist threat" is not "not a threat"
    assert all(not_sexist[c] is None for c in CATEGORIES)  # may still be racist, threatening, ...


def test_every_category_is_mapped_and_documented():
    assert set(SCORE_OF) == set(CATEGORIES) == set(EXTERNAL)
    assert {c for c in SCORE_OF.values() if c} <= set(SCORE_COLUMNS)
    assert set(STAGE1.values()) - {None} <= set(CATEGORIES)
    assert stage1_category("weapons") == "violence" and stage1_category("scam") is None
    assert stage1_category("no such category") is None


def test_pattern_examples_teach_the_thin_categories_in_both_readings():
    df = pattern_examples()
    assert set(df["source"]) == {PATTERN_EXAMPLES}
    self_harm = df.filter(pl.col("self_harm") == 1)["text"].to_list()
    # the coded form as written and the form the normalizer decodes it to
    assert "some days i just want to unalive myself" in self_harm
    assert "some days i just want to kill myself" in self_harm
    assert df.filter(pl.col("drugs") == 1).height > 100  # no shared set labels drugs at all
    # a negative example (the words used harmlessly) is a negative of every category; a positive is unknown for
    # the categories other than its entry's
    negative = df.filter(pl.col("label") == "safe").row(0, named=True)
    assert all(negative[c] == 0 for c in CATEGORIES)
    positive = df.filter(pl.col("self_harm") == 1).row(0, named=True)
    assert sum(positive[c] is not None for c in CATEGORIES) == 1
