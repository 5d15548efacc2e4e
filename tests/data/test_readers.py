"""Readers: the label mappings, the cleaning, and clear errors on bad input."""

from __future__ import annotations

import json
import random

import polars as pl
import pytest

from core.labels import LABELS
from data.readers import (
    CONVABUSE_ANNOTATORS,
    CONVABUSE_SPLITS,
    DOMAINS,
    JIGSAW_UB_COLUMNS,
    SHARED_SOURCE_NAMES,
    SHARED_SOURCES,
    SINGLE_HARM_SOURCES,
    DataError,
    SharedSource,
    check_problems,
    clean_text,
    collect_checked,
    dedupe_key,
    load_shared_sources,
    read_civil_comments_spans,
    read_convabuse,
    read_davidson,
    read_edos,
    read_fox_news,
    read_gab_hate,
    read_jigsaw_unintended_bias,
    read_jigsaw_wikipedia,
    read_mlma,
    read_olid,
    read_openai_moderation,
    read_reddit_misogyny,
    read_stormfront,
    read_strudel_github,
)
from tests.data.conftest import (
    OPENAI_SAFE,
    REDDIT_COLUMNS,
    SHARED_ROOT,
    STRUDEL_COMMENT_COLUMNS,
    STRUDEL_ISSUE_COLUMNS,
    convabuse_header,
    convabuse_row,
    fox_record,
    gab_record,
    jigsaw_row,
    reddit_row,
    strudel_comment,
    strudel_issue,
    write_convabuse,
    write_csv,
    write_jigsaw_csv,
    write_jsonl,
)


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


# --------------------------------------------------------------------------------------------- second wave


def rows_by_id(lf: pl.LazyFrame) -> dict[str, dict]:
    return {r["source_id"]: r for r in lf.collect().iter_rows(named=True)}


def problems(lf: pl.LazyFrame) -> list[str]:
    return lf.collect()["problem"].drop_nulls().to_list()


def test_fox_news_mapping_and_errors(tmp_path):
    path = write_jsonl(
        tmp_path / "fox_news_comments" / "fox-news-comments.json",
        [fox_record("Groping was not illegal already?", 0), fox_record("Those people are animals", 1)],
    )
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(fox_record("odd label", 2)) + "\n")
    df = read_fox_news(tmp_path).collect()
    rows = {r["source_id"]: r for r in df.iter_rows(named=True)}
    assert (rows["1"]["label"], rows["1"]["identity_attack"]) == ("safe", None)  # judged for hate only
    assert (rows["2"]["label"], rows["2"]["identity_attack"]) == ("harmful", 1.0)
    assert rows["3"]["problem"] == "line 3, field 'label': expected 0 or 1, got 2"
    assert df["source"].unique().to_list() == ["fox_news_comments"]
    with path.open("a", encoding="utf-8") as f:
        f.write('{"text": "cut off\n')
    with pytest.raises(DataError, match=r"fox-news-comments\.json: line 4: not valid JSON"):
        read_fox_news(tmp_path)


