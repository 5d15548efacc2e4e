"""data.prepare and the team's seed corpus (data.seed): train only, deduplicated against the shared rows, its
categories from its families, listed in the data card, and left out with --no-seed-corpus."""

from __future__ import annotations

import hashlib
import json

import polars as pl
import pytest

from core.categories import CATEGORIES
from data.prepare import main, prepare
from data.readers import clean_text, dedupe_key
from data.seed import DEFAULT_SEED_CORPUS, load_seed
from tests.data.conftest import jigsaw_row, write_jigsaw_csv
from tests.data.test_prepare import config, originals_of, read_records


@pytest.fixture(scope="module")
def seed_rows():
    return load_seed()


def keys_of(texts: list[str]) -> list[str]:
    return pl.DataFrame({"t": texts}).select(dedupe_key(clean_text(pl.col("t")))).to_series().to_list()


def test_the_seed_is_added_to_train_only_less_its_duplicates(tmp_path, mini_shared, pattern_db_path, seed_rows):
    # A shared text equal to a seed sentence under the dedupe key (case and punctuation differ), with another
    # label: the shared row wins, keeps its label and is split like any shared row.
    twin = seed_rows[0]
    assert twin.label != "safe"
    jigsaw = write_jigsaw_csv(
        tmp_path / "train.csv",
        [jigsaw_row(0, twin.text.upper() + "!!", 0.05)] + [jigsaw_row(i, f"a plain comment number {i}", 0.0) for i in range(1, 30)],
    )
    card = prepare(config(tmp_path, mini_shared, jigsaw, pattern_db_path, seed_corpus=DEFAULT_SEED_CORPUS), log=lambda _: None)
    records = read_records(tmp_path / "out")
    seed = records.filter(pl.col("source") == "team_seed")

    # Only ever in train: the originals and their coded variants.
    assert seed.height > 0 and set(seed["split"]) == {"train"}
    variants = seed.filter(pl.col("parent_id").is_not_null())
    assert variants.height > 0  # harmful seed sentences are augmented like other train rows
    assert set(variants["label"]) <= {"harmful", "extremely_harmful"}

    # The count: load_seed's sentences, less those whose key a shared text has, less repeats of a key.
    shared_keys = set(keys_of(records.filter((pl.col("source") != "team_seed"))["text"].to_list()))
    expected = {k for k in keys_of([r.text for r in seed_rows]) if k not in shared_keys}
    originals = originals_of(seed)
    assert originals.height == len(expected)
    steps = card["steps"]["team_seed"]
    assert steps["sentences"] == len(seed_rows)
    assert steps["added"] == originals.height == sum(steps["added_by_label"].values())
    assert steps["duplicates_of_shared_dropped"] >= 1 and steps["duplicates_of_shared_with_another_label"] >= 1
    assert steps["added"] + steps["duplicates_of_shared_dropped"] + steps["duplicates_within_dropped"] == len(seed_rows)
    assert steps["added_by_label"] == dict(
        originals.group_by("label").len().iter_rows()) | {"potentially_harmful": 0}

    twin_key = keys_of([twin.text])[0]
    kept = originals_of(records).filter(
        pl.Series(keys_of(originals_of(records)["text"].to_list())) == twin_key
    )
    assert kept.select("source", "label").rows() == [("jigsaw_unintended_bias", "safe")]

    # No text in two splits, seed or not.
    keyed = originals_of(records).with_columns(dedupe_key(pl.col("text")).alias("key"))
    assert keyed["key"].is_unique().all()

    # Stable ids: the SHA-256 of the sentence; scores null.
    by_text = {r.text: r for r in seed_rows}
    row = originals.row(0, named=True)
    assert row["source_id"] == hashlib.sha256(by_text[row["text"]].text.encode()).hexdigest()[:16]
    assert row["id"] == f"team_seed:{row['source_id']}"
    assert originals.select(pl.col("toxicity", "threat", "self_harm").is_null().all()).row(0) == (True, True, True)

    # Categories from the family: a threat is violence, unknown for what the family does not say; a safe
    # look-alike is a negative of every category; mild swearing is unknown for profanity.
    cats = {r["text"]: r["categories"] for r in originals.iter_rows(named=True)}
    family = {r.text: r.family for r in seed_rows}
    for text, c in cats.items():
        assert list(c) == list(CATEGORIES)
        label = by_text[text].label
        if family[text] == "threat" and label != "safe":
            assert c["violence"] == 1 and c["drugs"] is None
        if family[text] == "self_harm" and label != "safe":
            assert c["self_harm"] == 1 and c["hate"] is None
        if family[text] == "dehumanisation":
            assert c["hate"] == 1
        if family[text] == "profanity" and label == "harmful":
            assert c["harassment"] == 1 and c["profanity"] is None
        if family[text] == "profanity" and label == "safe":
            assert c["profanity"] is None and c["violence"] == 0
        if family[text] in ("negated_hate", "counter_speech", "identity_neutral") or (
            family[text] in ("threat", "self_harm", "sexual") and label == "safe"
        ):
            assert c == dict.fromkeys(CATEGORIES, 0)
    joined = variants.join(originals, left_on="parent_id", right_on="id", suffix="_parent")
    assert joined.height == variants.height
    assert joined["categories"].to_list() == joined["categories_parent"].to_list()

    # The card lists it: counts per split and per label, input hash, licence, the setting.
    counts = card["counts"]
    assert counts["by_split_source"]["train"]["team_seed"] == seed.height
    assert "team_seed" not in counts["by_split_source"].get("validation", {})
    assert "team_seed" not in counts["by_split_source"].get("test", {})
    assert counts["by_source_label"]["team_seed"] == dict(seed.group_by("label").len().iter_rows())
    entry = next(i for i in card["inputs"] if i["source"] == "team_seed")
    assert entry["sha256"] == hashlib.sha256(DEFAULT_SEED_CORPUS.read_bytes()).hexdigest()
    assert "own writing" in card["licences"]["team_seed"]
    assert card["settings"]["seed_corpus"] == str(DEFAULT_SEED_CORPUS)
    markdown = (tmp_path / "out" / "data_card.md").read_text(encoding="utf-8")
    assert "## Labels by source (originals and variants)" in markdown
    row = next(line for line in markdown.splitlines() if line.startswith("| team_seed |"))
    by_label = counts["by_source_label"]["team_seed"]
    assert row == (f"| team_seed | {by_label.get('safe', 0)} | 0 | {by_label['harmful']} | "
                   f"{by_label['extremely_harmful']} | {seed.height} |")
    assert "- team_seed: this project's own writing" in markdown

    # The same inputs give the same bytes, seed included.
    again = prepare(config(tmp_path / "again", mini_shared, jigsaw, pattern_db_path, seed_corpus=DEFAULT_SEED_CORPUS),
                    log=lambda _: None)
    assert again["outputs"] == card["outputs"]


