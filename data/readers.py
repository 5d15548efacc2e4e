"""Readers for the labelled data sets: each maps one source's own labels onto `core.labels.LABELS`.

Every reader returns a polars LazyFrame with the standard columns (`STANDARD_SCHEMA`):

    text        the cleaned text (HTML entities decoded, @handles -> @user, links -> URL, whitespace collapsed)
    label       one of LABELS
    source      the source name (e.g. "jigsaw_unintended_bias")
    source_id   the row's id in its source, for tracing a record back
    toxicity, severe_toxicity, obscene, identity_attack, insult, threat, sexual_explicit, self_harm, sexual_minors
                subtype scores in [0, 1] where the source has them, else null (unknown, not 0); the harm
                categories (`data.categories`) are read from them
    problem     null for a good row; otherwise why it is unusable ("record 12, column 'target': not a number: 'x'")

Bad input never turns silently into a wrong dataset: a missing column, an empty file, a malformed CSV row or a
JSON line that does not parse raises `DataError` naming the file (and the record or line, and column, where
known) at read time; a value that does not parse is carried in `problem` so the caller chooses:
`check_problems(..., on_bad_rows="error")` raises on the first one, "skip" drops and counts them. Rows a mapping
deliberately leaves out (Stormfront idk/skip, MLMA mixed normal + toxic, OpenAI texts with no positive and some
unknown flag, Reddit image posts) are dropped by the reader, as its docstring says.

`SHARED_SOURCES` lists the 13 sets in ../shared/data with their files, licence, domain and whether their
annotators judged a single harm only. The simple entry point for training code:

    from data.readers import load_shared_sources
    df = load_shared_sources()          # text, label, source from all 13 sets in ../shared/data
    df = load_shared_sources(sources=["davidson", "convabuse"])
"""

from __future__ import annotations

import csv
import gzip
import html
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from core.labels import LABELS, SEVERITY
from core.settings import ROOT

DEFAULT_SHARED_ROOT = ROOT.parent / "shared" / "data"

SCORE_COLUMNS: tuple[str, ...] = (
    "toxicity",
    "severe_toxicity",
    "obscene",
    "identity_attack",
    "insult",
    "threat",
    "sexual_explicit",
    "self_harm",
    "sexual_minors",
)
STANDARD_SCHEMA: dict[str, pl.DataType] = {
    "text": pl.String(),
    "label": pl.String(),
    "source": pl.String(),
    "source_id": pl.String(),
    **{name: pl.Float32() for name in SCORE_COLUMNS},
    "problem": pl.String(),
}

# The real Jigsaw Unintended Bias `train.csv` header, in file order.
JIGSAW_UB_COLUMNS: tuple[str, ...] = (
    "id", "target", "comment_text", "severe_toxicity", "obscene", "identity_attack", "insult", "threat",
    "asian", "atheist", "bisexual", "black", "buddhist", "christian", "female", "heterosexual", "hindu",
    "homosexual_gay_or_lesbian", "intellectual_or_learning_disability", "jewish", "latino", "male", "muslim",
    "other_disability", "other_gender", "other_race_or_ethnicity", "other_religion", "other_sexual_orientation",
    "physical_disability", "psychiatric_or_mental_illness", "transgender", "white", "created_date",
    "publication_id", "parent_id", "article_id", "rating", "funny", "wow", "sad", "likes", "disagree",
    "sexual_explicit", "identity_annotator_count", "toxicity_annotator_count",
)  # fmt: skip
JIGSAW_UB_SCORES: tuple[str, ...] = (
    "severe_toxicity", "obscene", "identity_attack", "insult", "threat", "sexual_explicit",
)  # fmt: skip

OnBadRows = Literal["error", "skip"]


class DataError(ValueError):
    """Input that cannot be read correctly. The message names the file, and the record and column where known.

    Records are counted from 1 after the header; a record can span several lines (quoted newlines).
    """

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


# --------------------------------------------------------------------------------------------- text cleaning

_URL = r"(?i)\b(?:https?://|www\.)\S+"
_MENTION = r"@\w+"
_SPACE = r"[\s\p{Cc}\p{Z}\u200b]"
# Punctuation the dedupe key ignores: ASCII and the common typographic marks (a literal set: an
# Aho-Corasick pass is several times faster than a Unicode class regex on millions of rows).
_PUNCTUATION = [
    *"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "\u201c",
    "\u201d",
    "\u2018",
    "\u2019",
    "\u2026",
    "\u2013",
    "\u2014",
    "\u00ab",
    "\u00bb",
    "\u00bf",
    "\u00a1",
]


def clean_text(text: pl.Expr) -> pl.Expr:
    """The text as the project trains on it: common HTML entities decoded, @handles anonymised to @user,
    links replaced by URL (as OLID already is), control characters and whitespace runs made one space."""
    return (
        text.str.replace_many(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&#039;"], ["&", "<", ">", '"', "'", "'"]
        )
        .str.replace_all(_URL, "URL")
        .str.replace_all(_MENTION, "@user")
        # Only runs and non-space characters match, not every single space: ten times faster than \s+.
        .str.replace_all(f"{_SPACE}{{2,}}|[{_SPACE}--[ ]]", " ")
        .str.strip_chars()
    )


def dedupe_key(clean: pl.Expr) -> pl.Expr:
    """A normalised key of a `clean_text` text that makes near-duplicates equal: lower case, without links,
    @user, a leading RT or punctuation. "RT @user: You're an IDIOT!! URL" and "youre an idiot" share a key."""
    return (
        clean.str.replace_many(["URL", "@user"], ["", ""])
        .str.to_lowercase()
        .str.replace_many(_PUNCTUATION, [""] * len(_PUNCTUATION))
        .str.replace_all(" {2,}", " ")
        .str.strip_chars()
        .str.strip_prefix("rt ")
    )


def near_duplicate_keys(texts: Sequence[str]) -> np.ndarray:
    """`dedupe_key` of each text (what near-duplicates share), for texts outside a frame."""
    if not len(texts):
        return np.array([], dtype=object)
    return pl.DataFrame({"text": list(texts)}).select(dedupe_key(pl.col("text")))["text"].to_numpy()


# --------------------------------------------------------------------------------------------- CSV helpers


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(path, "file not found")
    if path.stat().st_size == 0:
        raise DataError(path, "file is empty")


def scan_csv_strict(path: Path, required: tuple[str, ...] | list[str]) -> pl.LazyFrame:
    """Scan a CSV with every column as text, after checking the file exists, is not empty and has the required
    columns. Adds `_record` (1-based record number). Collect with `collect_checked` / `sink_checked`, which
    also refuse a record with more fields than the header."""
    _require_file(path)
    header = pl.scan_csv(path, infer_schema=False, n_rows=0).collect_schema().names()
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(map(repr, missing))}; the header has {header}")
    lf = pl.scan_csv(path, infer_schema=False, row_index_name="_record", row_index_offset=1)
    if lf.select(pl.len()).collect().item() == 0:
        raise DataError(path, "no data rows after the header")
    return lf


# Polars only notices a record with too many fields when it parses every column; with projection pushdown
# (the default) it would silently drop the extra fields of a broken row.
FULL_PARSE = pl.QueryOptFlags(projection_pushdown=False)


def collect_checked(lf: pl.LazyFrame, csv_files: list[Path]) -> pl.DataFrame:
    """Collect with the streaming engine, parsing every CSV column, and turn a parse failure into a DataError
    naming the file and record."""
    try:
        return lf.collect(engine="streaming", optimizations=FULL_PARSE)
    except pl.exceptions.ComputeError as err:
        raise _located(csv_files, err) from None


def _located(csv_files: list[Path], err: Exception) -> DataError:
    for path in csv_files:
        if path.suffix == ".csv" and (where := _malformed_record(path)):
            return DataError(path, where)
    return DataError(", ".join(map(str, csv_files)), f"malformed CSV: {str(err).splitlines()[0]}")


def _malformed_record(path: Path) -> str | None:
    """The first record with more fields than the header, as "record N (ending on line L): 47 fields, the
    header has 45"; None when every record fits."""
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        n_fields = len(next(reader, []))
        for record, fields in enumerate(reader, start=1):
            if len(fields) > n_fields:
                return f"record {record} (ending on line {reader.line_num}): {len(fields)} fields, the header has {n_fields}"
    return None


