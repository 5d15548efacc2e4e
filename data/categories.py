"""Harm-category targets from the shared sets' own labels (core.categories names the categories).

Each reader (data.readers) keeps the subtype scores its source carries; a category is read from one of them:

    hate           identity_attack   Davidson hate votes, Civil Comments "Identity based Attack" spans, Fox News and
                                     Stormfront hate, EDOS and Reddit misogyny (sexism is hate on gender), Gab
                                     "attack on dignity", ConvAbuse racist/sexist/homophobic abuse, OpenAI H/H2, MLMA
    harassment     insult            Civil Comments "Insult" spans, EDOS/Reddit personal attacks, ConvAbuse
                                     intellectual abuse, OpenAI HR, MLMA abusive
    violence       threat            Civil Comments "Threat" spans, EDOS/Reddit threats, Gab call for violence,
                                     OpenAI V/H2
    profanity      obscene           Civil Comments "Profane/Obscene" spans, Gab vulgarity, Jigsaw obscene
    sexual         sexual_explicit   ConvAbuse sexual harassment, OpenAI S/S3
    self_harm      self_harm         OpenAI SH (about 50 positives: thin)
    sexual_minors  sexual_minors     OpenAI S3 (a handful: too thin to learn; Stage 1 and the LLM carry it)
    drugs          (none)            no shared set labels drugs: only Stage 1's decoded terms say "drugs"

The pattern database's examples (data/dataset/algospeak_patterns.json) add texts for the categories the shared
sets barely label (drugs, self-harm, sexual): each entry's positive examples, as written and as the normalizer
decodes them, are positives of the entry's category (core.categories.STAGE1); its negative examples (the same
words in a harmless sense, written in the same casual style as the positives) are negatives of every category, so
a head cannot learn the examples' style instead of their meaning. They train, they are never held out to judge transfer.

The team's seed corpus (data.seed, source "team_seed", in data.prepare's train split) carries no scores; its
categories come from each sentence's template family instead (`seed_targets`, `SEED_FAMILY_CATEGORIES`):

    threat               violence     threats, death wishes and wishes of harm, calls to kill a group
    self_harm            self_harm    suicide intent, urging someone to kill themselves, promotion of self-harm
    sexual               sexual       explicit sexual solicitation
    dehumanisation       hate         a protected group compared to vermin or disease
    implicit_derogation  hate         derogation and exclusion of a protected group without slurs
    profanity            harassment   insults aimed at a person (some without a swear word: profanity unknown)

A harmful or extremely harmful sentence is a positive of its family's category and unknown for every other one
(a call to kill a group is hate too, but the family does not say so). A safe sentence (the look-alikes: idioms,
news, negation, counter-speech, support talk, sex education, praise of groups) was written to carry no harm of
any kind, so it is a negative of every category, as a safe text of a source that judged every harm is, except
the profanity family's mild swearing ("damn", "crap": safe by the label guide, maybe profanity by the category's
definition), which is unknown for profanity. A potentially_harmful sentence (the corpus has none) is unknown
for every category. Only data.prepare reads the seed this way; the category heads' corpus (`load_category_corpus`)
does not include the seed.

A score of at least 0.5 is a positive, exactly 0 a negative, anything between or null unknown (raters split,
or the source never asked). A text labelled safe by a source that judged every kind of harm is a negative for
every category. A single-harm source (SharedSource.single_harm: EDOS, Reddit misogyny, Fox News, Stormfront)
judged one harm only, so its zeros say nothing about other kinds: only its positives are used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from core.categories import CATEGORIES

# category -> the reader's score column it is read from (None: no shared set labels it)
SCORE_OF: dict[str, str | None] = {
    "hate": "identity_attack",
    "harassment": "insult",
    "violence": "threat",
    "self_harm": "self_harm",
    "sexual": "sexual_explicit",
    "sexual_minors": "sexual_minors",
    "drugs": None,
    "profanity": "obscene",
}
UNKNOWN = -1
PATTERN_EXAMPLES = "pattern_database_examples"
# The team seed corpus's families (data/dataset/seed_corpus.json) -> the categories its harmful sentences carry;
# `SEED_SAFE_UNKNOWN`: the categories a family's safe sentences are not negatives of (see the module docstring).
SEED_FAMILY_CATEGORIES: dict[str, tuple[str, ...]] = {
    "threat": ("violence",),
    "self_harm": ("self_harm",),
    "sexual": ("sexual",),
    "dehumanisation": ("hate",),
    "implicit_derogation": ("hate",),
    "profanity": ("harassment",),
}
SEED_SAFE_UNKNOWN: dict[str, tuple[str, ...]] = {"profanity": ("profanity",)}


@dataclass
class CategoryCorpus:
    text: list[str]
    source: np.ndarray
    key: np.ndarray  # the near-duplicate key (data.readers.dedupe_key), for splitting
    label: np.ndarray  # severity index (core.labels), the most severe of duplicate copies
    target: np.ndarray  # (n, len(CATEGORIES)) int8: 1 positive, 0 negative, -1 unknown

    def __len__(self) -> int:
        return len(self.text)

    def take(self, mask: np.ndarray) -> "CategoryCorpus":
        idx = np.flatnonzero(mask)
        return CategoryCorpus([self.text[i] for i in idx], self.source[idx], self.key[idx], self.label[idx],
                              self.target[idx])


def targets(df: pl.DataFrame, single_harm: set[str]) -> pl.DataFrame:
    """`df` (text, label, source and the score columns) with one Int8 column per category: 1, 0 or null."""
    exprs = []
    for category in CATEGORIES:
        column = SCORE_OF[category]
        if column is None:
            value = pl.lit(None, pl.Int8)
        else:
            score = pl.col(column)
            value = pl.when(score >= 0.5).then(1).when(score == 0).then(0).otherwise(None).cast(pl.Int8)
        judged_all = ~pl.col("source").is_in(list(single_harm))
        value = (
            pl.when(value == 1).then(pl.lit(1, pl.Int8))
            .when(judged_all & (pl.col("label") == "safe")).then(pl.lit(0, pl.Int8))
            .when(judged_all).then(value)
            .otherwise(pl.lit(None, pl.Int8))
        )  # fmt: skip
        exprs.append(value.alias(category))
    return df.with_columns(exprs)


def seed_targets(df: pl.DataFrame, source: str = "team_seed", family: str = "family") -> pl.DataFrame:
    """`df` with its category columns (from `targets`) replaced on the rows of `source` by what the seed family
    (column `family`) and label say: 1 for the family's categories on a harmful or extremely harmful sentence,
    0 on a safe one (null for `SEED_SAFE_UNKNOWN`), null otherwise. Other rows are unchanged."""
    def among(families: list[str]) -> pl.Expr:
        return pl.col(family).is_in(families) if families else pl.lit(False)

    is_seed = pl.col("source") == source
    harmful = pl.col("label").is_in(["harmful", "extremely_harmful"])
    exprs = []
    for category in CATEGORIES:
        positive = among([f for f, cats in SEED_FAMILY_CATEGORIES.items() if category in cats])
        safe_unknown = among([f for f, cats in SEED_SAFE_UNKNOWN.items() if category in cats])
        value = (
            pl.when(harmful & positive).then(pl.lit(1, pl.Int8))
            .when((pl.col("label") == "safe") & ~safe_unknown).then(pl.lit(0, pl.Int8))
            .otherwise(pl.lit(None, pl.Int8))
        )  # fmt: skip
        exprs.append(pl.when(is_seed).then(value).otherwise(pl.col(category)).alias(category))
    return df.with_columns(exprs)


def pattern_examples(db_path: Path | None = None) -> pl.DataFrame:
    """text, label, source and one Int8 column per category from the pattern database's examples."""
    from core.categories import stage1_category
    from normalizer import Normalizer, load_database
    from normalizer.database import DEFAULT_PATTERN_DB

    database = load_database(db_path or DEFAULT_PATTERN_DB)
    normalizer = Normalizer(database)
    rows: list[dict] = []
    for entry in database.entries:
        category = stage1_category(entry.category)
        if category is None:
            continue
        for examples, value in ((entry.positive, 1), (entry.negative, 0)):
            for text in examples:
                for form in dict.fromkeys((text, normalizer.normalize(text).text)):
                    # a positive is one of its entry's category (it may be others too: unknown); a negative
                    # is the words used harmlessly, so a negative of every category
                    rows.append({"text": form, "label": "harmful" if value else "safe", "source": PATTERN_EXAMPLES,
                                 **{c: (1 if c == category else None) if value else 0 for c in CATEGORIES}})
    schema = {"text": pl.String, "label": pl.String, "source": pl.String, **{c: pl.Int8 for c in CATEGORIES}}
    return pl.DataFrame(rows, schema=schema)


