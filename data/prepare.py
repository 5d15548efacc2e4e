"""Prepare the instruction dataset: labelled sources -> cleaned, deduplicated, sampled, split, augmented
chat records (JSONL and Parquet) and a data card that says exactly what went in and what came out.

    uv run --all-extras python -m data.prepare --out out/prepared
    uv run --all-extras python -m data.prepare --jigsaw-train ~/jigsaw/train.csv --target-size 200000 \\
        --label-mix safe=0.4,potentially_harmful=0.2,harmful=0.2,extremely_harmful=0.2
    uv run --all-extras python -m data.prepare --sources none --jigsaw-train train.csv --on-bad-rows skip

Steps (polars, lazy; the read is streamed, keeping only the standard columns and a 64-bit key hash):
  read     every source through `data.readers` (bad values -> error, or counted skip with --on-bad-rows skip)
  clean    drop empty texts; deduplicate on a normalised key (case, punctuation, links, @handles ignored),
           keeping the most severe label when copies disagree, so no text can sit in two splits
  sample   to --target-size with --label-mix, sources balanced within each label (largest fair share each)
  split    train/validation/test by --splits, stratified by label and source, fixed by --seed
  seed     the team's seed corpus (`data.seed`, source team_seed: the team-written sentences for threats,
           suicide intent, dehumanisation, sexual solicitation and their safe look-alikes) added to train only,
           never to validation or test (it says what our labels mean; a figure on it would be a home figure).
           Not sampled: --target-size and --label-mix count the shared rows, the seed comes on top. A seed
           sentence whose dedupe key is a shared text's is dropped (the shared row wins and keeps its split),
           as is a second seed sentence with the same key. --no-seed-corpus leaves it out.
  augment  coded variants of a share of the harmful texts (`data.augment`), each in its parent's split
           (seed sentences too: they are train rows like any other)
  write    {split}.jsonl and {split}.parquet (messages in the Qwen chat format from `core.prompt`, and each
           record's harm categories, {category: 1, 0 or null}, from `data.categories.targets`, and for the seed
           from its sentence's family, `data.categories.seed_targets`: the category field's answers, a coded
           variant inheriting its parent's), plus data_card.json and data_card.md
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by its path (python data/prepare.py): the repository root on sys.path
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import hashlib
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from core.aws import sha256_file
from core.labels import LABELS, SEVERITY
from core.prompt import SYSTEM_PROMPT, USER_TEMPLATE
from core.settings import DEFAULT_PATTERN_DB, ROOT
from data.readers import (
    DEFAULT_SHARED_ROOT,
    JIGSAW_UB_LICENCE,
    SCORE_COLUMNS,
    SHARED_SOURCE_NAMES,
    SHARED_SOURCES,
    SINGLE_HARM_SOURCES,
    DataError,
    OnBadRows,
    check_problems,
    clean_text,
    collect_checked,
    dedupe_key,
    read_jigsaw_unintended_bias,
)
from data.seed import DEFAULT_SEED_CORPUS
from data.seed import SOURCE as TEAM_SEED

SPLITS: tuple[str, ...] = ("train", "validation", "test")
TEAM_SEED_LICENCE = (
    "this project's own writing (the team's seed corpus, data/dataset/seed_corpus.json; Apache-2.0, the project's "
    "licence in pyproject.toml)"
)
LICENCES = {
    **{s.name: s.licence for s in SHARED_SOURCES},
    "jigsaw_unintended_bias": JIGSAW_UB_LICENCE,
    TEAM_SEED: TEAM_SEED_LICENCE,
}
DEFAULT_OUT = ROOT / "out" / "prepared"
CARD_NAME = "data_card.json"


@dataclass(frozen=True)
class PrepareConfig:
    """Everything that decides the dataset. Recorded in the data card, so a card reproduces its dataset."""

    out_dir: Path = DEFAULT_OUT
    shared_root: Path = DEFAULT_SHARED_ROOT
    sources: tuple[str, ...] = SHARED_SOURCE_NAMES
    jigsaw_train: Path | None = None
    seed_corpus: Path | None = DEFAULT_SEED_CORPUS  # the team's seed corpus, train only; None: left out
    pattern_db: Path | None = DEFAULT_PATTERN_DB
    target_size: int | None = None
    label_mix: dict[str, float] | None = None
    balance_sources: bool = True
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 13
    augment_labels: tuple[str, ...] = ("harmful", "extremely_harmful")
    augment_fraction: float = 0.5
    variants_per_text: int = 1
    techniques: tuple[str, ...] = ("leetspeak", "spacing", "repetition", "homoglyph")
    on_bad_rows: OnBadRows = "error"

    def __post_init__(self) -> None:
        unknown = [s for s in self.sources if s not in SHARED_SOURCE_NAMES]
        if unknown:
            raise ValueError(
                f"unknown source(s) {unknown}; choose from {', '.join(SHARED_SOURCE_NAMES)} or none"
            )
        if not self.sources and self.jigsaw_train is None:
            raise ValueError("no input: name --sources or --jigsaw-train")
        if abs(sum(self.splits) - 1) > 1e-6 or min(self.splits) < 0:
            raise ValueError(f"--splits must be three non-negative shares summing to 1, got {self.splits}")
        if self.label_mix is not None:
            bad = [k for k in self.label_mix if k not in LABELS]
            if bad or abs(sum(self.label_mix.values()) - 1) > 1e-6 or min(self.label_mix.values()) < 0:
                raise ValueError(
                    f"--label-mix needs shares of {', '.join(LABELS)} summing to 1, got {self.label_mix}"
                )
        if self.target_size is not None and self.target_size <= 0:
            raise ValueError("--target-size must be positive")
        if self.variants_per_text < 0:
            raise ValueError("--variants-per-text must be 0 or more")
        if not 0 <= self.augment_fraction <= 1:
            raise ValueError("--augment-fraction must be in [0, 1]")
        if any(label not in LABELS for label in self.augment_labels):
            raise ValueError(f"--augment-labels must be among {', '.join(LABELS)}")


@dataclass
class Stats:
    """What each step did, for the data card."""

    read: dict[str, int] = field(default_factory=dict)
    skipped_bad_rows: dict[str, int] = field(default_factory=dict)
    skipped_examples: list[str] = field(default_factory=list)
    dropped_empty: int = 0
    dropped_duplicates: int = 0
    duplicate_label_conflicts: int = 0
    sampling: dict[str, Any] = field(default_factory=dict)
    team_seed: dict[str, Any] | None = None
    augmentation: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- inputs


def input_files(config: PrepareConfig) -> list[tuple[str, Path]]:
    """(source, path) for every file read, in a fixed order; a missing file is an error naming it."""
    files = [
        (s.name, config.shared_root / f) for s in SHARED_SOURCES if s.name in config.sources for f in s.files
    ]
    if config.jigsaw_train is not None:
        files.append(("jigsaw_unintended_bias", config.jigsaw_train))
    for _, path in files:
        if not path.is_file():
            raise DataError(path, "file not found")
    return files



def read_sources(config: PrepareConfig) -> pl.LazyFrame:
    """All chosen sources in the standard columns, plus the dedupe key's 64-bit hash `_key`."""
    frames = [s.read(config.shared_root) for s in SHARED_SOURCES if s.name in config.sources]
    if config.jigsaw_train is not None:
        frames.append(read_jigsaw_unintended_bias(config.jigsaw_train))
    return pl.concat(frames, how="vertical").with_columns(
        text_key(config.seed).alias("_key"), (pl.col("text") == "").alias("_empty")
    )