def _number(column: str, *, low: float | None = None, high: float | None = None, required: bool = True):
    """Parse a text column as a float, and the problem (or null) that goes with it."""
    raw = pl.col(column).str.strip_chars()
    value = raw.cast(pl.Float64, strict=False)
    where = pl.format("record {}, column '{}'", pl.col("_record"), pl.lit(column))
    checks = [
        (raw.is_not_null() & (raw != "") & value.is_null(), pl.format("{}: not a number: '{}'", where, raw)),
        (value.is_nan(), pl.format("{}: not a number: '{}'", where, raw)),
    ]
    if required:
        checks.insert(0, (raw.is_null() | (raw == ""), pl.format("{}: missing value", where)))
    if low is not None and high is not None:
        checks.append(
            ((value < low) | (value > high), pl.format("{}: {} is outside [{}, {}]", where, raw, low, high))
        )
    problem = pl.coalesce([pl.when(cond).then(msg) for cond, msg in checks])
    return value, problem


def _first_problem(problems: list[pl.Expr]) -> pl.Expr:
    return pl.coalesce(problems).alias("problem")


def _standardise(lf: pl.LazyFrame, source: str) -> pl.LazyFrame:
    """Fill absent standard columns with nulls and order them, so every reader's output concatenates."""
    names = lf.collect_schema().names()
    return lf.with_columns(
        pl.lit(source).alias("source"),
        *[
            pl.lit(None, dtype).alias(c)
            for c, dtype in STANDARD_SCHEMA.items()
            if c not in names and c != "source"
        ],
    ).select([pl.col(c).cast(dtype) for c, dtype in STANDARD_SCHEMA.items()])


def _binned(score: pl.Expr, edges: tuple[float, float, float]) -> pl.Expr:
    """Map a score in [0, 1] onto LABELS with three ascending edges (a score equal to an edge goes up)."""
    low, mid, high = edges
    return (
        pl.when(score >= high)
        .then(pl.lit(LABELS[3]))
        .when(score >= mid)
        .then(pl.lit(LABELS[2]))
        .when(score >= low)
        .then(pl.lit(LABELS[1]))
        .otherwise(pl.lit(LABELS[0]))
    )


# --------------------------------------------------------------------------------------------- readers

JIGSAW_EDGES = (0.2, 0.5, 0.8)


def read_jigsaw_unintended_bias(path: Path, source: str = "jigsaw_unintended_bias") -> pl.LazyFrame:
    """Jigsaw Unintended Bias in Toxicity Classification `train.csv` (45 columns, 1.8M rows).

    Label from `target`: < 0.2 safe, [0.2, 0.5) potentially_harmful, [0.5, 0.8) harmful, >= 0.8 extremely
    harmful. `target` becomes `toxicity`; the six subtype scores are kept. Every value used is checked: `id`
    integer, `target` and the subtype scores numbers in [0, 1] (missing or unparsable -> `problem`).
    """
    lf = scan_csv_strict(path, JIGSAW_UB_COLUMNS)
    target, target_problem = _number("target", low=0.0, high=1.0)
    scores = {c: _number(c, low=0.0, high=1.0) for c in JIGSAW_UB_SCORES}
    raw_id = pl.col("id").str.strip_chars()
    id_problem = pl.when(raw_id.cast(pl.Int64, strict=False).is_null()).then(
        pl.format("record {}, column 'id': not an integer: '{}'", pl.col("_record"), raw_id)
    )
    lf = lf.select(
        pl.col("comment_text").fill_null("").alias("text"),
        _binned(target, JIGSAW_EDGES).alias("label"),
        raw_id.alias("source_id"),
        target.alias("toxicity"),
        *[value.alias(c) for c, (value, _) in scores.items()],
        _first_problem([id_problem, target_problem, *[p for _, p in scores.values()]]),
    )
    return _standardise(lf.with_columns(clean_text(pl.col("text"))), source)


def read_davidson(root: Path) -> pl.LazyFrame:
    """Davidson et al. 2017 tweets: class 0 hate / 1 offensive / 2 neither, with per-class vote counts.

    neither -> safe; offensive -> potentially_harmful; hate -> harmful, or extremely_harmful when at least 80%
    of the coders voted hate. Scores: identity_attack = hate votes / coders, toxicity = (hate + offensive) /
    coders.
    """
    path = root / "davidson_hate_offensive" / "labeled_data_dev.csv"
    lf = scan_csv_strict(path, ("", "count", "hate_speech", "offensive_language", "class", "tweet"))
    count, count_problem = _number("count", low=1.0, high=1e6)
    hate, hate_problem = _number("hate_speech", low=0.0, high=1e6)
    offensive, offensive_problem = _number("offensive_language", low=0.0, high=1e6)
    cls, cls_problem = _number("class", low=0.0, high=2.0)
    hate_share = hate / count
    label = (
        pl.when(cls == 2)
        .then(pl.lit("safe"))
        .when(cls == 1)
        .then(pl.lit("potentially_harmful"))
        .when(hate_share >= 0.8)
        .then(pl.lit("extremely_harmful"))
        .otherwise(pl.lit("harmful"))
    )
    lf = lf.select(
        pl.col("tweet").fill_null("").map_elements(html.unescape, return_dtype=pl.String).alias("text"),
        label.alias("label"),
        pl.col("").alias("source_id"),
        hate_share.alias("identity_attack"),
        ((hate + offensive) / count).alias("toxicity"),
        _first_problem([count_problem, hate_problem, offensive_problem, cls_problem]),
    )
    return _standardise(lf.with_columns(clean_text(pl.col("text"))), "davidson")


_SPAN_TYPES = {
    "Insult": "insult",
    "Threat": "threat",
    "Identity based": "identity_attack",
    "Profane": "obscene",
}


def read_civil_comments_spans(root: Path) -> pl.LazyFrame:
    """Civil Comments posts annotated for toxic spans (every post had Jigsaw toxicity >= 0.5).

    All posts are at least harmful. A post is extremely_harmful when any rater marked a Threat span, or when
    more than half of its raters ticked "all toxic". Scores: the share of raters who marked a span of each
    type (Insult -> insult, Threat -> threat, Identity based Attack -> identity_attack, Profane/Obscene ->
    obscene).
    """
    folder = root / "civil_comments_toxic_spans"
    comments = scan_csv_strict(folder / "comments_dev.csv", ("comment_id", "comment_text"))
    annotations = scan_csv_strict(folder / "annotations_dev.csv", ("annotation", "comment_id", "all toxic"))
    spans = scan_csv_strict(folder / "spans_dev.csv", ("annotation", "type"))

    span_flags = spans.select(
        "annotation",
        *[
            pl.col("type").fill_null("").str.strip_chars().str.starts_with(prefix).alias(score)
            for prefix, score in _SPAN_TYPES.items()
        ],
    )
    per_rater = (
        annotations.select(
            "annotation", "comment_id", (pl.col("all toxic").str.to_lowercase() == "true").alias("all_toxic")
        )
        .join(span_flags, on="annotation", how="left", maintain_order="left")
        .group_by("comment_id", "annotation", maintain_order=True)
        .agg(pl.col("all_toxic").first(), *[pl.col(s).fill_null(False).any() for s in _SPAN_TYPES.values()])
    )
    per_post = per_rater.group_by("comment_id", maintain_order=True).agg(
        pl.col("all_toxic").mean().alias("all_toxic_share"),
        *[pl.col(s).mean() for s in _SPAN_TYPES.values()],
    )
    extreme = (pl.col("threat").fill_null(0) > 0) | (pl.col("all_toxic_share").fill_null(0) > 0.5)
    lf = comments.join(per_post, on="comment_id", how="left", maintain_order="left").select(
        pl.col("comment_text").fill_null("").alias("text"),
        pl.when(extreme).then(pl.lit("extremely_harmful")).otherwise(pl.lit("harmful")).alias("label"),
        pl.col("comment_id").alias("source_id"),
        *[pl.col(s) for s in _SPAN_TYPES.values()],
        pl.lit(None, pl.String).alias("problem"),
    )
    return _standardise(lf.with_columns(clean_text(pl.col("text"))), "civil_comments_toxic_spans")


