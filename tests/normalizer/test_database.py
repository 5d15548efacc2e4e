"""The pattern database: the product file passes its own examples; broken files are refused with reasons."""

import json
import shutil
import sys
import time

import pytest

from normalizer import Normalizer, PatternDatabaseError, load_database
from normalizer.regex_safety import UnsafePatternError, check_pattern
from normalizer.reload import ReloadingNormalizer
from tests.normalizer.conftest import MINI_DB


def test_product_database_is_broad(product_db):
    entries = product_db.entries
    assert len(entries) >= 400
    categories = {e.category for e in entries}
    techniques = {e.technique for e in entries}
    assert {"self_harm", "violence", "sexual", "drugs", "hate", "harassment", "profanity"} <= categories
    assert {"euphemism", "phonetic_respelling", "leetspeak", "emoji", "abbreviation", "misspelling"} <= techniques
    assert sum(e.action == "protect" for e in entries) >= 30
    assert all(e.source for e in entries)


def test_every_positive_example_matches_its_entry(product_db, product):
    failures = []
    for entry in product_db.entries:
        for example in entry.positive:
            result = product.normalize(example)
            if entry.id not in {m.entry_id for m in result.matches}:
                failures.append((entry.id, example))
            elif entry.action == "rewrite" and entry.replacement:
                assert any(m.replacement for m in result.matches if m.entry_id == entry.id)

    assert not failures, f"{len(failures)} positive examples not matched, e.g. {failures[:10]}"


def test_no_negative_example_matches_its_entry(product_db, product):
    """Entries with `rewrite_when` (emoji codes) are reported everywhere: their innocent uses must not be rewritten."""
    failures = [
        (entry.id, example)
        for entry in product_db.entries
        for example in entry.negative
        if any(
            m.entry_id == entry.id and (entry.rewrite_when is None or m.action == "rewrite")
            for m in product.normalize(example).matches
        )
    ]
    assert not failures, f"{len(failures)} negative examples matched, e.g. {failures[:10]}"


def _write(tmp_path, document):
    path = tmp_path / "db.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def _mini():
    return json.loads(MINI_DB.read_text(encoding="utf-8"))


def test_schema_violation_is_refused_with_the_location(tmp_path):
    doc = _mini()
    doc["entries"][0]["category"] = "not-a-category"
    with pytest.raises(PatternDatabaseError) as err:
        load_database(_write(tmp_path, doc))
    assert "entries/0/category" in str(err.value)


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda d: d["entries"][1]["forms"].append("unalive"), "also a form of violence.unalive"),
        (lambda d: d["entries"].append(dict(d["entries"][0])), "duplicate id"),
        (lambda d: d["entries"][2].update(replacement="kys"), "normalizing twice"),
        (lambda d: d["entries"][0].update(patterns=["(a+)+$"]), "backtrack"),
        (lambda d: d["entries"][0].update(source=["nowhere"]), "not in the sources list"),
    ],
)
def test_invariants_are_enforced(tmp_path, mutate, reason):
    doc = _mini()
    mutate(doc)
    with pytest.raises(PatternDatabaseError) as err:
        load_database(_write(tmp_path, doc))
    assert reason in str(err.value)


