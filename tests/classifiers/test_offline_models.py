"""The offline models' artifacts: the decision block serving applies (temperature, prior shift, thresholds), the
encoder tier's two parts adding up, and the sentence encoder itself."""

from __future__ import annotations

import json

import numpy as np
import pytest

from classifiers.base import ClassifierError
from classifiers.embedded import EmbeddedClassifier, EncoderTierClassifier, save_artifact
from classifiers.features import hash_features, sentences_of
from core.labels import LABELS
from training.transfer import Decision

TEXTS = ["you are an idiot", "have a lovely day", "i will hurt you", "the build passed"]


def _artifact(path, decision: dict | None, encoder_weights=None, seed: int = 0, **extra):
    rng = np.random.default_rng(seed)
    vocab = np.unique(hash_features(TEXTS)[1])
    meta = {"trained_at": "test"} | ({"decision": decision} if decision else {}) | extra
    save_artifact(path, vocab, rng.normal(size=(4, len(vocab))), np.ones(len(vocab)), rng.normal(size=4), meta,
                  encoder_weights=encoder_weights, encoder_alpha=0.5)
    return path


DECISION = {"temperature": 2.0, "train_prior": [0.4, 0.2, 0.3, 0.1], "prior": [0.8, 0.1, 0.07, 0.03],
            "thresholds": {"potentially_harmful": 0.3, "harmful": 0.4, "extremely_harmful": 0.6}}


def test_served_probabilities_are_the_fitted_decisions(tmp_path):
    raw = EmbeddedClassifier(_artifact(tmp_path / "raw.npz", None))
    tuned = EmbeddedClassifier(_artifact(tmp_path / "tuned.npz", DECISION))
    assert raw.thresholds is None and tuned.thresholds == DECISION["thresholds"]
    expected = Decision(2.0, DECISION["train_prior"], DECISION["prior"], DECISION["thresholds"], 0.03).probs(
        tuned.logits(TEXTS))
    served = np.array([[s[label] for label in LABELS] for s in tuned.classify(TEXTS)])
    np.testing.assert_allclose(served, expected, atol=1e-6)
    untuned = np.array([[s[label] for label in LABELS] for s in raw.classify(TEXTS)])
    assert not np.allclose(served, untuned, atol=1e-3)  # the decision block is really applied


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"temperature": 0}, "temperature must be positive"),
        ({"temperature": 5e-324}, "temperature must be positive"),
        ({"temperature": True}, "malformed decision block"),
        ({"thresholds": {"potentially_harmful": 0.3, "harmful": "nan", "extremely_harmful": 0.6}}, "must be a probability"),
        ({"thresholds": {"potentially_harmful": 0.3, "harmful": 0.4, "extremely_harmful": 5}}, "must be a probability"),
        ({"prior": [0.5, 0.5, 0, 0]}, "prior must be 4 positive shares"),
        ({"train_prior": [0.9, 0.3, 0.1, 0.1]}, "train_prior must be 4 positive shares"),
        ({"thresholds": {"harmful": 0.5}}, "malformed decision block"),
    ],
)
def test_a_malformed_decision_block_is_refused(tmp_path, change, message):
    with pytest.raises(ClassifierError, match=message):
        EmbeddedClassifier(_artifact(tmp_path / "bad.npz", DECISION | change))


def test_a_prior_cannot_be_applied_to_a_model_without_its_training_mix(tmp_path):
    with pytest.raises(ClassifierError, match="no training prior"):
        EmbeddedClassifier(_artifact(tmp_path / "raw.npz", None), prior=[0.7, 0.1, 0.1, 0.1])


class FixedVectors:
    """A stand-in sentence encoder: a fixed vector per text (the real one is tested below)."""

    def encode(self, texts):
        return np.array([np.full(384, (len(t) % 7) / 7.0, dtype=np.float32) for t in texts])


def test_the_encoder_tier_adds_the_sentence_part_to_the_ngram_part(tmp_path):
    weights = np.random.default_rng(1).normal(size=(4, 384))
    path = _artifact(tmp_path / "combo.npz", DECISION, encoder_weights=weights)
    tier = EncoderTierClassifier(path, encoder=FixedVectors())
    ngram_only = EmbeddedClassifier(path)
    expected = ngram_only.logits(TEXTS) + 0.5 * FixedVectors().encode(TEXTS) @ weights.T
    np.testing.assert_allclose(tier.logits(TEXTS), expected, atol=1e-4)
    np.testing.assert_allclose(tier.logits(TEXTS), tier.reference_logits(TEXTS), atol=1e-4)
    assert tier.name == "encoder" and tier.thresholds == DECISION["thresholds"]
    with pytest.raises(ClassifierError, match="not an encoder-tier artifact"):
        EncoderTierClassifier(_artifact(tmp_path / "plain.npz", DECISION), encoder=FixedVectors())