def read_olid(root: Path) -> pl.LazyFrame:
    """OLID offensive-language tweets (TweetEval train + val): 0 not offensive -> safe, 1 offensive ->
    potentially_harmful (OLID's "offensive" includes mild profanity, so no stronger label is implied).
    One text per line in `*_text.txt`, its label on the same line of `*_labels.txt`."""
    folder = root / "olid_offensive"
    frames = [
        _read_line_pairs(folder / f"{split}_text.txt", folder / f"{split}_labels.txt", split)
        for split in ("train", "val")
    ]
    return _standardise(pl.concat(frames).lazy().with_columns(clean_text(pl.col("text"))), "olid")


def _read_line_pairs(text_path: Path, label_path: Path, split: str) -> pl.DataFrame:
    for path in (text_path, label_path):
        _require_file(path)
    texts = text_path.read_text(encoding="utf-8").split("\n")
    labels = label_path.read_text(encoding="utf-8").split("\n")
    texts, labels = (
        (texts[:-1] if texts and texts[-1] == "" else texts),
        (labels[:-1] if labels and labels[-1] == "" else labels),
    )
    if len(texts) != len(labels):
        raise DataError(text_path, f"{len(texts)} lines but {label_path.name} has {len(labels)}")
    problems = [
        None
        if value.strip() in ("0", "1")
        else f"record {i}, column 'label' ({label_path.name}): expected 0 or 1, got {value!r}"
        for i, value in enumerate(labels, start=1)
    ]
    return pl.DataFrame(
        {
            "text": texts,
            "label": ["potentially_harmful" if v.strip() == "1" else "safe" for v in labels],
            "source_id": [f"{split}-{i}" for i in range(1, len(texts) + 1)],
            "toxicity": [1.0 if v.strip() == "1" else 0.0 for v in labels],
            "problem": problems,
        },
        schema_overrides={"problem": pl.String, "toxicity": pl.Float32},
    )


_WIKI_FLAGS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")


def read_jigsaw_wikipedia(root: Path) -> pl.LazyFrame:
    """The Jigsaw 2018 Wikipedia comments sample (six 0/1 flags, lower-cased text).

    severe_toxic or threat -> extremely_harmful; toxic -> harmful; only obscene / insult / identity_hate ->
    potentially_harmful; no flag -> safe. The flags become the matching scores (identity_hate ->
    identity_attack, severe_toxic -> severe_toxicity, toxic -> toxicity).
    """
    path = root / "jigsaw_wikipedia_sample" / "test_examples.csv"
    lf = scan_csv_strict(path, ("comment_text", *_WIKI_FLAGS))
    flags = {c: _number(c, low=0.0, high=1.0) for c in _WIKI_FLAGS}
    f = {c: value for c, (value, _) in flags.items()}
    label = (
        pl.when((f["severe_toxic"] > 0) | (f["threat"] > 0))
        .then(pl.lit("extremely_harmful"))
        .when(f["toxic"] > 0)
        .then(pl.lit("harmful"))
        .when((f["obscene"] > 0) | (f["insult"] > 0) | (f["identity_hate"] > 0))
        .then(pl.lit("potentially_harmful"))
        .otherwise(pl.lit("safe"))
    )
    lf = lf.select(
        pl.col("comment_text").fill_null("").alias("text"),
        label.alias("label"),
        pl.col("_record").cast(pl.String).alias("source_id"),
        f["toxic"].alias("toxicity"),
        f["severe_toxic"].alias("severe_toxicity"),
        f["obscene"].alias("obscene"),
        f["threat"].alias("threat"),
        f["insult"].alias("insult"),
        f["identity_hate"].alias("identity_attack"),
        _first_problem([p for _, p in flags.values()]),
    )
    return _standardise(lf.with_columns(clean_text(pl.col("text"))), "jigsaw_wikipedia")


# --------------------------------------------------------------------------------------------- second wave
#
# Subtype scores in the second-wave readers: a source's flag becomes the matching score (1.0 / 0.0). A 0.0 is
# written only where the annotators judged that harm for every text (multi-harm sources: Gab, ConvAbuse, GitHub,
# OpenAI, MLMA); the single-harm sources (Fox News, EDOS, Reddit misogyny, Stormfront) judged one kind of harm,
# so their scores are 1.0 where flagged and null otherwise (a negative there says nothing about other harms).


