"""The label guide's head (training.label_guide, training.guide, classifiers.embedded.raised_by_guide): it may only raise a text, only at
or above its threshold, to its own calibrated probability under the served label mix; it is bound to the model
whose features it reads; and the shipped one catches plain harm the severity model lets through."""

from __future__ import annotations

import json

import numpy as np
import pytest

from classifiers.base import ClassifierError
from classifiers.embedded import GUIDE_ARTIFACT, EmbeddedClassifier, GuideHead, raised_by_guide, save_artifact
from classifiers.features import hash_features
from training.guide import save
from training.label_guide import Guide, fit_guide, logits_of
from training.transfer import Corpus, softmax

T, BIAS = 1.3, np.log(np.array([0.8, 0.12, 0.06, 0.02])) - np.log(np.array([0.3, 0.2, 0.3, 0.2]))
HARM_SHARE = 0.08


def _harm(z: np.ndarray) -> np.ndarray:
    return softmax(z / T + BIAS)[:, 2:].sum(axis=1)


def test_the_guide_never_lowers_a_text_and_changes_nothing_below_its_threshold():
    rng = np.random.default_rng(3)
    z, h = rng.normal(scale=3, size=(2000, 4)), rng.normal(scale=3, size=2000)
    guide = GuideHead(np.zeros(0), 0.0, a=1.5, b=0.2, threshold=1.0, budget=0.01)
    out = raised_by_guide(z, h, guide, T, BIAS, HARM_SHARE)
    below = h < guide.threshold
    np.testing.assert_array_equal(out[below], z[below])
    assert np.all(_harm(out) >= _harm(z) - 1e-12)
    np.testing.assert_array_equal(out[:, :2], z[:, :2])  # only the harmful-or-worse logits move


def test_a_raised_text_is_served_the_guides_own_probability_under_the_stated_mix():
    z = np.array([[3.0, 1.0, -1.0, -2.0], [3.0, 1.0, -1.0, -2.0], [-2.0, 0.0, 3.0, 4.0]])
    h = np.array([2.0, 0.5, 2.0])  # fires, does not fire, fires on a text already likelier harmful
    guide = GuideHead(np.zeros(0), 0.0, a=1.5, b=0.2, threshold=1.0, budget=0.01)
    out = raised_by_guide(z, h, guide, T, BIAS, HARM_SHARE)
    log_odds = 1.5 * 2.0 + 0.2 + np.log(HARM_SHARE / (1 - HARM_SHARE))
    assert _harm(out)[0] == pytest.approx(1 / (1 + np.exp(-log_odds)), rel=1e-9)
    assert _harm(out)[1] == pytest.approx(_harm(z)[1])
    assert _harm(out)[2] == pytest.approx(_harm(z)[2])  # the model already says more: kept
    p_before, p_after = softmax(z / T + BIAS), softmax(out / T + BIAS)
    # harmful and extremely harmful keep their ratio; safe and potentially harmful keep theirs
    assert p_after[0, 3] / p_after[0, 2] == pytest.approx(p_before[0, 3] / p_before[0, 2])
    assert p_after[0, 1] / p_after[0, 0] == pytest.approx(p_before[0, 1] / p_before[0, 0])


TEXTS = ["you are an idiot", "have a lovely day", "i will hurt you", "the build passed"]
DECISION = {"temperature": 1.0, "train_prior": [0.4, 0.2, 0.3, 0.1], "prior": [0.8, 0.12, 0.06, 0.02],
            "thresholds": {"potentially_harmful": 0.3, "harmful": 0.4, "extremely_harmful": 0.6}}


def _model(tmp_path, **meta) -> tuple:
    vocab = np.unique(hash_features(TEXTS)[1])
    rng = np.random.default_rng(0)
    weights = rng.normal(scale=0.1, size=(4, len(vocab)))
    path = tmp_path / "model.npz"
    save_artifact(path, vocab, weights, np.ones(len(vocab)), np.array([2.0, 0.0, -2.0, -3.0]),
                  {"trained_at": "test", "decision": DECISION, **meta})
    return path, vocab


def _guide(path, vocab, sha: str | None = None, **change) -> None:
    """A guide that fires on "hurt": its n-grams carry the weight."""
    from classifiers.features import FeatureIndex, feature_matrix_indices

    rows, cols = feature_matrix_indices(["i will hurt you"], FeatureIndex(vocab.astype(np.uint64)))
    w = np.full(len(vocab), -1.0)
    w[cols] = 3.0
    meta = {"intercept": 0.0, "a": 1.0, "b": 0.0, "threshold": 1.0, "budget": 0.01} | change
    import hashlib

    sha = sha or hashlib.sha256(path.read_bytes()).hexdigest()
    save(path.with_name(GUIDE_ARTIFACT), w, Guide(np.zeros(0), **meta), sha)


