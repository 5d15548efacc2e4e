"""Readers: the label mappings, the cleaning, and clear errors on bad input."""

from __future__ import annotations

import polars as pl
import pytest

from core.labels import LABELS
from data.readers import (
    JIGSAW_UB_COLUMNS,
    DataError,
    check_problems,
    clean_text,
    collect_checked,
    dedupe_key,
    load_shared_sources,
    read_civil_comments_spans,
    read_davidson,
    read_jigsaw_unintended_bias,
    read_jigsaw_wikipedia,
    read_olid,
)
from tests.data.conftest import SHARED_ROOT, jigsaw_row, write_jigsaw_csv


def labels_by_text(lf: pl.LazyFrame) -> dict[str, str]:
    return dict(lf.select("text", "label").collect().iter_rows())


# --------------------------------------------------------------------------------------------- Jigsaw UB


def test_jigsaw_target_bins_at_the_edges(tmp_path):
    targets = [0.0, 0.1999, 0.2, 0.4999, 0.5, 0.7999, 0.8, 1.0]
    expected = [
        "safe",
        "safe",
        "potentially_harmful",
        "potentially_harmful",
        "harmful",
        "harmful",
        "extremely_harmful",
        "extremely_harmful",
    ]
    path = write_jigsaw_csv(
        tmp_path / "train.csv", [jigsaw_row(i, f"text {i}", t) for i, t in enumerate(targets)]
    )
    df = read_jigsaw_unintended_bias(path).collect()
    assert df["label"].to_list() == expected
    assert df["toxicity"].to_list() == pytest.approx(targets)
    assert df["source"].unique().to_list() == ["jigsaw_unintended_bias"]
    assert df["problem"].null_count() == len(targets)


def test_jigsaw_keeps_subtype_scores_and_cleans_text(tmp_path):
    row = jigsaw_row(
        0, "Hey @bob  look:\nhttp://x.co/a?b=1 &amp; cry", 0.9, threat=0.75, insult=0.5, sexual_explicit=0.25
    )
    df = read_jigsaw_unintended_bias(write_jigsaw_csv(tmp_path / "t.csv", [row])).collect()
    assert df["text"][0] == "Hey @user look: URL & cry"
    assert (df["threat"][0], df["insult"][0], df["sexual_explicit"][0]) == (0.75, 0.5, 0.25)
    assert df["source_id"][0] == "1000"


def test_jigsaw_missing_column_names_file_and_column(tmp_path):
    columns = [c for c in JIGSAW_UB_COLUMNS if c != "threat"]
    path = write_jigsaw_csv(tmp_path / "train.csv", [jigsaw_row(0, "x", 0.1)], columns=columns)
    with pytest.raises(DataError, match=r"train\.csv: missing column\(s\) 'threat'"):
        read_jigsaw_unintended_bias(path)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"target": "high"}, r"record 2, column 'target': not a number: 'high'"),
        ({"target": ""}, r"record 2, column 'target': missing value"),
        ({"target": "1.5"}, r"record 2, column 'target': 1.5 is outside \[0.0, 1.0\]"),
        ({"obscene": "nan"}, r"record 2, column 'obscene': not a number"),
        ({"id": "abc"}, r"record 2, column 'id': not an integer: 'abc'"),
    ],
)
def test_jigsaw_bad_value_is_an_error_naming_file_record_and_column(tmp_path, bad, message):
    rows = [jigsaw_row(0, "ok", 0.1), {**jigsaw_row(1, "bad", 0.1), **bad}, jigsaw_row(2, "ok too", 0.9)]
    path = write_jigsaw_csv(tmp_path / "train.csv", rows)
    df = read_jigsaw_unintended_bias(path).collect()
    with pytest.raises(DataError, match=message) as caught:
        check_problems(df, "error", {"jigsaw_unintended_bias": path})
    assert str(path) in str(caught.value)


def test_jigsaw_skip_policy_drops_and_counts_bad_rows(tmp_path):
    rows = [
        jigsaw_row(0, "ok", 0.1),
        jigsaw_row(1, "bad", "x"),
        jigsaw_row(2, "also bad", 7),
        jigsaw_row(3, "fine", 0.6),
    ]
    df = read_jigsaw_unintended_bias(write_jigsaw_csv(tmp_path / "t.csv", rows)).collect()
    good, report = check_problems(df, "skip")
    assert good["text"].to_list() == ["ok", "fine"]
    assert report.counts == {"jigsaw_unintended_bias": 2} and report.total == 2
    assert report.examples[0].startswith("record 2, column 'target'")
    assert "problem" not in good.columns


def test_jigsaw_record_with_extra_fields_is_located(tmp_path):
    path = write_jigsaw_csv(
        tmp_path / "train.csv", [jigsaw_row(0, "multi\nline text", 0.1), jigsaw_row(1, "x", 0.2)]
    )
    with path.open("a", encoding="utf-8") as f:
        f.write(",".join(["9"] * (len(JIGSAW_UB_COLUMNS) + 2)) + "\n")
    with pytest.raises(
        DataError, match=r"train\.csv: record 3 \(ending on line 5\): 47 fields, the header has 45"
    ):
        collect_checked(read_jigsaw_unintended_bias(path), [path])