def test_a_sentence_max_model_reads_each_text_as_its_harshest_sentence(tmp_path):
    whole = EmbeddedClassifier(_artifact(tmp_path / "whole.npz", DECISION))
    model = EmbeddedClassifier(_artifact(tmp_path / "sentences.npz", DECISION, sentence_max=True))
    assert model.sentence_max and not whole.sentence_max
    sentences = ["you are an idiot.", "have a lovely day!", "the build passed.", "i will hurt you"]
    harm = whole.logits(sentences)
    harm = np.logaddexp(harm[:, 2], harm[:, 3]) - np.logaddexp(harm[:, 0], harm[:, 1])
    texts = [" ".join(sentences[:2]), sentences[1] + "\n" + sentences[3], " ".join(sentences), sentences[0]]
    got = model.logits(texts)
    for text, row in zip(texts, got):
        z = whole.logits([text, *sentences_of([text], "sentences")[1]])  # the whole text first: it wins a tie
        z_harm = np.logaddexp(z[:, 2], z[:, 3]) - np.logaddexp(z[:, 0], z[:, 1])
        np.testing.assert_allclose(row, z[int(np.argmax(z_harm))], rtol=1e-6)
    # one sentence, or a text alone or among others: the same reading
    np.testing.assert_allclose(model.logits([sentences[0]]), whole.logits([sentences[0]]), rtol=1e-6)
    np.testing.assert_allclose(model.logits(texts[1:2]), got[1:2], rtol=1e-6)
    # the severity and the category outputs come from the same reading, in the served scores too
    assert model.classify(texts) == model.classify_with_categories(texts)[0]


def test_a_model_is_served_with_the_cut_its_decision_was_fitted_on(tmp_path):
    text = "you are an idiot, have a lovely day, ok"  # "ok," alone is one word: not read on its own
    by_sentence = EmbeddedClassifier(_artifact(tmp_path / "sentences.npz", DECISION, sentence_max=True))
    by_clause = EmbeddedClassifier(_artifact(tmp_path / "clauses.npz", DECISION, sentence_max=True, cut="clauses"))
    whole = EmbeddedClassifier(_artifact(tmp_path / "whole.npz", DECISION))
    assert (by_sentence.cut, by_clause.cut, whole.cut) == ("sentences", "clauses", None)  # none named: sentences
    np.testing.assert_allclose(by_sentence.logits([text]), whole.logits([text]), rtol=1e-6)  # one sentence
    parts = whole.logits([text, "you are an idiot,", "have a lovely day,"])
    harm = np.logaddexp(parts[:, 2], parts[:, 3]) - np.logaddexp(parts[:, 0], parts[:, 1])
    np.testing.assert_allclose(by_clause.logits([text])[0], parts[int(np.argmax(harm))], rtol=1e-6)
    np.testing.assert_allclose(by_clause.logits([text]), by_clause.reference_logits([text]), atol=1e-4)
    for bad in ("words", None, ["clauses"]):
        with pytest.raises(ClassifierError, match="unknown cut"):
            EmbeddedClassifier(_artifact(tmp_path / "bad.npz", DECISION, sentence_max=True, cut=bad))


def test_harshest_reading_keeps_the_first_of_the_harshest_rows():
    from classifiers.embedded import harshest_reading

    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(1, 6))
        whole = rng.normal(size=(n, 6)).round(1)
        owner = rng.integers(0, n, size=int(rng.integers(0, 12)))  # in any order
        parts = rng.normal(size=(len(owner), 6)).round(1)  # rounded: ties happen
        got = harshest_reading(whole, owner, parts)
        harm = lambda z: np.logaddexp(z[2], z[3]) - np.logaddexp(z[0], z[1])  # noqa: E731
        for i in range(n):
            best = whole[i]
            for k in np.flatnonzero(owner == i):
                if harm(parts[k]) > harm(best):
                    best = parts[k]
            np.testing.assert_array_equal(got[i], best)


def test_the_encoder_tier_refuses_a_sentence_max_artifact(tmp_path):
    path = _artifact(tmp_path / "combo.npz", DECISION, encoder_weights=np.zeros((4, 384)), sentence_max=True)
    with pytest.raises(ClassifierError, match="sentence_max"):
        EncoderTierClassifier(path, encoder=object())


