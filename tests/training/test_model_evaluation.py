"""The evaluation: metrics against hand-worked cases, the embedded and a tiny transformers model end to end
through the command line, temperature calibration, and the deployment gate failing for real reasons."""

import json

import numpy as np
import pytest

from core.labels import LABELS
from core.settings import get_settings
from training import model_evaluation as ev

S, P, H, E = LABELS  # safe, potentially_harmful, harmful, extremely_harmful

# A 4x4 case worked by hand (rows true, columns predicted):
#   safe     [3 1 0 0]   P 3/5  R 3/4  F1 2/3
#   pot.     [1 2 0 0]   P 2/3  R 2/3  F1 2/3
#   harmful  [0 0 2 1]   P 1    R 2/3  F1 4/5
#   extreme  [1 0 0 1]   P 1/2  R 1/2  F1 1/2      macro-F1 = (2/3 + 2/3 + 4/5 + 1/2) / 4 = 79/120
# Label distances of the errors: 1 + 1 + 1 + 3 = 6 over 12 texts -> MAD 0.5.
# QWK: sum w*O = (1 + 1 + 1 + 9) / 9 = 12/9; sum w*E = sum r_i c_j (i-j)^2 / (9 * 12) = 354/108 -> 1 - 144/354 = 35/59.
# Harmful or worse: tp 4, fp 0, fn 1 -> precision 1, recall 4/5.
Y_TRUE = [S, S, S, S, P, P, P, H, H, H, E, E]
Y_PRED = [S, S, S, P, P, P, S, H, H, E, E, S]


def test_metrics_match_the_hand_worked_case():
    cm = ev.confusion_matrix(Y_TRUE, Y_PRED)
    assert cm.tolist() == [[3, 1, 0, 0], [1, 2, 0, 0], [0, 0, 2, 1], [1, 0, 0, 1]]
    f1, per = ev.macro_f1(Y_TRUE, Y_PRED)
    assert f1 == pytest.approx(79 / 120)
    assert per[S] == {"precision": 0.6, "recall": 0.75, "f1": round(2 / 3, 4), "support": 4}
    assert per[H] == {"precision": 1.0, "recall": round(2 / 3, 4), "f1": 0.8, "support": 3}
    assert per[E]["f1"] == 0.5
    assert ev.mean_absolute_distance(cm) == pytest.approx(0.5)
    assert ev.quadratic_weighted_kappa(cm) == pytest.approx(35 / 59)
    assert ev.binary_harmful(cm) == {"precision": 1.0, "recall": 0.8, "f1": round(2 * 0.8 / 1.8, 4), "support": 5}
    m = ev.classification_metrics(Y_TRUE, Y_PRED)
    assert m["accuracy"] == round(8 / 12, 4) and m["macro_f1"] == round(79 / 120, 4)


def test_ordinal_metrics_agree_with_scikit_learn_and_punish_distance():
    from sklearn.metrics import cohen_kappa_score, f1_score

    rng = np.random.default_rng(0)
    y_true = [LABELS[i] for i in rng.integers(0, 4, 300)]
    y_pred = [LABELS[i] for i in rng.integers(0, 4, 300)]
    cm = ev.confusion_matrix(y_true, y_pred)
    assert ev.quadratic_weighted_kappa(cm) == pytest.approx(cohen_kappa_score(y_true, y_pred, weights="quadratic"))
    assert ev.macro_f1(y_true, y_pred)[0] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    # Calling extremely_harmful "safe" is worse than calling it "harmful", though accuracy and F1 cannot tell.
    near = ev.confusion_matrix([E, E, S], [H, H, S])
    far = ev.confusion_matrix([E, E, S], [S, S, S])
    assert ev.mean_absolute_distance(far) == 3 * ev.mean_absolute_distance(near) == 2.0
    assert ev.quadratic_weighted_kappa(far) < ev.quadratic_weighted_kappa(near)


def test_a_label_absent_from_the_data_is_not_scored():
    f1, per = ev.macro_f1([S, S, P], [S, P, P])  # F1 safe 2/3, potentially harmful 2/3; no harmful texts
    assert f1 == pytest.approx(2 / 3) and per[H]["support"] == 0


