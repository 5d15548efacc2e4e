"""The transfer harness and the decision that ships: weights that make style say nothing about harm, thresholds
that keep their false-flag budget, the moderator's rule computed the same way, and leave-one-domain-out that
never trains on the domain it scores."""

from __future__ import annotations

import numpy as np
import pytest

from core.labels import LABELS
from moderator import decide
from training import transfer
from training.transfer import Corpus, Decision, balanced_weights, decide_many, decision_metrics, fit_decision


def corpus_of(rows: list[tuple[str, int, str, str]]) -> Corpus:
    text, label, source, split = zip(*rows)
    return Corpus(list(text), np.array(label), np.array(source), np.array(source), np.array(split))


def test_within_a_domain_every_label_weighs_the_same_so_style_predicts_nothing():
    # tweets: 6 safe, 2 harmful; news: 1 safe, 9 harmful. Unweighted, "news" alone predicts harm.
    rows = [("t", 0, "tweets", "train")] * 6 + [("t", 2, "tweets", "train")] * 2
    rows += [("n", 0, "news", "train")] + [("n", 2, "news", "train")] * 9
    c = corpus_of(rows)
    w = balanced_weights(c)
    for domain in ("tweets", "news"):
        in_domain = c.domain == domain
        safe, harmful = w[in_domain & (c.label == 0)].sum(), w[in_domain & (c.label == 2)].sum()
        assert safe == pytest.approx(harmful)  # P(harmful | domain) is the same in both domains
    assert w.mean() == pytest.approx(1.0)


def test_the_team_seed_weighs_as_many_domains_as_asked():
    rows = [("t", 0, "tweets", "train")] * 6 + [("t", 2, "tweets", "train")] * 2
    rows += [("s", 0, "team_seed", "train")] * 3 + [("s", 3, "team_seed", "train")] * 30
    c = corpus_of(rows)
    for seed_weight in (1.0, 4.0):
        w = balanced_weights(c, seed_weight)
        seed, tweets = w[c.domain == "team_seed"].sum(), w[c.domain == "tweets"].sum()
        assert seed == pytest.approx(seed_weight * tweets)  # both domains have two labels
        in_seed = c.domain == "team_seed"
        assert w[in_seed & (c.label == 0)].sum() == pytest.approx(w[in_seed & (c.label == 3)].sum())
    assert balanced_weights(c, 0.0)[c.domain == "team_seed"].sum() == 0.0


def test_decide_many_is_the_moderators_rule():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=500)
    thresholds = {"potentially_harmful": 0.35, "harmful": 0.5, "extremely_harmful": 0.2}
    expected = [LABELS.index(decide(dict(zip(LABELS, row)), thresholds)) for row in probs.tolist()]
    assert decide_many(probs, thresholds).tolist() == expected


def _separable(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=n)
    logits = rng.normal(size=(n, 4)) + 2.5 * np.eye(4)[labels]
    return logits, labels


@pytest.mark.parametrize("budget", [0.01, 0.05, 0.2])
def test_thresholds_keep_the_false_flag_budget_on_the_data_they_were_fitted_on(budget):
    logits, labels = _separable(4000, 1)
    decision = fit_decision(logits, labels, np.full(4, 0.25), false_flag_budget=budget)
    flagged_safe = (decision.labels(logits)[labels == 0] >= 2).mean()
    assert flagged_safe <= budget
    assert flagged_safe > budget * 0.6  # the threshold is as low as the budget allows, not just safe
    assert (decision.labels(logits)[labels == 0] == 1).mean() <= transfer.DEFAULT_REVIEW_BUDGET


@pytest.mark.parametrize("review_budget", [0.05, 0.15])
def test_the_review_threshold_keeps_its_budget_of_safe_texts(review_budget):
    logits, labels = _separable(4000, 3)
    logits[:, 1] += 1.5  # a model that leans to "potentially harmful": macro-F1 alone would review much safe text
    loose = fit_decision(logits, labels, np.full(4, 0.25), false_flag_budget=0.02, review_budget=0.99)
    decision = fit_decision(logits, labels, np.full(4, 0.25), false_flag_budget=0.02, review_budget=review_budget)
    reviewed_safe = (decision.labels(logits)[labels == 0] == 1).mean()
    assert reviewed_safe <= review_budget < (loose.labels(logits)[labels == 0] == 1).mean()


