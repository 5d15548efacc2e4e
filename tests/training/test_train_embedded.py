"""The embedded classifier's training script end to end on a small sample: it writes an artifact that the
serving code loads, with its metrics; and broken artifacts are refused at load."""

import json

import numpy as np
import pytest

from classifiers.base import ClassifierError
from classifiers.embedded import EmbeddedClassifier
from core.labels import LABELS
from core.settings import DEFAULT_EMBEDDED_MODEL
from moderator import decide
from training.train_embedded import main, split_of


@pytest.mark.shared_data
@pytest.mark.slow
def test_training_writes_a_loadable_artifact_with_its_decision_and_report(tmp_path):
    out = tmp_path / "model.npz"
    assert main(["--limit", "4000", "--clean-sentences", "300", "--out", str(out), "--c", "8", "--budget", "0.05"]) == 0
    classifier = EmbeddedClassifier(out)
    [scores] = classifier.classify(["you are a disgusting idiot and i hope you die"])
    assert set(scores) == set(LABELS) and abs(sum(scores.values()) - 1) < 1e-5
    card = json.loads(out.with_name("model_card.json").read_text())
    decision = card["decision"]
    assert classifier.thresholds == pytest.approx(decision["thresholds"])
    assert decision["false_flag_budget"] == 0.05 and decision["temperature"] > 0
    assert card["test"]["n"] > 0 and card["test_by_source"] and card["robustness"]["by_technique"]
    assert card["test"]["false_flag_rate"] < 0.15  # the budget is fitted on validation; test is near it
    assert classifier.meta["test"] == card["test"]


def test_the_shipped_model_tells_plain_harm_from_harmless_talk():
    classifier = EmbeddedClassifier(DEFAULT_EMBEDDED_MODEL)
    flagged = ["i hope you die you worthless piece of shit", "I will kill you", "you are a fucking idiot"]
    # Tuned for few false flags, the model sends this one to review rather than flagging it (README, known limits).
    reviewed = ["go kill yourself nobody wants you here"]
    harmless = ["thanks for the help, the build works now", "my neighbour is muslim and we often cook together"]
    labels = [decide(s, classifier.thresholds) for s in classifier.classify(flagged + reviewed + harmless)]
    assert all(label in ("harmful", "extremely_harmful") for label in labels[:3]), labels
    assert labels[3] != "safe", labels
    assert labels[4:] == ["safe", "safe"], labels


def test_split_is_stable_and_proportioned():
    splits = [split_of(f"text {i}") for i in range(20_000)]
    assert splits == [split_of(f"text {i}") for i in range(20_000)]
    assert 0.77 < splits.count("train") / len(splits) < 0.83


def test_artifacts_that_do_not_describe_themselves_are_refused(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, weights=np.zeros((2, 4)))
    with pytest.raises(ClassifierError, match="missing"):
        EmbeddedClassifier(bad)
    (tmp_path / "garbage.npz").write_bytes(b"not a zip")
    with pytest.raises(ClassifierError, match="cannot load"):
        EmbeddedClassifier(tmp_path / "garbage.npz")