def test_no_seed_corpus_leaves_it_out(tmp_path, mini_shared, pattern_db_path, capsys):
    common = ["--shared-root", str(mini_shared), "--pattern-db", str(pattern_db_path), "--seed", "5"]
    assert main(["--out", str(tmp_path / "with"), *common]) == 0
    assert main(["--out", str(tmp_path / "without"), "--no-seed-corpus", *common]) == 0
    capsys.readouterr()
    with_seed = json.loads((tmp_path / "with" / "data_card.json").read_text(encoding="utf-8"))
    without = json.loads((tmp_path / "without" / "data_card.json").read_text(encoding="utf-8"))
    assert with_seed["counts"]["by_split_source"]["train"]["team_seed"] > 0
    assert "team_seed" not in read_records(tmp_path / "without")["source"].to_list()
    assert without["settings"]["seed_corpus"] is None and without["steps"]["team_seed"] is None
    assert "team_seed" not in without["licences"] and "team_seed" not in without["counts"]["by_source_label"]
    assert all(i["source"] != "team_seed" for i in without["inputs"])
    # The shared rows are sampled and split the same way with or without the seed.
    shared = pl.col("source") != "team_seed"
    for split in ("validation", "test"):
        assert (tmp_path / "with" / f"{split}.jsonl").read_bytes() == (tmp_path / "without" / f"{split}.jsonl").read_bytes()
    a = originals_of(read_records(tmp_path / "with").filter(shared)).sort("id")
    b = originals_of(read_records(tmp_path / "without")).sort("id")
    assert a.select("id", "split", "label").equals(b.select("id", "split", "label"))


@pytest.mark.parametrize("content", [None, "{not json", json.dumps({"slots": {}, "templates": [{"family": "x"}]})])
def test_a_bad_seed_corpus_is_one_line_naming_it_and_writes_nothing(tmp_path, mini_shared, pattern_db_path, capsys,
                                                                    content):
    path = tmp_path / "seed.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    out = tmp_path / "out"
    argv = ["--out", str(out), "--shared-root", str(mini_shared), "--pattern-db", str(pattern_db_path),
            "--seed-corpus", str(path)]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(path) in err and len(err.splitlines()) == 1
    assert "Traceback" not in err
    assert not out.exists()  # nothing written, not even the folder