def test_edos_mapping_by_category_and_vector(tmp_path):
    header = ["rewire_id", "text", "label_sexist", "label_category", "label_vector", "split"]
    rows = [
        ["n", "[USER] the match was close [URL]", "not sexist", "none", "none", "train"],
        ["t1", "threat", "sexist", "1. threats, plans to harm and incitement", "1.1 threats of harm", "dev"],
        ["t2", "incite", "sexist", "1. threats, plans to harm and incitement",
         "1.2 incitement and encouragement of harm", "test"],
        ["d", "derogation", "sexist", "2. derogation", "2.2 aggressive and emotive attacks", "train"],
        ["a", "slur", "sexist", "3. animosity", "3.1 casual use of gendered slurs, profanities, and insults", "train"],
        ["a2", "stereotype", "sexist", "3. animosity", "3.2 immutable gender differences and gender stereotypes",
         "train"],
        ["p", "prejudice", "sexist", "4. prejudiced discussions",
         "4.2 supporting systemic discrimination against women as a group", "train"],
        ["bad1", "x", "sexist", "2. derogation", "3.1 casual use of gendered slurs, profanities, and insults", "train"],
        ["bad2", "y", "not sexist", "2. derogation", "2.1 descriptive attacks", "train"],
        ["bad3", "z", "maybe", "none", "none", "train"],
    ]  # fmt: skip
    write_csv(tmp_path / "edos_semeval2023_sexism" / "data" / "edos_labelled_aggregated.csv", header, rows)
    got = rows_by_id(read_edos(tmp_path))
    assert {k: r["label"] for k, r in got.items() if not r["problem"]} == {
        "n": "safe",
        "t1": "extremely_harmful",
        "t2": "extremely_harmful",
        "d": "harmful",
        "a": "potentially_harmful",
        "a2": "potentially_harmful",
        "p": "harmful",
    }
    assert got["n"]["text"] == "@user the match was close URL"
    assert (got["n"]["identity_attack"], got["t1"]["identity_attack"]) == (None, 1.0)
    assert (got["t2"]["threat"], got["d"]["threat"]) == (1.0, None)
    assert (got["a"]["insult"], got["a2"]["insult"]) == (1.0, None)
    assert "'label_vector': '3.1 casual use" in got["bad1"]["problem"]
    assert got["bad2"]["problem"].startswith("record 9: 'not sexist' with category '2. derogation'")
    assert got["bad3"]["problem"].startswith("record 10, column 'label_sexist': unexpected value 'maybe'")


def test_reddit_misogyny_aggregates_entries_drops_images_and_rejoins_split_bodies(tmp_path):
    path = tmp_path / "reddit_online_misogyny_eacl2021" / "data" / "final_labels.csv"
    write_csv(
        path,
        REDDIT_COLUMNS,
        [
            reddit_row("safe", "Stay hydrated,\nit helps", "Nonmisogynistic", "None_of_the_categories"),
            reddit_row("counter", "That is sexist, stop", "Nonmisogynistic", "Counter_speech"),
            reddit_row("attack", "You are an idiot", "Nonmisogynistic", "Nonmisogynistic_personal_attack",
                       "Gender_of_recipient_is_Male"),
            reddit_row("pejorative", "gold diggers everywhere", "Misogynistic", "Misogynistic_pejorative"),
            reddit_row("multi", "women are liars, the gold diggers", "Misogynistic", "Misogynistic_pejorative"),
            reddit_row("multi", "women are liars, the gold diggers", "Misogynistic", "Derogation", "Moral_inferiority"),
            reddit_row("threat", "someone should hurt her", "Misogynistic", "Treatment",
                       "Threatening_Physical_violence"),
            reddit_row("control", "keep her in the kitchen", "Misogynistic", "Treatment",
                       "Disrespectful_actions_Controlling"),
            reddit_row("picture", "look at this", "Misogynistic", "Derogation", "Other", image="Yes"),
            reddit_row("split", "The only true pill is the honk pill", "Nonmisogynistic", "None_of_the_categories",
                       image="everything else is fantasy"),
            reddit_row("odd", "hm", "Misogynistic", "None_of_the_categories"),
            reddit_row("gone", "[deleted]", "Nonmisogynistic", "None_of_the_categories"),
        ],
    )  # fmt: skip
    got = rows_by_id(read_reddit_misogyny(tmp_path))
    assert {k: r["label"] for k, r in got.items() if not r["problem"]} == {
        "safe": "safe",
        "counter": "safe",
        "attack": "potentially_harmful",
        "pejorative": "potentially_harmful",
        "multi": "harmful",  # its most severe row
        "threat": "extremely_harmful",
        "control": "harmful",
        "split": "safe",
        "gone": "safe",
    }  # "picture" is an image post: dropped
    assert got["safe"]["text"] == "Stay hydrated, it helps"
    assert got["split"]["text"] == "The only true pill is the honk pill,everything else is fantasy"
    assert got["gone"]["text"] == ""  # Reddit's placeholder, not a text: the loader drops it
    assert (got["safe"]["identity_attack"], got["multi"]["identity_attack"]) == (None, 1.0)
    assert (got["attack"]["insult"], got["threat"]["threat"], got["control"]["threat"]) == (1.0, 1.0, None)
    assert got["odd"]["problem"] == (
        "record 11, columns 'level_1'/'level_2': unexpected pair 'Misogynistic/None_of_the_categories'"
    )


