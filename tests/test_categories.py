"""Harm categories in the answer (issue 18): what kind of harm, beside how severe, from the classifier's category
heads and from Stage 1's decoded terms, through the moderator, the API, the prediction log, the metrics and drift."""

from __future__ import annotations

import sqlite3

import pytest

from classifiers.embedded import EmbeddedClassifier
from core.categories import CATEGORIES
from core.settings import DEFAULT_EMBEDDED_MODEL, DEFAULT_PATTERN_DB, Settings
from moderator import ModerationUnavailable, Moderator
from monitoring import metrics
from monitoring.drift_detection import categories_check, DriftConfig
from monitoring.prediction_log import PredictionLog, read_records
from normalizer.reload import ReloadingNormalizer
from tests.scripted import EXTREME, SAFE, Scripted


@pytest.fixture(scope="module")
def shipped():
    normalizer = ReloadingNormalizer(DEFAULT_PATTERN_DB, 0)
    settings = Settings(environment="test", prediction_log_url="", _env_file=None)
    return Moderator(normalizer, EmbeddedClassifier(DEFAULT_EMBEDDED_MODEL), settings)


def test_a_coded_threat_carries_the_stage1_and_the_classifier_category(shipped):
    result = shipped.moderate("I will find you and k1ll you")
    assert result["classification"] != "safe"
    assert "violence" in result["flagged_categories"]
    assert result["category_evidence"]["violence"] == ["classifier", "stage1"]  # both found it
    assert result["categories"]["violence"] >= 0.5
    assert set(result["categories"]) == set(CATEGORIES)


def test_self_harm_routes_to_self_harm_not_only_violence(shipped):
    result = shipped.moderate("some days i just want to unalive myself")
    assert result["classification"] != "safe"
    assert "self_harm" in result["flagged_categories"], result["flagged_categories"]
    # The plain statement: the self_harm head finds it, though the severity model calls it safe (issue 12's
    # known miss), so nothing is flagged for routing.
    heads = shipped.classifier.categories
    plain = shipped.moderate("i cant take it anymore, im going to kill myself")
    assert "self_harm" in heads.flagged(plain["categories"])


def test_a_safe_text_has_no_flagged_category_even_where_a_head_fires(shipped):
    # the thin heads fire on casual text (model card, known weak spots); the severity decides whether anything
    # is flagged at all
    result = shipped.moderate("we went to the beach last weekend")
    assert result["classification"] == "safe"
    assert result["flagged_categories"] == [] and result["category_evidence"] == {}
    assert any(p >= shipped.classifier.categories.thresholds[c] for c, p in result["categories"].items()
               if c in shipped.classifier.categories.shipped)


def test_stage1_and_the_classifier_agree_on_the_shared_cases(shipped):
    """Functional-suite coded cases where both found a category (97 with the shipped heads): they name the same
    one in 75 (77%), and wherever they agree, every category Stage 1 named is among the classifier's (never a
    partial overlap). The disagreements are mostly the pattern database calling misogynist slurs ("foids",
    "roasties") harassment where our taxonomy, like EDOS, calls sexism hate."""
    from data.functional import coded_cases, load_suite

    cases = [c for c in coded_cases(load_suite()) if c.flagged]
    both = agree = 0
    partial, threats = [], []
    for case, result in zip(cases, shipped.moderate_batch([c.text for c in cases])):
        evidence = result["category_evidence"]
        by_stage1 = {c for c, e in evidence.items() if "stage1" in e}
        by_classifier = {c for c, e in evidence.items() if "classifier" in e}
        if by_stage1 and by_classifier:
            both += 1
            if by_stage1 & by_classifier:
                agree += 1
                if not by_stage1 <= by_classifier:
                    partial.append((case.text, by_stage1, by_classifier))
        if case.family == "threat" and "violence" in by_stage1:
            threats.append(evidence["violence"] == ["classifier", "stage1"])
    assert both >= 80
    assert agree / both >= 0.72, f"{agree} of {both}"
    assert partial == []
    # a coded threat whose decoded term is violence: the classifier's violence head says so too (6 of 9 since the
    # label guide's head flags more threats; 5 of 7 before it. Stage 1 also reads spelled-out and look-alike harm
    # words, "p u n c h e s" and "bullеt"; the violence head stays under threshold on "straaaangle you with my bare
    # hands", "a bullеt in you" and "better off if you were deаd", which the guide flags)
    assert len(threats) >= 8 and sum(threats) >= 0.6 * len(threats), threats


def test_a_backend_without_heads_reports_stage1_categories_only(normalizer_settings):
    normalizer, settings = normalizer_settings
    moderator = Moderator(normalizer, Scripted(default=EXTREME), settings)
    result = moderator.moderate("go k1ll yourself")
    assert result["categories"] is None
    assert result["category_evidence"] == {"violence": ["stage1"]}  # k1ll: the database's violence.unalive
    assert result["flagged_categories"] == ["violence"]
    safe = Moderator(normalizer, Scripted(default=SAFE), settings).moderate("go k1ll yourself")
    assert safe["flagged_categories"] == []  # safe by severity: nothing to route