def test_temperature_calibrates_overconfident_logits():
    logits, labels = _separable(6000, 2)
    # With unit Gaussian noise around a 2.5 offset, the calibrated logits are 2.5 * logits (Bayes' rule), so
    # 4 * logits are too confident by a factor 4 / 2.5.
    decision = fit_decision(4 * logits, labels, np.full(4, 0.25), prior=[0.25] * 4)
    assert decision.temperature == pytest.approx(4 / 2.5, rel=0.05)
    before = transfer.weighted_ece(transfer.softmax(4 * logits), labels)
    after = transfer.weighted_ece(decision.probs(4 * logits), labels)
    assert after < 0.03 < before


def test_the_prior_shift_is_the_label_shift_correction():
    # A model trained on a balanced mix, served for 90% safe traffic: odds of safe rise by 0.9/0.25 : 0.1/0.75 ...
    d = Decision(1.0, [0.25] * 4, [0.7, 0.1, 0.1, 0.1], {"potentially_harmful": 0.5, "harmful": 0.5,
                                                         "extremely_harmful": 0.5}, 0.03)
    p = d.probs(np.zeros((1, 4)))[0]
    assert p == pytest.approx([0.7, 0.1, 0.1, 0.1])  # an uninformative text gets the traffic mix


def test_decision_metrics_by_hand():
    y = np.array([0, 0, 0, 0, 1, 2, 3, 3])
    pred = np.array([0, 2, 0, 1, 1, 2, 1, 3])
    m = decision_metrics(y, pred, base_rate=0.1)
    assert m["false_flag_rate"] == 0.25  # 1 of 4 safe texts flagged harmful or worse
    assert m["recall"] == pytest.approx(2 / 3, abs=1e-4)  # 2 of 3 harmful-or-worse flagged
    # precision at a 10% base rate: 0.1 * 2/3 / (0.1 * 2/3 + 0.9 * 0.25)
    assert m["precision_at_base_rate"] == pytest.approx(0.0667 / (0.0667 + 0.225), abs=1e-3)


def test_weighted_ece_by_hand():
    probs = np.array([[0.9, 0.1, 0, 0], [0.9, 0.1, 0, 0], [0.6, 0.4, 0, 0]])
    y = np.array([0, 1, 0])
    # bin (0.867, 0.933]: confidence 0.9, accuracy 0.5; bin (0.533, 0.6]: confidence 0.6, accuracy 1
    assert transfer.weighted_ece(probs, y) == pytest.approx(2 / 3 * 0.4 + 1 / 3 * 0.4)
    assert transfer.weighted_ece(probs, y, np.array([1.0, 0.0, 0.0])) == pytest.approx(0.1)


class Memorise(transfer.Recipe):
    """Remembers which texts it was trained on; scores a text harmful when it contains "bad"."""

    seen: set[str] = set()

    def fit(self, texts, labels, weights):
        Memorise.seen |= set(texts)

    def logits(self, texts):
        return np.array([[0.0, 0.0, 3.0, 0.0] if "bad" in t else [3.0, 0.0, 0.0, 0.0] for t in texts])


def _domains_corpus(*domains: str) -> Corpus:
    """30 safe and 30 harmful texts per domain, split 20/5/5; the harmful ones say "bad"."""
    rows = []
    for domain in domains:
        for i in range(30):
            split = "train" if i < 20 else "validation" if i < 25 else "test"
            rows.append((f"{domain} fine {i}", 0, domain, split))
            rows.append((f"{domain} bad {i}", 2, domain, split))
    return corpus_of(rows)


