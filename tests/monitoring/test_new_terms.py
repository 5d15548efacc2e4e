"""The new-term finder surfaces planted coded words as reviewable draft entries, and nothing else."""

from __future__ import annotations

import json
import random

import jsonschema
import pytest

from core.settings import ROOT
from monitoring.new_terms import NewTermConfig, PatternIndex, find_new_terms, main, variant_of
from monitoring.sources import Window, load_window, sample_from_mapping
from tests.monitoring import synth


@pytest.fixture(scope="module")
def patterns(data) -> PatternIndex:
    return PatternIndex.load(data["patterns"])


def test_planted_coded_words_are_found(data, patterns):
    found = find_new_terms(load_window(str(data["train"])), load_window(str(data["shifted"])), patterns)
    by_term = {c.term: c for c in found}
    assert set(by_term) == set(synth.PLANTED)  # every planted word, and no ordinary word
    for term, (word, technique) in synth.VARIANTS.items():
        assert (by_term[term].variant_of, by_term[term].technique) == (word, technique)
    assert by_term["k1ll"].replacement == "kill" and by_term["k1ll"].category == "violence"
    assert by_term["suuuicide"].category == "self_harm"
    assert by_term["zoinked"].variant_of is None and by_term["zoinked"].docs_reference == 0
    assert all("zoinked" in ex.lower() for ex in by_term["zoinked"].examples)
    assert [c.log_odds for c in found] == sorted((c.log_odds for c in found), reverse=True)


def test_unshifted_window_gives_no_candidates(data, patterns):
    assert find_new_terms(load_window(str(data["train"])), load_window(str(data["same"])), patterns) == []
    assert find_new_terms(load_window(data["log_ref"]), load_window(data["log_same"]), patterns) == []


def _window(texts: list[str], label: str = "harmful") -> Window:
    return Window("test", [sample_from_mapping({"text": t, "label": label}) for t in texts])


def test_terms_the_database_covers_are_not_proposed(patterns):
    rng = random.Random(5)
    base = [" ".join(rng.choice(synth.SAFE_WORDS) for _ in range(8)) for _ in range(300)]
    reference = _window(base)
    # Rising sharply, but covered by a form ("unalive"), a phrase form, a replacement and a pattern.
    rising = ["unalive", "sewer slide", "porn", "phaaarm", "bl0ckedw0rd"]
    current = _window([f"{t} {rng.choice(rising)}" for t in base[:200]])
    found = {c.term for c in find_new_terms(reference, current, patterns)}
    assert found == {"bl0ckedw0rd"}


def test_variant_detection():
    index = PatternIndex()
    index.add({"id": "violence.unalive", "forms": ["unalive"], "replacement": "kill", "category": "violence",
               "severity": 3})
    index.add({"id": "safe_context.x", "forms": ["killer app"], "replacement": "", "category": "safe_context",
               "severity": 0})
    cases = {"k1ll": "leetspeak", "k.i.l.l": "character_insertion", "k*ll": "masking", "kiiiill": "repetition",
             "unaliv3": "leetspeak", "unallive": "misspelling", "kil1": "leetspeak"}
    for term, technique in cases.items():
        kw, got = variant_of(term, index)
        assert (kw.word in ("kill", "unalive"), got) == (True, technique), term
    assert variant_of("garden", index) is None
    assert variant_of("killer app", index) is None  # phrases are not variants


def test_drafts_follow_the_schema_and_cli(data, tmp_path, capsys):
    out = tmp_path / "drafts.json"
    code = main(["--reference", str(data["train"]), "--current", str(data["shifted"]),
                 "--patterns", str(data["patterns"]), "--out", str(out)])
    assert code == 0
    doc = json.loads(out.read_text())
    schema = json.loads((ROOT / "data" / "dataset" / "algospeak_patterns.schema.json").read_text())
    entry_schema = {"$ref": "#/$defs/entry", "$defs": schema["$defs"]}
    assert {d["term"] for d in doc["drafts"]} == set(synth.PLANTED)
    for draft in doc["drafts"]:
        assert draft["status"] == "draft"
        jsonschema.validate(draft["entry"], entry_schema)
        assert draft["entry"]["source"][0] in doc["sources"]
    ids = [d["entry"]["id"] for d in doc["drafts"]]
    assert len(set(ids)) == len(ids)
    k1ll = next(d["entry"] for d in doc["drafts"] if d["term"] == "k1ll")
    assert (k1ll["replacement"], k1ll["action"], k1ll["technique"]) == ("kill", "rewrite", "leetspeak")
    zoinked = next(d["entry"] for d in doc["drafts"] if d["term"] == "zoinked")
    assert zoinked["action"] == "annotate" and zoinked["severity"] >= 2
    assert "zoinked" in capsys.readouterr().out


def test_cli_needs_texts(data, tmp_path, capsys):
    code = main(["--reference", str(data["train"]), "--current", data["log_hashed"],
                 "--patterns", str(data["patterns"]), "--out", str(tmp_path / "d.json")])
    err = capsys.readouterr().err
    assert code == 2 and "LOG_TEXT=true" in err and err.count("\n") == 1
    assert not (tmp_path / "d.json").exists()


def test_small_config_changes_are_respected(data, patterns):
    strict = NewTermConfig(min_docs=10_000, variant_min_docs=10_000)
    assert find_new_terms(load_window(str(data["train"])), load_window(str(data["shifted"])), patterns,
                          strict) == []
