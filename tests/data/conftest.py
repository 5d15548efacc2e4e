"""Builders for small input files in the real formats, and a tiny valid pattern database."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from data.readers import DEFAULT_SHARED_ROOT, JIGSAW_UB_COLUMNS

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
    """The four shared sets' layout with a few hand-made rows each (labels worked out in the tests)."""
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
    return root


@pytest.fixture
def mini_shared(tmp_path: Path) -> Path:
    return write_mini_shared(tmp_path / "shared")
