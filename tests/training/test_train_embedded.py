"""The embedded classifier's training script end to end on a small sample: it writes an artifact that the
serving code loads, with its metrics; and broken artifacts are refused at load."""

import json

import numpy as np
import pytest

from classifiers.base import ClassifierError
from classifiers.embedded import EmbeddedClassifier
from core.labels import LABELS
from training.train_embedded import main, source_balanced_weights, split_of


def test_training_writes_a_loadable_artifact_with_its_report(tmp_path):
    out = tmp_path / "model.npz"
    assert main(["--limit", "3000", "--clean-sentences", "300", "--out", str(out), "--c", "8"]) == 0
    classifier = EmbeddedClassifier(out)
    [scores] = classifier.classify(["you are a disgusting idiot and i hope you die"])
    assert set(scores) == set(LABELS) and abs(sum(scores.values()) - 1) < 1e-5
    card = json.loads(out.with_name("model_card.json").read_text())
    assert 0 <= card["test_macro_f1"] <= 1 and card["test_by_source"] and card["robustness"]["by_technique"]
    assert classifier.meta["test_macro_f1"] == card["test_macro_f1"]


def test_shipped_model_beats_chance_on_its_own_report():
    classifier = EmbeddedClassifier("models/embedded/model.npz")
    assert classifier.meta["test_macro_f1"] > 0.55
    assert classifier.meta["features"] > 10_000


def test_split_is_stable_and_proportioned():
    splits = [split_of(f"text {i}") for i in range(20_000)]
    assert splits == [split_of(f"text {i}") for i in range(20_000)]
    assert 0.77 < splits.count("train") / len(splits) < 0.83


def test_sources_weigh_the_same_within_a_label():
    labels = ["safe"] * 4 + ["harmful"] * 2
    sources = ["a", "a", "a", "b", "c", "c"]
    w = source_balanced_weights(labels, sources)
    assert w[:3].sum() == pytest.approx(w[3])
    assert w[4:].sum() == pytest.approx(w[:4].sum() / 2)


def test_artifacts_that_do_not_describe_themselves_are_refused(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, weights=np.zeros((2, 4)))
    with pytest.raises(ClassifierError, match="missing"):
        EmbeddedClassifier(bad)
    (tmp_path / "garbage.npz").write_bytes(b"not a zip")
    with pytest.raises(ClassifierError, match="cannot load"):
        EmbeddedClassifier(tmp_path / "garbage.npz")