def test_expected_calibration_error_on_known_bins():
    probs = np.array([[0.95, 0.05, 0, 0], [0.95, 0.05, 0, 0], [0.1, 0.55, 0.35, 0], [0.1, 0.55, 0.35, 0]])
    y = np.array([0, 1, 1, 2])
    # Bin (14/15, 1]: 2 texts, accuracy 0.5, confidence 0.95; bin (8/15, 9/15]: 2 texts, accuracy 0.5, conf 0.55.
    ece, table = ev.expected_calibration_error(probs, y)
    assert ece == pytest.approx(0.5 * 0.45 + 0.5 * 0.05)
    assert len(table) == 15 and [b["n"] for b in table if b["n"]] == [2, 2]
    assert table[8] == {"lo": round(8 / 15, 4), "hi": 0.6, "n": 2, "accuracy": 0.5, "confidence": 0.55}
    assert ev.expected_calibration_error(np.eye(4), np.arange(4))[0] == 0.0  # sure and right: calibrated


def test_temperature_recovers_a_known_overconfidence():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 1.5, (4000, 4))
    truth = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(4, p=p) for p in truth])
    overconfident = ev.apply_temperature(truth, 0.5)  # logits doubled
    assert ev.fit_temperature(overconfident, y) == pytest.approx(2.0, rel=0.1)
    assert np.allclose(ev.apply_temperature(truth, 1.0), truth)
    assert ev.expected_calibration_error(ev.apply_temperature(overconfident, 2.0), y)[0] < ev.expected_calibration_error(overconfident, y)[0]


def _gate_settings(**overrides):
    return get_settings().model_copy(update={"gate_min_macro_f1": 0.6, "gate_max_macro_f1_drop": 0.01,
                                             "gate_max_false_alarm_rate": 0.05, "gate_max_ece": 0.1, **overrides})


def _report(macro_f1, false_alarms=0.01, ece=0.05, sha="abc"):
    return {"model": {"backend": "x", "version": "v"}, "data": {"sha256": sha, "subset": "all", "rows_evaluated": 10},
            "summary": {"macro_f1": macro_f1, "false_alarm_rate": false_alarms, "ece": ece}}


def test_gate_reasons():
    settings = _gate_settings()
    assert ev.gate(_report(0.70), _report(0.705), settings) == {
        "passed": True, "reasons": [], "candidate": {"backend": "x", "version": "v", "macro_f1": 0.70,
                                                     "false_alarm_rate": 0.01, "ece": 0.05},
        "baseline": {"thresholds": {"max_functional_regression": 0.02, "min_macro_f1": 0.6,
                                    "max_macro_f1_drop": 0.01, "max_false_alarm_rate": 0.05, "max_ece": 0.1,
                                    "max_category_recall_drop": 0.05},
                     "model": {"backend": "x", "version": "v"}, "summary": _report(0.705)["summary"],
                     "data": _report(0.705)["data"]},
    }
    failed = ev.gate(_report(0.55, false_alarms=0.2, ece=0.3), _report(0.70), settings)
    assert not failed["passed"] and len(failed["reasons"]) == 4
    assert any("below the production model's 0.7000" in r for r in failed["reasons"])
    other_data = ev.gate(_report(0.70), _report(0.70, sha="def"), settings)
    assert other_data["reasons"] and "different data" in other_data["reasons"][0]
    assert ev.gate(_report(0.65), None, settings)["passed"]  # thresholds alone


def test_gate_holds_the_functional_suite_against_production():
    settings = _gate_settings()

    def report(hateful, harmless):
        r = _report(0.70)
        r["summary"] |= {"functional_hateful_flagged": hateful, "functional_non_hateful_flagged": harmless}
        return r

    assert ev.gate(report(0.80, 0.05), report(0.81, 0.04), settings)["passed"]  # within 0.02 either way
    misses = ev.gate(report(0.70, 0.05), report(0.80, 0.05), settings)["reasons"]
    assert misses == ["functional suite: harmful cases flagged 0.700 against production's 0.800 (allowed change "
                      "0.020, GATE_MAX_FUNCTIONAL_REGRESSION)"]
    over_flags = ev.gate(report(0.80, 0.10), report(0.80, 0.05), settings)["reasons"]
    assert len(over_flags) == 1 and "harmless cases flagged 0.100" in over_flags[0]


# --------------------------------------------------------------------------------------------- harm categories