def text_key(seed: int) -> pl.Expr:
    """64-bit hash of the dedupe key of `text`. A text of only emoji or symbols has an empty key: then the
    text itself is the key, so it is kept (and deduplicated exactly) rather than dropped."""
    key = dedupe_key(pl.col("text"))
    return pl.when(key == "").then(pl.col("text")).otherwise(key).hash(seed)


def stage_rows(config: PrepareConfig, stats: Stats, inputs: list[tuple[str, Path]]) -> pl.LazyFrame:
    """Read every source (streaming, into memory: only the standard columns and the key hash are kept),
    then apply the bad-row policy."""
    df = collect_checked(read_sources(config), [path for _, path in inputs])
    stats.read = dict(sorted(df.group_by("source").len().iter_rows()))
    first_file = {source: path for source, path in reversed(inputs)}
    df, report = check_problems(df, config.on_bad_rows, first_file)
    stats.skipped_bad_rows, stats.skipped_examples = report.counts, report.examples
    return df.lazy()


# --------------------------------------------------------------------------------------------- clean


def deduplicate(lf: pl.LazyFrame, stats: Stats) -> pl.DataFrame:
    """Drop empty texts and keep one row per normalised key: the most severe label, then the first source and
    id in sort order, so the choice does not depend on input order."""
    severity = pl.col("label").replace_strict(SEVERITY, return_dtype=pl.Int8)
    nonempty = lf.filter(~pl.col("_empty")).drop("_empty")
    counts = lf.select(pl.len().alias("rows"), pl.col("_empty").sum().alias("empty")).collect()
    conflicts = nonempty.group_by("_key").agg(pl.col("label").n_unique().alias("n")).filter(pl.col("n") > 1)
    df = (
        nonempty.with_columns(severity.alias("_severity"))
        .sort(["_key", "_severity", "source", "source_id"], descending=[False, True, False, False])
        .unique("_key", keep="first", maintain_order=True)
        .drop("_severity")
        .collect(engine="streaming")
    )
    stats.dropped_empty = int(counts["empty"][0])
    stats.dropped_duplicates = int(counts["rows"][0]) - stats.dropped_empty - df.height
    stats.duplicate_label_conflicts = conflicts.select(pl.len()).collect().item()
    return df