def test_leave_one_domain_out_never_trains_on_the_domain_it_scores():
    c = _domains_corpus("tweets", "news", "forum")
    report = transfer.leave_one_domain_out(c, Memorise, log=lambda m: None)
    assert set(report["domains"]) == {"tweets", "news", "forum"}
    for domain, row in report["domains"].items():
        assert row["n"] == 60  # every text of the held-out domain, all splits
        assert row["false_flag_rate"] == 0.0 and row["recall"] == 1.0
    Memorise.seen = set()
    transfer.leave_one_domain_out(c, Memorise, domains=["news"], log=lambda m: None)
    assert Memorise.seen and not any(t.startswith("news") for t in Memorise.seen)
    assert report["mean"]["recall"] == 1.0 and report["mean"]["worst_false_flag_rate"]["value"] == 0.0


def test_the_team_seed_is_trained_on_in_every_fold_and_never_held_out():
    Memorise.seen = set()
    report = transfer.leave_one_domain_out(_domains_corpus("tweets", "news", "team_seed"), Memorise, log=lambda m: None)
    assert set(report["domains"]) == {"tweets", "news"}  # a figure on the seed would be a home figure
    assert any(t.startswith("team_seed") for t in Memorise.seen)


@pytest.mark.parametrize(
    ("logits", "labels", "message"),
    [
        (np.zeros((0, 4)), np.zeros(0, dtype=int), "finite logits"),
        (np.array([[0.0, np.nan, 0, 0]]), np.array([0]), "finite logits"),
    ],
)
def test_fit_decision_refuses_what_it_cannot_fit(logits, labels, message):
    with pytest.raises(ValueError, match=message):
        fit_decision(logits, labels, np.full(4, 0.25))


def test_degenerate_validation_still_gives_thresholds_that_keep_both_budgets():
    # only safe texts, all logits equal: nothing to learn, but the thresholds must still make sense
    decision = fit_decision(np.zeros((50, 4)), np.zeros(50, dtype=int), np.full(4, 0.25))
    t = decision.thresholds
    assert t["harmful"] <= t["extremely_harmful"]
    assert decision.fitted_on["validation_false_flag_rate"] == 0.0
    assert (decision.labels(np.zeros((50, 4))) == 0).all()  # nothing flagged, nothing sent to review


def test_a_budget_sweep_trades_false_flags_for_recall(tmp_path):
    arrays = {}
    for i, domain in enumerate(("a", "b")):
        logits, labels = _separable(1500, 10 + i)
        arrays |= {f"{domain}/validation": logits[:500], f"{domain}/validation_label": labels[:500],
                   f"{domain}/held": logits[500:], f"{domain}/held_label": labels[500:],
                   f"{domain}/train_prior": np.full(4, 0.25)}
    np.savez(tmp_path / "logits.npz", **arrays)
    rows = transfer.sweep_budgets(tmp_path / "logits.npz", [0.02, 0.2])
    assert [r["budget"] for r in rows] == [0.02, 0.2]
    assert rows[0]["false_flag_rate"] < rows[1]["false_flag_rate"] and rows[0]["recall"] < rows[1]["recall"]