def test_the_guide_raises_what_it_fires_on_and_the_kernel_agrees_with_the_reference(tmp_path):
    path, vocab = _model(tmp_path)
    plain = EmbeddedClassifier(path)
    _guide(path, vocab)
    guided = EmbeddedClassifier(path)
    assert guided.guide is not None and plain.guide is None
    texts = [*TEXTS, "have a lovely day. i will hurt you"]
    np.testing.assert_allclose(guided.logits(texts), guided.reference_logits(texts), atol=1e-4)
    before = np.array([s["harmful"] + s["extremely_harmful"] for s in plain.classify(texts)])
    after = np.array([s["harmful"] + s["extremely_harmful"] for s in guided.classify(texts)])
    assert before[2] < 0.4 <= after[2]  # "i will hurt you": raised past the harmful threshold
    np.testing.assert_allclose(after[[0, 1, 3]], before[[0, 1, 3]], atol=1e-6)


def test_with_sentence_max_the_guide_reads_every_sentence(tmp_path):
    path, vocab = _model(tmp_path, sentence_max=True)
    _guide(path, vocab)
    guided = EmbeddedClassifier(path)
    padded = guided.classify(["have a lovely day. the build passed. i will hurt you"])[0]
    alone = guided.classify(["i will hurt you"])[0]
    assert padded["harmful"] + padded["extremely_harmful"] == pytest.approx(
        alone["harmful"] + alone["extremely_harmful"], rel=1e-3)


@pytest.mark.parametrize(("change", "message"), [
    ({"sha": "0" * 64}, "another model"),
    ({"a": -1.0}, "slope must be positive"),
    ({"threshold": float("nan")}, "non-finite"),
])
def test_a_guide_that_is_not_this_models_or_is_malformed_is_refused(tmp_path, change, message):
    path, vocab = _model(tmp_path)
    _guide(path, vocab, **change)
    with pytest.raises(ClassifierError, match=message):
        EmbeddedClassifier(path)


def test_a_guide_with_the_wrong_vocabulary_is_refused(tmp_path):
    path, vocab = _model(tmp_path)
    _guide(path, vocab[:-1])
    with pytest.raises(ClassifierError, match="vocabulary"):
        EmbeddedClassifier(path)


def test_fitting_keeps_the_budget_and_learns_harm_only_from_the_seed():
    from sklearn.feature_extraction.text import TfidfVectorizer

    rng = np.random.default_rng(1)
    rows = []
    for split, n in (("train", 300), ("validation", 400)):
        for i in range(n):
            rows.append((f"i will {rng.choice(['hurt', 'stab', 'find'])} you {i}", 2, "team_seed", split))
            rows.append((f"i will {rng.choice(['help', 'call', 'see'])} you {i}", 0, "team_seed", split))
            # a shared set labels these threats harmful too: the guide must not learn from its harmful rows
            rows.append((f"lovely weather number {i} sunny", 3, "tweets", split))
            rows.append((f"the build {i} passed again {rng.choice(['hurt', 'fine'])}", 0, "tweets", split))
    text, label, source, split = zip(*rows)
    c = Corpus(list(text), np.array(label), np.array(source), np.array(source), np.array(split))
    vec = TfidfVectorizer().fit(c.text)
    train, val = c.take(c.split == "train"), c.take(c.split == "validation")
    budget = 0.01
    guide = fit_guide(lambda t: vec.transform(t), train, val, np.zeros(len(val), bool), None, budget, families=None)
    h = logits_of(lambda t: vec.transform(t), guide.coef, guide.intercept, val.text, None)
    fired = h >= guide.threshold
    assert fired[val.label == 0].sum() <= budget * (val.label == 0).sum()
    assert fired[(val.source == "team_seed") & (val.label == 2)].mean() > 0.9
    # the shared sets' harmful rows teach it nothing: without them it is the same head
    without = c.take(~((c.source == "tweets") & (c.label > 0)))
    again = fit_guide(lambda t: vec.transform(t), without.take(without.split == "train"),
                      without.take(without.split == "validation"),
                      np.zeros(int((without.split == "validation").sum()), bool), None, budget, families=None)
    np.testing.assert_allclose(again.coef, guide.coef, atol=1e-6)


def test_the_shipped_guide_belongs_to_the_shipped_model():
    from core.settings import DEFAULT_EMBEDDED_MODEL

    model = EmbeddedClassifier(DEFAULT_EMBEDDED_MODEL)
    assert model.guide is not None
    report = json.loads(DEFAULT_EMBEDDED_MODEL.with_name("guide.json").read_text())
    assert report["model_sha256"].startswith(model.version)
    assert model.guide.budget == report["budget"] and model.guide.threshold == pytest.approx(report["threshold"], abs=1e-4)


