"""The team's seed corpus: what it expands to, that it stays apart from the functional suite, and bad files."""

import json
from collections import Counter

import pytest

from core.labels import LABELS
from data.functional import load_suite
from data.seed import DEFAULT_SEED_CORPUS, MAX_SUITE_SIMILARITY, load_seed, main, nearest, suite_similarity


@pytest.fixture(scope="module")
def rows():
    return load_seed()


def test_the_seed_covers_each_harm_and_its_safe_look_alikes(rows):
    counts = Counter((r.family, r.label) for r in rows)
    # every harm the shared sets barely label has both sides in the seed
    for family in ("threat", "self_harm", "sexual", "profanity"):
        assert counts[(family, "safe")] >= 5, family
        assert counts[(family, "harmful")] + counts[(family, "extremely_harmful")] >= 50, family
    assert counts[("dehumanisation", "harmful")] >= 200
    assert counts[("counter_speech", "safe")] >= 100 and counts[("negated_hate", "safe")] >= 100
    assert all(r.label in LABELS for r in rows)
    # each label the seed has carries a whole label's weight of its domain in training: a handful of sentences
    # would teach their every word ("this fucking weather" once made "nice weather today" potentially harmful)
    assert min(Counter(r.label for r in rows).values()) >= 50
    assert len({r.text.lower() for r in rows}) == len(rows)  # no sentence twice
    # an empty slot value at either end of a template leaves no stray space: training data keeps the text as it is,
    # so " ima smoke u" would reach prepare as another text than the one its dedupe key and the loader's name
    assert all(r.text == r.text.strip() and r.text for r in rows)


def test_the_same_corpus_on_every_run_and_another_with_another_seed(rows):
    assert [r.text for r in load_seed()] == [r.text for r in rows]
    assert [r.text for r in load_seed(seed=14)] != [r.text for r in rows]


def test_no_seed_sentence_is_a_functional_suite_case_or_an_outside_probe_in_other_words(rows):
    """The suite and the outside probes measure what the model was not shown: the seed is left out where it comes
    close to one of their texts."""
    scores = [score for score, _ in suite_similarity([r.text for r in rows])]
    assert max(scores) < MAX_SUITE_SIMILARITY
    suite_texts = {c.text.lower().rstrip(".!") for c in load_suite()}
    assert not suite_texts & {r.text.lower().rstrip(".!") for r in rows}
    probes = json.loads((DEFAULT_SEED_CORPUS.parent / "outside_probes.json").read_text(encoding="utf-8"))
    probe_list = probes["benign"] + probes["harmful"]
    probe_texts = {t.lower().rstrip(".!") for t in probe_list}
    assert not probe_texts & {r.text.lower().rstrip(".!") for r in rows}
    # read from the files themselves, not through the filter's own list: a filter that lost the benign probes or
    # the suite would agree with itself
    texts = [r.text for r in rows]
    assert max(score for score, _ in nearest(texts, probe_list)) < MAX_SUITE_SIMILARITY
    assert max(score for score, _ in nearest(texts, [c.text for c in load_suite()])) < MAX_SUITE_SIMILARITY
    assert "kys" in probe_texts and "kys" in {r.text.lower() for r in load_seed(max_suite_similarity=None)}
    # and the filter is what keeps it so: unfiltered, the stock phrases shared with the suite come back
    unfiltered = load_seed(max_suite_similarity=None)
    assert max(score for score, _ in suite_similarity([r.text for r in unfiltered])) >= MAX_SUITE_SIMILARITY


def test_the_suites_identity_groups_never_appear_in_the_seed(rows):
    spec = json.loads((DEFAULT_SEED_CORPUS.parent / "functional_suite.json").read_text(encoding="utf-8"))
    groups = {i["group"].lower() for i in spec["identities"]}
    seed_groups = {g.lower() for g in json.loads(DEFAULT_SEED_CORPUS.read_text(encoding="utf-8"))["slots"]["group"]}
    assert not groups & seed_groups


@pytest.mark.parametrize("change, message", [
    (lambda d: d["templates"].append({"family": "x", "label": "bad", "template": "hi", "max": 1}), "label 'bad'"),
    (lambda d: d["templates"].append({"family": "x", "label": "safe", "template": "{nope}", "max": 1}), "unknown slot"),
    (lambda d: d["templates"].append({"family": "x", "label": "safe", "template": "hi", "max": 0}), "max must be"),
    (lambda d: d["templates"].append({"family": "x", "label": "safe", "template": "hi"}), "needs exactly"),
    (lambda d: d["slots"].update(group=[]), "non-empty lists"),
    (lambda d: d.pop("slots"), "unreadable"),
    (lambda d: d["templates"].append({"family": "x", "label": "safe", "template": "{e}", "max": 1})
     or d["slots"].update(e=[" "]), "filling is empty"),
])
def test_a_malformed_file_is_refused_naming_the_problem(tmp_path, change, message, capsys):
    spec = json.loads(DEFAULT_SEED_CORPUS.read_text(encoding="utf-8"))
    change(spec)
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_seed(path)
    assert main(["--path", str(path)]) == 1
    assert message.split()[0] in capsys.readouterr().err


def test_a_template_that_explodes_is_refused(tmp_path):
    spec = {"slots": {"a": [str(i) for i in range(300)]},
            "templates": [{"family": "x", "label": "safe", "template": "{a}{a}", "max": 1}]}
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(ValueError, match="combinations"):
        load_seed(path, max_suite_similarity=None)


def test_similarity_is_word_overlap_and_texts_without_words_are_near_nothing():
    assert nearest(["I hope you have a lovely day"], ["i hope you have a lovely day!!"])[0][0] == 1.0
    assert nearest(["kys"], ["Kys", "kys fr"])[0] == (1.0, "Kys")
    assert nearest(["🔪🔪"], ["💀", "🔪🔪"])[0][0] == 0.0  # emoji only: no words, no copy
    assert nearest(["a b c d"], [])[0] == (0.0, "")


def test_an_unreadable_probes_file_is_a_clear_error(tmp_path, monkeypatch):
    import data.seed as seed

    monkeypatch.setattr(seed, "OUTSIDE_PROBES", tmp_path / "missing.json")
    with pytest.raises(ValueError, match="outside probes .*missing.json"):
        load_seed()
    (tmp_path / "bad.json").write_text('{"benign": ["ok"]}', encoding="utf-8")
    monkeypatch.setattr(seed, "OUTSIDE_PROBES", tmp_path / "bad.json")
    with pytest.raises(ValueError, match="unreadable"):
        load_seed()