class KeywordCategories:
    """A backend answering categories by keyword: violence 0.9 for "kill", hate 0.8 for "vermin"; flagged at 0.5."""

    name, version, thresholds = "keywords", "k1", None

    def __init__(self):
        from classifiers.base import AnswerCategories

        self.categories = AnswerCategories()

    def classify(self, texts):
        return self.classify_with_categories(texts)[0]

    def classify_with_categories(self, texts):
        from core.categories import CATEGORIES

        scores = [dict(zip(LABELS, [0.7, 0.1, 0.1, 0.1])) for _ in texts]
        kinds = [{**dict.fromkeys(CATEGORIES, 0.0), "violence": 0.9 if "kill" in t.lower() else 0.1,
                  "hate": 0.8 if "vermin" in t.lower() else 0.0} for t in texts]
        return scores, kinds


CATEGORY_ROWS = [  # (text, source, violence, hate)
    ("i will kill you", "a", 1, None),            # violence: caught
    ("kill the lights please", "a", 0, None),     # violence: a false flag
    ("see you tomorrow", "a", 0, 0),              # nothing
    ("i will end you", "b", 1, None),             # violence: missed
    ("they are vermin", "b", None, 1),            # hate: caught; violence unknown (left out)
]


def test_category_figures_by_hand():
    from data.functional import load_suite
    from normalizer import Normalizer, load_database
    from normalizer.database import DEFAULT_PATTERN_DB
    from core.categories import stage1_categories

    normalizer = Normalizer(load_database(DEFAULT_PATTERN_DB))
    rows = [{"text": t, "label": S, "source": src, "categories": {"violence": v, "hate": h}}
            for t, src, v, h in CATEGORY_ROWS]
    report = ev.category_report(KeywordCategories(), rows, normalizer)
    violence = report["by_category"]["violence"]
    assert violence["threshold"] == 0.5
    assert {k: violence["pooled"][k] for k in ("positives", "negatives", "recall", "false_flag_rate", "precision")} == \
        {"positives": 2, "negatives": 2, "recall": 0.5, "false_flag_rate": 0.5, "precision": 0.5}
    assert (violence["by_source"]["a"]["recall"], violence["by_source"]["a"]["false_flag_rate"]) == (1.0, 0.5)
    assert (violence["by_source"]["b"]["recall"], violence["by_source"]["b"]["precision"]) == (0.0, None)
    hate = report["by_category"]["hate"]["pooled"]
    assert (hate["positives"], hate["negatives"], hate["recall"], hate["false_flag_rate"]) == (1, 1, 1.0, 0.0)
    assert report["by_category"]["drugs"]["pooled"] is None  # no row says anything about drugs
    assert report["recall"]["violence"] == 0.5 and report["recall"]["drugs"] is None
    # the functional suite's threats, routed as the moderator routes: the classifier (either reading) or Stage 1
    cases = [c for c in load_suite() if c.family == "threat" and c.flagged]
    expected = []
    for case in cases:
        result = normalizer.normalize(case.text)
        expected.append("kill" in case.text.lower() or "kill" in result.text.lower()
                        or "violence" in stage1_categories(result.matches))
    assert report["routed"]["threat"] == round(sum(expected) / len(expected), 4)
    assert report["functional_routing"]["threat"]["flagged_cases"] == len(cases)
    assert ev.category_report(ev._as_timed(_NoCategories()), rows, normalizer) is None


def test_the_category_report_does_not_ask_again_for_texts_the_labelling_pass_scored():
    from normalizer import Normalizer, load_database
    from normalizer.database import DEFAULT_PATTERN_DB

    class Counting(KeywordCategories):
        def __init__(self):
            super().__init__()
            self.asked: list[str] = []

        def classify_with_categories(self, texts):
            self.asked += list(texts)
            return super().classify_with_categories(texts)

    normalizer = Normalizer(load_database(DEFAULT_PATTERN_DB))
    rows = [{"text": t, "label": S, "source": src, "categories": {"violence": v, "hate": h}}
            for t, src, v, h in CATEGORY_ROWS]
    fresh = ev.category_report(KeywordCategories(), rows, normalizer)
    backend = Counting()
    timed = ev._as_timed(backend)
    timed.probs([r["text"] for r in rows])  # the evaluation's labelling pass
    assert len(backend.asked) == len(rows)
    report = ev.category_report(timed, rows, normalizer)
    asked_again = backend.asked[len(rows):]
    assert not set(asked_again) & {r["text"] for r in rows}  # each asked once, categories and labels together
    assert len(asked_again) == len(set(asked_again))  # the suite's raw and normalized readings: no text twice
    assert report == fresh  # the same figures as asking afresh