# --------------------------------------------------------------------------------------------- sample and split


def fair_shares(available: dict[str, int], quota: int) -> dict[str, int]:
    """Split `quota` across groups as evenly as their sizes allow (water-filling): a small group gives all it
    has, the rest is shared among the larger ones. {"a": 10, "b": 1000}, 100 -> {"a": 10, "b": 90}."""
    shares = {name: 0 for name in available}
    remaining = quota
    pending = sorted(available, key=lambda n: (available[n], n))
    while pending and remaining > 0:
        fair = remaining // len(pending)
        name = pending[0]
        if available[name] <= fair:
            shares[name] = available[name]
            remaining -= available[name]
            pending.pop(0)
            continue
        for i, name in enumerate(sorted(pending)):
            shares[name] = fair + (1 if i < remaining - fair * len(pending) else 0)
        break
    return shares


def plan_quotas(
    counts: pl.DataFrame, config: PrepareConfig
) -> tuple[dict[tuple[str, str], int], dict[str, Any]]:
    """How many rows to take from each (label, source), and the sampling report (requested, available,
    selected, shortfall per label)."""
    available = {(r["label"], r["source"]): r["len"] for r in counts.iter_rows(named=True)}
    per_label = {label: sum(n for (lab, _), n in available.items() if lab == label) for label in LABELS}
    total = sum(per_label.values())
    size = min(config.target_size or total, total)
    if config.label_mix:
        requested = {label: round(size * config.label_mix.get(label, 0.0)) for label in LABELS}
    else:  # natural proportions
        requested = {label: round(size * per_label[label] / total) if total else 0 for label in LABELS}
    quotas: dict[tuple[str, str], int] = {}
    for label in LABELS:
        groups = {src: n for (lab, src), n in available.items() if lab == label}
        take = min(requested[label], per_label[label])
        if config.balance_sources:
            shares = fair_shares(groups, take)
        else:  # proportional to each source's size
            shares = {src: round(take * n / per_label[label]) for src, n in groups.items()} if take else {}
        quotas.update({(label, src): n for src, n in shares.items()})
    selected = {label: sum(n for (lab, _), n in quotas.items() if lab == label) for label in LABELS}
    report = {
        "target_size": config.target_size,
        "label_mix": config.label_mix,
        "balance_sources": config.balance_sources,
        "available": per_label,
        "requested": requested,
        "selected": selected,
        "shortfall": {
            label: requested[label] - selected[label]
            for label in LABELS
            if requested[label] > selected[label]
        },
    }
    return quotas, report


def sample_and_split(df: pl.DataFrame, config: PrepareConfig, stats: Stats) -> pl.DataFrame:
    """Take each (label, source)'s quota in a seeded random order, then cut each group into train /
    validation / test by the same order. The order is a hash of the text key, so it ignores input order."""
    quotas, stats.sampling = plan_quotas(df.group_by("label", "source").len(), config)
    quota_frame = pl.DataFrame(
        [{"label": lab, "source": src, "_quota": n} for (lab, src), n in quotas.items()],
        schema={"label": pl.String, "source": pl.String, "_quota": pl.Int64},
    )
    train, val, _ = config.splits
    group = ["label", "source"]
    rank = pl.col("_key").hash(config.seed + 1).rank("ordinal").over(group)
    taken = (
        df.lazy()
        .join(quota_frame.lazy(), on=group, how="left")
        .filter(rank <= pl.col("_quota"))
        .with_columns(rank.alias("_rank"), pl.len().over(group).alias("_n"))
    )
    # Cumulative rounding per group: 8 rows at 0.8/0.1/0.1 -> 6/1/1, so small groups reach every split.
    split = (
        pl.when(pl.col("_rank") <= (pl.col("_n") * train).round())
        .then(pl.lit("train"))
        .when(pl.col("_rank") <= (pl.col("_n") * (train + val)).round())
        .then(pl.lit("validation"))
        .otherwise(pl.lit("test"))
    )
    return taken.with_columns(split.alias("split")).drop("_quota", "_rank", "_n").collect()


# --------------------------------------------------------------------------------------------- seed corpus