def test_the_recall_ceiling_is_what_a_threshold_set_on_the_held_out_labels_reaches(tmp_path):
    rng = np.random.default_rng(3)
    n = 4000
    labels = rng.integers(0, 4, size=n)
    harmful = labels >= 2
    blind = rng.normal(size=(n, 4))  # domain "blind": the logits know nothing, so recall = the false-flag rate
    sharp = np.where(harmful[:, None], [0.0, 0.0, 4.0, 4.0], [4.0, 0.0, 0.0, 0.0]) + 0.1 * rng.normal(size=(n, 4))
    arrays = {}
    for domain, held, validation in (("blind", blind, sharp), ("sharp", sharp, blind)):  # scored on held, not validation
        arrays |= {f"{domain}/validation": validation, f"{domain}/validation_label": labels, f"{domain}/held": held,
                   f"{domain}/held_label": labels, f"{domain}/train_prior": np.full(4, 0.25)}
    np.savez(tmp_path / "logits.npz", **arrays)
    report = transfer.recall_ceiling(tmp_path / "logits.npz", [0.1, 0.5])
    assert report["domains"]["blind"]["0.1"] == pytest.approx(0.1, abs=0.03)
    assert report["domains"]["blind"]["0.5"] == pytest.approx(0.5, abs=0.04)
    assert report["domains"]["sharp"] == {"0.1": 1.0, "0.5": 1.0}
    assert report["mean"]["0.1"] == pytest.approx((report["domains"]["blind"]["0.1"] + 1.0) / 2, abs=1e-4)
    # Ties: one threshold flags at most the rate, so a top tie of safe scores larger than the rate flags none.
    tied = np.where(harmful[:, None], [0.0, 0.0, 2.0, 2.0], [4.0, 0.0, 0.0, 0.0])
    tied[np.flatnonzero(~harmful)[:400]] = [0.0, 0.0, 9.0, 9.0]  # 400 safe texts above every harmful one
    arrays = {f"t/{k}": v for k, v in (("validation", tied), ("validation_label", labels), ("held", tied),
                                       ("held_label", labels), ("train_prior", np.full(4, 0.25)))}
    np.savez(tmp_path / "tied.npz", **arrays)
    assert transfer.recall_ceiling(tmp_path / "tied.npz", [0.1])["domains"]["t"] == {"0.1": 0.0}


def test_the_ceiling_and_sweep_commands_refuse_what_is_not_fold_logits(tmp_path, capsys):
    np.savez(tmp_path / "model.npz", weights=np.zeros(3))
    for argv in (["--ceiling", str(tmp_path / "model.npz")], ["--sweep", str(tmp_path / "missing.npz")]):
        with pytest.raises(SystemExit) as exc:
            transfer.main(argv)
        assert exc.value.code == 2 and "not the fold logits" in capsys.readouterr().err
    for argv in (["--own-threshold"], ["--split", "test", "--recipe", "ngram"]):  # would train for half an hour
        with pytest.raises(SystemExit) as exc:
            transfer.main(argv)
        assert exc.value.code == 2 and "go with --score" in capsys.readouterr().err


def test_scoring_a_shipped_artifact_uses_its_own_decision():
    from classifiers.embedded import EmbeddedClassifier
    from core.settings import DEFAULT_EMBEDDED_MODEL

    rows = [("thanks, the build passed", 0, "github", "test"), ("you are a fucking idiot", 2, "github", "test"),
            ("have a lovely day", 0, "tweets", "test"), ("I will kill you", 3, "tweets", "test")]
    report = transfer.score_artifact(corpus_of(rows), DEFAULT_EMBEDDED_MODEL)
    assert report["thresholds"]["harmful"] == EmbeddedClassifier(DEFAULT_EMBEDDED_MODEL).thresholds["harmful"]
    for domain in ("github", "tweets"):
        assert report["domains"][domain]["false_flag_rate"] == 0.0 and report["domains"][domain]["recall"] == 1.0


