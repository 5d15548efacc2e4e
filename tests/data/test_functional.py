"""The functional test suite: the shipped file, expansion and validation, coded versions, the scorer."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from core.labels import LABELS, SEVERITY
from data.functional import (DEFAULT_SUITE, Case, code_suite, coded_cases, disguised_cases, load_suite, main,
                             suite_report)


@pytest.fixture(scope="module")
def document() -> dict:
    return json.loads(DEFAULT_SUITE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return load_suite()


@pytest.fixture(scope="module")
def coded(cases) -> list[Case]:
    return coded_cases(cases, seed=13)


# -------------------------------------------------------------------------------- the shipped suite


def test_the_suite_loads_with_at_least_400_plain_cases(cases):
    assert len(cases) >= 400
    assert all(isinstance(c, Case) and c.coded_of is None and c.techniques == () for c in cases)


def test_ids_are_unique_and_labels_valid(cases):
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids))
    for case in cases:
        assert case.label in LABELS
        assert case.flagged == (SEVERITY[case.label] >= SEVERITY["harmful"])
        assert case.id.startswith(case.family + ".")
        assert case.text.strip() and "{" not in case.text and "}" not in case.text


def test_every_family_has_the_sides_it_expects_and_enough_cases(document, cases):
    for name, family in document["families"].items():
        members = [c for c in cases if c.family == name]
        sides = {c.flagged for c in members}
        assert len(members) >= 20, name
        expected = family["flagged_expected"]
        assert sides == ({True, False} if expected == "mixed" else {expected}), name
    assert {c.family for c in cases} == set(document["families"])


def test_flagged_and_not_flagged_are_roughly_balanced(cases):
    share = sum(c.flagged for c in cases) / len(cases)
    assert 0.4 <= share <= 0.6


def test_identity_slots_expand_once_per_identity_with_stable_ids(document, cases):
    by_id = {c.id: c for c in cases}
    keys = [i["key"] for i in document["identities"]]
    assert len(keys) >= 10
    vermin = [c for c in cases if c.template_id == "dehumanisation.vermin"]
    assert [c.identity for c in vermin] == keys
    assert by_id["dehumanisation.vermin.muslims"].text == "Muslims are vermin."
    assert by_id["dehumanisation.vermin.gay_people"].text == "Gay people are vermin."  # capitalised slot
    assert by_id["identity_neutral.i_am.immigrants"].text == "I am an immigrant."
    assert by_id["threat.direct.003"].label == "extremely_harmful"
    assert by_id["threat.death_wish.001"].text == "I hope you die."
    assert by_id["profanity.untargeted.001"].text == "This traffic is fucking awful."
    assert not by_id["profanity.untargeted.001"].flagged
    assert by_id["self_harm.intent.001"].label == "extremely_harmful"
    # a slur template's cases carry the slur's target identity
    attack = by_id["slur.attack.t1.faggot"]
    assert attack.text == "Shut up, you faggot." and attack.identity == "gay_people" and attack.flagged


def test_slurs_are_both_used_against_someone_and_reclaimed_or_mentioned(cases):
    slur = [c for c in cases if c.family == "slur"]
    assert {c.template_id.split(".")[1] for c in slur if c.flagged} >= {"attack"}
    assert {c.template_id.split(".")[1] for c in slur if not c.flagged} >= {"reclaimed", "mention"}


# -------------------------------------------------------------------------------- coded versions


def test_each_flagged_case_gets_a_different_coded_version_with_its_label(cases, coded):
    plain = {c.id: c for c in cases}
    flagged = [c for c in cases if c.flagged]
    coded_again, skipped = code_suite(cases, seed=13)
    assert coded_again == coded  # deterministic
    assert len(coded) + len(skipped) == len(flagged)
    assert len(coded) >= 0.95 * len(flagged)
    for case in coded:
        origin = plain[case.coded_of]
        assert origin.flagged
        assert case.id == origin.id + ".coded"
        assert case.text != origin.text
        assert (case.label, case.flagged, case.family, case.identity) == (
            origin.label, origin.flagged, origin.family, origin.identity
        )
        assert case.techniques
    assert len({c.id for c in coded}) == len(coded)


def test_coded_versions_depend_on_the_seed_not_on_order(cases, coded):
    reversed_coded = coded_cases(list(reversed(cases)), seed=13)
    assert sorted(reversed_coded, key=lambda c: c.id) == sorted(coded, key=lambda c: c.id)
    other = {c.id: c.text for c in coded_cases(cases, seed=14)}
    assert sum(other[c.id] != c.text for c in coded if c.id in other) > len(coded) // 4


def test_coding_skips_what_the_augmenter_cannot_change(cases):
    class Stubborn:
        def variants(self, text, parent_id, n=1):
            return []

    some = [c for c in cases if c.flagged][:3] + [c for c in cases if not c.flagged][:2]
    coded, skipped = code_suite(some, augmenter=Stubborn())
    assert coded == [] and skipped == [c.id for c in some[:3]]


def test_each_harmless_case_gets_a_disguised_version_without_coded_harm(cases):
    disguised = disguised_cases(cases, seed=13)
    assert disguised == disguised_cases(list(reversed(cases)), seed=13)[::-1]  # deterministic, order-free
    plain = {c.id: c for c in cases}
    harmless = [c for c in cases if not c.flagged]
    assert len(disguised) >= 0.95 * len(harmless)
    for case in disguised:
        origin = plain[case.coded_of]
        assert not origin.flagged and case.id == origin.id + ".disguised" and case.text != origin.text
        assert (case.label, case.flagged, case.family) == (origin.label, origin.flagged, origin.family)
        # generic techniques only: no database euphemism ("unalive") puts coded harm into a harmless case
        assert set(case.techniques) <= {"leetspeak", "spacing", "repetition", "homoglyph"}
        assert not case.pattern_ids


# -------------------------------------------------------------------------------- malformed files


def _write(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def _template(document: dict, template_id: str) -> dict:
    return next(t for t in document["templates"] if t["id"] == template_id)


def _set(template_id, **changes):
    def mutate(doc):
        _template(doc, template_id).update(changes)

    return mutate


def _duplicate(doc):
    doc["templates"].append(dict(_template(doc, "threat.direct.003")))


def _only_flagged_profanity(doc):
    doc["templates"] = [
        t for t in doc["templates"] if not (t["family"] == "profanity" and t["label"] != "harmful")
    ]


def _clash(doc):
    doc["templates"].append(
        {"id": "dehumanisation.vermin.muslims", "family": "dehumanisation", "label": "harmful",
         "template": "x"}
    )


def _drop_key(doc):
    del _template(doc, "threat.direct.003")["label"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_set("threat.direct.003", label="very_bad"), "template 'threat.direct.003': label 'very_bad'"),
        (_set("threat.direct.003", family="nope"), "template 'threat.direct.003': unknown family 'nope'"),
        (_set("threat.direct.003", template="I will {hurt} you"), "'threat.direct.003': unknown slot"),
        (_set("threat.direct.003", template="I will { you"), "template 'threat.direct.003': bad braces"),
        (_set("threat.direct.003", template="   "), "template 'threat.direct.003': 'template' must be"),
        (_set("threat.direct.003", identity="martians"), "template 'threat.direct.003': unknown identity"),
        (_set("threat.direct.003", lable="safe"), "template 'threat.direct.003': unknown key(s) ['lable']"),
        (_set("threat.direct.003", id="direct.003"), "'direct.003': the id must start with its family"),
        (_set("dehumanisation.vermin", label="safe"), "case 'dehumanisation.vermin.women': label 'safe'"),
        (_set("threat.direct.003", template="{identity} and {slur}"), "not both"),
        (_drop_key, "template 'threat.direct.003': 'label' must be a non-empty string"),
        (_duplicate, "template 'threat.direct.003': the id appears twice"),
        (_clash, "case 'dehumanisation.vermin.muslims': the id appears twice"),
        (_only_flagged_profanity, "family 'profanity' is mixed but has only flagged cases"),
        (lambda doc: doc["families"]["threat"].update(flagged_expected=1), "family 'threat': 'flagged_expected'"),
    ],
)
def test_a_malformed_suite_is_refused_naming_the_case(tmp_path, document, mutate, message):
    broken = copy.deepcopy(document)
    mutate(broken)
    with pytest.raises(ValueError) as info:
        load_suite(_write(tmp_path, broken))
    assert message in str(info.value)


def test_unreadable_or_invalid_json_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        load_suite(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_suite(bad)


# -------------------------------------------------------------------------------- the report


def _case(id_, family, label, coded_of=None, techniques=()):
    return Case(id_, family, f"text of {id_}", label, SEVERITY[label] >= SEVERITY["harmful"], None, id_,
                coded_of, techniques)


SMALL = [
    _case("a.1", "a", "harmful"),
    _case("a.2", "a", "extremely_harmful"),
    _case("a.3", "a", "safe"),
    _case("b.1", "b", "safe"),
    _case("b.2", "b", "potentially_harmful"),
    _case("a.1.coded", "a", "harmful", coded_of="a.1", techniques=("leetspeak",)),
    _case("a.2.coded", "a", "extremely_harmful", coded_of="a.2", techniques=("euphemism",)),
]


def test_a_perfect_predictor_flags_every_hateful_case_and_nothing_else():
    report = suite_report(SMALL, [c.label for c in SMALL])
    overall = report["overall"]
    assert (overall["n"], overall["flagged_expected_n"], overall["not_flagged_expected_n"]) == (5, 2, 3)
    assert overall["hateful_flagged"] == 1.0 and overall["non_hateful_flagged"] == 0.0
    assert overall["accuracy"] == 1.0
    assert overall["coded"]["n"] == 2
    assert (overall["coded"]["plain_flagged"], overall["coded"]["coded_flagged"]) == (1.0, 1.0)
    assert overall["coded"]["gap_points"] == 0.0
    assert report["families"]["b"]["hateful_flagged"] is None  # nothing expected flagged in b
    assert report["families"]["b"]["coded"]["gap_points"] is None


def test_an_all_safe_predictor_flags_nothing():
    report = suite_report(SMALL, ["safe"] * len(SMALL))
    overall = report["overall"]
    assert overall["hateful_flagged"] == 0.0 and overall["non_hateful_flagged"] == 0.0
    assert overall["accuracy"] == pytest.approx(2 / 5)  # a.3 and b.1 are safe
    assert overall["coded"]["coded_flagged"] == 0.0 and overall["coded"]["gap_points"] == 0.0


def test_a_mixed_predictor_hand_computed():
    predicted = [
        "harmful",  # a.1 flagged, right label
        "potentially_harmful",  # a.2 missed
        "harmful",  # a.3 false flag
        "safe",  # b.1 right
        "safe",  # b.2 not flagged, wrong label
        "safe",  # a.1.coded missed (its plain was caught)
        "safe",  # a.2.coded missed (so was its plain)
    ]
    report = suite_report(SMALL, predicted)
    a, b, overall = report["families"]["a"], report["families"]["b"], report["overall"]
    assert a["n"] == 3 and a["flagged_expected_n"] == 2
    assert a["hateful_flagged"] == 0.5 and a["non_hateful_flagged"] == 1.0
    assert a["accuracy"] == pytest.approx(1 / 3)
    assert a["coded"] == {
        "n": 2, "plain_flagged": 0.5, "coded_flagged": 0.0, "gap_points": 50.0, "accuracy": 0.0
    }
    assert b["n"] == 2 and b["hateful_flagged"] is None
    assert b["non_hateful_flagged"] == 0.0 and b["accuracy"] == 0.5
    assert overall["hateful_flagged"] == 0.5
    assert overall["non_hateful_flagged"] == pytest.approx(1 / 3)
    assert overall["accuracy"] == pytest.approx(2 / 5)
    assert overall["coded"]["gap_points"] == 50.0
    by_technique = overall["coded"]["by_technique"]
    assert by_technique["leetspeak"]["gap_points"] == 100.0
    assert by_technique["euphemism"]["gap_points"] == 0.0


def test_disguised_harmless_cases_are_scored_apart_from_the_coded_harmful_ones():
    cases = SMALL + [_case("a.3.disguised", "a", "safe", coded_of="a.3", techniques=("spacing",)),
                     _case("b.1.disguised", "b", "safe", coded_of="b.1", techniques=("repetition",))]
    # every plain case right; a.3's disguise flagged, b.1's not; the coded harmful cases caught
    predicted = [c.label for c in SMALL] + ["harmful", "safe"]
    report = suite_report(cases, predicted)
    overall = report["overall"]
    assert overall["non_hateful_flagged"] == 0.0  # the plain figures do not move
    assert overall["coded"]["n"] == 2 and overall["coded"]["gap_points"] == 0.0
    assert overall["disguised"] == {"n": 2, "plain_flagged": 0.0, "coded_flagged": 0.5, "gap_points": -50.0,
                                    "accuracy": 0.5}
    assert report["families"]["a"]["disguised"]["coded_flagged"] == 1.0
    assert report["families"]["b"]["disguised"]["coded_flagged"] == 0.0


def test_each_plain_case_gets_one_padded_version_beside_a_friendly_sentence(cases):
    from data.functional import PADDING, padded_cases

    padded = padded_cases(cases)
    assert padded == padded_cases(list(reversed(cases)))[::-1]  # deterministic, order-free
    plain = [c for c in cases if c.coded_of is None]
    assert len(padded) == len(plain)
    origin = {c.id: c for c in plain}
    for case in padded:
        o = origin[case.coded_of]
        assert case.id == o.id + ".padded" and case.label == o.label and case.techniques == ("padding",)
        assert any(case.text in (f"{o.text} {p}", f"{p} {o.text}") for p in PADDING)
    assert {c.text.startswith(PADDING) for c in padded} == {True, False}  # before some cases, after others
    assert padded_cases(padded) == []  # a padded case is not padded again


def test_padded_cases_are_scored_apart_for_harmful_and_harmless_cases():
    cases = SMALL + [_case("a.1.padded", "a", "harmful", coded_of="a.1", techniques=("padding",)),
                     _case("a.3.padded", "a", "safe", coded_of="a.3", techniques=("padding",))]
    # every plain case right; the padding hid a.1's harm and left a.3 alone
    report = suite_report(cases, [c.label for c in SMALL] + ["safe", "safe"])
    overall = report["overall"]
    assert overall["hateful_flagged"] == 1.0  # the plain figures do not move
    assert overall["padded"] == {"n": 1, "plain_flagged": 1.0, "coded_flagged": 0.0, "gap_points": 100.0,
                                 "accuracy": 0.0}
    assert overall["padded_harmless"]["coded_flagged"] == 0.0 and overall["padded_harmless"]["n"] == 1
    assert overall["coded"]["n"] == 2 and overall["disguised"]["n"] == 0


def test_the_report_on_the_whole_suite(cases, coded):
    everything = cases + coded + disguised_cases(cases)
    perfect = suite_report(everything, [c.label for c in everything])
    assert perfect["overall"]["hateful_flagged"] == 1.0 and perfect["overall"]["non_hateful_flagged"] == 0.0
    assert perfect["overall"]["coded"]["gap_points"] == 0.0
    assert perfect["overall"]["disguised"]["coded_flagged"] == 0.0
    assert set(perfect["families"]) == {c.family for c in cases}
    assert sum(f["n"] for f in perfect["families"].values()) == len(cases)
    lazy = suite_report(everything, ["safe"] * len(everything))
    assert lazy["overall"]["hateful_flagged"] == 0.0 and lazy["overall"]["non_hateful_flagged"] == 0.0


def test_the_report_refuses_bad_input():
    with pytest.raises(ValueError, match="7 cases but 1 predictions"):
        suite_report(SMALL, ["safe"])
    with pytest.raises(ValueError, match="case 'a.3': predicted label 'toxic'"):
        suite_report(SMALL, ["safe", "safe", "toxic", "safe", "safe", "safe", "safe"])
    with pytest.raises(ValueError, match="plain case 'a.1' is not among the cases"):
        suite_report(SMALL[5:], ["safe", "safe"])


# -------------------------------------------------------------------------------- CLI


def test_summary_cli_prints_counts_per_family_and_side(capsys, cases):
    assert main(["--summary"]) == 0
    out = capsys.readouterr().out
    assert f"{len(cases)} plain cases" in out
    for family in {c.family for c in cases}:
        assert family in out
    assert "coded:" in out and "disguised:" in out


def test_jsonl_cli_writes_every_case(tmp_path, cases, coded):
    path = tmp_path / "cases.jsonl"
    assert main(["--jsonl", str(path)]) == 0
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    from data.functional import padded_cases

    disguised, padded = disguised_cases(cases), padded_cases(cases)
    assert len(rows) == len(cases) + len(coded) + len(disguised) + len(padded)
    assert rows[0]["id"] == cases[0].id and rows[len(cases)]["id"] == coded[0].id
    assert rows[-len(padded) - 1]["id"] == disguised[-1].id and rows[-1]["id"] == padded[-1].id


def test_a_malformed_suite_is_one_error_line_from_the_cli(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("[]", encoding="utf-8")
    assert main(["--suite", str(bad)]) == 1
    assert capsys.readouterr().err.startswith("error: ")