def load_team_seed(config: PrepareConfig) -> pl.DataFrame | None:
    """The seed corpus (`data.seed.load_seed`, its own fixed expansion, not --seed) as standard rows: text
    cleaned as the readers clean it, source team_seed, source_id the first 16 hex digits of the SHA-256 of the
    sentence (stable when other sentences are added or removed), scores null, split train, and `_family` (the
    template family, for the categories). None when `seed_corpus` is None. A missing or malformed file is a
    DataError naming it, raised before anything is written."""
    if config.seed_corpus is None:
        return None
    from data.seed import load_seed

    path = Path(config.seed_corpus)
    if not path.is_file():
        raise DataError(path, "seed corpus not found (pass --seed-corpus PATH, or --no-seed-corpus to leave it out)")
    try:
        rows = load_seed(path)
    except ValueError as err:  # a malformed template names the template, not always the file
        if str(path) in str(err):
            raise
        raise DataError(path, str(err)) from None
    frame = pl.DataFrame(
        {
            "text": [r.text for r in rows],
            "label": [r.label for r in rows],
            "source_id": [hashlib.sha256(r.text.encode("utf-8")).hexdigest()[:16] for r in rows],
            "_family": [r.family for r in rows],
        },
        schema={"text": pl.String, "label": pl.String, "source_id": pl.String, "_family": pl.String},
    )
    return frame.with_columns(
        clean_text(pl.col("text")),
        pl.lit(TEAM_SEED).alias("source"),
        *[pl.lit(None, pl.Float32).alias(c) for c in SCORE_COLUMNS],
        pl.lit("train").alias("split"),
    )


def add_team_seed(
    sampled: pl.DataFrame, shared: pl.DataFrame, seed_rows: pl.DataFrame | None, config: PrepareConfig, stats: Stats
) -> pl.DataFrame:
    """`sampled` plus the seed sentences, all in train. Deduplicated by the same key as the shared rows: a seed
    sentence whose key is any shared text's (`shared`: every shared row after deduplication, sampled or not,
    so the seed's count does not depend on --target-size) is dropped and the shared row wins, keeping its
    label and split (the seed must never put a text in two splits, and must not change the shared sample);
    of seed sentences sharing a key, the first in load_seed order is kept. The shared row wins even when the
    seed's label is more severe (unlike copies among the shared sets): taking the seed's label would relabel a
    row already sampled, perhaps into validation or test; the card counts such cases
    (`duplicates_of_shared_with_another_label`). Adds `_family` (null on shared rows)."""
    out = sampled.with_columns(pl.lit(None, pl.String).alias("_family"))
    if seed_rows is None:
        return out
    keyed = seed_rows.filter(pl.col("text") != "").with_columns(text_key(config.seed).alias("_key"))
    unique_seed = keyed.unique("_key", keep="first", maintain_order=True)
    shared_keys = shared.select("_key", pl.col("label").alias("_shared_label"))
    clashes = unique_seed.join(shared_keys, on="_key", how="inner")
    added = unique_seed.join(shared_keys, on="_key", how="anti")
    added = added.with_columns(pl.concat_str("source", pl.lit(":"), "source_id").alias("id"))
    stats.team_seed = {
        "path": str(config.seed_corpus),
        "split": "train",
        "sentences": seed_rows.height,
        "empty_dropped": seed_rows.height - keyed.height,
        "duplicates_within_dropped": keyed.height - unique_seed.height,
        "duplicates_of_shared_dropped": clashes.height,
        "duplicates_of_shared_with_another_label": clashes.filter(pl.col("label") != pl.col("_shared_label")).height,
        "added": added.height,
        "added_by_label": {label: added.filter(pl.col("label") == label).height for label in LABELS},
    }
    return pl.concat([out, added.select(out.columns)], how="vertical")


# --------------------------------------------------------------------------------------------- augment


def load_pattern_db(path: Path | None):
    """The pattern database, or None when augmentation should use generic techniques only."""
    if path is None:
        return None
    from normalizer.database import load_database

    return load_database(path)


