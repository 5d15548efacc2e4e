"""The preparation step end to end on small files in the real formats, and its parts."""

from __future__ import annotations

import hashlib
import json
import re

import polars as pl
import pytest

from core.categories import CATEGORIES
from core.labels import LABELS
from core.prompt import build_training_messages
from data.prepare import PrepareConfig, fair_shares, main, prepare
from data.readers import DataError, dedupe_key
from tests.data.conftest import jigsaw_row, write_jigsaw_csv

TARGETS = {"safe": 0.05, "potentially_harmful": 0.3, "harmful": 0.6, "extremely_harmful": 0.9}


def jigsaw_rows(n_per_label: int = 30) -> list[dict]:
    rows = []
    for label, target in TARGETS.items():
        for i in range(n_per_label):
            word = "kill" if label == "extremely_harmful" else "stupid" if label == "harmful" else "nice"
            rows.append(jigsaw_row(len(rows), f"{label} comment {i}: you are {word} number {i}", target))
    # A near-duplicate family: the most severe copy must win, and only one copy may survive.
    rows += [
        jigsaw_row(900, "You're an IDIOT!!", 0.1),
        jigsaw_row(901, "RT @x: you're an idiot http://t.co/abc", 0.85),
        jigsaw_row(902, "  you're   an idiot ", 0.55),
        jigsaw_row(903, "   ", 0.0),  # empty after cleaning
    ]
    return rows


@pytest.fixture
def jigsaw_file(tmp_path):
    return write_jigsaw_csv(tmp_path / "train.csv", jigsaw_rows())


def config(tmp_path, shared, jigsaw, db, **overrides) -> PrepareConfig:
    base = {
        "out_dir": tmp_path / "out",
        "shared_root": shared,
        "jigsaw_train": jigsaw,
        "pattern_db": db,
        "seed": 5,
        "seed_corpus": None,  # the team's seed corpus: its own tests below
    }
    return PrepareConfig(**{**base, **overrides})


def originals_of(records: pl.DataFrame) -> pl.DataFrame:
    return records.filter(pl.col("parent_id").is_null())


def read_records(out_dir) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(out_dir / f"{s}.parquet") for s in ("train", "validation", "test")])