def _frame(columns: dict[str, list], source: str) -> pl.LazyFrame:
    """Standard-schema LazyFrame from Python lists (the JSON readers), text cleaned."""
    df = pl.DataFrame(columns, schema={name: STANDARD_SCHEMA[name] for name in columns})
    return _standardise(df.lazy().with_columns(clean_text(pl.col("text"))), source)


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line of a JSON-lines file (gzip when it ends in .gz).
    A line that is not a JSON object, an unreadable file or one without records raises DataError."""
    _require_file(path)
    records: list[tuple[int, dict]] = []
    try:
        with (
            gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")
        ) as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(
                        path, f"line {line_no}: not valid JSON ({err.msg}, column {err.colno})"
                    ) from None
                if not isinstance(record, dict):
                    raise DataError(
                        path, f"line {line_no}: expected a JSON object, got {type(record).__name__}"
                    )
                records.append((line_no, record))
    except (OSError, EOFError, UnicodeDecodeError) as err:  # gzip.BadGzipFile is an OSError
        raise DataError(path, f"cannot read: {err}") from None
    if not records:
        raise DataError(path, "no records")
    return records


def _json_flag(record: dict, key: str, line: int, *, required: bool = True) -> tuple[int | None, str | None]:
    """A 0/1 field of a JSON record and its problem. Absent or null: (None, "missing") when required, else
    (None, None), i.e. unknown."""
    value = record.get(key)
    if value is None:
        return None, (f"line {line}, field '{key}': missing value" if required else None)
    if isinstance(value, bool) or not isinstance(value, int | float) or value not in (0, 1):
        return None, f"line {line}, field '{key}': expected 0 or 1, got {value!r}"
    return int(value), None


def _json_text(record: dict, key: str, line: int) -> tuple[str, str | None]:
    value = record.get(key)
    if not isinstance(value, str):
        return "", f"line {line}, field '{key}': expected a string, got {value!r}"
    return value, None


def _choice(
    column: str, allowed: tuple[str, ...] | list[str], file: str | None = None
) -> tuple[pl.Expr, pl.Expr]:
    """A text column that must be one of `allowed` (after stripping spaces), and the problem (or null)."""
    raw = pl.col(column).str.strip_chars()
    where = pl.format(
        "record {}, column '{}'{}", pl.col("_record"), pl.lit(column), pl.lit(f" ({file})" if file else "")
    )
    problem = (
        pl.when(raw.is_null() | (raw == ""))
        .then(pl.format("{}: missing value", where))
        .when(~raw.is_in(list(allowed)))
        .then(
            pl.format(
                "{}: unexpected value '{}' (expected one of: {})", where, raw, pl.lit(", ".join(allowed))
            )
        )
    )
    return raw, problem


def _flag_score(condition: pl.Expr) -> pl.Expr:
    """1.0 where the condition holds, else null (single-harm sources: a negative is not a 0)."""
    return pl.when(condition).then(pl.lit(1.0))


def read_fox_news(root: Path) -> pl.LazyFrame:
    """Fox News reader comments (Gao & Huang 2017), JSON lines, judged for hate speech only (single harm).

    `label` 0 (not hateful) -> safe; 1 (hateful) -> harmful. identity_attack = 1.0 for hateful comments, null
    otherwise. Only the comment (`text`) is used, not the article title or the neighbouring comments.
    source_id = line number. A `label` other than 0/1 or a missing text -> `problem`.
    """
    path = root / "fox_news_comments" / "fox-news-comments.json"
    cols: dict[str, list] = {k: [] for k in ("text", "label", "source_id", "identity_attack", "problem")}
    for line, record in _read_jsonl(path):
        text, text_problem = _json_text(record, "text", line)
        hateful, label_problem = _json_flag(record, "label", line)
        cols["text"].append(text)
        cols["label"].append(None if hateful is None else ("harmful" if hateful else "safe"))
        cols["source_id"].append(str(line))
        cols["identity_attack"].append(1.0 if hateful == 1 else None)
        cols["problem"].append(text_problem or label_problem)
    return _frame(cols, "fox_news_comments")


_EDOS_CATEGORIES = {
    "1. threats, plans to harm and incitement": "extremely_harmful",
    "2. derogation": "harmful",
    "3. animosity": "potentially_harmful",
    "4. prejudiced discussions": "harmful",
}


def read_edos(root: Path) -> pl.LazyFrame:
    """EDOS (SemEval-2023 Task 10) Reddit and Gab posts, aggregated labels, judged for sexism only (single harm).

    `label_sexist` "not sexist" -> safe. Sexist posts by `label_category`: 1. threats, plans to harm and
    incitement -> extremely_harmful; 2. derogation -> harmful; 4. prejudiced discussions -> harmful;
    3. animosity (casual gendered slurs, stereotypes, backhanded compliments, condescension) ->
    potentially_harmful. `label_vector` must belong to the category (1.x with 1., ...): a mismatch, an unknown
    value or a "not sexist" row with a category -> `problem`. Scores (null where not flagged): identity_attack
    = 1.0 for every sexist post, threat = 1.0 for category 1, insult = 1.0 for vector 3.1 (casual use of gendered
    slurs, profanities and insults). The masks [USER] and [URL] become @user and URL, as in the other sets.
    source_id = `rewire_id`.
    """
    path = root / "edos_semeval2023_sexism" / "data" / "edos_labelled_aggregated.csv"
    lf = scan_csv_strict(path, ("rewire_id", "text", "label_sexist", "label_category", "label_vector"))
    sexist_raw, sexist_problem = _choice("label_sexist", ("sexist", "not sexist"))
    category_raw, category_problem = _choice("label_category", ("none", *_EDOS_CATEGORIES))
    vector = pl.col("label_vector").str.strip_chars()
    sexist = sexist_raw == "sexist"
    where = pl.format("record {}", pl.col("_record"))
    consistency = (
        pl.when(~sexist & ((category_raw != "none") | (vector != "none")))
        .then(pl.format("{}: 'not sexist' with category '{}' and vector '{}'", where, category_raw, vector))
        .when(sexist & (category_raw == "none"))
        .then(pl.format("{}: 'sexist' without a category", where))
        .when(sexist & ~vector.str.starts_with(category_raw.str.extract(r"^(\d+\.)", 1)).fill_null(False))
        .then(
            pl.format("{}, column 'label_vector': '{}' is not in category '{}'", where, vector, category_raw)
        )
    )
    label = (
        pl.when(~sexist)
        .then(pl.lit("safe"))
        .otherwise(category_raw.replace_strict(_EDOS_CATEGORIES, default=None))
    )
    text = pl.col("text").fill_null("").str.replace_many(["[USER]", "[URL]"], ["@user", "URL"])
    lf = lf.select(
        text.alias("text"),
        label.alias("label"),
        pl.col("rewire_id").alias("source_id"),
        _flag_score(sexist).alias("identity_attack"),
        _flag_score(sexist & category_raw.str.starts_with("1.")).alias("threat"),
        _flag_score(sexist & vector.str.starts_with("3.1 ")).alias("insult"),
        _first_problem([sexist_problem, category_problem, consistency]),
    )
    return _standardise(lf.with_columns(clean_text(pl.col("text"))), "edos_semeval2023_sexism")


_REDDIT_LEVELS = {
    "Nonmisogynistic/None_of_the_categories": "safe",
    "Nonmisogynistic/Counter_speech": "safe",
    "Nonmisogynistic/Nonmisogynistic_personal_attack": "potentially_harmful",
    "Misogynistic/Misogynistic_pejorative": "potentially_harmful",
    "Misogynistic/Derogation": "harmful",
    "Misogynistic/Misogynistic_personal_attack": "harmful",
    "Misogynistic/Treatment": "harmful",
}


def read_reddit_misogyny(root: Path) -> pl.LazyFrame:
    """Guest et al. 2021 expert-annotated Reddit posts and comments, judged for misogyny only (single harm).

    Per row, (`level_1`, `level_2`): Nonmisogynistic with None_of_the_categories or Counter_speech -> safe;
    Nonmisogynistic_personal_attack -> potentially_harmful; Misogynistic_pejorative -> potentially_harmful
    (a gendered slur used in passing, as EDOS's casual slurs); Derogation, Misogynistic_personal_attack,
    Treatment -> harmful; Treatment with `level_3` Threatening_* (physical or sexual violence, privacy) ->
    extremely_harmful. An entry annotated several times (one row per misogynistic span) keeps its most severe
    label. Entries whose post is an image (`image` == "Yes", the label may depend on the picture) are dropped.
    In 14 rows an unquoted comma split the body and the rest landed in `image`: the text is rejoined as
    body + "," + image. Reddit's placeholders "[removed]" and "[deleted]" (no text left) become "" (dropped by
    the loader, as every empty text). Scores (null where not flagged): identity_attack = 1.0 for misogynistic rows, insult =
    1.0 for either personal attack, threat = 1.0 for Threatening_*. source_id = `entry_id`.
    """
    path = root / "reddit_online_misogyny_eacl2021" / "data" / "final_labels.csv"
    lf = scan_csv_strict(path, ("entry_id", "body", "image", "level_1", "level_2", "level_3"))
    level_1 = pl.col("level_1").str.strip_chars()
    level_2 = pl.col("level_2").str.strip_chars()
    threatening = pl.col("level_3").fill_null("").str.strip_chars().str.starts_with("Threatening_")
    pair = pl.concat_str([level_1.fill_null(""), level_2.fill_null("")], separator="/")
    base = pair.replace_strict(_REDDIT_LEVELS, default=None)
    label = (
        pl.when((base == "harmful") & (level_2 == "Treatment") & threatening)
        .then(pl.lit("extremely_harmful"))
        .otherwise(base)
    )
    where = pl.format("record {}", pl.col("_record"))
    problem = _first_problem(
        [
            pl.when(pl.col("entry_id").fill_null("").str.strip_chars() == "").then(
                pl.format("{}, column 'entry_id': missing value", where)
            ),
            pl.when(base.is_null()).then(
                pl.format("{}, columns 'level_1'/'level_2': unexpected pair '{}'", where, pair)
            ),
        ]
    )
    image = pl.col("image").fill_null("").str.strip_chars()
    body = pl.col("body").fill_null("")
    body = pl.when(body.str.strip_chars().is_in(["[removed]", "[deleted]"])).then(pl.lit("")).otherwise(body)
    text = (
        pl.when((image == "") | (image == "Yes"))
        .then(body)
        .otherwise(pl.concat_str([body, pl.col("image")], separator=","))
    )
    severity = label.replace_strict(SEVERITY, default=None, return_dtype=pl.Int8)
    rows = lf.select(
        pl.col("entry_id").str.strip_chars().alias("source_id"),
        text.alias("text"),
        severity.alias("_severity"),
        (image == "Yes").alias("_image"),
        _flag_score(level_1 == "Misogynistic").alias("identity_attack"),
        _flag_score(level_2.str.ends_with("personal_attack")).alias("insult"),
        _flag_score(threatening).alias("threat"),
        problem,
    )
    per_entry = (
        rows.group_by("source_id", maintain_order=True)
        .agg(
            pl.col("text").first(),
            pl.col("_severity").max(),
            pl.col("_image").any(),
            pl.col("identity_attack", "insult", "threat").max(),
            pl.col("problem").drop_nulls().first(),
        )
        .filter(~pl.col("_image"))
        .with_columns(
            pl.col("_severity")
            .replace_strict(dict(enumerate(LABELS)), default=None, return_dtype=pl.String)
            .alias("label")
        )
    )
    return _standardise(per_entry.with_columns(clean_text(pl.col("text"))), "reddit_online_misogyny_eacl2021")


def _gab_label(cv: int, hd: int, vo: int) -> str:
    if cv:
        return "extremely_harmful"
    if hd:
        return "harmful"
    return "potentially_harmful" if vo else "safe"


def read_gab_hate(root: Path) -> pl.LazyFrame:
    """Gab Hate Corpus (Kennedy et al.), the majority-vote dev and test files (JSON lines).

    cv (call for violence) -> extremely_harmful; else hd (assault on human dignity) -> harmful; else vo
    (vulgarity / offensive language) -> potentially_harmful; none -> safe. The flags become threat (cv),
    identity_attack (hd) and obscene (vo), 1.0 or 0.0. The moral-foundation columns are not labels and are
    ignored. source_id = `text_id`. A flag other than 0/1, or a missing text or id -> `problem`.
    """
    folder = root / "gab_hate_corpus_kennedy_devtest" / "data" / "majority_gab_dataset_25k"
    cols: dict[str, list] = {
        k: [] for k in ("text", "label", "source_id", "threat", "identity_attack", "obscene", "problem")
    }
    for split in ("dev", "test"):
        path = folder / f"{split}.jsonl"
        for line, record in _read_jsonl(path):
            text, text_problem = _json_text(record, "Text", line)
            flags = {k: _json_flag(record, k, line) for k in ("cv", "hd", "vo")}
            text_id = record.get("text_id")
            id_problem = None
            if not isinstance(text_id, int | str) or not str(text_id).strip():
                id_problem = f"line {line}, field 'text_id': missing value"
            problems = [text_problem, id_problem, *(p for _, p in flags.values())]
            cv, hd, vo = (flags[k][0] for k in ("cv", "hd", "vo"))
            label = None if None in (cv, hd, vo) else _gab_label(cv, hd, vo)
            cols["text"].append(text)
            cols["label"].append(label)
            cols["source_id"].append(str(text_id))
            cols["threat"].append(None if cv is None else float(cv))
            cols["identity_attack"].append(None if hd is None else float(hd))
            cols["obscene"].append(None if vo is None else float(vo))
            cols["problem"].append(next((f"{p} ({path.name})" for p in problems if p), None))
    return _frame(cols, "gab_hate_corpus_kennedy_devtest")


_STORMFRONT_LABELS = {
    "noHate": "safe",
    "hate": "harmful",
    "relation": "potentially_harmful",
    "idk/skip": None,
}


def detokenise(text: pl.Expr) -> pl.Expr:
    """Undo PTB-style tokenisation ("It 's here , they do n't ." -> "It's here, they don't."; `` and '' -> ")."""
    return (
        text.str.replace_all(r"``\s*|\s*''", '"')
        .str.replace_all(r" ([,.!?;:%)\]}])", "$1")
        .str.replace_all(r"([(\[{]) ", "$1")
        .str.replace_all(r"(?i) (n't|'s|'re|'ve|'ll|'d|'m)\b", "$1")
    )


def read_stormfront(root: Path) -> pl.LazyFrame:
    """Stormfront sentences (de Gibert et al. 2018), judged for hate speech only (single harm).

    `label` noHate -> safe (same-forum negatives: still white-supremacist talk, see the README); hate ->
    harmful; relation (hateful only together with the neighbouring sentences) -> potentially_harmful; idk/skip
    -> dropped. Text from `all_files.csv` by `file_id`, detokenised (the sentences were stored tokenised: "do n't
    ." -> "don't."). identity_attack = 1.0 for hate, null otherwise. source_id = `file_id`. An unknown label or
    a file_id without text -> `problem`; a file_id twice in `all_files.csv` -> DataError.
    """
    folder = root / "stormfront_vicomtech"
    meta = scan_csv_strict(folder / "annotations_metadata.csv", ("file_id", "label"))
    texts_path = folder / "all_files.csv"
    texts = scan_csv_strict(texts_path, ("file_id", "text"))
    duplicated = texts.filter(pl.col("file_id").is_duplicated()).select("file_id").head(1).collect()
    if duplicated.height:
        raise DataError(texts_path, f"file_id '{duplicated.item()}' appears more than once")
    raw, label_problem = _choice("label", tuple(_STORMFRONT_LABELS))
    lf = (
        meta.join(
            texts.select("file_id", pl.col("text").alias("_text"), pl.lit(True).alias("_found")),
            on="file_id",
            how="left",
            maintain_order="left",  # the file's order: polars does not keep it by default, and row order matters
        )
        .filter(raw.is_null() | (raw != "idk/skip"))
        .select(
            detokenise(pl.col("_text").fill_null("")).alias("text"),
            raw.replace_strict(_STORMFRONT_LABELS, default=None).alias("label"),
            pl.col("file_id").alias("source_id"),
            _flag_score(raw == "hate").alias("identity_attack"),
            _first_problem(
                [
                    label_problem,
                    pl.when(pl.col("_found").is_null()).then(
                        pl.format(
                            "record {}: file_id '{}' has no text in all_files.csv",
                            pl.col("_record"),
                            pl.col("file_id"),
                        )
                    ),
                ]
            ),
        )
    )
    return _standardise(lf.with_columns(clean_text(pl.col("text"))), "stormfront_vicomtech")


_CONVABUSE_LEVELS = {  # is_abuse level -> label, in file order
    "1": "safe",
    "0": "potentially_harmful",
    "-1": "potentially_harmful",
    "-2": "harmful",
    "-3": "extremely_harmful",
}
_CONVABUSE_TYPES = {  # in file order
    "ableist": "identity_attack",
    "homophobic": "identity_attack",
    "intellectual": "insult",
    "racist": "identity_attack",
    "sexist": "identity_attack",
    "sex_harassment": "sexual_explicit",
    "transphobic": "identity_attack",
}
CONVABUSE_ANNOTATORS = tuple(f"Annotator{i}" for i in range(1, 9))
CONVABUSE_SPLITS = ("train", "valid", "test")


def _bits(cell: str | None) -> list[int] | None:
    """A ConvAbuse annotation cell: "1", "0" or, for an annotator who saw the example several times, "1, 0"."""
    parts = [p.strip() for p in (cell or "").split(",")]
    return [int(p) for p in parts] if all(p in ("0", "1") for p in parts) else None


class _RowProblem(Exception):
    """A value in one row that does not parse; the message becomes the row's `problem`."""


def _convabuse_turn(row: dict, file: str) -> tuple[str, dict[str, float]]:
    """Majority label and scores of one example (one user turn) from its annotators' columns; raises
    _RowProblem for a cell that does not parse."""
    where = f"record {row['_record']}"
    votes: Counter[str] = Counter()
    levels: Counter[str] = Counter()
    types: Counter[str] = Counter()
    for annotator in CONVABUSE_ANNOTATORS:
        columns = [f"{annotator}_is_abuse.{level}" for level in _CONVABUSE_LEVELS]
        if all((row[c] or "").strip() == "" for c in columns):
            continue  # this annotator did not see the example
        parsed = {c: _bits(row[c]) for c in columns}
        for c, bits in parsed.items():
            if bits is None:
                raise _RowProblem(
                    f"{where}, column '{c}' ({file}): expected 0, 1 or a list of them, got {row[c]!r}"
                )
        n = len(parsed[columns[0]])
        if any(len(bits) != n for bits in parsed.values()):
            raise _RowProblem(
                f"{where}, {annotator} ({file}): is_abuse cells hold different numbers of values"
            )
        type_bits = {}
        for kind in _CONVABUSE_TYPES:
            cell = row[f"{annotator}_{kind}"]
            bits = [0] * n if (cell or "").strip() == "" else _bits(cell)
            if bits is None or len(bits) != n:
                raise _RowProblem(
                    f"{where}, column '{annotator}_{kind}' ({file}): expected {n} values of 0 or 1, got {cell!r}"
                )
            type_bits[kind] = bits
        for i in range(n):
            chosen = [level for level, c in zip(_CONVABUSE_LEVELS, columns, strict=True) if parsed[c][i]]
            if len(chosen) != 1:
                raise _RowProblem(
                    f"{where}, {annotator} ({file}): annotation {i + 1} marks {len(chosen)} is_abuse levels, not 1"
                )
            levels[chosen[0]] += 1
            votes[_CONVABUSE_LEVELS[chosen[0]]] += 1
            for score in set(_CONVABUSE_TYPES.values()):
                types[score] += any(type_bits[k][i] for k, s in _CONVABUSE_TYPES.items() if s == score)
    total = sum(votes.values())
    if total == 0:
        raise _RowProblem(f"{where} ({file}): no annotations")
    label = max(votes, key=lambda lab: (votes[lab], SEVERITY[lab]))  # a tie goes to the more severe label
    scores = {
        "toxicity": (levels["-1"] + levels["-2"] + levels["-3"]) / total,
        "severe_toxicity": levels["-3"] / total,
        **{score: types[score] / total for score in set(_CONVABUSE_TYPES.values())},
    }
    return label, scores


CONVABUSE_CONTEXT = ("example_id", "conv_id", "prev_agent", "prev_user", "agent", "user", "bot")
CONVABUSE_FIELDS = (
    *(f"is_abuse.{level}" for level in _CONVABUSE_LEVELS),
    *_CONVABUSE_TYPES,
    "target.generalised", "target.individual", "target.system", "explicit", "implicit",
)  # fmt: skip


def _scan_convabuse_split(path: Path) -> pl.LazyFrame:
    """A ConvAbuse split file with its 143 columns named by position: 7 context columns, then 17 per annotator
    (Annotator1_is_abuse.1 ... Annotator8_implicit). The upstream header names Annotator7's and Annotator8's
    transphobic columns "Annotator6_transphobic", so each column is checked by its field name (the part after
    "AnnotatorN_") and position, and renamed to its annotator's name."""
    _require_file(path)
    with path.open(newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), [])
    expected = [
        *CONVABUSE_CONTEXT,
        *(f"{a}_{field}" for a in CONVABUSE_ANNOTATORS for field in CONVABUSE_FIELDS),
    ]
    if len(header) != len(expected):
        raise DataError(
            path, f"expected {len(expected)} columns (7 + 17 per annotator), the header has {len(header)}"
        )
    for i, (got, want) in enumerate(zip(header, expected, strict=True)):
        if i < len(CONVABUSE_CONTEXT):
            ok = got == want
        else:
            ok = re.fullmatch(rf"Annotator\d_{re.escape(want.split('_', 1)[1])}", got) is not None
        if not ok:
            raise DataError(path, f"column {i + 1} is {got!r}, expected {want!r}")
    lf = pl.scan_csv(
        path, infer_schema=False, new_columns=expected, row_index_name="_record", row_index_offset=1
    )
    if lf.select(pl.len()).collect().item() == 0:
        raise DataError(path, "no data rows after the header")
    return lf