def augment(df: pl.DataFrame, config: PrepareConfig, db, stats: Stats) -> pl.DataFrame:
    """Records for the originals and their coded variants. Each variant keeps its parent's label, source and
    split; variants whose key equals another record's key are dropped (they would be near-duplicates)."""
    from data.augment import Augmenter

    augmenter = Augmenter.from_database(db, seed=config.seed, techniques=config.techniques)
    chosen = df.filter(
        pl.col("label").is_in(config.augment_labels)
        & (pl.col("_key").hash(config.seed + 2) % 1_000_000 < int(config.augment_fraction * 1_000_000))
    ).select("id", "text")
    from core.progress import progress

    rows: list[dict[str, Any]] = []
    for parent_id, text in progress(chosen.iter_rows(), total=chosen.height, desc="augmenting", unit="texts"):
        for i, variant in enumerate(augmenter.variants(text, parent_id, n=config.variants_per_text)):
            rows.append(
                {
                    "id": f"{parent_id}~v{i + 1}",
                    "parent_id": parent_id,
                    "text": variant.text,
                    "techniques": list(variant.techniques),
                    "pattern_ids": list(variant.pattern_ids),
                }
            )
    originals = df.with_columns(
        pl.lit(None, pl.String).alias("parent_id"),
        pl.lit([], pl.List(pl.String)).alias("techniques"),
        pl.lit([], pl.List(pl.String)).alias("pattern_ids"),
    )
    variants = _variant_frame(rows, df, config.seed)
    before = variants.height
    variants = _drop_colliding_variants(variants, originals)
    stats.augmentation = {
        "labels": list(config.augment_labels),
        "fraction": config.augment_fraction,
        "variants_per_text": config.variants_per_text,
        "techniques": list(config.techniques),
        "parents_chosen": chosen.height,
        "variants_made": before,
        "variants_dropped_as_duplicates": before - variants.height,
    }
    return pl.concat([originals, variants.select(originals.columns)], how="vertical")


def _drop_colliding_variants(variants: pl.DataFrame, originals: pl.DataFrame) -> pl.DataFrame:
    """Drop a variant whose dedupe key is another text's: an original other than its parent, or a variant of
    another parent. Matching its own parent is fine ("k.i.l.l" keys like "kill") as both share a split."""
    owners = originals.select("_key", pl.col("id").alias("_owner"))
    return (
        variants.join(owners, on="_key", how="left")
        .filter(pl.col("_owner").is_null() | (pl.col("_owner") == pl.col("parent_id")))
        .filter(pl.col("parent_id") == pl.col("parent_id").min().over("_key"))
        .drop("_owner")
    )


def _variant_frame(rows: list[dict[str, Any]], parents: pl.DataFrame, seed: int) -> pl.DataFrame:
    schema = {
        "id": pl.String,
        "parent_id": pl.String,
        "text": pl.String,
        "techniques": pl.List(pl.String),
        "pattern_ids": pl.List(pl.String),
    }
    variants = pl.DataFrame(rows, schema=schema)
    inherited = parents.select(pl.col("id").alias("parent_id"), pl.exclude("id", "text", "_key"))
    return variants.join(inherited, on="parent_id", how="left").with_columns(text_key(seed).alias("_key"))


# --------------------------------------------------------------------------------------------- write


def messages_expr() -> pl.Expr:
    """The chat messages of `core.prompt.build_training_messages`, built column-wise."""
    prefix, sep, suffix = USER_TEMPLATE.partition("{text}")
    if not sep or "{" in prefix + suffix:
        raise ValueError("core.prompt.USER_TEMPLATE must contain {text} exactly once and no other field")

    def message(role: str, content: pl.Expr) -> pl.Expr:
        return pl.struct(pl.lit(role).alias("role"), content.alias("content"))

    return pl.concat_list(
        message("system", pl.lit(SYSTEM_PROMPT)),
        message("user", pl.concat_str(pl.lit(prefix), pl.col("text"), pl.lit(suffix))),
        message("assistant", pl.col("label")),
    ).alias("messages")


RECORD_COLUMNS = (
    "id",
    "parent_id",
    "split",
    "source",
    "source_id",
    "label",
    "text",
    "techniques",
    "pattern_ids",
    *SCORE_COLUMNS,
    "categories",
)


def categories_expr(records: pl.DataFrame) -> pl.Series:
    """Each record's harm categories as a struct {category: 1 yes, 0 no, null unknown} (data.categories.targets,
    the targets the category heads train on): what the prompt's category field is trained to answer."""
    from core.categories import CATEGORIES
    from data.categories import seed_targets, targets

    judged = targets(records.select("source", "label", "_family", *SCORE_COLUMNS), SINGLE_HARM_SOURCES)
    judged = seed_targets(judged, source=TEAM_SEED, family="_family")  # the seed: from its family, not scores
    return judged.select(pl.struct(*CATEGORIES).alias("categories")).to_series()