class _NoCategories:
    name, version, thresholds = "plain", "p1", None

    def classify(self, texts):
        return [dict(zip(LABELS, [0.7, 0.1, 0.1, 0.1])) for _ in texts]


def test_gate_holds_each_category_against_production():
    settings = _gate_settings()  # GATE_MAX_CATEGORY_RECALL_DROP 0.05 by default

    def report(hate_recall, threat_routed, sha="abc"):
        r = _report(0.70, sha=sha)
        r["categories"] = {"recall": {"hate": hate_recall, "drugs": None}, "routed": {"threat": threat_routed}}
        return r

    assert ev.gate(report(0.46, 0.76), report(0.50, 0.80), settings)["passed"]  # within 0.05
    reasons = ev.gate(report(0.40, 0.80), report(0.50, 0.80), settings)["reasons"]
    assert reasons == ["category hate recall 0.400 against production's 0.500 (allowed drop 0.050, "
                       "GATE_MAX_CATEGORY_RECALL_DROP)"]
    reasons = ev.gate(report(0.50, 0.70), report(0.50, 0.80), settings)["reasons"]
    assert reasons == ["functional suite: threat routed to its category 0.700 against production's 0.800 (allowed "
                       "drop 0.050, GATE_MAX_CATEGORY_RECALL_DROP)"]
    looser = settings.model_copy(update={"gate_max_category_recall_drop": 0.2})
    assert ev.gate(report(0.40, 0.70), report(0.50, 0.80), looser)["passed"]
    # recall on other data is not compared (that is the data check's reason); the suite always is
    other = ev.gate(report(0.10, 0.80, sha="def"), report(0.50, 0.80), settings)["reasons"]
    assert len(other) == 1 and "different data" in other[0]
    # a candidate that lost its categories fails; a baseline without them has nothing to hold to
    lost = _report(0.70)
    lost["categories"] = None
    assert ev.gate(lost, report(0.5, 0.8), settings)["reasons"] == [
        "the candidate answers no harm categories; the production model does"]
    assert ev.gate(report(0.0, 0.0), _report(0.70), settings)["passed"]


# --------------------------------------------------------------------------------------------- end to end

TEXTS = [
    ("what a lovely morning, off to the park with the kids", S),
    ("thanks for the recipe, the cake turned out great", S),
    ("the meeting is moved to thursday at ten", S),
    ("congrats on the new job, well deserved", S),
    ("this referee is a complete idiot lol", P),
    ("shut up you annoying clown", P),
    ("that movie was damn stupid", P),
    ("you are a worthless piece of trash and everyone hates you", H),
    ("go back to where you came from you disgusting pig", H),
    ("I hope you get hit by a car you moron", H),
    ("I will kill you and your whole family", E),
    ("go kill yourself nobody wants you here", E),
    ("all of them should be shot, every last one", E),
]


@pytest.fixture
def labelled_file(tmp_path):
    path = tmp_path / "small.jsonl"
    rows = [{"text": t, "label": label, "source": "handmade", "parent_id": None} for t, label in TEXTS]
    rows.append({"text": "I will k1ll you", "label": E, "source": "handmade", "parent_id": "x"})  # a variant: left out
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _hand_check(report, classifier):
    """The report's numbers, recomputed here from the classifier's own answers, decided as the moderator decides
    (the model's own thresholds, not the most probable label)."""
    from moderator import decide, resolve_thresholds

    scores = classifier.classify([t for t, _ in TEXTS])
    thresholds = resolve_thresholds({}, classifier)
    predicted = [decide(s, thresholds) for s in scores]
    assert report["decision"]["thresholds"] == thresholds
    cm = np.zeros((4, 4), dtype=int)
    for (_, label), p in zip(TEXTS, predicted):
        cm[LABELS.index(label), LABELS.index(p)] += 1
    assert report["confusion_matrix"] == cm.tolist()
    assert report["summary"]["accuracy"] == round(np.trace(cm) / len(TEXTS), 4)
    f1s = [2 * cm[i, i] / (cm[i].sum() + cm[:, i].sum()) for i in range(4)]
    assert report["summary"]["macro_f1"] == pytest.approx(np.mean(f1s), abs=1e-4)
    harmful = [i for i, (_, label) in enumerate(TEXTS) if LABELS.index(label) >= 2]
    assert report["robustness"]["harmful_texts"] == len(harmful) == 6
    assert report["robustness"]["plain_recall"] == pytest.approx(
        np.mean([LABELS.index(predicted[i]) >= 2 for i in harmful]), abs=1e-4)
    assert report["data"]["rows_evaluated"] == len(TEXTS) and report["data"]["variants_left_out"] == 1
    assert report["speed"]["texts"] > len(TEXTS) and report["speed"]["texts_per_second"] > 0