def read_convabuse(root: Path) -> pl.LazyFrame:
    """ConvAbuse (Cercas Curry et al. 2021): user turns typed to two chatbots, 2 to 8 annotators per turn.

    Read from the split files (train, valid, test: one row per example with every annotator's columns side by
    side, the authors' example ids; the full file has no example id, and its conv_id was mangled by a
    spreadsheet for 735 rows, so turns could only be guessed from their texts). Each annotation is one vote,
    mapped first: is_abuse 1 (not abusive) -> safe; 0 (ambiguous) and -1 (mildly abusive) ->
    potentially_harmful; -2 (strongly) -> harmful; -3 (very strongly) -> extremely_harmful. The label is the
    majority vote; a tie goes to the more severe label. An annotator who saw an example more than once has a
    cell like "1, 0" and one vote per annotation (as in the full file's rows). The text is the user's turn
    (`user`) only, never the agent's utterances; "_" (the export's empty utterance) becomes "". Scores are
    shares of the annotations: toxicity = -1 or worse, severe_toxicity = -3, identity_attack = ableist,
    homophobic, racist, sexist or transphobic, insult = intellectual, sexual_explicit = sex_harassment.
    source_id = `example_id`. A malformed annotation cell -> `problem`.
    """
    folder = root / "convabuse" / "2_splits"
    level_columns = [f"{a}_is_abuse.{level}" for a in CONVABUSE_ANNOTATORS for level in _CONVABUSE_LEVELS]
    type_columns = [f"{a}_{kind}" for a in CONVABUSE_ANNOTATORS for kind in _CONVABUSE_TYPES]
    cols: dict[str, list] = {k: [] for k in ("text", "label", "source_id", "problem")}
    score_names = ("toxicity", "severe_toxicity", *dict.fromkeys(_CONVABUSE_TYPES.values()))
    scores: dict[str, list] = {s: [] for s in score_names}
    for split in CONVABUSE_SPLITS:
        path = folder / f"ConvAbuseEMNLP{split}.csv"
        df = collect_checked(_scan_convabuse_split(path), [path])
        for row in df.select("_record", "example_id", "user", *level_columns, *type_columns).iter_rows(
            named=True
        ):
            try:
                label, row_scores, problem = *_convabuse_turn(row, path.name), None
            except _RowProblem as err:
                label, row_scores, problem = None, {}, str(err)
            user = row["user"] or ""
            cols["text"].append("" if user.strip() == "_" else user)
            cols["label"].append(label)
            cols["source_id"].append(row["example_id"])
            cols["problem"].append(problem)
            for s, values in scores.items():
                values.append(row_scores.get(s))
    return _frame({**cols, **scores}, "convabuse")