def test_gab_hate_mapping_and_scores(tmp_path):
    folder = tmp_path / "gab_hate_corpus_kennedy_devtest" / "data" / "majority_gab_dataset_25k"
    write_jsonl(
        folder / "dev.jsonl",
        [
            gab_record(1, "nice weather"),
            gab_record(2, "kill them all", cv=1, vo=1),
            gab_record(3, "they are vermin", hd=1, vo=1),
        ],
    )
    write_jsonl(
        folder / "test.jsonl", [gab_record(4, "what the hell", vo=1), gab_record(5, "bad flag", hd="1")]
    )
    got = rows_by_id(read_gab_hate(tmp_path))
    labels = {k: r["label"] for k, r in got.items() if not r["problem"]}
    assert labels == {"1": "safe", "2": "extremely_harmful", "3": "harmful", "4": "potentially_harmful"}
    assert [got["2"][c] for c in ("threat", "identity_attack", "obscene")] == [1.0, 0.0, 1.0]
    assert [got["1"][c] for c in ("threat", "identity_attack", "obscene")] == [0.0, 0.0, 0.0]
    assert got["5"]["problem"] == "line 2, field 'hd': expected 0 or 1, got '1' (test.jsonl)"


def test_stormfront_rows_come_in_the_files_order(tmp_path):
    """The rows keep annotations_metadata.csv's order, run after run: which copy of a near-duplicate training
    keeps depends on it (polars' joins do not keep an order unless told)."""
    ids = [f"{i}_1" for i in range(20_000)]
    folder = tmp_path / "stormfront_vicomtech"
    write_csv(folder / "annotations_metadata.csv", ["file_id", "user_id", "subforum_id", "num_contexts", "label"],
              [[i, "7", "1346", "0", "noHate"] for i in ids])
    shuffled = ids[:]
    random.Random(3).shuffle(shuffled)
    write_csv(folder / "all_files.csv", ["file_id", "text"], [[i, f"text {i}"] for i in shuffled])
    for _ in range(3):
        assert read_stormfront(tmp_path).collect()["source_id"].to_list() == ids


def test_stormfront_mapping_drops_idk_and_detokenises(tmp_path):
    folder = tmp_path / "stormfront_vicomtech"
    write_csv(
        folder / "annotations_metadata.csv",
        ["file_id", "user_id", "subforum_id", "num_contexts", "label"],
        [
            ["1_1", "7", "1346", "0", "noHate"],
            ["1_2", "7", "1346", "0", "hate"],
            ["1_3", "7", "1346", "1", "relation"],
            ["1_4", "7", "1346", "0", "idk/skip"],
            ["1_5", "7", "1346", "0", "nohate"],
            ["1_6", "7", "1346", "0", "noHate"],
        ],
    )
    write_csv(
        folder / "all_files.csv",
        ["file_id", "text"],
        [
            ["1_1", "It 's here , they do n't know ( yet ) : `` ok '' ."],
            ["1_2", "They are a plague ."],
            ["1_3", "And so are they ."],
            ["1_4", "Hmm ."],
            ["1_5", "Typo label ."],
        ],
    )
    got = rows_by_id(read_stormfront(tmp_path))
    assert "1_4" not in got  # idk/skip is dropped
    assert {k: r["label"] for k, r in got.items() if not r["problem"]} == {
        "1_1": "safe",
        "1_2": "harmful",
        "1_3": "potentially_harmful",
    }
    assert got["1_1"]["text"] == "It's here, they don't know (yet): \"ok\"."
    assert (got["1_1"]["identity_attack"], got["1_2"]["identity_attack"]) == (None, 1.0)
    assert got["1_5"]["problem"].startswith("record 5, column 'label': unexpected value 'nohate'")
    assert got["1_6"]["problem"] == "record 6: file_id '1_6' has no text in all_files.csv"
    with (folder / "all_files.csv").open("a", encoding="utf-8") as f:
        f.write("1_2,again\n")
    with pytest.raises(DataError, match=r"all_files\.csv: file_id '1_2' appears more than once"):
        read_stormfront(tmp_path)