def test_the_home_ceiling_scores_one_split_and_sets_each_domains_threshold_on_its_own_labels():
    from core.settings import DEFAULT_EMBEDDED_MODEL

    rows = [("thanks, the build passed", 0, "github", "test"), ("you are a fucking idiot", 2, "github", "test"),
            ("great work on the release", 0, "github", "test"), ("fix the flaky test please", 0, "github", "test"),
            ("I will kill you", 3, "github", "train"),  # another split: not scored
            ("have a lovely day", 0, "tweets", "test"), ("what a sunny morning", 0, "tweets", "test"),
            ("I will hurt you badly", 3, "team_seed", "test"), ("hello there", 0, "team_seed", "test")]
    report = transfer.score_artifact(corpus_of(rows), DEFAULT_EMBEDDED_MODEL, "test", [0.25, 0.5])
    assert report["split"] == "test" and report["domains"]["github"]["n"] == 4
    assert report["domains"]["github"]["own_threshold_recall"] == {"0.25": 1.0, "0.5": 1.0}
    assert report["domains"]["tweets"]["own_threshold_recall"] == {"0.25": None, "0.5": None}  # no harmful text
    # The team's seed is left out of the mean, a domain without harmful texts cannot count.
    assert report["mean_own_threshold_recall"] == {"0.25": 1.0, "0.5": 1.0}
    # At most the rate: a threshold between 0.2 and 0.3 would catch the harmful 0.29 but flag a third of the safe.
    p = np.array([0.9, 0.1, 0.2, 0.3, 0.95, 0.29])
    y = np.array([2, 0, 0, 0, 3, 2])
    assert transfer.own_threshold_recall(p, y, [0.1, 0.34]) == {"0.1": pytest.approx(2 / 3, abs=1e-4),
                                                                 "0.34": 1.0}
    # A sum of probabilities may land a hair above 1: the threshold still lets at most the rate through.
    safe_high = np.array([0.1] * 8 + [1.0, 1.0 + 1e-12])
    assert transfer.own_threshold_recall(np.append(safe_high, 1.0), np.array([0] * 10 + [2]), [0.1]) == {"0.1": 0.0}
    only_seed = corpus_of([("I will hurt you badly", 3, "team_seed", "test"), ("hello there", 0, "team_seed", "test")])
    assert transfer.score_artifact(only_seed, DEFAULT_EMBEDDED_MODEL, "test", [0.1])["mean_own_threshold_recall"] \
        == {"0.1": None}


def _seed_and_shared() -> Corpus:
    rows = [(f"I will hurt you badly number {i:02d}.", 3, "team_seed", "train") for i in range(6)]
    rows += [(f"people from there are vermin {i:02d}.", 2, "team_seed", "train") for i in range(3)]
    rows += [(f"what a lovely day it is {i:02d}.", 0, "team_seed", "train") for i in range(12)]
    rows += [(f"the council met on tuesday evening {i}", 0, "news", "train") for i in range(20)]
    rows += [(f"you are a total idiot, friend {i}", 2, "news", "train") for i in range(5)]
    rows += [("too short", 0, "news", "train"), ("x" * 400, 0, "news", "train")]
    return corpus_of(rows)


def test_seed_sentences_in_context_keep_the_seed_weight_and_teach_nothing_about_the_context():
    c = _seed_and_shared()
    w = balanced_weights(c)
    texts, labels, weights = transfer.with_context(c, w, copies=2)
    assert texts[: len(c)] == c.text and labels[: len(c)].tolist() == c.label.tolist()
    # Every label keeps its total weight, so the label mix the decision shifts from is unchanged.
    for label in (0, 2, 3):
        assert weights[labels == label].sum() == pytest.approx(w[c.label == label].sum())
    assert transfer.effective_prior(labels, weights) == pytest.approx(transfer.effective_prior(c.label, w))
    added = list(zip(texts[len(c):], labels[len(c):], weights[len(c):]))
    assert len(added) == 2 * 21  # copies x seed sentences, spread evenly over the seed's 3 labels
    shared_safe = {t for t, label, s in zip(c.text, c.label, c.source) if label == 0 and s == "news"}
    by_context: dict[str, dict[int, float]] = {}
    for text, label, weight in added:
        seed = [s for s in c.text[:21] if s in text]
        assert len(seed) == 1  # a copy holds one seed sentence ...
        context = text.replace(seed[0], "").strip()
        assert context in shared_safe and 15 <= len(context) <= 160  # ... and one short safe text of the shared data
        by_context.setdefault(context, {}).setdefault(int(label), 0.0)
        by_context[context][int(label)] += weight
    for per_label in by_context.values():  # each context weighs the same under every label: its words learn nothing
        assert set(per_label) == {0, 2, 3} and max(per_label.values()) == pytest.approx(min(per_label.values()))


def test_no_context_copies_without_a_seed_or_when_asked_for_none():
    c = _seed_and_shared()
    w = balanced_weights(c)
    assert len(transfer.with_context(c, w, copies=0)[0]) == len(c)
    shared = c.take(c.source == "news")
    assert len(transfer.with_context(shared, balanced_weights(shared), copies=2)[0]) == len(shared)