_CJK = r"[\p{Hangul}\p{Han}\p{Hiragana}\p{Katakana}]"


def read_strudel_github(root: Path) -> pl.LazyFrame:
    """GitHub issue comments and issues labelled for toxicity (Raman et al. 2020, CMU STRUDEL).

    `toxicity` n -> safe; y -> harmful (toxicity = 1.0 / 0.0). Comments from `train_comments.csv` (`text`);
    issues from `labeled_test_issues.csv` as `title` + newline + `total_text`. An issue's `total_text` is its
    whole thread (body and comments joined by spaces) and its label is the thread's; `train_issues.csv` is not
    read because its threads are exactly the comments of `train_comments.csv` joined (the same words in two rows
    that deduplication cannot merge), and an issue of `labeled_test_issues.csv` whose comments are in
    `train_comments.csv` is dropped for the same reason. Rows in Korean, Chinese or Japanese (any Hangul, Han or
    Kana character) are dropped: the set is meant to be English. source_id = `_id`. A toxicity other than y/n
    -> `problem`.
    """
    folder = root / "strudel_github_toxicity" / "data" / "training"
    comments = scan_csv_strict(folder / "train_comments.csv", ("_id", "text", "toxicity"))
    issues = scan_csv_strict(folder / "labeled_test_issues.csv", ("_id", "title", "total_text", "toxicity"))
    threads = comments.select(pl.col("_id").str.replace(r"/[^/]*$", "").alias("_id")).unique()
    frames = []
    for lf, text, file in (
        (comments, pl.col("text"), "train_comments.csv"),
        (
            issues.join(threads, on="_id", how="anti", maintain_order="left"),
            pl.concat_str(
                [pl.col("title").fill_null(""), pl.col("total_text").fill_null("")], separator="\n"
            ),
            "labeled_test_issues.csv",
        ),
    ):
        raw, problem = _choice("toxicity", ("y", "n"), file)
        frames.append(
            lf.select(
                text.fill_null("").alias("text"),
                pl.when(raw == "y")
                .then(pl.lit("harmful"))
                .when(raw == "n")
                .then(pl.lit("safe"))
                .alias("label"),
                pl.col("_id").alias("source_id"),
                pl.when(raw == "y").then(1.0).when(raw == "n").then(0.0).alias("toxicity"),
                _first_problem([problem]),
            )
        )
    lf = pl.concat(frames).filter(~pl.col("text").str.contains(_CJK))
    return _standardise(lf.with_columns(clean_text(pl.col("text"))), "strudel_github_toxicity")


OPENAI_FLAGS = ("S", "H", "V", "HR", "SH", "S3", "H2", "V2")