def write_outputs(records: pl.DataFrame, out_dir: Path, seed: int) -> list[dict[str, Any]]:
    """{split}.jsonl and {split}.parquet per split, rows in a seeded shuffled order; returns file entries."""
    files = []
    # Scores are float32 while processing; written as float64 rounded to 6 places, so JSONL and Parquet agree.
    scores = pl.col(SCORE_COLUMNS).cast(pl.Float64).round(6)
    table = records.with_columns(messages_expr(), categories_expr(records), scores).sort(pl.col("id").hash(seed + 3), "id")
    for split in SPLITS:
        part = table.filter(pl.col("split") == split).select("messages", *RECORD_COLUMNS)
        for fmt in ("jsonl", "parquet"):
            path = out_dir / f"{split}.{fmt}"
            part.write_ndjson(path) if fmt == "jsonl" else part.write_parquet(path, compression="zstd")
            files.append(
                {
                    "path": path.name,
                    "split": split,
                    "format": fmt,
                    "rows": part.height,
                    "bytes": path.stat().st_size,
                    "sha256": sha256_file(path),
                }
            )
    return files


# --------------------------------------------------------------------------------------------- data card


def _counts(records: pl.DataFrame, *by: str) -> dict[str, Any]:
    """Nested counts, e.g. {"train": {"safe": 10, ...}, ...}, keys sorted."""
    out: dict[str, Any] = {}
    for row in records.group_by(*by).len().sort(*by).iter_rows():
        *keys, n = row
        node = out
        for k in keys[:-1]:
            node = node.setdefault(str(k), {})
        node[str(keys[-1])] = int(n)
    return out


def build_card(
    config: PrepareConfig, records: pl.DataFrame, stats: Stats, inputs, outputs, db
) -> dict[str, Any]:
    """The data card: no timestamps, so the same inputs and settings give the same card byte for byte."""
    techniques = records.select("split", "techniques").explode("techniques").drop_nulls()
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    settings.pop("out_dir")
    return {
        "name": "algospeak-moderation-instructions",
        "format": {
            "records": "JSONL and Parquet per split",
            "chat": "Qwen chat messages: system, user, assistant (label)",
            "labels": list(LABELS),
            "system_prompt_sha256": hashlib.sha256(SYSTEM_PROMPT.encode()).hexdigest(),
            "user_template": USER_TEMPLATE,
        },
        "settings": settings,
        "inputs": [
            {"source": s, "path": str(p), "bytes": p.stat().st_size, "sha256": sha256_file(p)}
            for s, p in inputs
        ],
        "licences": {s: LICENCES[s] for s in sorted({s for s, _ in inputs})},
        "pattern_database": None
        if db is None
        else {
            "path": str(db.path),
            "version": db.version,
            "date": db.date,
            "entries": len(db),
            "sha256": db.sha256,
        },
        "steps": {
            "rows_read": stats.read,
            "bad_rows_skipped": stats.skipped_bad_rows,
            "bad_row_examples": stats.skipped_examples,
            "empty_dropped": stats.dropped_empty,
            "duplicates_dropped": stats.dropped_duplicates,
            "duplicate_keys_with_conflicting_labels": stats.duplicate_label_conflicts,
            "sampling": stats.sampling,
            "team_seed": stats.team_seed,
            "augmentation": stats.augmentation,
        },
        "counts": {
            "total": records.height,
            "by_split": _counts(records, "split"),
            "by_split_label": _counts(records, "split", "label"),
            "by_split_source": _counts(records, "split", "source"),
            "by_source_label": _counts(records, "source", "label"),
            "by_split_kind": _counts(
                records.with_columns(
                    pl.when(pl.col("parent_id").is_null())
                    .then(pl.lit("original"))
                    .otherwise(pl.lit("variant"))
                    .alias("kind")
                ),
                "split",
                "kind",
            ),
            "by_split_technique": _counts(techniques, "split", "techniques") if techniques.height else {},
        },
        "outputs": outputs,
        "software": {"python": platform.python_version(), "polars": pl.__version__},
    }


def render_card(card: dict[str, Any]) -> str:
    """The data card as Markdown: the counts as tables, the settings and provenance as lists."""
    lines = [f"# Data card: {card['name']}", ""]
    counts = card["counts"]
    lines += [f"{counts['total']} records. Labels: {', '.join(card['format']['labels'])}.", ""]
    for title, key, columns in (
        ("Labels by split", "by_split_label", LABELS),
        ("Sources by split", "by_split_source", None),
        ("Originals and variants by split", "by_split_kind", ("original", "variant")),
        ("Techniques by split (variants)", "by_split_technique", None),
    ):
        lines += [f"## {title}", "", *_table(counts[key], columns), ""]
    lines += ["## Labels by source (originals and variants)", "", *_source_table(counts["by_source_label"]), ""]
    steps = card["steps"]
    lines += ["## Steps", ""]
    lines += [f"- {k.replace('_', ' ')}: {json.dumps(v)}" for k, v in steps.items()]
    db = card["pattern_database"]
    lines += [
        "",
        "## Provenance",
        "",
        f"- pattern database: {'none' if db is None else db['version'] + ' (' + db['sha256'][:12] + ')'}",
    ]
    lines += [f"- {i['source']}: `{Path(i['path']).name}` sha256 {i['sha256']}" for i in card["inputs"]]
    lines += ["", "## Licences (texts are redistributed under these; see data/third_party/)", ""]
    lines += [f"- {source}: {licence}" for source, licence in card["licences"].items()]
    lines += ["", "## Settings", "", *[f"- {k}: {json.dumps(v)}" for k, v in card["settings"].items()], ""]
    lines += ["## Files", "", "| file | rows | bytes | sha256 |", "|---|---|---|---|"]
    lines += [
        f"| {f['path']} | {f['rows']} | {f['bytes']} | {f['sha256'][:16]}... |" for f in card["outputs"]
    ]
    return "\n".join(lines) + "\n"


