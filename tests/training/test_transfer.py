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


def test_scoring_a_shipped_artifact_uses_its_own_decision():
    from classifiers.embedded import EmbeddedClassifier
    from core.settings import DEFAULT_EMBEDDED_MODEL

    rows = [("thanks, the build passed", 0, "github", "test"), ("you are a fucking idiot", 2, "github", "test"),
            ("have a lovely day", 0, "tweets", "test"), ("I will kill you", 3, "tweets", "test")]
    report = transfer.score_artifact(corpus_of(rows), DEFAULT_EMBEDDED_MODEL)
    assert report["thresholds"]["harmful"] == EmbeddedClassifier(DEFAULT_EMBEDDED_MODEL).thresholds["harmful"]
    for domain in ("github", "tweets"):
        assert report["domains"][domain]["false_flag_rate"] == 0.0 and report["domains"][domain]["recall"] == 1.0