def test_convabuse_majority_per_turn_ties_go_to_the_more_severe_label(tmp_path):
    a1, a2, a3, a4, a7 = (CONVABUSE_ANNOTATORS[i] for i in (0, 1, 2, 3, 6))
    malformed = convabuse_row("8.0", "hello", {a1: ["1"], a2: ["1"]})
    malformed[convabuse_header().index("Annotator2_is_abuse.1")] = "yes"
    write_convabuse(
        tmp_path,
        {
            "train": [
                convabuse_row("1.0", "where do you fly", {a1: ["1"], a2: ["1"], a3: ["-3"]}),  # 2 safe, 1 extreme
                convabuse_row("2.0", "whatever bot", {a1: ["1"], a2: ["-2"]}),  # a tie: harmful wins
                # ambiguous (0) and mild (-1) both vote potentially_harmful: 2 against 2 safe, a tie
                convabuse_row("3.0", "are you a girl", {a1: ["1"], a2: ["1"], a3: ["0"], a4: ["-1"]}),
                # Annotator7 saw the example twice: two votes (cells "1, 1"); its transphobic column is
                # named "Annotator6_transphobic" in the real header
                convabuse_row("4.0", "tell me more", {a7: ["1", "1"], a2: ["-1"]}),
            ],
            "valid": [
                convabuse_row(
                    "5.0", "you dumb slut", {a1: ["-3"], a2: ["-3"], a3: ["-2"]},
                    sex_harassment={a1: [1], a2: [1], a3: [0]}, intellectual={a3: [1]},
                ),
                convabuse_row("6.0", "_", {a1: ["1"], a2: ["1"]}),  # the export's empty utterance
            ],
            "test": [convabuse_row("7.0", "ok", {a1: ["1"], a2: ["-4"]}), malformed],
        },
    )  # fmt: skip
    got = rows_by_id(read_convabuse(tmp_path))
    assert {k: r["label"] for k, r in got.items() if not r["problem"]} == {
        "1.0": "safe",
        "2.0": "harmful",
        "3.0": "potentially_harmful",
        "4.0": "safe",
        "5.0": "extremely_harmful",
        "6.0": "safe",
    }
    # The text is the user's turn, never the bot's utterance.
    assert got["1.0"]["text"] == "where do you fly"
    assert not any("BOT" in r["text"] or "help" in r["text"] for r in got.values())
    assert got["6.0"]["text"] == ""
    assert got["5.0"]["sexual_explicit"] == pytest.approx(2 / 3)
    assert got["5.0"]["insult"] == pytest.approx(1 / 3)
    assert got["5.0"]["severe_toxicity"] == pytest.approx(2 / 3)
    assert (got["5.0"]["toxicity"], got["1.0"]["toxicity"]) == (1.0, pytest.approx(1 / 3))
    assert got["7.0"]["problem"] == (
        "record 1, Annotator2 (ConvAbuseEMNLPtest.csv): annotation 1 marks 0 is_abuse levels, not 1"
    )
    assert got["8.0"]["problem"] == (
        "record 2, column 'Annotator2_is_abuse.1' (ConvAbuseEMNLPtest.csv): expected 0, 1 or a list of them, "
        "got 'yes'"
    )
    with pytest.raises(DataError, match=r"2_splits: record 1, Annotator2 \(ConvAbuseEMNLPtest\.csv\)"):
        load_shared_sources(tmp_path, sources=["convabuse"])
    df = load_shared_sources(tmp_path, sources=["convabuse"], on_bad_rows="skip")
    assert df.height == 5  # 8 turns: 2 with problems skipped, the empty one dropped


def test_convabuse_refuses_a_header_that_does_not_fit(tmp_path):
    write_convabuse(
        tmp_path, {s: [convabuse_row("1.0", "hi", {"Annotator1": ["1"]})] for s in CONVABUSE_SPLITS}
    )
    path = tmp_path / "convabuse" / "2_splits" / "ConvAbuseEMNLPvalid.csv"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("Annotator2_is_abuse.-1", "Annotator2_is_abuse.-9", 1), encoding="utf-8")
    with pytest.raises(DataError, match=r"ConvAbuseEMNLPvalid\.csv: column 27 is 'Annotator2_is_abuse\.-9'"):
        read_convabuse(tmp_path)


