"""The embedded classifier's training script end to end on a small sample: it writes an artifact that the
serving code loads, with its metrics; and broken artifacts are refused at load."""

import json
import re

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
def test_training_writes_a_loadable_artifact_with_its_decision_and_report(tmp_path, capsys):
    out = tmp_path / "model.npz"
    logits = tmp_path / "logits.npz"
    assert main(["--limit", "4000", "--clean-sentences", "300", "--out", str(out), "--c", "8", "--budget", "0.05",
                 "--save-logits", str(logits)]) == 0
    err = capsys.readouterr().err  # not a terminal: plain progress lines with totals
    assert "train_embedded: 8/8 stages (100%)" in err and re.search(r"^algospeak variants: (\d+)/\1 texts", err, re.M)
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
    # safe texts are disguised too (generic techniques), so a disguise is not learned as harm
    assert card["safe_variants"] == 1 and card["train_variants"] > card["train_texts"] * 0.9
    # the decision was fitted on the readings serving makes: each text whole or its harshest sentence
    assert card["sentence_max"] is True and classifier.sentence_max
    assert card["cut"] == "sentences" and classifier.cut == "sentences"
    with np.load(logits) as saved:
        texts, fitted_on = saved["val_text"].tolist(), saved["val_logits"]
    assert sum("\n" in t or ". " in t for t in texts) > 50  # texts of several sentences are there to tell
    np.testing.assert_allclose(classifier.logits(texts), fitted_on, atol=0.05)  # float16 weights served


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


def test_training_writes_to_out_and_only_promote_replaces_the_shipped_model(tmp_path):
    """Trained models go to out/ by default; --promote evaluates the new one and only then replaces the shipped
    model, its card and its evaluation report (here a copy of models/embedded/ stands in for the shipped one)."""
    import shutil

    from training.train_embedded import OUT_MODEL, promote

    assert OUT_MODEL.parent.name == "embedded" and OUT_MODEL.parent.parent.name == "out"
    shipped_dir, new_dir = tmp_path / "models" / "embedded", tmp_path / "out" / "embedded"
    shipped_dir.mkdir(parents=True)
    new_dir.mkdir(parents=True)
    shutil.copy2(DEFAULT_EMBEDDED_MODEL, new_dir / "model.npz")
    (new_dir / "model_card.json").write_text('{"new": true}')
    (shipped_dir / "model.npz").write_bytes(b"old")
    data = tmp_path / "small.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in [
        ("have a lovely day", "safe"), ("thanks, the build works now", "safe"),
        ("you are a fucking idiot", "harmful"), ("I will kill you", "extremely_harmful")]))

    assert promote(new_dir / "model.npz", shipped_dir / "model.npz", data=tmp_path / "missing.jsonl") == 1
    assert (shipped_dir / "model.npz").read_bytes() == b"old"  # a failed evaluation replaces nothing
    assert promote(new_dir / "model.npz", shipped_dir / "model.npz", data=data, subset="all") == 0
    assert (shipped_dir / "model.npz").read_bytes() == DEFAULT_EMBEDDED_MODEL.read_bytes()
    assert json.loads((shipped_dir / "model_card.json").read_text()) == {"new": True}
    report = json.loads((shipped_dir / "eval_report.json").read_text())
    assert report["data"]["rows_evaluated"] == 4 and (shipped_dir / "eval_report.md").is_file()