def load_category_corpus(shared_root: Path, *, sources=None, extra_safe: list[str] | None = None,
                         extra_source: str = "extra_safe", pattern_db: Path | None | bool = None) -> CategoryCorpus:
    """Every shared text with its category targets, near-duplicates merged (a category is positive when any
    copy is, negative when no copy is positive and one is negative). `extra_safe`: more safe texts (negatives for
    every category) under the source name `extra_source`. `pattern_db`: the database whose examples join (None: the
default one; False: none)."""
    from core.labels import SEVERITY
    from data.readers import SINGLE_HARM_SOURCES, clean_text, dedupe_key, load_shared_sources

    df = targets(load_shared_sources(shared_root, sources=sources, with_scores=True), SINGLE_HARM_SOURCES)
    df = df.select("text", "label", "source", *CATEGORIES)
    if extra_safe:
        extra = pl.DataFrame({"text": extra_safe, "label": ["safe"] * len(extra_safe),
                              "source": [extra_source] * len(extra_safe)})
        extra = extra.with_columns(clean_text(pl.col("text")), *[pl.lit(0, pl.Int8).alias(c) for c in CATEGORIES])
        df = pl.concat([df, extra])
    if pattern_db is not False:
        df = pl.concat([df, pattern_examples(pattern_db or None).with_columns(clean_text(pl.col("text")))])
    df = (
        df.with_columns(dedupe_key(pl.col("text")).alias("key"),
                        pl.col("label").replace_strict(SEVERITY).alias("sev"))
        .filter(pl.col("key").str.len_chars() > 0)
        .sort("sev", descending=True, maintain_order=True)  # stable: the first of equally severe copies, every run
        .group_by("key", maintain_order=True)
        .agg(pl.col("text").first(), pl.col("source").first(), pl.col("sev").first(), *[pl.col(c).max() for c in CATEGORIES])
        .sort("source", "key")
    )
    target = np.column_stack([df[c].fill_null(UNKNOWN).to_numpy().astype(np.int8) for c in CATEGORIES])
    return CategoryCorpus(df["text"].to_list(), np.array(df["source"].to_list()), np.array(df["key"].to_list(), dtype=object),
                          df["sev"].to_numpy().astype(np.int64), target)


def counts(corpus: CategoryCorpus) -> dict[str, dict[str, dict[str, int]]]:
    """category -> source -> {positive, negative} counts (the table the model card shows)."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for j, category in enumerate(CATEGORIES):
        per: dict[str, dict[str, int]] = {}
        for source in np.unique(corpus.source):
            t = corpus.target[corpus.source == source, j]
            pos, neg = int((t == 1).sum()), int((t == 0).sum())
            if pos or neg:
                per[str(source)] = {"positive": pos, "negative": neg}
        out[category] = per
    return out