def read_openai_moderation(root: Path) -> pl.LazyFrame:
    """OpenAI's moderation evaluation set (Markov et al. 2022), gzip JSON lines with 8 category flags.

    A flag missing from a line means the category was not labelled (unknown), never 0. S3 (sexual/minors), H2
    (hate/threatening) or V2 (violence/graphic) = 1 -> extremely_harmful; else S, H, V, HR or SH = 1 ->
    harmful (a lower bound when a more severe flag is unknown); all 8 flags present and 0 -> safe. A text with
    no positive flag and at least one missing flag is dropped (its label is unknown). Scores: identity_attack
    from H (1 also when H2 = 1), threat from V (1 also when H2 = 1), sexual_explicit from S (1 also when S3 = 1),
    insult from HR, self_harm from SH, sexual_minors from S3, toxicity = 1.0 for a positive text and 0.0 for a
    safe one; null where the flag is missing. source_id = line number. A flag other than 0/1 or a missing
    `prompt` -> `problem`.
    """
    path = root / "openai_moderation_eval" / "data" / "samples-1680.jsonl.gz"
    keys = (
        "text",
        "label",
        "source_id",
        "toxicity",
        "identity_attack",
        "threat",
        "sexual_explicit",
        "insult",
        "self_harm",
        "sexual_minors",
        "problem",
    )
    cols: dict[str, list] = {k: [] for k in keys}
    for line, record in _read_jsonl(path):
        text, problem = _json_text(record, "prompt", line)
        flags: dict[str, int | None] = {}
        for flag in OPENAI_FLAGS:
            flags[flag], flag_problem = _json_flag(record, flag, line, required=False)
            problem = problem or flag_problem
        if any(flags[f] == 1 for f in ("S3", "H2", "V2")):
            label = "extremely_harmful"
        elif any(flags[f] == 1 for f in ("S", "H", "V", "HR", "SH")):
            label = "harmful"
        elif all(flags[f] == 0 for f in OPENAI_FLAGS):
            label = "safe"
        elif problem is None:
            continue  # no positive flag, some unknown: the label is unknown
        else:
            label = None

        def score(positive: bool, negative: bool) -> float | None:
            return 1.0 if positive else 0.0 if negative else None

        cols["text"].append(text)
        cols["label"].append(label)
        cols["source_id"].append(str(line))
        cols["toxicity"].append(None if label is None else float(label != "safe"))
        cols["identity_attack"].append(score(flags["H"] == 1 or flags["H2"] == 1, flags["H"] == 0))
        cols["threat"].append(
            score(
                flags["V"] == 1 or flags["H2"] == 1, flags["V"] == 0 and (flags["H2"] == 0 or flags["H"] == 0)
            )
        )
        cols["sexual_explicit"].append(score(flags["S"] == 1 or flags["S3"] == 1, flags["S"] == 0))
        cols["insult"].append(score(flags["HR"] == 1, flags["HR"] == 0))
        cols["self_harm"].append(score(flags["SH"] == 1, flags["SH"] == 0))
        cols["sexual_minors"].append(score(flags["S3"] == 1, flags["S3"] == 0))
        cols["problem"].append(problem)
    return _frame(cols, "openai_moderation_eval")


MLMA_TYPES = ("normal", "offensive", "hateful", "abusive", "disrespectful", "fearful")
_ESCAPE = re.compile(r"(?:\\u[0-9a-fA-F]{4})+|\\n|\\")


def _unescape_mlma(text: str) -> str:
    r"""MLMA tweets were stored with JSON escapes left in: \u2019 and surrogate pairs (\ud83d\ude02) become their
    characters, \n a newline, and any other backslash (what is left of an escaped double quote) a '"'."""

    def one(match: re.Match) -> str:
        s = match.group(0)
        if s == "\\n":
            return "\n"
        if s == "\\":
            return '"'
        units = s.encode("ascii").decode("unicode_escape")  # UTF-16 code units, maybe surrogate halves
        return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "ignore")  # drops a lone half

    return _ESCAPE.sub(one, text)


def read_mlma(root: Path) -> pl.LazyFrame:
    r"""MLMA English tweets (Ousidhoum et al. 2019): `sentiment` is the hostility type, several joined by "_".

    "normal" alone -> safe; "normal" together with any other type -> dropped (annotators disagreed); any type
    including hateful or abusive -> harmful; only offensive, disrespectful and/or fearful -> potentially_harmful.
    Scores (every type was judged, so 0.0 where absent): identity_attack = hateful, insult = abusive, toxicity =
    any type other than normal. The tweets keep JSON escapes (\u2019, \n, \"): they are decoded; "@URL" becomes
    URL. source_id = `HITId`. An empty or unknown type -> `problem`.
    """
    path = root / "mlma_hate_speech_en" / "hate_speech_mlma" / "en_dataset_with_stop_words.csv"
    lf = scan_csv_strict(path, ("HITId", "tweet", "sentiment"))
    raw = pl.col("sentiment").str.strip_chars()
    types = raw.str.split("_")
    unknown = types.list.eval(pl.element().is_in(MLMA_TYPES).not_()).list.any()
    where = pl.format("record {}, column 'sentiment'", pl.col("_record"))
    problem = (
        pl.when(raw.is_null() | (raw == ""))
        .then(pl.format("{}: missing value", where))
        .when(unknown)
        .then(pl.format("{}: unexpected value '{}' (types: {})", where, raw, pl.lit(", ".join(MLMA_TYPES))))
    )
    normal = types.list.contains("normal")
    only_normal = normal & (types.list.len() == 1)
    hateful = types.list.contains("hateful")
    abusive = types.list.contains("abusive")
    label = (
        pl.when(only_normal)
        .then(pl.lit("safe"))
        .when(hateful | abusive)
        .then(pl.lit("harmful"))
        .otherwise(pl.lit("potentially_harmful"))
    )
    mixed = (normal & ~only_normal).fill_null(False)
    lf = lf.filter(~mixed | problem.is_not_null()).select(
        pl.col("tweet")
        .fill_null("")
        .map_elements(_unescape_mlma, return_dtype=pl.String)
        .str.replace_all("@URL", "URL", literal=True)
        .alias("text"),
        label.alias("label"),
        pl.col("HITId").alias("source_id"),
        hateful.cast(pl.Float32).alias("identity_attack"),
        abusive.cast(pl.Float32).alias("insult"),
        (~only_normal).cast(pl.Float32).alias("toxicity"),
        problem.alias("problem"),
    )
    return _standardise(lf.with_columns(clean_text(pl.col("text"))), "mlma_hate_speech_en")


# --------------------------------------------------------------------------------------------- registry


# Where a source's texts come from. A model can learn a place's style instead of harm, so evaluation holds out
# by source or by domain. EDOS mixes Reddit and Gab posts in one set ("reddit_gab").
DOMAINS: tuple[str, ...] = (
    "tweets",
    "news_comments",
    "wikipedia_talk",
    "reddit",
    "gab",
    "reddit_gab",
    "white_supremacist_forum",
    "github",
    "chatbot",
    "api_traffic",
)


@dataclass(frozen=True)
class SharedSource:
    """One data set under the shared data root: its name, its files (for hashing), its reader, the licence its
    texts carry into the prepared dataset (full texts in data/third_party/), its domain (one of DOMAINS), and
    whether annotators judged a single harm only (`single_harm`: EDOS and Reddit misogyny sexism only, Fox News
    and Stormfront hate only), in which case its safe rows are only "not that harm" and may still be toxic in
    other ways: screen them before trusting them as safe."""

    name: str
    files: tuple[str, ...]
    read: Callable[[Path], pl.LazyFrame]
    licence: str
    domain: str
    single_harm: bool

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise ValueError(
                f"{self.name}: unknown domain {self.domain!r}; expected one of {', '.join(DOMAINS)}"
            )