# Plain harm the severity model alone leaves under its threshold (P(harmful or worse) 0.09 to 0.19 against 0.302),
# written for this test, in none of the seed corpus or the functional suite; and text that looks like it and is safe.
PLAIN_HARM = ["You're dead the moment you step outside.", "Send me a pic of you naked.",
              "now go kill yourself", "I want to fuck you so hard right now."]
LOOKS_LIKE_IT = ["I could murder a pizza right now", "If you are thinking about suicide, please call 988.",
                 "My therapist helped me stop cutting.", "We learned about consent and safe sex in health class.",
                 "The shooter was arrested after killing three people, police said.", "This traffic is killing me",
                 "See you at the gym tomorrow, bring your knife for the cake"]


def test_the_shipped_guide_flags_plain_harm_the_severity_model_lets_through():
    from core.settings import DEFAULT_EMBEDDED_MODEL, DEFAULT_PATTERN_DB, Settings
    from moderator import Moderator
    from normalizer.reload import ReloadingNormalizer

    def labels(classifier, texts):
        moderator = Moderator(ReloadingNormalizer(DEFAULT_PATTERN_DB, 0), classifier,
                              Settings(environment="test", prediction_log_url="", _env_file=None))
        return [r["classification"] for r in moderator.moderate_batch(texts)]

    guided = EmbeddedClassifier(DEFAULT_EMBEDDED_MODEL)
    alone = EmbeddedClassifier(DEFAULT_EMBEDDED_MODEL, guide=False)
    assert all(label in ("harmful", "extremely_harmful") for label in labels(guided, PLAIN_HARM))
    assert not any(label in ("harmful", "extremely_harmful") for label in labels(alone, PLAIN_HARM))
    assert labels(guided, LOOKS_LIKE_IT) == ["safe"] * len(LOOKS_LIKE_IT)


def test_a_text_the_model_already_flags_does_not_count_against_the_budget():
    """The budget is what the guide adds: safe texts the severity model flags anyway are not charged to it."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    rows = [(f"i will hurt you {i}", 2, "team_seed", split) for split in ("train", "validation") for i in range(60)]
    rows += [(f"i will help you {i}", 0, "team_seed", split) for split in ("train", "validation") for i in range(60)]
    # safe texts that look like the seed's harm: the guide scores them high
    rows += [(f"we will hurt them at chess {i}", 0, "tweets", "validation") for i in range(40)]
    rows += [(f"the build {i} passed", 0, "tweets", split) for split in ("train", "validation") for i in range(200)]
    text, label, source, split = zip(*rows)
    c = Corpus(list(text), np.array(label), np.array(source), np.array(source), np.array(split))
    vec = TfidfVectorizer().fit(c.text)
    train, val = c.take(c.split == "train"), c.take(c.split == "validation")
    features = lambda t: vec.transform(t)  # noqa: E731
    look_alikes = np.array([t.startswith("we will hurt") for t in val.text])
    charged = fit_guide(features, train, val, np.zeros(len(val), bool), None, 0.01, families=None)
    free = fit_guide(features, train, val, look_alikes, None, 0.01, families=None)
    h = logits_of(features, free.coef, free.intercept, val.text, None)
    safe = val.label == 0
    assert free.threshold < charged.threshold  # the look-alikes no longer hold it up
    assert ((h >= free.threshold) & safe & ~look_alikes).sum() <= 0.01 * safe.sum()


def test_training_and_serving_compute_the_same_guide_logit():
    """The fit reads tf-idf features (training.categories.Features, IDF applied); the artifact folds the IDF into
    the weights the kernel sums. The shipped head's logit from either path agrees, each sentence read too."""
    from core.settings import DEFAULT_EMBEDDED_MODEL
    from training.categories import Features

    model = EmbeddedClassifier(DEFAULT_EMBEDDED_MODEL)
    features = Features(DEFAULT_EMBEDDED_MODEL)
    assert np.ptp(features.idf) > 1  # the IDF varies: a missing or doubled fold would show
    texts = ["I'm going to find you tonight. Have a nice day", "you're dead the moment you step outside",
             "lovely weather", "send me a pic of you naked. lol. ok"]
    coef = model.guide.weights.astype(np.float64) / features.idf
    np.testing.assert_allclose(logits_of(features, coef, model.guide.intercept, texts, model.cut),
                               model.outputs(texts)[:, -1], atol=1e-4)