@pytest.fixture(scope="module")
def normalizer_settings():
    return ReloadingNormalizer(DEFAULT_PATTERN_DB, 0), Settings(environment="test", prediction_log_url="", _env_file=None)


class _BadCategories(Scripted):
    def classify_with_categories(self, texts):
        return self.classify(texts), [{"hate": 2.0}] * len(texts)


def test_a_malformed_category_answer_is_refused_not_served(normalizer_settings):
    normalizer, settings = normalizer_settings
    with pytest.raises(ModerationUnavailable, match="categor"):
        Moderator(normalizer, _BadCategories(default=EXTREME), settings).moderate("hello")


def test_categories_reach_the_log_the_metrics_and_an_old_log_gains_the_column(tmp_path, shipped):
    path = tmp_path / "log.db"
    with sqlite3.connect(path) as db:  # a log written before categories existed
        db.execute("CREATE TABLE predictions (id INTEGER PRIMARY KEY, ts FLOAT NOT NULL, request_id VARCHAR(128), "
                   "text_sha256 VARCHAR(64) NOT NULL, text TEXT, normalized_text TEXT, text_length INTEGER NOT NULL, "
                   "normalized_length INTEGER, n_alpha INTEGER NOT NULL, n_digit INTEGER NOT NULL, n_upper INTEGER NOT "
                   "NULL, n_space INTEGER NOT NULL, n_punct INTEGER NOT NULL, n_other INTEGER NOT NULL, n_non_ascii "
                   "INTEGER NOT NULL, label VARCHAR(32) NOT NULL, raw_label VARCHAR(32), disagreement BOOLEAN NOT NULL, "
                   "algospeak_detected BOOLEAN NOT NULL, confidence FLOAT, scores TEXT, techniques TEXT, entry_ids "
                   "TEXT, n_matches INTEGER NOT NULL, backend VARCHAR(64), model_version VARCHAR(128), "
                   "pattern_db_version VARCHAR(64), stage1_status VARCHAR(64), stage2_status VARCHAR(64), mock_mode "
                   "BOOLEAN, latency_ms FLOAT)")
        db.execute("INSERT INTO predictions (ts, text_sha256, text_length, n_alpha, n_digit, n_upper, n_space, n_punct,"
                   " n_other, n_non_ascii, label, disagreement, algospeak_detected, n_matches) VALUES (1, 'x', 1, 1, 0,"
                   " 0, 0, 0, 0, 0, 'safe', 0, 0, 0)")
    result = shipped.moderate("I will find you and k1ll you")
    before = metrics.FLAGGED_CATEGORIES.labels(category="violence")._value.get()
    metrics.observe_batch([result])
    assert metrics.FLAGGED_CATEGORIES.labels(category="violence")._value.get() == before + 1
    log = PredictionLog(f"sqlite:///{path}")
    log.start()
    assert log.record(result)
    log.close()
    old, new = read_records(f"sqlite:///{path}").records
    assert old.get("categories") is None  # unknown for the old row, not "none flagged"
    assert new["categories"] == result["flagged_categories"] and "violence" in new["categories"]


def test_drift_sees_the_category_mix_move():
    cfg = DriftConfig()
    ref = [[]] * 900 + [["hate"]] * 80 + [["self_harm"]] * 20
    same = [[]] * 905 + [["hate"]] * 76 + [["self_harm"]] * 19
    moved = [[]] * 800 + [["hate"]] * 60 + [["self_harm"]] * 140
    assert categories_check(ref, same, cfg).status == "ok"
    check = categories_check(ref, moved, cfg)
    assert check.status != "ok" and "self_harm 2.0% -> 14.0%" in check.reason


def test_an_urgent_category_keeps_its_validation_recall_where_the_budgets_would_cut_it():
    """Threats and self-harm go to urgent queues: when the false-flag budget leaves validation recall under
    MIN_RECALL, the threshold drops to the highest one that reaches it (on validation, never on the suite)."""
    import numpy as np

    from training.categories import MIN_RECALL, Head

    rng = np.random.default_rng(0)
    # negatives around 0, positives overlapping them: a 3% false-flag budget alone keeps well under 80% recall
    x = np.concatenate([rng.normal(0, 1, 2000), rng.normal(1.0, 1, 200)])[:, None]
    y = np.array([0] * 2000 + [1] * 200)
    source = np.array(["a", "b"] * 1100)
    head = Head().fit(x, y, source)
    budget_only = Head().fit(x, y, source).calibrate(x, y, source)
    recall = lambda h: float((h.prob(x[y == 1]) >= h.threshold).mean())  # noqa: E731
    assert recall(budget_only) < 0.6
    floored = head.calibrate(x, y, source, min_recall=0.8)
    assert 0.8 <= recall(floored) < 0.8 + 2 / 200  # reached, and no lower than it needs (ties aside)
    assert floored.threshold < budget_only.threshold
    assert set(MIN_RECALL) == {"violence", "self_harm"}
    # a recall the budgets already give is left alone
    assert head.calibrate(x, y, source, min_recall=0.1).threshold == budget_only.threshold