SHARED_SOURCES: tuple[SharedSource, ...] = (
    SharedSource(
        "davidson",
        ("davidson_hate_offensive/labeled_data_dev.csv",),
        read_davidson,
        "MIT; Davidson, Warmsley, Macy and Weber 2017 (ICWSM)",
        domain="tweets",
        single_harm=False,
    ),
    SharedSource(
        "civil_comments_toxic_spans",
        tuple(f"civil_comments_toxic_spans/{n}_dev.csv" for n in ("comments", "annotations", "spans")),
        read_civil_comments_spans,
        "CC0 1.0; Pavlopoulos et al. 2022 (ACL), posts from Civil Comments (Borkan et al. 2019)",
        domain="news_comments",
        single_harm=False,
    ),
    SharedSource(
        "olid",
        tuple(f"olid_offensive/{s}_{k}.txt" for s in ("train", "val") for k in ("text", "labels")),
        read_olid,
        "CC BY 4.0; Zampieri et al. 2019 (NAACL), via TweetEval (Barbieri et al. 2020)",
        domain="tweets",
        single_harm=False,
    ),
    SharedSource(
        "jigsaw_wikipedia",
        ("jigsaw_wikipedia_sample/test_examples.csv",),
        read_jigsaw_wikipedia,
        "CC0 1.0 (Jigsaw Toxic Comment Classification data), sample from IBM/MAX-Toxic-Comment-Classifier",
        domain="wikipedia_talk",
        single_harm=False,
    ),
    SharedSource(
        "fox_news_comments",
        ("fox_news_comments/fox-news-comments.json",),
        read_fox_news,
        "MIT; Gao and Huang 2017 (RANLP), sjtuprog/fox-news-comments",
        domain="news_comments",
        single_harm=True,
    ),
    SharedSource(
        "edos_semeval2023_sexism",
        ("edos_semeval2023_sexism/data/edos_labelled_aggregated.csv",),
        read_edos,
        "CC0 1.0; Kirk, Yin, Vidgen and Röttger 2023 (SemEval-2023 Task 10, EDOS)",
        domain="reddit_gab",
        single_harm=True,
    ),
    SharedSource(
        "reddit_online_misogyny_eacl2021",
        ("reddit_online_misogyny_eacl2021/data/final_labels.csv",),
        read_reddit_misogyny,
        "MIT; Guest, Vidgen, Mittos, Sastry, Tyson and Margetts 2021 (EACL)",
        domain="reddit",
        single_harm=True,
    ),
    SharedSource(
        "gab_hate_corpus_kennedy_devtest",
        tuple(
            f"gab_hate_corpus_kennedy_devtest/data/majority_gab_dataset_25k/{s}.jsonl"
            for s in ("dev", "test")
        ),
        read_gab_hate,
        "MIT; Gab Hate Corpus, Kennedy et al. 2020 (PsyArXiv) and Kennedy, Jin et al. 2020 (ACL)",
        domain="gab",
        single_harm=False,
    ),
    SharedSource(
        "stormfront_vicomtech",
        ("stormfront_vicomtech/annotations_metadata.csv", "stormfront_vicomtech/all_files.csv"),
        read_stormfront,
        "CC BY-SA 3.0 ES (share-alike: a redistributed adaptation keeps this licence); de Gibert, Perez, "
        "García-Pablos and Cuadros 2018 (ALW2)",
        domain="white_supremacist_forum",
        single_harm=True,
    ),
    SharedSource(
        "convabuse",
        tuple(f"convabuse/2_splits/ConvAbuseEMNLP{s}.csv" for s in CONVABUSE_SPLITS),
        read_convabuse,
        "CC BY 4.0; Cercas Curry, Abercrombie and Rieser 2021 (EMNLP)",
        domain="chatbot",
        single_harm=False,
    ),
    SharedSource(
        "strudel_github_toxicity",
        tuple(
            f"strudel_github_toxicity/data/training/{n}.csv"
            for n in ("train_comments", "labeled_test_issues")
        ),
        read_strudel_github,
        "MIT; Raman, Cao, Tsvetkov, Kästner and Vasilescu 2020 (ICSE NIER), CMUSTRUDEL/toxicity-detector",
        domain="github",
        single_harm=False,
    ),
    SharedSource(
        "openai_moderation_eval",
        ("openai_moderation_eval/data/samples-1680.jsonl.gz",),
        read_openai_moderation,
        "MIT; Markov et al. 2022 (arXiv:2208.03274), openai/moderation-api-release",
        domain="api_traffic",
        single_harm=False,
    ),
    SharedSource(
        "mlma_hate_speech_en",
        ("mlma_hate_speech_en/hate_speech_mlma/en_dataset_with_stop_words.csv",),
        read_mlma,
        "MIT; Ousidhoum, Lin, Zhang, Song and Yeung 2019 (EMNLP)",
        domain="tweets",
        single_harm=False,
    ),
)
JIGSAW_UB_LICENCE = "CC0 1.0; Jigsaw Unintended Bias in Toxicity Classification (Borkan et al. 2019)"
SHARED_SOURCE_NAMES = tuple(s.name for s in SHARED_SOURCES)
# Sets whose annotators judged one harm only (sexism, or hate): their "safe" rows may be abusive in another way.
SINGLE_HARM_SOURCES = frozenset(s.name for s in SHARED_SOURCES if s.single_harm)


@dataclass(frozen=True)
class ProblemReport:
    """Rows dropped because a value did not parse: how many per source, and the first few reasons."""

    counts: dict[str, int]
    examples: list[str]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def check_problems(
    df: pl.DataFrame, on_bad_rows: OnBadRows = "error", paths: dict[str, Path] | None = None
) -> tuple[pl.DataFrame, ProblemReport]:
    """Raise DataError on the first row with a `problem` ("error"), naming its file from `paths` (source ->
    file), or drop such rows and report them ("skip"). Returns the good rows without the `problem` column."""
    bad = df.filter(pl.col("problem").is_not_null())
    if bad.height and on_bad_rows == "error":
        first = bad.row(0, named=True)
        where = (paths or {}).get(first["source"], first["source"])
        raise DataError(
            where, f"{first['problem']} (use --on-bad-rows skip to drop such rows and count them)"
        )
    counts = dict(bad.group_by("source").len().iter_rows()) if bad.height else {}
    report = ProblemReport(
        counts={k: int(v) for k, v in sorted(counts.items())}, examples=bad["problem"].head(5).to_list()
    )
    return df.filter(pl.col("problem").is_null()).drop("problem"), report


def load_shared_sources(
    root: Path = DEFAULT_SHARED_ROOT,
    on_bad_rows: OnBadRows = "error",
    sources: Iterable[str] | str | None = None,
    with_scores: bool = False,
) -> pl.DataFrame:
    """text, label, source for the shared sets, cleaned, without empty texts, in SHARED_SOURCES order; with
    `with_scores` also the subtype score columns (SCORE_COLUMNS, null where a source does not judge them).

    `sources`: the names to read (a name or an iterable of SHARED_SOURCE_NAMES); None reads all 13. An unknown
    name raises ValueError listing the valid ones. Raises DataError (naming the file) when a set is missing or
    broken. Duplicates are kept: deduplicate with `dedupe_key` (as `data.prepare` does) before splitting, or
    duplicates leak across splits.
    """
    chosen = shared_sources(sources)
    frames = []
    for source in chosen:
        df = collect_checked(source.read(root), [root / f for f in source.files])
        df, _ = check_problems(df, on_bad_rows, {source.name: _source_path(root, source)})
        frames.append(df)
    columns = ("text", "label", "source", *(SCORE_COLUMNS if with_scores else ()))
    return pl.concat(frames).filter(pl.col("text") != "").select(columns)


def _source_path(root: Path, source: SharedSource) -> Path:
    """Where a source's problems are reported: its file, or the folder holding its files (the problem then
    names the file)."""
    paths = [root / f for f in source.files]
    return paths[0] if len(paths) == 1 else Path(os.path.commonpath(paths))


def shared_sources(names: Iterable[str] | str | None = None) -> tuple[SharedSource, ...]:
    """The SharedSource entries for `names` (None: all), in SHARED_SOURCES order; ValueError on an unknown name."""
    if names is None:
        return SHARED_SOURCES
    wanted = {names} if isinstance(names, str) else set(names)
    unknown = sorted(wanted - set(SHARED_SOURCE_NAMES))
    if unknown:
        raise ValueError(f"unknown source(s) {', '.join(unknown)}; valid: {', '.join(SHARED_SOURCE_NAMES)}")
    if not wanted:
        raise ValueError(f"no source named; valid: {', '.join(SHARED_SOURCE_NAMES)}")
    return tuple(s for s in SHARED_SOURCES if s.name in wanted)