def test_embedded_end_to_end_with_calibration_and_mlflow(labelled_file, tmp_path):
    from classifiers.embedded import EmbeddedClassifier

    out = tmp_path / "eval"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "validation.jsonl").write_text(labelled_file.read_text())
    code = ev.main(["--data", str(labelled_file), "--out", str(out), "--calibrate", "temperature", "--tracking-uri", uri])
    assert code == 0
    report = json.loads((out / "eval_report.json").read_text())
    _hand_check(report, EmbeddedClassifier(get_settings().embedded_model_path))
    assert report["data"]["subset"] == "unseen-by-embedded" and report["data"]["left_out_as_seen_in_training"] == 0
    assert report["false_alarms"]["idioms"]["n"] >= 50 and report["false_alarms"]["identity_terms"]["n"] == 100
    assert report["robustness"]["by_technique"] and report["robustness"]["variants"]["n"] > 0
    temperature = json.loads((out / "calibration.json").read_text())["temperature"]
    assert report["calibration"]["temperature"] == pytest.approx(temperature, abs=1e-4)
    assert 0 <= report["calibration"]["ece_calibrated"] <= 1
    for name in ("eval_report.md", "eval_confusion_matrix.png", "eval_reliability.png", "eval_robustness.png"):
        assert (out / name).stat().st_size > 0
    assert "| extremely_harmful |" in (out / "eval_report.md").read_text()
    # the heads beside the model: their leave-one-source-out figures ride along, and the suite's routing is there
    heads_doc = json.loads((get_settings().embedded_model_path.with_name("categories.json")).read_text())
    assert report["categories"]["held_out_by_source"] == heads_doc["transfer"]
    assert set(report["categories"]["routed"]) >= {"threat", "self_harm", "threat (coded)"}
    assert "Held out by source" in (out / "eval_report.md").read_text()

    import mlflow

    mlflow.set_tracking_uri(uri)
    [run] = mlflow.search_runs(experiment_names=["algospeak-stage2"], output_format="list")
    assert run.data.tags["kind"] == "evaluation"
    assert run.data.metrics["macro_f1"] == report["summary"]["macro_f1"]


def test_gate_fails_a_worse_candidate_with_reasons_and_exit_1(labelled_file, tmp_path, monkeypatch, capsys):
    # Only the comparison with the baseline decides here: the absolute thresholds are opened up.
    for name, value in (("GATE_MIN_MACRO_F1", "0"), ("GATE_MAX_FALSE_ALARM_RATE", "1"), ("GATE_MAX_ECE", "1")):
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        base_args = ["--data", str(labelled_file), "--subset", "all", "--no-mlflow", "--variants", "1"]
        assert ev.main([*base_args, "--backend", "embedded", "--out", str(tmp_path / "prod"), "--gate"]) == 0
        baseline = tmp_path / "prod" / "eval_report.json"
        assert json.loads((tmp_path / "prod" / "gate.json").read_text())["passed"] is True

        # A broken candidate: the production artifact with its weights zeroed answers one label for everything.
        with np.load(get_settings().embedded_model_path) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays["weights"] = np.zeros_like(arrays["weights"])
        broken = tmp_path / "broken.npz"
        np.savez(broken, **arrays)
        capsys.readouterr()
        code = ev.main([*base_args, "--model-path", str(broken), "--out", str(tmp_path / "cand"), "--gate",
                        "--baseline", str(baseline)])
        assert code == 1
        result = json.loads((tmp_path / "cand" / "gate.json").read_text())
        assert result["passed"] is False and result["reasons"]
        assert "below the production model's" in result["reasons"][0]
        assert result["candidate"]["macro_f1"] < result["baseline"]["summary"]["macro_f1"]
        assert result["reasons"][0] in capsys.readouterr().err.splitlines()
    finally:
        get_settings.cache_clear()