def test_unreadable_files_get_clear_errors(tmp_path):
    with pytest.raises(PatternDatabaseError, match="cannot read"):
        load_database(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": ', encoding="utf-8")
    with pytest.raises(PatternDatabaseError, match="not valid JSON"):
        load_database(bad)
    bad.write_bytes(b"\xff\xfe{}")
    with pytest.raises(PatternDatabaseError, match="not UTF-8"):
        load_database(bad)


@pytest.mark.parametrize(
    "pattern",
    [r"(a+)+$", r"(a|aa)*b", r"\w+\s+\w+", r"(\w)\1", r"(x*)*y", r"(?:a{1,5})+", r"(?:k|kk){1,20}(?:k|kk){1,20}z"],
)
def test_catastrophic_patterns_are_refused(pattern):
    with pytest.raises(UnsafePatternError):
        check_pattern(pattern)


@pytest.mark.parametrize("pattern", [r"\bs[uü]ey?side\b", r"\b1[34]/(?:14|50|88)\b", r"\bk{1,10}y{1,10}s+\b"])
def test_simple_patterns_are_accepted(pattern):
    check_pattern(pattern)


def test_hot_reload_keeps_the_last_good_database(tmp_path):
    path = tmp_path / "db.json"
    shutil.copy(MINI_DB, path)
    live = ReloadingNormalizer(path, interval=0)
    assert live.current().normalize("seggs").text == "sex"

    doc = _mini()
    doc["version"] = "0.0.2"
    doc["entries"][2]["forms"].append("secks")
    time.sleep(0.01)
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert live.check() is True
    assert live.current().version == "0.0.2"
    assert live.current().normalize("secks").text == "sex"

    path.write_text('{"broken": true}', encoding="utf-8")
    assert live.check() is False
    assert live.current().version == "0.0.2"  # still in force
    assert "invalid pattern database" in live.last_error


def _python_lines_run(normalizer: Normalizer, text: str) -> int:
    """How many lines of Python normalizing `text` runs: a cost measure that does not depend on the machine."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        count += event == "line"
        return tracer

    sys.settrace(tracer)
    try:
        normalizer.normalize(text)
    finally:
        sys.settrace(None)
    return count


def test_compiled_matcher_cost_does_not_grow_with_entries(tmp_path):
    """Matching is an automaton, not a loop over entries: with 10,000 more entries normalizing a text runs the
    same Python (counted line by line, not timed), and the big database still normalizes correctly."""
    doc = _mini()
    small = Normalizer(load_database(_write(tmp_path, doc)))
    for i in range(10_000):
        doc["entries"].append(
            {
                "id": f"profanity.synthetic{i}", "forms": [f"zzq{i}x"], "replacement": "swear",
                "technique": "misspelling", "category": "profanity", "severity": 1,
                "examples": {"positive": [f"zzq{i}x"], "negative": []}, "source": ["wiki_algospeak"],
            }
        )  # fmt: skip
    big = Normalizer(load_database(_write(tmp_path, doc)))
    text = "he said unal1ve and then some more words"
    assert big.normalize(text).text == small.normalize(text).text == "he said kill and then some more words"
    assert _python_lines_run(Normalizer(big.db), text) == _python_lines_run(Normalizer(small.db), text)
    assert big.normalize("he said zzq9999x and unal1ve").text == "he said swear and kill"



def _regex_entry(eid, patterns, replacement, category="violence", **extra):
    return {"id": eid, "forms": [], "patterns": patterns, "replacement": replacement, "technique": "misspelling",
            "category": category, "severity": 2, "examples": {"positive": ["x"], "negative": []},
            "source": ["wiki_algospeak"], **extra}  # fmt: skip


def test_regular_expression_entries_are_read_like_forms(tmp_path):
    """The database's regular expressions run as one combined pattern: each is found wherever it matches, a
    pattern without a closing \\b matches the start of a longer word, a safe context written as a pattern protects
    its span, and a pattern's context rule is held like a form's."""
    doc = _mini()
    doc["entries"] += [
        # listed before "murdah": the patterns are alternatives of one expression, and at one start the first
        # that matches wins (unlike forms, whose overlapping hits are all found and resolved safe-context first)
        _regex_entry("safe_context.murdah_mystery", [r"\bmurdah mystery\b"], "murdah mystery", "safe_context",
                     technique="safe_context", severity=0, action="protect"),
        _regex_entry("violence.murdah", [r"\bmurdah"], "murder"),
        _regex_entry("drugs.snowz", [r"\bsn[o0]wz\b"], "cocaine", "drugs", context={"require_any": ["tonight"], "window": 3}),
    ]  # fmt: skip
    normalizer = Normalizer(load_database(_write(tmp_path, doc)))

    def read(text):
        result = normalizer.normalize(text)
        return result.text, [(m.original, m.entry_id, m.rule, m.action) for m in result.matches]

    assert read("thinking of sueyside and murdah") == ("thinking of suicide and murder", [
        ("sueyside", "self_harm.suicide_plain", "pattern", "rewrite"), ("murdah", "violence.murdah", "pattern", "rewrite")])
    # the replacement is set apart from the rest of the word, as every rewrite is
    assert read("murdahs") == ("murder s", [("murdah", "violence.murdah", "pattern", "rewrite")])
    assert read("a murdah mystery") == (
        "a murdah mystery", [("murdah mystery", "safe_context.murdah_mystery", "safe_context", "protect")])
    assert read("got sn0wz tonight") == ("got cocaine tonight", [("sn0wz", "drugs.snowz", "pattern", "rewrite")])
    assert read("got sn0wz") == ("got sn0wz", [])


def test_an_edge_boundary_of_a_pattern_follows_the_unicode_word_rule_and_later_matches_still_count(mini):
    # RE2's \b is ASCII: "яsueyside" would match it, but "я" is a letter, so that one is not a word on its own;
    # the "sueyside" after it still is.
    assert mini.normalize("яsueyside and sueyside").text == "яsueyside and suicide"


@pytest.mark.parametrize("text, protected", [("bang on time", "bang on time"), ("a die hard fan", "die hard fan")])
def test_the_longest_of_two_safe_contexts_that_start_together_is_the_one_reported(product, text, protected):
    [match] = product.normalize(text).matches
    assert (match.original, match.action) == (protected, "protect")