def test_strudel_github_comments_and_issues(tmp_path):
    training = tmp_path / "strudel_github_toxicity" / "data" / "training"
    write_csv(
        training / "train_comments.csv",
        STRUDEL_COMMENT_COLUMNS,
        [
            strudel_comment("repo/owner/1/11", "Thanks, merged &amp; released.", "n"),
            strudel_comment("repo/owner/1/12", "you made a crappy port", "y"),
            strudel_comment("repo/owner/1/13", "", "n"),
            strudel_comment("repo/owner/1/14", "번역하였습니다", "n"),
            strudel_comment("repo/owner/1/15", "fine", "maybe"),
        ],
    )
    write_csv(
        training / "labeled_test_issues.csv",
        STRUDEL_ISSUE_COLUMNS,
        [
            strudel_issue("repo/owner/2", "Crash on start", "It crashes. Stop wasting my time, idiots", "y"),
            strudel_issue("repo/owner/3", "Docs typo", "Fixed in master", "n"),
            strudel_issue(
                "repo/owner/1", "Port", "Thanks, merged. you made a crappy port", "y"
            ),  # thread above
        ],
    )
    got = rows_by_id(read_strudel_github(tmp_path))
    assert {k: (r["label"], r["toxicity"]) for k, r in got.items() if not r["problem"]} == {
        "repo/owner/1/11": ("safe", 0.0),
        "repo/owner/1/12": ("harmful", 1.0),
        "repo/owner/1/13": ("safe", 0.0),
        "repo/owner/2": ("harmful", 1.0),
        "repo/owner/3": ("safe", 0.0),
    }  # the Korean comment and the issue whose thread is in the comments are dropped
    assert got["repo/owner/2"]["text"] == "Crash on start It crashes. Stop wasting my time, idiots"
    assert got["repo/owner/1/11"]["text"] == "Thanks, merged & released."
    assert got["repo/owner/1/15"]["problem"].startswith(
        "record 5, column 'toxicity' (train_comments.csv): unexpected value 'maybe'"
    )
    (training / "train_comments.csv").write_text(
        (training / "train_comments.csv").read_text(encoding="utf-8").replace(",maybe", ",n"),
        encoding="utf-8",
    )
    df = load_shared_sources(tmp_path, sources="strudel_github_toxicity")
    assert df.height == 5 and "" not in df["text"].to_list()  # the empty comment is dropped


def test_openai_moderation_missing_flags_are_unknown(tmp_path):
    zero = dict(OPENAI_SAFE)
    records = [
        {"prompt": "How do I bake bread?", **zero},  # all 8 known and 0 -> safe
        {"prompt": "graphic", **zero, "V": 1, "V2": 1},
        {"prompt": "minors", **zero, "S": 1, "S3": 1},
        {"prompt": "hate threat", "H": 1, "H2": 1, "V": 0, "HR": 0, "SH": 0, "V2": 0},  # S, S3 unknown
        {"prompt": "self harm", "V": 0, "HR": 0, "SH": 1, "V2": 0},  # a positive flag: harmful at least
        {"prompt": "maybe fine", "V": 0, "HR": 0, "SH": 0, "V2": 0},  # no positive, 4 unknown: dropped
        {"prompt": "almost", **{k: v for k, v in zero.items() if k != "H2"}},  # H2 unknown: dropped
        {"prompt": "bad", **zero, "HR": 2},
    ]
    write_jsonl(tmp_path / "openai_moderation_eval" / "data" / "samples-1680.jsonl.gz", records, gz=True)
    got = rows_by_id(read_openai_moderation(tmp_path))
    assert {k: r["label"] for k, r in got.items()} == {
        "1": "safe",
        "2": "extremely_harmful",
        "3": "extremely_harmful",
        "4": "extremely_harmful",
        "5": "harmful",
        "8": None,
    }
    assert got["8"]["problem"] == "line 8, field 'HR': expected 0 or 1, got 2"
    assert [got["1"][c] for c in ("toxicity", "identity_attack", "threat", "sexual_explicit", "insult")] == [
        0.0
    ] * 5
    assert (got["4"]["identity_attack"], got["4"]["threat"], got["4"]["sexual_explicit"]) == (1.0, 1.0, None)
    # V = 0 but H and H2 unknown: a hate threat is not excluded, so threat is unknown too.
    assert (got["5"]["identity_attack"], got["5"]["threat"], got["5"]["toxicity"]) == (None, None, 1.0)
    assert (got["3"]["sexual_explicit"], got["2"]["threat"]) == (1.0, 1.0)
    # The flags the harm categories need and no Jigsaw column holds: SH -> self_harm, S3 -> sexual_minors.
    assert (got["5"]["self_harm"], got["3"]["sexual_minors"], got["1"]["self_harm"]) == (1.0, 1.0, 0.0)
    assert (got["4"]["self_harm"], got["4"]["sexual_minors"]) == (0.0, None)