def test_jigsaw_short_record_is_a_missing_value(tmp_path):
    path = write_jigsaw_csv(tmp_path / "train.csv", [jigsaw_row(0, "x", 0.1)])
    with path.open("a", encoding="utf-8") as f:
        f.write("1001,0.3,a short row\n")
    df = read_jigsaw_unintended_bias(path).collect()
    assert df["problem"][1] == "record 2, column 'severe_toxicity': missing value"


@pytest.mark.parametrize(
    ("content", "message"), [("", "file is empty"), (",".join(JIGSAW_UB_COLUMNS) + "\n", "no data rows")]
)
def test_jigsaw_empty_file_or_header_only(tmp_path, content, message):
    path = tmp_path / "train.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_jigsaw_unintended_bias(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        read_jigsaw_unintended_bias(tmp_path / "nope.csv")


# --------------------------------------------------------------------------------------------- shared sets (mini)


def test_davidson_mapping(mini_shared):
    labels = labels_by_text(read_davidson(mini_shared))
    assert labels == {
        "have a lovely day & see you": "safe",  # neither
        "RT @user: that game was shit": "potentially_harmful",  # offensive
        "those people are vermin": "extremely_harmful",  # hate, 4 of 5 coders = 0.8
        "go back where you came from": "harmful",  # hate, 2 of 3 coders
    }


def test_civil_comments_mapping(mini_shared):
    df = read_civil_comments_spans(mini_shared).collect()
    labels = dict(df.select("source_id", "label").iter_rows())
    # 1: insult spans, one of three raters "all toxic" -> harmful; 2: a Threat span -> extremely harmful;
    # 3: two of three raters "all toxic" -> extremely harmful; 4: no annotations at all -> still harmful.
    assert labels == {"1": "harmful", "2": "extremely_harmful", "3": "extremely_harmful", "4": "harmful"}
    scores = {r["source_id"]: r for r in df.iter_rows(named=True)}
    assert scores["1"]["insult"] == pytest.approx(2 / 3)
    assert scores["2"]["threat"] == pytest.approx(1 / 3)
    assert scores["3"]["obscene"] == pytest.approx(1 / 3)
    assert scores["4"]["text"] == "plain rude over two lines"


def test_olid_mapping_and_line_count_check(mini_shared):
    assert labels_by_text(read_olid(mini_shared)) == {
        "@user you are great": "safe",
        "@user shut up loser": "potentially_harmful",
        "what a day URL": "safe",
    }
    (mini_shared / "olid_offensive" / "val_labels.txt").write_text("0\n1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"val_text\.txt: 1 lines but val_labels\.txt has 2"):
        read_olid(mini_shared)


def test_olid_bad_label_is_reported(mini_shared):
    (mini_shared / "olid_offensive" / "train_labels.txt").write_text("0\nyes\n", encoding="utf-8")
    df = read_olid(mini_shared).collect()
    assert df["problem"].drop_nulls().to_list() == [
        "record 2, column 'label' (train_labels.txt): expected 0 or 1, got 'yes'"
    ]


def test_jigsaw_wikipedia_mapping(mini_shared):
    assert labels_by_text(read_jigsaw_wikipedia(mini_shared)) == {
        "thanks for the edit": "safe",
        "you are a moron": "harmful",
        "i will kill you": "extremely_harmful",
        "what crap": "potentially_harmful",
    }


def test_a_missing_shared_set_names_its_file(mini_shared):
    (mini_shared / "civil_comments_toxic_spans" / "spans_dev.csv").unlink()
    with pytest.raises(DataError, match=r"spans_dev\.csv: file not found"):
        load_shared_sources(mini_shared)


# --------------------------------------------------------------------------------------------- cleaning


def test_clean_text_and_dedupe_key():
    texts = ["RT @abc: You're an  IDIOT!! http://t.co/x", "you're an idiot", "  \u200b hello\tworld \n"]
    df = (
        pl.DataFrame({"t": texts})
        .select(clean_text(pl.col("t")).alias("clean"))
        .with_columns(dedupe_key(pl.col("clean")).alias("key"))
    )
    assert df["clean"].to_list() == ["RT @user: You're an IDIOT!! URL", "you're an idiot", "hello world"]
    assert df["key"].to_list() == ["youre an idiot", "youre an idiot", "hello world"]


# --------------------------------------------------------------------------------------------- the real shared data


def test_load_shared_sources_reads_all_four_real_sets():
    df = load_shared_sources(SHARED_ROOT)
    assert df.columns == ["text", "label", "source"]
    counts = dict(df.group_by("source").len().iter_rows())
    # Row counts from /work/shared/data/README.md (OLID: 11,916 train + 1,324 val).
    assert counts == {
        "davidson": 19806,
        "civil_comments_toxic_spans": 12888,
        "olid": 13240,
        "jigsaw_wikipedia": 101,
    }
    assert set(df["label"].unique()) <= set(LABELS)
    assert (df["text"] != "").all()
    by = {(s, lab): n for s, lab, n in df.group_by("source", "label").len().iter_rows()}
    assert (
        by[("davidson", "harmful")] + by[("davidson", "extremely_harmful")] == 1146
    )  # Davidson's hate class
    assert ("civil_comments_toxic_spans", "safe") not in by and (
        "civil_comments_toxic_spans",
        "potentially_harmful",
    ) not in by