def test_the_held_out_domain_lends_no_context_to_its_fold():
    rows = [(f"tweets says something fine {i}", 0, "tweets", "train") for i in range(20)]
    rows += [(f"news says something fine {i}", 0, "news", "train") for i in range(20)]
    rows += [(f"tweets bad {i}", 2, "tweets", "validation") for i in range(5)]
    rows += [(f"news bad {i}", 2, "news", "validation") for i in range(5)]
    rows += [(f"tweets fine {i}", 0, "tweets", "validation") for i in range(5)]
    rows += [(f"news fine {i}", 0, "news", "validation") for i in range(5)]
    rows += [(f"team_seed bad sentence {i}", 2, "team_seed", "train") for i in range(4)]
    rows += [(f"team_seed fine sentence {i}", 0, "team_seed", "train") for i in range(4)]
    Memorise.seen = set()
    transfer.leave_one_domain_out(corpus_of(rows), Memorise, domains=["news"], screen=False, log=lambda m: None,
                                  context_copies=2)
    assert any("tweets says" in t and "team_seed" in t for t in Memorise.seen)  # seed sentences were set in context
    assert not any("news" in t for t in Memorise.seen)


def test_false_flags_on_single_harm_negatives_are_also_reported_on_those_our_guide_calls_safe(tmp_path):
    items = [{"source": "edos", "text": f"guide safe {i}", "label": "safe"} for i in range(4)]
    items += [{"source": "edos", "text": f"abusive {i}", "label": "harmful"} for i in range(4)]
    items += [{"source": "other", "text": "elsewhere", "label": "safe"}]
    path = tmp_path / "adjudicated.json"
    path.write_text(__import__("json").dumps({"items": items}))
    held = corpus_of([(it["text"], 0, it["source"], "test") for it in items[:8]] + [("unsampled", 0, "edos", "test")])
    pred = np.array([2, 0, 0, 0] + [2, 3, 2, 0] + [2])  # one guide-safe text flagged, 3 of 4 abusive ones
    report = transfer.adjudicated_report(held, pred, path)
    assert report == {"edos": {"sample": 8, "guide_safe": 4, "false_flag_rate_as_labelled": 0.5,
                               "false_flag_rate_guide_safe": 0.25}}
    assert transfer.adjudicated_report(held, pred, tmp_path / "missing.json") == {}


def test_the_shipped_adjudication_sample_is_what_its_description_says():
    import json

    doc = json.loads(transfer.ADJUDICATED.read_text(encoding="utf-8"))
    sources = [it["source"] for it in doc["items"]]
    assert sources.count("edos_semeval2023_sexism") == 240 and sources.count("reddit_online_misogyny_eacl2021") == 160
    assert {it["label"] for it in doc["items"]} <= set(LABELS) and all(it["dataset_label"] == "safe" for it in doc["items"])
    assert len({it["text"] for it in doc["items"]}) == 400


def test_a_seed_sentence_a_shared_set_also_holds_stays_and_so_does_the_shared_copy(tmp_path, monkeypatch):
    from data import seed as team
    from tests.data.conftest import write_mini_shared

    shared = write_mini_shared(tmp_path / "shared")
    rows = [team.SeedText("RT @someone: that game was shit", "safe", "profanity", "t"),  # Davidson: potentially harmful
            team.SeedText("rt @someone that game was SHIT", "safe", "profanity", "t"),  # the seed's own near-duplicate
            team.SeedText("I hope you drop dead", "extremely_harmful", "threat", "t")]
    monkeypatch.setattr(team, "load_seed", lambda **kw: rows)
    corpus = transfer.load_corpus(shared, clean_sentences=0)
    game = sorted((int(y), str(s), str(d)) for t, y, s, d in zip(corpus.text, corpus.label, corpus.source, corpus.split)
                  if "that game was shit" in t.lower())
    # The seed's label is trained on; the shared copy is still scored when its domain is held out; one split.
    assert [g[:2] for g in game] == [(0, "team_seed"), (1, "davidson")] and game[0][2] == game[1][2]
    assert sorted(str(s) for t, s in zip(corpus.text, corpus.source) if t == "I hope you drop dead") == ["team_seed"]
    assert [r for r in game if r[1] == "team_seed"] == [game[0]]  # the seed's own near-duplicate is dropped


