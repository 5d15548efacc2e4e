"""Builders for small input files in the real formats, and a tiny valid pattern database."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import pytest

from data.readers import (
    CONVABUSE_ANNOTATORS,
    CONVABUSE_CONTEXT,
    CONVABUSE_FIELDS,
    DEFAULT_SHARED_ROOT,
    JIGSAW_UB_COLUMNS,
)

SHARED_ROOT = DEFAULT_SHARED_ROOT


def jigsaw_row(i: int, text: str, target: float | str, **overrides) -> dict[str, object]:
    """One row of Jigsaw Unintended Bias train.csv with plausible values in all 45 columns."""
    row: dict[str, object] = {c: "" for c in JIGSAW_UB_COLUMNS}  # identity columns are empty for most rows
    row.update(
        id=1000 + i,
        target=target,
        comment_text=text,
        severe_toxicity=0.0,
        obscene=0.0,
        identity_attack=0.0,
        insult=0.1,
        threat=0.0,
        sexual_explicit=0.0,
        created_date="2015-09-29 10:50:41.987077+00",
        publication_id=2,
        parent_id="",
        article_id=2006,
        rating="approved",
        funny=0,
        wow=0,
        sad=0,
        likes=0,
        disagree=0,
        identity_annotator_count=0,
        toxicity_annotator_count=4,
    )
    row.update(overrides)
    return row


def write_jigsaw_csv(path: Path, rows: list[dict[str, object]], columns=JIGSAW_UB_COLUMNS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


PATTERN_DB = {
    "version": "1.2.3",
    "date": "2025-01-01",
    "description": "tiny database for tests",
    "sources": {"t": {"title": "test"}},
    "entries": [
        {
            "id": "violence.unalive",
            "forms": ["unalive", "unalived"],
            "replacement": "kill",
            "replacements": {"unalived": "killed"},
            "technique": "euphemism",
            "category": "violence",
            "severity": 3,
            "examples": {"positive": ["i will unalive you"], "negative": []},
            "source": ["t"],
        },
        {
            "id": "self_harm.sewer_slide",
            "forms": ["sewer slide"],
            "replacement": "suicide",
            "technique": "phonetic_respelling",
            "category": "self_harm",
            "severity": 3,
            "examples": {"positive": ["sewer slide"], "negative": []},
            "source": ["t"],
        },
        {
            "id": "hate.noted",
            "forms": ["zzhate"],
            "replacement": "hate",
            "action": "annotate",
            "technique": "euphemism",
            "category": "hate",
            "severity": 2,
            "examples": {"positive": ["zzhate"], "negative": []},
            "source": ["t"],
        },
        {
            "id": "safe.kill_time",
            "forms": ["kill time"],
            "replacement": "",
            "technique": "safe_context",
            "category": "safe_context",
            "severity": 0,
            "action": "protect",
            "examples": {"positive": ["kill time"], "negative": []},
            "source": ["t"],
        },
    ],
}


@pytest.fixture
def pattern_db_path(tmp_path: Path) -> Path:
    path = tmp_path / "patterns.json"
    path.write_text(json.dumps(PATTERN_DB), encoding="utf-8")
    return path


def write_mini_shared(root: Path) -> Path:
    """All 13 shared sets' layout with a few hand-made rows each (labels worked out in the tests): the four
    first-wave sets here, the nine second-wave sets in `write_mini_second_wave`."""
    d = root / "davidson_hate_offensive"
    d.mkdir(parents=True)
    (d / "labeled_data_dev.csv").write_text(
        ",count,hate_speech,offensive_language,neither,class,tweet\n"
        "0,3,0,0,3,2,have a lovely day &amp; see you\n"
        "1,3,0,3,0,1,RT @someone: that game was shit\n"
        "2,5,4,1,0,0,those people are vermin\n"
        "3,3,2,1,0,0,go back where you came from\n",
        encoding="utf-8",
    )
    c = root / "civil_comments_toxic_spans"
    c.mkdir()
    (c / "comments_dev.csv").write_text(
        'comment_id,comment_text\n1,"You are an idiot."\n2,"I will find you and hurt you"\n'
        '3,"Everything about this is garbage"\n4,"plain rude\nover two lines"\n',
        encoding="utf-8",
    )
    (c / "annotations_dev.csv").write_text(
        "annotation,comment_id,worker,country,all toxic,not toxic\n"
        "0,1,1,USA,False,False\n1,1,2,USA,False,False\n2,1,3,USA,True,False\n"
        "3,2,1,USA,False,False\n4,2,2,USA,False,False\n5,2,3,USA,False,False\n"
        "6,3,1,USA,True,False\n7,3,2,USA,True,False\n8,3,3,USA,False,False\n",
        encoding="utf-8",
    )
    (c / "spans_dev.csv").write_text(
        "annotation,type,start,end\n0,Insult,11,16\n1,Insult,11,16\n4,Threat,0,28\n6,Profane/Obscene,26,33\n",
        encoding="utf-8",
    )
    o = root / "olid_offensive"
    o.mkdir()
    (o / "train_text.txt").write_text("@user you are great \n@user shut up loser \n", encoding="utf-8")
    (o / "train_labels.txt").write_text("0\n1\n", encoding="utf-8")
    (o / "val_text.txt").write_text("what a day URL\n", encoding="utf-8")
    (o / "val_labels.txt").write_text("0\n", encoding="utf-8")
    w = root / "jigsaw_wikipedia_sample"
    w.mkdir()
    (w / "test_examples.csv").write_text(
        "comment_text,toxic,severe_toxic,obscene,threat,insult,identity_hate\n"
        "thanks for the edit,0,0,0,0,0,0\n"
        "you are a moron,1,0,0,0,1,0\n"
        "i will kill you,1,0,0,1,0,0\n"
        "what crap,0,0,1,0,0,0\n",
        encoding="utf-8",
    )
    write_mini_second_wave(root)
    return root


# --------------------------------------------------------------------------------------------- second wave


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list[dict], *, gz: bool = False) -> Path:
    lines = "".join(json.dumps(r) + "\n" for r in records)
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path.write_bytes(gzip.compress(lines.encode("utf-8")))
    else:
        path.write_text(lines, encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return write_text(path, buffer.getvalue())


def convabuse_header() -> list[str]:
    """The real split-file header, including its quirk: Annotator7's and Annotator8's transphobic columns are
    named "Annotator6_transphobic"."""
    header = list(CONVABUSE_CONTEXT)
    for annotator in CONVABUSE_ANNOTATORS:
        for field in CONVABUSE_FIELDS:
            owner = (
                "Annotator6"
                if field == "transphobic" and annotator in ("Annotator7", "Annotator8")
                else annotator
            )
            header.append(f"{owner}_{field}")
    return header


def convabuse_row(
    example_id: str, user: str, votes: dict[str, list[str]], **types: dict[str, list[int]]
) -> list[str]:
    """One split-file row. `votes` maps an annotator ("Annotator3") to its is_abuse levels, one per annotation
    ("1", "0", "-1", "-2", "-3"; two for an annotator who saw the example twice: cells like "1, 0"). `types`
    maps a type ("sexist") to {annotator: bits per annotation}."""
    row = [example_id, "42.0", "Hello, how can I help?", "hi", "BOT UTTERANCE", user, "E.L.I.Z.A."]
    for annotator in CONVABUSE_ANNOTATORS:
        levels = votes.get(annotator)
        for field in CONVABUSE_FIELDS:
            if levels is None:
                row.append("")
            elif field.startswith("is_abuse."):
                row.append(", ".join("1" if lv == field.removeprefix("is_abuse.") else "0" for lv in levels))
            else:
                bits = types.get(field, {}).get(annotator, [0] * len(levels))
                row.append(", ".join(map(str, bits)))
    return row


def write_convabuse(root: Path, rows_by_split: dict[str, list[list[str]]]) -> None:
    for split in ("train", "valid", "test"):
        write_csv(
            root / "convabuse" / "2_splits" / f"ConvAbuseEMNLP{split}.csv",
            convabuse_header(),
            rows_by_split.get(split, []),
        )


OPENAI_SAFE = {"S": 0, "H": 0, "V": 0, "HR": 0, "SH": 0, "S3": 0, "H2": 0, "V2": 0}
STRUDEL_COMMENT_COLUMNS = [
    "_id", "polarity", "perspective_score", "owner", "repo", "num_reference", "text", "num_url",
    "stanford_polite", "subjectivity", "num_emoji", "num_mention", "nltk_score", "toxicity",
]  # fmt: skip
STRUDEL_ISSUE_COLUMNS = [
    "_id", "perspective_score", "owner", "repo", "title", "length", "num_one_letter_word",
    "num_non_alpha_in_middle", "senti4sd_neutral_percentage", "total_url", "total_text", "num_modal_word",
    "total_reference", "num_punct", "senti4sd_negative_percentage", "senti4sd_positive_percentage",
    "num_capital", "num_QEMark", "toxicity",
]  # fmt: skip
REDDIT_COLUMNS = [
    "entry_id", "link_id", "parent_id", "entry_utc", "subreddit", "author", "body", "image", "label_date",
    "week", "group", "sheet_order", "level_1", "level_2", "level_3", "strength", "highlight", "split",
]  # fmt: skip


def strudel_comment(_id: str, text: str, toxicity: str) -> list[object]:
    return [_id, 0.1, 0.05, "owner", "repo", 0, text, 0, 0.5, 0.2, 0, 0, 0.1, toxicity]


def strudel_issue(_id: str, title: str, total_text: str, toxicity: str) -> list[object]:
    return [
        _id,
        0.05,
        "owner",
        "repo",
        title,
        len(total_text),
        0,
        0,
        1,
        0,
        total_text,
        0,
        0,
        1,
        0,
        0,
        1,
        0,
        toxicity,
    ]


def reddit_row(
    entry_id: str, body: str, level_1: str, level_2: str, level_3: str = "", image: str = ""
) -> list[str]:
    return [
        entry_id, "t3_x", "", "1580652620", "MGTOW", "someone", body, image, "17-02-2020", "1", "1", "(1,)",
        level_1, level_2, level_3, "", "", "train",
    ]  # fmt: skip


def gab_record(text_id: int, text: str, cv: int = 0, hd: int = 0, vo: int = 0) -> dict:
    flags = dict.fromkeys(
        ("purity", "harm", "im", "ex", "mph", "gen", "rel", "sxo", "rae", "nat", "pol", "idl"), 0
    )
    return {"text_id": text_id, "Text": text, **flags, "cv": cv, "hd": hd, "vo": vo}


def fox_record(text: str, label: int) -> dict:
    return {
        "title": "An article",
        "text": text,
        "label": label,
        "succ": "",
        "meta": "",
        "user": "u",
        "mentions": "",
        "prev": "",
    }


def write_mini_second_wave(root: Path) -> Path:
    """The nine second-wave sets with two rows each: one safe, one not (for data.prepare's tests)."""
    write_jsonl(
        root / "fox_news_comments" / "fox-news-comments.json",
        [fox_record("Great article, thanks", 0), fox_record("Those people are animals", 1)],
    )
    write_csv(
        root / "edos_semeval2023_sexism" / "data" / "edos_labelled_aggregated.csv",
        ["rewire_id", "text", "label_sexist", "label_category", "label_vector", "split"],
        [
            ["e-1", "The match was close", "not sexist", "none", "none", "train"],
            ["e-2", "Women should not be allowed to vote", "sexist", "4. prejudiced discussions",
             "4.2 supporting systemic discrimination against women", "train"],
        ],
    )  # fmt: skip
    write_csv(
        root / "reddit_online_misogyny_eacl2021" / "data" / "final_labels.csv",
        REDDIT_COLUMNS,
        [
            reddit_row("r1", "Stay hydrated, it helps", "Nonmisogynistic", "None_of_the_categories"),
            reddit_row("r2", "Women are all liars", "Misogynistic", "Derogation", "Moral_inferiority"),
        ],
    )
    folder = root / "gab_hate_corpus_kennedy_devtest" / "data" / "majority_gab_dataset_25k"
    write_jsonl(folder / "dev.jsonl", [gab_record(1, "Nice weather on the coast")])
    write_jsonl(folder / "test.jsonl", [gab_record(2, "They are subhuman filth", hd=1)])
    write_csv(
        root / "stormfront_vicomtech" / "annotations_metadata.csv",
        ["file_id", "user_id", "subforum_id", "num_contexts", "label"],
        [["1_1", "7", "1346", "0", "noHate"], ["1_2", "7", "1346", "0", "hate"]],
    )
    write_csv(
        root / "stormfront_vicomtech" / "all_files.csv",
        ["file_id", "text"],
        [["1_1", "Thank you in advance ."], ["1_2", "They are a plague on our nation ."]],
    )
    write_convabuse(
        root,
        {
            "train": [
                convabuse_row("1.0", "what is the weather", {"Annotator1": ["1"], "Annotator2": ["1"]})
            ],
            "valid": [convabuse_row("3.0", "tell me a joke", {"Annotator3": ["1"], "Annotator4": ["1"]})],
            "test": [convabuse_row("2.0", "you stupid bot", {"Annotator1": ["-2"], "Annotator2": ["-2"]})],
        },
    )
    training = root / "strudel_github_toxicity" / "data" / "training"
    write_csv(
        training / "train_comments.csv",
        STRUDEL_COMMENT_COLUMNS,
        [
            strudel_comment("repo/owner/1/11", "Thanks, merged.", "n"),
            strudel_comment("repo/owner/1/12", "this is garbage, learn to code", "y"),
        ],
    )
    write_csv(
        training / "labeled_test_issues.csv",
        STRUDEL_ISSUE_COLUMNS,
        [strudel_issue("repo/owner/2", "Crash on start", "It crashes when I open it", "n")],
    )
    write_jsonl(
        root / "openai_moderation_eval" / "data" / "samples-1680.jsonl.gz",
        [
            {"prompt": "How do I bake bread?", **OPENAI_SAFE},
            {"prompt": "I will hurt you badly", **OPENAI_SAFE, "V": 1},
        ],
        gz=True,
    )
    write_csv(
        root / "mlma_hate_speech_en" / "hate_speech_mlma" / "en_dataset_with_stop_words.csv",
        ["HITId", "tweet", "sentiment", "directness", "annotator_sentiment", "target", "group"],
        [["1", "What a lovely day @URL", "normal", "indirect", "indifference", "origin", "other"],
         ["2", "@user shut up you retard", "offensive", "direct", "anger", "disability", "special_needs"]],
    )  # fmt: skip
    return root


@pytest.fixture
def mini_shared(tmp_path: Path) -> Path:
    return write_mini_shared(tmp_path / "shared")