def test_mlma_mapping_drops_mixed_normal_and_decodes_escapes(tmp_path):
    header = ["HITId", "tweet", "sentiment", "directness", "annotator_sentiment", "target", "group"]
    rows = [
        [
            "1",
            "what a day \\u2019s \\ud83d\\ude02 @URL",
            "normal",
            "indirect",
            "indifference",
            "origin",
            "other",
        ],
        ["2", "mixed", "offensive_normal", "indirect", "anger", "origin", "other"],
        ["3", "hate", "hateful", "direct", "anger", "origin", "other"],
        ["4", "abuse", "abusive_offensive", "direct", "anger", "origin", "other"],
        [
            "5",
            "say \\shithole\\ again\\nplease",
            "offensive_disrespectful",
            "direct",
            "anger",
            "origin",
            "other",
        ],
        ["6", "scary", "fearful", "direct", "fear", "origin", "other"],
        ["7", "odd", "offensive_angry", "direct", "anger", "origin", "other"],
    ]
    write_csv(
        tmp_path / "mlma_hate_speech_en" / "hate_speech_mlma" / "en_dataset_with_stop_words.csv", header, rows
    )
    got = rows_by_id(read_mlma(tmp_path))
    assert {k: r["label"] for k, r in got.items() if not r["problem"]} == {
        "1": "safe",
        "3": "harmful",
        "4": "harmful",
        "5": "potentially_harmful",
        "6": "potentially_harmful",
    }  # "2" mixes normal with a toxic type: dropped
    assert got["1"]["text"] == "what a day \u2019s \U0001f602 URL"
    assert got["5"]["text"] == 'say "shithole" again please'
    assert [got["3"][c] for c in ("identity_attack", "insult", "toxicity")] == [1.0, 0.0, 1.0]
    assert [got["1"][c] for c in ("identity_attack", "insult", "toxicity")] == [0.0, 0.0, 0.0]
    assert got["4"]["insult"] == 1.0
    assert got["7"]["problem"].startswith("record 7, column 'sentiment': unexpected value 'offensive_angry'")


# --------------------------------------------------------------------------------------------- registry and loader


def test_registry_names_domains_and_single_harm_sets():
    assert len(SHARED_SOURCES) == 13 and len(set(SHARED_SOURCE_NAMES)) == 13
    assert all(s.domain in DOMAINS and s.licence and s.files for s in SHARED_SOURCES)
    assert SINGLE_HARM_SOURCES == {
        "fox_news_comments",
        "edos_semeval2023_sexism",
        "reddit_online_misogyny_eacl2021",
        "stormfront_vicomtech",
    }
    assert "CC BY-SA 3.0 ES" in next(s.licence for s in SHARED_SOURCES if s.name == "stormfront_vicomtech")
    with pytest.raises(ValueError, match="unknown domain"):
        SharedSource("x", ("x.csv",), read_olid, "MIT", domain="forum", single_harm=False)


def test_load_shared_sources_chooses_sources(mini_shared):
    everything = load_shared_sources(mini_shared)
    assert everything.columns == ["text", "label", "source"]
    assert set(everything["source"]) == set(SHARED_SOURCE_NAMES)
    two = load_shared_sources(mini_shared, sources=["olid", "convabuse"])
    assert set(two["source"]) == {"olid", "convabuse"}
    assert load_shared_sources(mini_shared, sources="olid")["source"].unique().to_list() == ["olid"]
    with pytest.raises(ValueError, match=r"unknown source\(s\) reddit; valid: davidson, civil_comments"):
        load_shared_sources(mini_shared, sources=["olid", "reddit"])
    # Only the chosen sets are read: a missing set that is not asked for does not matter.
    (mini_shared / "fox_news_comments" / "fox-news-comments.json").unlink()
    assert load_shared_sources(mini_shared, sources=["olid"]).height == 3
    with pytest.raises(DataError, match=r"fox-news-comments\.json: file not found"):
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


