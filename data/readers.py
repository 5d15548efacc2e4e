"""Readers for the labelled data sets: each maps one source's own labels onto `core.labels.LABELS`.

Every reader returns a polars LazyFrame with the standard columns (`STANDARD_SCHEMA`):

    text        the cleaned text (HTML entities decoded, @handles -> @user, links -> URL, whitespace collapsed)
    label       one of LABELS
    source      the source name (e.g. "jigsaw_unintended_bias")
    source_id   the row's id in its source, for tracing a record back
    toxicity, severe_toxicity, obscene, identity_attack, insult, threat, sexual_explicit
                subtype scores in [0, 1] where the source has them, else null
    problem     null for a good row; otherwise why it is unusable ("record 12, column 'target': not a number: 'x'")

Bad input never turns silently into a wrong dataset: a missing column, an empty file or a malformed CSV row
raises `DataError` naming the file (and the record and column where known) at read time; a value that does not
parse is carried in `problem` so the caller chooses: `check_problems(..., on_bad_rows="error")` raises on the
first one, "skip" drops and counts them.

The simple entry point for training code:

    from data.readers import load_shared_sources
    df = load_shared_sources()          # text, label, source from the four sets in ../shared/data
"""

from __future__ import annotations

import csv
import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from core.labels import LABELS
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
        .join(span_flags, on="annotation", how="left")
        .group_by("comment_id", "annotation")
        .agg(pl.col("all_toxic").first(), *[pl.col(s).fill_null(False).any() for s in _SPAN_TYPES.values()])
    )
    per_post = per_rater.group_by("comment_id").agg(
        pl.col("all_toxic").mean().alias("all_toxic_share"),
        *[pl.col(s).mean() for s in _SPAN_TYPES.values()],
    )
    extreme = (pl.col("threat").fill_null(0) > 0) | (pl.col("all_toxic_share").fill_null(0) > 0.5)
    lf = comments.join(per_post, on="comment_id", how="left").select(
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


# --------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class SharedSource:
    """One data set under the shared data root: its name, its files (for hashing), its reader and the licence
    its texts carry into the prepared dataset (full texts in data/third_party/)."""

    name: str
    files: tuple[str, ...]
    read: Callable[[Path], pl.LazyFrame]
    licence: str


SHARED_SOURCES: tuple[SharedSource, ...] = (
    SharedSource(
        "davidson",
        ("davidson_hate_offensive/labeled_data_dev.csv",),
        read_davidson,
        "MIT; Davidson, Warmsley, Macy and Weber 2017 (ICWSM)",
    ),
    SharedSource(
        "civil_comments_toxic_spans",
        tuple(f"civil_comments_toxic_spans/{n}_dev.csv" for n in ("comments", "annotations", "spans")),
        read_civil_comments_spans,
        "CC0 1.0; Pavlopoulos et al. 2022 (ACL), posts from Civil Comments (Borkan et al. 2019)",
    ),
    SharedSource(
        "olid",
        tuple(f"olid_offensive/{s}_{k}.txt" for s in ("train", "val") for k in ("text", "labels")),
        read_olid,
        "CC BY 4.0; Zampieri et al. 2019 (NAACL), via TweetEval (Barbieri et al. 2020)",
    ),
    SharedSource(
        "jigsaw_wikipedia",
        ("jigsaw_wikipedia_sample/test_examples.csv",),
        read_jigsaw_wikipedia,
        "CC0 1.0 (Jigsaw Toxic Comment Classification data), sample from IBM/MAX-Toxic-Comment-Classifier",
    ),
)
JIGSAW_UB_LICENCE = "CC0 1.0; Jigsaw Unintended Bias in Toxicity Classification (Borkan et al. 2019)"
SHARED_SOURCE_NAMES = tuple(s.name for s in SHARED_SOURCES)


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


def load_shared_sources(root: Path = DEFAULT_SHARED_ROOT, on_bad_rows: OnBadRows = "error") -> pl.DataFrame:
    """text, label, source for all four shared sets, cleaned, without empty texts.

    Raises DataError (naming the file) when a set is missing or broken. Duplicates are kept: deduplicate with
    `dedupe_key` (as `data.prepare` does) before splitting, or duplicates leak across splits.
    """
    frames = []
    for source in SHARED_SOURCES:
        df = collect_checked(source.read(root), [root / f for f in source.files])
        df, _ = check_problems(df, on_bad_rows, {source.name: root / source.files[0]})
        frames.append(df)
    return pl.concat(frames).filter(pl.col("text") != "").select("text", "label", "source")
