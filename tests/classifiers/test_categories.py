"""Category heads served with the embedded model: one kernel pass, refused when they belong to another model."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from classifiers.base import ClassifierError
from classifiers.embedded import CATEGORY_ARTIFACT, EmbeddedClassifier
from classifiers.features import feature_matrix_indices
from core.categories import CATEGORIES
from core.labels import LABELS
from core.settings import ROOT
from tests.classifiers.test_offline_models import TEXTS, _artifact
from training.categories import save

SHIPPED = ROOT / "models" / "embedded"


def _heads(model_path, shipped=("hate", "violence"), sha=None, seed=1):
    rng = np.random.default_rng(seed)
    with np.load(model_path) as npz:
        n = len(npz["vocab"])
    n_cat = len(CATEGORIES)
    weights = rng.normal(size=(n, n_cat))
    thresholds = np.array([0.5 if c in shipped else 1.0 for c in CATEGORIES])
    sha = sha or hashlib.sha256(model_path.read_bytes()).hexdigest()
    report = {"home_test": {c: {"shipped": c in shipped} for c in CATEGORIES}, "false_flag_budget": 0.03}
    save(model_path.with_name(CATEGORY_ARTIFACT), weights, rng.normal(size=n_cat), thresholds,
         np.full(n_cat, 1.5), np.full(n_cat, -0.2), sha, report)
    return weights


def test_heads_ride_the_severity_pass_and_leave_severity_alone(tmp_path):
    plain = EmbeddedClassifier(_artifact(tmp_path / "a" / "model.npz", None))
    path = _artifact(tmp_path / "b" / "model.npz", None)
    _heads(path)
    with_heads = EmbeddedClassifier(path)
    assert plain.categories is None and with_heads.categories is not None
    severity, categories = with_heads.classify_with_categories(TEXTS)
    def grid(scores):
        return np.array([[s[label] for label in LABELS] for s in scores])

    np.testing.assert_allclose(grid(severity), grid(plain.classify(TEXTS)), atol=1e-9)
    assert with_heads.classify(TEXTS) == severity
    # the kernel's category probabilities are the numpy definition: sigmoid(a * (idf-weighted, L2 features) . w + b)
    with np.load(with_heads.path.with_name(CATEGORY_ARTIFACT)) as npz:
        w, b0 = npz["weights"].astype(np.float64), npz["intercept"].astype(np.float64)
    rows, cols = feature_matrix_indices(TEXTS, with_heads._index)
    z = np.tile(b0, (len(TEXTS), 1))
    for i in range(len(TEXTS)):
        c = cols[rows == i]
        z[i] += w[c].sum(axis=0) / np.sqrt(with_heads._idf2[c].sum())
    expected = 1 / (1 + np.exp(-(1.5 * z - 0.2)))
    got = np.array([[p[c] for c in CATEGORIES] for p in categories])
    shipped = [CATEGORIES.index(c) for c in ("hate", "violence")]
    np.testing.assert_allclose(got[:, shipped], expected[:, shipped], atol=1e-3)


def test_a_category_without_a_head_never_fires(tmp_path):
    path = _artifact(tmp_path / "model.npz", None)
    _heads(path, shipped=("hate",))
    clf = EmbeddedClassifier(path)
    _, categories = clf.classify_with_categories(TEXTS)
    assert all(p["drugs"] == 0.0 and p["self_harm"] == 0.0 for p in categories)
    assert clf.categories.missing == tuple(c for c in CATEGORIES if c != "hate")
    assert all(set(clf.categories.flagged(p)) <= {"hate"} for p in categories)


def test_heads_trained_for_another_model_are_refused(tmp_path):
    path = _artifact(tmp_path / "model.npz", None)
    _heads(path, sha="0" * 64)
    with pytest.raises(ClassifierError, match="another model.*python -m training.categories"):
        EmbeddedClassifier(path)


def test_a_broken_heads_file_is_a_clear_error(tmp_path):
    path = _artifact(tmp_path / "model.npz", None)
    path.with_name(CATEGORY_ARTIFACT).write_bytes(b"not a numpy file")
    with pytest.raises(ClassifierError, match="cannot load the category heads"):
        EmbeddedClassifier(path)