def test_prepare_end_to_end(tmp_path, mini_shared, pattern_db_path, capsys):
    threat = jigsaw_row(904, "i will hunt you down and end you tonight", 0.9, threat=0.9)  # violence: yes
    jigsaw_file = write_jigsaw_csv(tmp_path / "train.csv", [*jigsaw_rows(), threat])
    card = prepare(config(tmp_path, mini_shared, jigsaw_file, pattern_db_path), log=lambda _: None)
    # stderr is not a terminal here: the augmentation's progress is a plain line with its total
    assert re.search(r"^augmenting: (\d+)/\1 texts \(100%\), \d+s elapsed, eta 0s$", capsys.readouterr().err, re.M)
    out = tmp_path / "out"
    records = read_records(out)

    # JSONL and Parquet hold the same records, and the card counts them right.
    for split in ("train", "validation", "test"):
        jsonl = [
            json.loads(line) for line in (out / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        ]
        parquet = pl.read_parquet(out / f"{split}.parquet").to_dicts()
        assert jsonl == parquet
        assert len(jsonl) == card["counts"]["by_split"].get(split, 0)
    assert records.height == card["counts"]["total"]
    assert {f["path"]: f["sha256"] for f in card["outputs"]} == {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in out.glob("*.*")
        if p.suffix in (".jsonl", ".parquet")
    }

    # Every record is the shared prompt with the label as the answer.
    for row in records.iter_rows(named=True):
        assert row["messages"] == build_training_messages(row["text"], row["label"])
        assert row["label"] in LABELS

    # Each record carries its harm categories (the category field's answers): 1 yes, 0 no, None unknown.
    assert all(list(c) == list(CATEGORIES) for c in records["categories"])
    by_text = {row["text"]: row["categories"] for row in originals_of(records).iter_rows(named=True)}
    assert by_text["i will hunt you down and end you tonight"]["violence"] == 1
    assert by_text["i will hunt you down and end you tonight"]["drugs"] is None  # never judged: unknown, not no
    assert by_text["safe comment 0: you are nice number 0"] == dict.fromkeys(CATEGORIES, 0)  # safe: no harm
    assert by_text["harmful comment 0: you are stupid number 0"]["harassment"] is None  # insult 0.1: raters split

    # Near-duplicates collapsed to one record, with the most severe label; the blank text is gone.
    originals = records.filter(pl.col("parent_id").is_null())
    idiots = originals.filter(pl.col("text").str.to_lowercase().str.contains("you.re an idiot"))
    assert idiots["label"].to_list() == ["extremely_harmful"]
    assert card["steps"]["empty_dropped"] == 1
    assert card["steps"]["duplicates_dropped"] == 2

    # No normalised text sits in two splits.
    keys = originals.with_columns(dedupe_key(pl.col("text")).alias("key"))
    assert keys.group_by("key").agg(pl.col("split").n_unique()).filter(pl.col("split") > 1).height == 0
    assert keys["key"].is_unique().all()

    # Every variant stays with its parent: same split, same label, and says how it was made.
    variants = records.filter(pl.col("parent_id").is_not_null())
    assert variants.height > 0
    joined = variants.join(originals, left_on="parent_id", right_on="id", suffix="_parent")
    assert joined.height == variants.height
    assert (joined["split"] == joined["split_parent"]).all() and (
        joined["label"] == joined["label_parent"]
    ).all()
    assert joined["categories"].to_list() == joined["categories_parent"].to_list()  # a coded copy, same harms
    assert set(variants["label"]) <= {"harmful", "extremely_harmful"}
    assert all(len(t) > 0 for t in variants["techniques"])
    assert card["counts"]["by_split_technique"]

    # Provenance: input hashes, the pattern database version, the sources read.
    for entry in card["inputs"]:
        with open(entry["path"], "rb") as f:
            assert entry["sha256"] == hashlib.file_digest(f, "sha256").hexdigest()
    assert card["pattern_database"]["version"] == "1.2.3"
    assert card["steps"]["rows_read"] == {
        "civil_comments_toxic_spans": 4,
        "davidson": 4,
        "jigsaw_unintended_bias": 125,
        "jigsaw_wikipedia": 4,
        "olid": 3,
        # The second-wave mini sets (tests/data/conftest.py: write_mini_second_wave).
        "convabuse": 3,
        "edos_semeval2023_sexism": 2,
        "fox_news_comments": 2,
        "gab_hate_corpus_kennedy_devtest": 2,
        "mlma_hate_speech_en": 2,
        "openai_moderation_eval": 2,
        "reddit_online_misogyny_eacl2021": 2,
        "stormfront_vicomtech": 2,
        "strudel_github_toxicity": 3,
    }
    markdown = (out / "data_card.md").read_text(encoding="utf-8")
    assert "| split | safe | potentially_harmful | harmful | extremely_harmful | total |" in markdown


def test_same_inputs_same_bytes(tmp_path, mini_shared, jigsaw_file, pattern_db_path):
    first = prepare(config(tmp_path / "a", mini_shared, jigsaw_file, pattern_db_path), log=lambda _: None)
    second = prepare(config(tmp_path / "b", mini_shared, jigsaw_file, pattern_db_path), log=lambda _: None)
    assert first["outputs"] == second["outputs"]
    third = prepare(
        config(tmp_path / "c", mini_shared, jigsaw_file, pattern_db_path, seed=6), log=lambda _: None
    )
    assert [f["sha256"] for f in third["outputs"]] != [f["sha256"] for f in first["outputs"]]


def test_target_size_and_label_mix(tmp_path, jigsaw_file, pattern_db_path):
    mix = {"safe": 0.5, "potentially_harmful": 0.1, "harmful": 0.1, "extremely_harmful": 0.3}
    card = prepare(
        config(
            tmp_path,
            tmp_path,
            jigsaw_file,
            pattern_db_path,
            sources=(),
            target_size=80,
            label_mix=mix,
            augment_fraction=0,
        ),
        log=lambda _: None,
    )
    sampling = card["steps"]["sampling"]
    assert sampling["requested"] == {
        "safe": 40,
        "potentially_harmful": 8,
        "harmful": 8,
        "extremely_harmful": 24,
    }
    # 30 safe rows exist: the shortfall is reported, not made up from other labels.
    assert sampling["selected"] == {
        "safe": 30,
        "potentially_harmful": 8,
        "harmful": 8,
        "extremely_harmful": 24,
    }
    assert sampling["shortfall"] == {"safe": 10}
    totals = {
        label: sum(
            card["counts"]["by_split_label"][s].get(label, 0) for s in card["counts"]["by_split_label"]
        )
        for label in LABELS
    }
    assert totals == sampling["selected"]
    # Each (label, source) group is cut 0.8/0.1/0.1 with rounding: 30 -> 24/3/3, 8 -> 6/1/1, 24 -> 19/3/2.
    assert card["counts"]["by_split"] == {"train": 55, "validation": 8, "test": 7}


def test_fair_shares_water_fills():
    assert fair_shares({"a": 10, "b": 1000, "c": 1000}, 100) == {"a": 10, "b": 45, "c": 45}
    assert fair_shares({"a": 10, "b": 20}, 100) == {"a": 10, "b": 20}
    assert fair_shares({"a": 50, "b": 50, "c": 50}, 100) == {"a": 34, "b": 33, "c": 33}
    assert fair_shares({}, 10) == {}


def test_sources_balanced_within_a_label(tmp_path, mini_shared, jigsaw_file, pattern_db_path):
    card = prepare(
        config(tmp_path, mini_shared, jigsaw_file, pattern_db_path, target_size=60, augment_fraction=0),
        log=lambda _: None,
    )
    records = read_records(tmp_path / "out")
    safe = dict(records.filter(pl.col("label") == "safe").group_by("source").len().iter_rows())
    # Jigsaw has 30 safe rows, the mini sets 1-2 each: the small sources give all they have.
    assert safe["davidson"] == 1 and safe["olid"] == 2 and safe["jigsaw_wikipedia"] == 1
    assert card["steps"]["sampling"]["selected"]["safe"] == sum(safe.values())


def test_bad_rows_stop_the_run_by_default_and_are_counted_with_skip(tmp_path, pattern_db_path):
    rows = jigsaw_rows(5)
    rows[3]["target"] = "n/a"
    rows[7]["threat"] = "-2"
    path = write_jigsaw_csv(tmp_path / "train.csv", rows)
    with pytest.raises(DataError, match=r"train\.csv: record 4, column 'target': not a number: 'n/a'"):
        prepare(config(tmp_path, tmp_path, path, pattern_db_path, sources=()), log=lambda _: None)
    card = prepare(
        config(tmp_path, tmp_path, path, pattern_db_path, sources=(), on_bad_rows="skip"), log=lambda _: None
    )
    assert card["steps"]["bad_rows_skipped"] == {"jigsaw_unintended_bias": 2}
    assert card["steps"]["bad_row_examples"][1] == "record 8, column 'threat': -2 is outside [0.0, 1.0]"
    assert card["steps"]["rows_read"] == {"jigsaw_unintended_bias": len(rows)}
    assert card["counts"]["total"] - card["steps"]["augmentation"]["variants_made"] <= len(rows) - 2


def test_a_broken_csv_record_is_located(tmp_path, pattern_db_path):
    path = write_jigsaw_csv(tmp_path / "train.csv", jigsaw_rows(2))
    with path.open("a", encoding="utf-8") as f:
        f.write("1,0.5,an unquoted, comma," + ",".join(["0"] * 43) + "\n")
    with pytest.raises(
        DataError, match=r"train\.csv: record 13 \(ending on line 14\): 47 fields, the header has 45"
    ):
        prepare(config(tmp_path, tmp_path, path, pattern_db_path, sources=()), log=lambda _: None)


def test_cli_help_and_one_line_errors(tmp_path, capsys, pattern_db_path):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    assert "--label-mix" in capsys.readouterr().out

    assert (
        main(
            [
                "--out",
                str(tmp_path / "o"),
                "--jigsaw-train",
                str(tmp_path / "missing.csv"),
                "--pattern-db",
                str(pattern_db_path),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert err.strip() == f"error: {tmp_path / 'missing.csv'}: file not found"

    assert main(["--out", str(tmp_path / "o"), "--pattern-db", str(tmp_path / "nope.json")]) == 1
    assert "nope.json" in capsys.readouterr().err

    assert main(["--out", str(tmp_path / "o"), "--splits", "0.5,0.1,0.1", "--no-pattern-db"]) == 1
    assert "--splits must be three non-negative shares summing to 1" in capsys.readouterr().err