def _source_table(nested: dict[str, dict[str, int]]) -> list[str]:
    rows = [f"| source | {' | '.join(LABELS)} | total |", "|---" * (len(LABELS) + 2) + "|"]
    for source, row in nested.items():
        rows.append(f"| {source} | {' | '.join(str(row.get(c, 0)) for c in LABELS)} | {sum(row.values())} |")
    return rows


def _table(nested: dict[str, dict[str, int]], columns) -> list[str]:
    columns = list(columns or sorted({c for row in nested.values() for c in row}))
    rows = [f"| split | {' | '.join(columns)} | total |", "|---" * (len(columns) + 2) + "|"]
    for split in SPLITS:
        row = nested.get(split, {})
        rows.append(f"| {split} | {' | '.join(str(row.get(c, 0)) for c in columns)} | {sum(row.values())} |")
    return rows


# --------------------------------------------------------------------------------------------- pipeline


class StderrLog:
    """Progress lines on stderr, each with the seconds since the run started."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self, msg: str) -> None:
        print(f"[{time.perf_counter() - self.start:6.1f}s] {msg}", file=sys.stderr)


def prepare(config: PrepareConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every step and write the dataset and its card into `config.out_dir`; returns the card."""
    log = log or StderrLog()
    inputs = input_files(config)
    db = load_pattern_db(config.pattern_db)
    seed_rows = load_team_seed(config)  # before anything is written: a bad seed corpus leaves no partial output
    config.out_dir.mkdir(parents=True, exist_ok=True)
    stats = Stats()
    log(f"reading {len(inputs)} file(s)")
    rows = stage_rows(config, stats, inputs)
    if stats.skipped_bad_rows:
        log(
            f"skipped {sum(stats.skipped_bad_rows.values())} bad row(s): {stats.skipped_bad_rows}; first: {stats.skipped_examples[0]}"
        )
    unique = deduplicate(rows, stats)
    log(
        f"{sum(stats.read.values())} rows read, {stats.dropped_empty} empty and {stats.dropped_duplicates} duplicates dropped"
    )
    unique = unique.with_columns(pl.concat_str("source", pl.lit(":"), "source_id").alias("id"))
    _check_unique_ids(unique)
    sampled = sample_and_split(unique, config, stats)
    for label, missing in stats.sampling["shortfall"].items():
        log(
            f"warning: {label}: {missing} fewer rows than requested (only {stats.sampling['selected'][label]} available)"
        )
    sampled = add_team_seed(sampled, unique, seed_rows, config, stats)
    if stats.team_seed is not None:
        log(
            f"team seed: {stats.team_seed['added']} of {stats.team_seed['sentences']} sentences added to train "
            f"({stats.team_seed['duplicates_of_shared_dropped']} already in the shared sets, "
            f"{stats.team_seed['duplicates_within_dropped']} duplicates within it)"
        )
    records = augment(sampled, config, db, stats)
    log(f"{records.height} records after augmentation; writing")
    outputs = write_outputs(records, config.out_dir, config.seed)
    if config.seed_corpus is not None:
        inputs = [*inputs, (TEAM_SEED, Path(config.seed_corpus))]
    card = build_card(config, records, stats, inputs, outputs, db)
    (config.out_dir / CARD_NAME).write_text(
        json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (config.out_dir / "data_card.md").write_text(render_card(card), encoding="utf-8")
    return card


def _check_unique_ids(df: pl.DataFrame) -> None:
    dup = df.filter(pl.col("id").is_duplicated()).head(1)
    if dup.height:
        raise DataError(dup["source"][0], f"id {dup['source_id'][0]!r} appears on two different texts")


# --------------------------------------------------------------------------------------------- CLI


def _mix(value: str) -> dict[str, float]:
    try:
        pairs = [item.split("=", 1) for item in value.split(",") if item]
        return {k.strip(): float(v) for k, v in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected label=share,... got {value!r}") from None


def _list(value: str) -> tuple[str, ...]:
    return () if value.strip().lower() == "none" else tuple(v.strip() for v in value.split(",") if v.strip())


def _splits(value: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three shares like 0.8,0.1,0.1, got {value!r}") from None
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected three shares like 0.8,0.1,0.1, got {value!r}")
    return parts  # type: ignore[return-value]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data.prepare",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = PrepareConfig()
    parser.add_argument("--out", type=Path, default=d.out_dir, help="output folder (default: %(default)s)")
    parser.add_argument(
        "--shared-root", type=Path, default=d.shared_root, help="the shared data sets (default: %(default)s)"
    )
    parser.add_argument(
        "--sources",
        type=_list,
        default=d.sources,
        help=f"shared sets to read, comma-separated, or none (default: {','.join(d.sources)})",
    )
    parser.add_argument("--jigsaw-train", type=Path, help="Jigsaw Unintended Bias train.csv (45 columns)")
    parser.add_argument(
        "--seed-corpus",
        type=Path,
        default=d.seed_corpus,
        help="the team's seed corpus, added to train only (default: %(default)s)",
    )
    parser.add_argument(
        "--no-seed-corpus", action="store_true", help="leave the team's seed corpus out"
    )
    parser.add_argument(
        "--pattern-db", type=Path, default=d.pattern_db, help="pattern database (default: %(default)s)"
    )
    parser.add_argument(
        "--no-pattern-db", action="store_true", help="augment with the generic techniques only"
    )
    parser.add_argument("--target-size", type=int, help="rows to sample before augmentation (default: all)")
    parser.add_argument(
        "--label-mix",
        type=_mix,
        help="label shares, e.g. safe=0.4,potentially_harmful=0.2,harmful=0.2,extremely_harmful=0.2 (default: natural)",
    )
    parser.add_argument(
        "--no-balance-sources",
        action="store_true",
        help="sample sources in proportion instead of evenly within a label",
    )
    parser.add_argument(
        "--splits", type=_splits, default=d.splits, help="train,validation,test shares (default: 0.8,0.1,0.1)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=d.seed,
        help="seed for sampling, splitting and augmentation (default: %(default)s)",
    )
    parser.add_argument(
        "--augment-labels",
        type=_list,
        default=d.augment_labels,
        help="labels whose texts get variants (default: harmful,extremely_harmful)",
    )
    parser.add_argument(
        "--augment-fraction",
        type=float,
        default=d.augment_fraction,
        help="share of those texts that get variants (default: %(default)s)",
    )
    parser.add_argument(
        "--variants-per-text",
        type=int,
        default=d.variants_per_text,
        help="variants per chosen text (default: %(default)s)",
    )
    parser.add_argument(
        "--techniques",
        type=_list,
        default=d.techniques,
        help="generic techniques (default: leetspeak,spacing,repetition,homoglyph)",
    )
    parser.add_argument(
        "--on-bad-rows",
        choices=("error", "skip"),
        default=d.on_bad_rows,
        help="a row that does not parse: stop, or skip and count it (default: error)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> PrepareConfig:
    return PrepareConfig(
        out_dir=args.out,
        shared_root=args.shared_root,
        sources=args.sources,
        jigsaw_train=args.jigsaw_train,
        seed_corpus=None if args.no_seed_corpus else args.seed_corpus,
        pattern_db=None if args.no_pattern_db else args.pattern_db,
        target_size=args.target_size,
        label_mix=args.label_mix,
        balance_sources=not args.no_balance_sources,
        splits=args.splits,
        seed=args.seed,
        augment_labels=args.augment_labels,
        augment_fraction=args.augment_fraction,
        variants_per_text=args.variants_per_text,
        techniques=args.techniques,
        on_bad_rows=args.on_bad_rows,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from normalizer.database import PatternDatabaseError

    try:
        card = prepare(config_from_args(args))
    except (DataError, PatternDatabaseError, ValueError) as err:
        hint = " (or pass --no-pattern-db)" if isinstance(err, PatternDatabaseError) else ""
        print(f"error: {err}{hint}", file=sys.stderr)
        return 1
    by_split = card["counts"]["by_split"]
    print(
        f"wrote {card['counts']['total']} records to {args.out}: "
        + ", ".join(f"{s} {by_split.get(s, 0)}" for s in SPLITS)
    )
    from core import records

    outputs = {"dataset_dir": str(Path(args.out).resolve()), "card": str(Path(args.out).resolve() / CARD_NAME),
               "card_sha256": records.sha256_file(Path(args.out) / CARD_NAME), "records": card["counts"]["total"],
               "by_split": by_split}
    print(f"record: {records.write('prepare', outputs)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