def test_the_documented_gate_judges_the_trained_model_never_the_baseline_itself(labelled_file, tmp_path, capsys):
    """`--gate --baseline models/embedded/eval_report.json` once compared the shipped model with itself and
    passed. Without --backend it now judges the training record's model, and gating a model against its own
    report is refused."""
    base_args = ["--data", str(labelled_file), "--subset", "all", "--no-mlflow", "--variants", "1"]
    assert ev.main([*base_args, "--backend", "embedded", "--out", str(tmp_path / "prod")]) == 0
    baseline = str(tmp_path / "prod" / "eval_report.json")
    capsys.readouterr()
    assert ev.main([*base_args, "--gate", "--baseline", baseline, "--out", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert "no train record" in err and err.count("\n") == 1
    assert ev.main([*base_args, "--backend", "embedded", "--gate", "--baseline", baseline,
                    "--out", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert "the candidate is the baseline itself" in err and err.count("\n") == 1
    assert not (tmp_path / "c" / "gate.json").exists()


def test_missing_data_is_one_clear_error(tmp_path, capsys):
    assert ev.main(["--data", str(tmp_path / "nope.jsonl"), "--no-mlflow", "--out", str(tmp_path)]) == 1
    assert "data.prepare" in capsys.readouterr().err


def test_tiny_transformers_model_end_to_end(tiny_qwen_dir, labelled_file, tmp_path):
    from classifiers import registry

    if "transformers" not in registry.BACKENDS:
        pytest.skip("classifiers/transformers.py is not in the registry yet")
    settings = get_settings().model_copy(update={"transformers_model_path": tiny_qwen_dir})
    classifier = registry.create_classifier(settings, "transformers")
    out = tmp_path / "eval"
    code = ev.main(["--backend", "transformers", "--model-path", str(tiny_qwen_dir), "--data", str(labelled_file),
                    "--out", str(out), "--no-mlflow", "--variants", "1", "--batch-size", "16", "--probe-limit", "8"])
    assert code == 0
    report = json.loads((out / "eval_report.json").read_text())
    assert report["model"]["backend"] == classifier.name and report["data"]["subset"] == "all"
    assert report["categories"]["by_category"]["violence"]["threshold"] == 0.5  # the LLM's category field answers
    _hand_check(report, classifier)


@pytest.mark.shared_data
def test_seen_by_embedded_follows_the_training_split_across_sources():
    import polars as pl

    from data.readers import dedupe_key, load_shared_sources
    from training.model_evaluation import seen_by_embedded
    from training.train_embedded import split_of

    shared = load_shared_sources().head(400)
    keys = shared.select(dedupe_key(pl.col("text"))).to_series().to_list()
    trained = next(t for t, k in zip(shared["text"], keys) if k and split_of(k) == "train")
    held_out = next(t for t, k in zip(shared["text"], keys) if k and split_of(k) == "test")
    source = shared["source"][0]
    rows = [
        {"text": trained, "source": source},  # a training text: seen
        {"text": held_out, "source": source},  # in the embedded model's test split: unseen
        {"text": trained, "source": "jigsaw_unintended_bias"},  # the same text under another source: seen
        {"text": "a sentence written for this test only, 7f3a9c", "source": "jigsaw_unintended_bias"},
    ]
    assert seen_by_embedded(rows)[:3] == [True, False, True]
    assert seen_by_embedded(rows)[3] is False


def test_a_trained_model_archive_is_fetched_from_s3_once(aws_env, tmp_path):
    """fetch_s3_artifact (gating a SageMaker job's model) through core.aws: the archive is downloaded and unpacked,
    a second call for the same URI does not download again, and a URI that is not S3 fails in one line."""
    import io
    import tarfile

    from core import aws
    from training.model_evaluation import fetch_s3_artifact

    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w:gz") as tar:
        info = tarfile.TarInfo("config.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="models")
    s3.put_object(Bucket="models", Key="job/output/model.tar.gz", Body=payload.getvalue())
    target = tmp_path / "model"
    assert fetch_s3_artifact("s3://models/job/output/model.tar.gz", target) == target
    assert (target / "config.json").read_text() == "{}"
    s3.delete_object(Bucket="models", Key="job/output/model.tar.gz")
    assert fetch_s3_artifact("s3://models/job/output/model.tar.gz", target) == target  # cached: no download
    with pytest.raises(ValueError, match="not an S3 URI"):
        fetch_s3_artifact("https://models/job/model.tar.gz", tmp_path / "other")