def test_shared_copies_of_one_text_leave_one_row_with_the_most_severe_label(tmp_path):
    from tests.data.conftest import write_mini_shared

    shared = write_mini_shared(tmp_path / "shared")
    # Davidson says "have a lovely day & see you" is neither hate nor offensive (safe); the same text in Jigsaw's
    # sample, marked toxic, is harmful there; Davidson's other rows (after it in source order) keep their own.
    jigsaw = shared / "jigsaw_wikipedia_sample" / "test_examples.csv"
    jigsaw.write_text(jigsaw.read_text(encoding="utf-8") + "Have a lovely day & see you!,1,0,0,0,0,0\n", encoding="utf-8")
    corpus = transfer.load_corpus(shared, clean_sentences=0, team_seed=False)
    key = transfer.near_duplicate_keys(["have a lovely day & see you"])[0]
    rows = [(int(y), str(s)) for k, y, s in zip(transfer.near_duplicate_keys(corpus.text), corpus.label, corpus.source)
            if k == key]
    assert rows == [(2, "jigsaw_wikipedia")]


def test_a_held_out_text_the_seed_also_holds_is_not_trained_on_in_its_fold():
    rows = [(f"tweets fine {i}", 0, "tweets", "train") for i in range(6)] + [(f"tweets bad {i}", 2, "tweets", "validation") for i in range(3)]
    rows += [(f"news fine {i}", 0, "news", "test") for i in range(3)] + [(f"news bad {i}", 2, "news", "train") for i in range(3)]
    rows += [("news bad 1", 2, "team_seed", "train"), ("team_seed bad 9", 2, "team_seed", "train"),
             ("tweets fine 0", 0, "team_seed", "train")]
    Memorise.seen = set()
    transfer.leave_one_domain_out(corpus_of(rows), Memorise, domains=["news"], screen=False, log=lambda m: None)
    assert "team_seed bad 9" in Memorise.seen and "tweets fine 0" in Memorise.seen
    assert "news bad 1" not in Memorise.seen  # the seed's copy of a held-out text


# ---------------------------------------------------------------------------------------------- sentence max
class _Threats(transfer.Recipe):
    """Logits that call a text harmful exactly when it is the bare threat; every other text safe."""

    name = "threats"

    def __init__(self):
        self.fitted_on: list[str] = []

    def fit(self, texts, labels, weights) -> None:
        self.fitted_on = list(texts)

    def logits(self, texts) -> np.ndarray:
        z = np.tile(np.array([3.0, 0.0, -3.0, -3.0]), (len(texts), 1))
        for i, text in enumerate(texts):
            if text == "I will stab you.":
                z[i] = [-3.0, 0.0, 3.0, 0.0]
        return z


def test_sentence_max_keeps_the_harshest_sentence_and_trains_on_whole_texts():
    inner = _Threats()
    recipe = transfer.SentenceMax(inner)
    recipe.fit(["Hi there. I will stab you."], np.array([2]), np.ones(1))
    assert inner.fitted_on == ["Hi there. I will stab you."]  # training is unchanged: whole texts
    z = recipe.logits(["Hi there. I will stab you. See you tomorrow.", "Hi there. Lovely day.", "I will stab you."])
    assert z[0].tolist() == [-3.0, 0.0, 3.0, 0.0]  # diluted as a whole, harmful as a sentence
    assert z[1].tolist() == [3.0, 0.0, -3.0, -3.0]  # no harmful sentence: the whole text's logits
    assert z[2].tolist() == [-3.0, 0.0, 3.0, 0.0]  # one sentence: its own logits
    assert recipe.name == "threats+sentence-max"