@pytest.mark.shared_data
def test_load_shared_sources_reads_all_thirteen_real_sets():
    df = load_shared_sources(SHARED_ROOT)
    assert df.columns == ["text", "label", "source"]
    assert set(df["label"].unique()) <= set(LABELS)
    assert (df["text"] != "").all()
    counts = dict(df.group_by("source").len().iter_rows())
    # First wave: the counts in /work/shared/data/README.md (OLID: 11,916 train + 1,324 val).
    # Second wave (measured; see each reader's docstring): ConvAbuse 4,185 turns less one empty; Reddit 6,383
    # entries less 172 image posts, 11 empty bodies and 132 "[removed]" / "[deleted]"; Stormfront 10,944 less 73 idk/skip; GitHub 1,597
    # comments + 178 issues less 5 CJK and 11 empty; OpenAI 337 safe + 522 positive; MLMA 5,647 less 698
    # mixed normal + toxic.
    assert counts == {
        "davidson": 19806,
        "civil_comments_toxic_spans": 12888,
        "olid": 13240,
        "jigsaw_wikipedia": 101,
        "fox_news_comments": 1528,
        "edos_semeval2023_sexism": 20000,
        "reddit_online_misogyny_eacl2021": 6068,
        "gab_hate_corpus_kennedy_devtest": 5163,
        "stormfront_vicomtech": 10871,
        "convabuse": 4184,
        "strudel_github_toxicity": 1759,
        "openai_moderation_eval": 859,
        "mlma_hate_speech_en": 4949,
    }
    by = {(s, lab): n for s, lab, n in df.group_by("source", "label").len().iter_rows()}

    def labels(source: str) -> dict[str, int]:
        return {lab: by[(source, lab)] for lab in LABELS if (source, lab) in by}

    # Every source has safe and non-safe texts, except Civil Comments spans (every post is toxic by design).
    for source in SHARED_SOURCE_NAMES:
        got = labels(source)
        assert set(got) - {"safe"}, source
        assert ("safe" in got) == (source != "civil_comments_toxic_spans"), source
    assert (
        by[("davidson", "harmful")] + by[("davidson", "extremely_harmful")] == 1146
    )  # Davidson's hate class
    # Upstream counts from each SOURCE.md, after the mapping:
    assert labels("fox_news_comments") == {"safe": 1093, "harmful": 435}
    assert labels("edos_semeval2023_sexism") == {
        "safe": 15146,  # not sexist
        "potentially_harmful": 1665,  # 3. animosity
        "harmful": 2271 + 475,  # 2. derogation + 4. prejudiced discussions
        "extremely_harmful": 443,  # 1. threats, plans to harm and incitement
    }
    assert labels("stormfront_vicomtech") == {"safe": 9507, "potentially_harmful": 168, "harmful": 1196}
    assert labels("gab_hate_corpus_kennedy_devtest") == {
        "safe": 2279 + 2240,  # none of hd / cv / vo in dev + test
        "potentially_harmful": 152,  # vo only
        "harmful": 464,  # hd without cv
        "extremely_harmful": 28,  # cv
    }
    openai = labels("openai_moderation_eval")
    assert openai["safe"] == 337 and openai["harmful"] + openai["extremely_harmful"] == 522
    assert labels("mlma_hate_speech_en")["safe"] == 661
    # Aggregated or filtered here; ranges around the measured counts.
    convabuse = labels("convabuse")
    assert 3200 <= convabuse["safe"] <= 3400 and 80 <= convabuse["extremely_harmful"] <= 140  # 3297, 111
    reddit = labels("reddit_online_misogyny_eacl2021")
    assert 5400 <= reddit["safe"] <= 5650 and 10 <= reddit["extremely_harmful"] <= 25  # 5518, 18
    assert labels("strudel_github_toxicity") == {"safe": 1573, "harmful": 186}