def test_the_sentence_encoder_puts_paraphrases_together():
    pytest.importorskip("onnxruntime")
    from classifiers.encoder import SentenceEncoder

    encoder = SentenceEncoder()
    texts = ["I hope you die", "the weather is lovely today", "I wish you were dead", "", "a" * 5000]
    vectors = encoder.encode(texts)
    assert vectors.shape == (5, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[0, 2] > 0.6 > similarity[0, 1]  # a paraphrase is near, an unrelated sentence is not
    # length-sorted batching hands vectors back in input order
    np.testing.assert_allclose(encoder.encode(texts[::-1]), vectors[::-1], atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_the_shipped_models_describe_their_decision():
    from core.settings import DEFAULT_EMBEDDED_MODEL

    model = EmbeddedClassifier(DEFAULT_EMBEDDED_MODEL)
    card = json.loads(DEFAULT_EMBEDDED_MODEL.with_name("model_card.json").read_text())
    assert model.thresholds == pytest.approx(card["decision"]["thresholds"])
    assert model.temperature == pytest.approx(card["decision"]["temperature"], rel=1e-5)


# What the shipped model must still do on the team's functional suite (cases it never trained on: the seed corpus
# leaves out anything close to them, data/seed.py), through the normalizer as the moderator runs it. Floors a
# little under the measured figures in models/embedded/eval_report.json; a random or broken model fails them.
# 0.716 / 0.056 / 0.720 measured for the model of 2026-12-07 20:20 (seed corpus 1.3.0) with the label guide's head
# (0.632 / 0.097 / 0.648 for the model before, which had none: a guide that is not applied fails the first floor)
FUNCTIONAL_FLOORS = {"hateful_flagged": 0.70, "non_hateful_flagged": 0.13, "coded_flagged": 0.70}


@pytest.fixture(scope="module")
def shipped_functional():
    from core.settings import DEFAULT_EMBEDDED_MODEL, DEFAULT_PATTERN_DB
    from normalizer import Normalizer, load_database
    from training.model_evaluation import functional_suite_report

    return functional_suite_report(EmbeddedClassifier(DEFAULT_EMBEDDED_MODEL),
                                   Normalizer(load_database(DEFAULT_PATTERN_DB)))


def test_the_shipped_model_flags_the_suites_harm_and_spares_its_harmless_cases(shipped_functional):
    overall = shipped_functional["overall"]
    assert overall["hateful_flagged"] >= FUNCTIONAL_FLOORS["hateful_flagged"]
    assert overall["non_hateful_flagged"] <= FUNCTIONAL_FLOORS["non_hateful_flagged"]
    assert overall["coded"]["coded_flagged"] >= FUNCTIONAL_FLOORS["coded_flagged"]
    assert abs(overall["coded"]["gap_points"]) <= 3  # coding neither hides harm nor, by itself, makes it
    # nor does a disguise make harm: harmless cases spelled out, held or with look-alike letters ("see you
    # t.o.n.i.g.h.t") are flagged about as often as written plainly (19.8% against 5.7% before the canonical text)
    assert overall["disguised"]["coded_flagged"] <= overall["disguised"]["plain_flagged"] + 0.03
    families = shipped_functional["families"]
    # harms the shared sets barely label, which the seed corpus teaches: no longer missed outright
    for family in ("threat", "sexual", "dehumanisation"):
        assert families[family]["hateful_flagged"] >= 0.5, family
    # 0.80 measured with the guide head (0.30 for the model before: "I want to kill myself tonight." reached only review)
    assert families["self_harm"]["hateful_flagged"] >= 0.70
    assert families["threat"]["hateful_flagged"] >= 0.72  # 0.762 with the guide, 0.683 for the model before
    # a friendly sentence before or after the harm hides none of it (9.6% of the harmful cases stayed flagged with
    # "Thanks for reading, ..." after them before sentence max), nor makes harm of the harmless cases
    assert abs(overall["padded"]["gap_points"]) <= 3 and abs(overall["padded_harmless"]["gap_points"]) <= 3
    # identity terms are blinded (classifiers/features.py): naming a group is not harm
    assert families["identity_neutral"]["non_hateful_flagged"] <= 0.12
    # 0.0 measured (0.227 for the model before: "I would never say that X are inferior.", ten groups, crossed the
    # threshold at P = 0.34 against 0.31)
    assert families["negated_hate"]["non_hateful_flagged"] <= 0.25


def test_a_harmless_lead_in_does_not_hide_the_suites_harm():
    """An attacker's cheapest trick: put words before the harm. Negation marking (measured, not shipped) let
    "No joke " hide 79% of what the suite's harmful cases flag; the shipped model keeps 0.556 of its 0.667."""
    from core.settings import DEFAULT_EMBEDDED_MODEL, DEFAULT_PATTERN_DB, Settings
    from data.functional import is_flagged, load_suite
    from moderator import Moderator
    from normalizer.reload import ReloadingNormalizer

    moderator = Moderator(ReloadingNormalizer(DEFAULT_PATTERN_DB, 0), EmbeddedClassifier(DEFAULT_EMBEDDED_MODEL),
                          Settings(environment="test", prediction_log_url="", _env_file=None))
    harmful = [c.text for c in load_suite() if c.flagged]
    plain = sum(is_flagged(r["classification"]) for r in moderator.moderate_batch(harmful)) / len(harmful)
    led = sum(is_flagged(r["classification"]) for r in moderator.moderate_batch(["No joke " + t for t in harmful]))
    assert led / len(harmful) >= plain - 0.15


def test_a_friendly_sentence_beside_the_harm_does_not_hide_it():
    """The cheapest evasion there is: one harmless sentence before or after the harm. Read as a whole, "Thanks for
    reading, ..." after each of the suite's harmful cases left 9.6% of them flagged (66.7% alone), before it 8.8%;
    the shipped model also reads each sentence on its own (sentence_max) and keeps the harshest reading."""
    from core.settings import DEFAULT_EMBEDDED_MODEL, DEFAULT_PATTERN_DB, Settings
    from data.functional import is_flagged, load_suite
    from moderator import Moderator
    from normalizer.reload import ReloadingNormalizer

    moderator = Moderator(ReloadingNormalizer(DEFAULT_PATTERN_DB, 0), EmbeddedClassifier(DEFAULT_EMBEDDED_MODEL),
                          Settings(environment="test", prediction_log_url="", _env_file=None))
    suite = load_suite()

    def flagged(texts):
        return sum(is_flagged(r["classification"]) for r in moderator.moderate_batch(texts)) / len(texts)

    friendly = "Thanks for reading, let me know what you think in the comments below."
    for cases in ([c.text for c in suite if c.flagged], [c.text for c in suite if not c.flagged]):
        plain = flagged(cases)
        for padded in ([f"{t} {friendly}" for t in cases], [f"{friendly}\n{t}" for t in cases]):
            assert abs(flagged(padded) - plain) <= 0.03, (padded[0], plain)


@pytest.mark.parametrize("cut", ["sentences", "clauses"])
def test_a_group_named_alone_before_a_dash_or_comma_is_not_read_as_hate(cut):
    """Read clause by clause (`--cut clauses`, measured, not shipped), a lone group name ("Muslims" in "Muslims -
    welcome to the neighbourhood") was a part of its own, and a lone blinded group token reads as the hate that
    names groups most: the text was flagged as hate. A part is now read alone only when it has two words, one of
    them not a group's name (`features.says_something`). The shipped weights are read with each cut."""
    from core.settings import DEFAULT_EMBEDDED_MODEL, DEFAULT_PATTERN_DB, Settings
    from moderator import Moderator
    from normalizer.reload import ReloadingNormalizer

    classifier = EmbeddedClassifier(DEFAULT_EMBEDDED_MODEL)
    classifier.cut = cut
    moderator = Moderator(ReloadingNormalizer(DEFAULT_PATTERN_DB, 0), classifier,
                          Settings(environment="test", prediction_log_url="", _env_file=None))
    groups = ["Muslims", "Jews", "Women", "Gay people", "Black women", "Immigrants", "Refugees", "Disabled people"]
    texts = [f"{g} - welcome to the neighbourhood" for g in groups] + [f"{g}, welcome!" for g in groups]
    texts += ["Jews, Muslims, Christians, all welcome", "Refugees - welcome - we have blankets and soup",
              "Kill - that's the only word the parrot knows, lol", "Her - the Spike Jonze movie - is brilliant."]
    answers = moderator.moderate_batch(texts)
    assert [t for t, a in zip(texts, answers) if a["classification"] != "safe"] == []


@pytest.mark.parametrize("text, label", [
    ("have a nice day", "safe"),
    ("I killed it at work today", "safe"),
    ("thanks for the help, see you tomorrow", "safe"),
    ("nice weather today", "safe"),
])
def test_the_shipped_model_leaves_everyday_text_alone(text, label):
    from core.settings import DEFAULT_EMBEDDED_MODEL
    from moderator import decide, resolve_thresholds

    model = EmbeddedClassifier(DEFAULT_EMBEDDED_MODEL)
    assert decide(model.classify([text])[0], resolve_thresholds({}, model)) == label
