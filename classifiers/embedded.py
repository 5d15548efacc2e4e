"""The embedded classifier: a linear model over word and character n-grams, shipped in `models/embedded/`.

Trained by `training/train_embedded.py` on the real labelled data plus algospeak variants. At run time it needs
numpy and numba: a batch is scored by one compiled loop (`classifiers.kernel`) that hashes each text's n-grams,
looks them up and sums their weights; `reference_logits` computes the same with numpy from the feature
definitions in `classifiers.features`, and the tests hold the two together.

The artifact (`model.npz`) describes itself: label order, feature recipe version, vocabulary, weights (with the
IDF folded in), intercepts and the metrics it was trained to; a file that lacks any of them is refused.

Served probabilities are `softmax(logits / T + log(prior) - log(train_prior))` (`meta["decision"]`, fitted by
`training.transfer.fit_decision` on validation texts): the temperature T calibrates the model under the label mix
it was trained on, and the shift moves its probabilities to the stated traffic mix `prior` (a platform's traffic
is mostly safe; the training mix is not). `prior` can be replaced at load time (the LABEL_PRIOR setting). The
decision thresholds chosen with them are `thresholds`; the moderator uses them unless settings override them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from classifiers.base import ClassifierError, LabelScores
from classifiers.features import CUTS, DEFAULT_CUT, FeatureIndex, feature_matrix_indices, sentences_of
from classifiers.features import VERSION as FEATURE_VERSION
from classifiers.kernel import Scorer
from core.categories import CATEGORIES
from core.labels import LABELS, SEVERITY

_REQUIRED = ("labels", "feature_version", "vocab", "weights", "idf2", "intercept", "meta")


class EmbeddedClassifier:
    name = "embedded"

    def __init__(self, path: Path | str, prior: Sequence[float] | None = None, guide: bool = True):
        self.path = Path(path)
        try:
            raw = self.path.read_bytes()
            with np.load(self.path, allow_pickle=False) as npz:
                missing = [k for k in _REQUIRED if k not in npz.files]
                if missing:
                    raise ClassifierError(f"{self.path}: not an embedded-classifier artifact (missing {missing})")
                labels = tuple(str(x) for x in npz["labels"])
                feature_version = str(npz["feature_version"])
                vocab = npz["vocab"].astype(np.uint64)
                weights = npz["weights"].astype(np.float32)
                idf2 = npz["idf2"].astype(np.float32)
                intercept = npz["intercept"].astype(np.float32)
                self.meta = json.loads(str(npz["meta"]))
        except ClassifierError:
            raise
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise ClassifierError(f"cannot load the embedded model {self.path}: {exc}") from exc
        if labels != LABELS:
            raise ClassifierError(f"{self.path}: trained for labels {labels}, this code expects {LABELS}")
        if feature_version != FEATURE_VERSION:
            raise ClassifierError(
                f"{self.path}: features {feature_version!r}, this code computes {FEATURE_VERSION!r}; retrain it"
            )
        if weights.shape != (len(vocab), len(LABELS)) or idf2.shape != (len(vocab),):
            raise ClassifierError(f"{self.path}: weights do not match the vocabulary")
        if len(vocab) > 1 and not bool(np.all(vocab[1:] > vocab[:-1])):
            raise ClassifierError(f"{self.path}: the vocabulary is not sorted")
        self._index = FeatureIndex(vocab)
        self._idf2 = idf2
        sha = hashlib.sha256(raw).hexdigest()
        self.version = sha[:12]
        # Harm-category heads over the same features (training.categories), scored in the same kernel pass.
        self.categories = load_category_heads(self.path.with_name(CATEGORY_ARTIFACT), sha, len(vocab))
        # The label guide's head (training.guide), which may raise a text's P(harmful or worse): the last output.
        # (guide=False: the severity model alone, as training.guide fits against it, even beside a stale guide.npz)
        self.guide = load_guide_head(self.path.with_name(GUIDE_ARTIFACT), sha, len(vocab)) if guide else None
        columns, intercepts = [weights], [intercept]
        if self.categories is not None:
            columns.append(self.categories.weights)
            intercepts.append(self.categories.intercept)
        if self.guide is not None:
            columns.append(self.guide.weights[:, None])
            intercepts.append(np.array([self.guide.intercept], dtype=np.float32))
        # every output's weights, scored in one pass of the kernel (and by the numpy reference)
        self._all_weights = np.hstack(columns) if len(columns) > 1 else weights
        self._all_intercept = np.concatenate(intercepts) if len(intercepts) > 1 else intercept
        self._scorer = Scorer(self._index, self._all_weights, idf2, self._all_intercept)
        # Also each sentence (or clause: `cut`) on its own, the harshest reading kept (`harshest_reading`): set by
        # training, since the decision below was fitted on readings made the same way. A model that names no cut
        # was fitted on sentences.
        self.cut: str | None = None
        if self.meta.get("sentence_max") is True:
            self.cut = self.meta.get("cut", "sentences")
            if not isinstance(self.cut, str) or self.cut not in CUTS:
                raise ClassifierError(f"{self.path}: unknown cut {self.cut!r} (this code knows {', '.join(CUTS)})")
        self.sentence_max = self.cut is not None
        self.temperature, self.bias, self.thresholds = decision_of(self.meta, self.path, prior)
        # The label mix the served probabilities describe (None: as trained); evaluation weighs calibration by it.
        decision = self.meta.get("decision")
        self.prior = list(prior) if prior is not None else (decision["prior"] if decision else None)
        if self.guide is not None and self.prior is None:
            raise ClassifierError(f"{self.path}: a guide head needs a model with a fitted decision; retrain the model")

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Severity logits of each text's reading (`outputs`), raised where the guide head fires (`raised_by_guide`):
        what the served probabilities are computed from."""
        return self._severity_logits(self.outputs(texts))

    def _severity_logits(self, z: np.ndarray) -> np.ndarray:
        if self.guide is None:
            return z[:, : len(LABELS)]
        return raised_by_guide(z[:, : len(LABELS)], z[:, -1], self.guide, self.temperature, self.bias,
                               harm_share=float(sum(self.prior[SEVERITY["harmful"] :])))

    def outputs(self, texts: Sequence[str]) -> np.ndarray:
        """Every output of the kernel (severity logits, the category heads', then the guide head's) for each text as
        it is read: the whole text, or with `sentence_max` the harshest of the whole text and its parts (`cut`),
        all in one pass; the guide's output is its highest over those readings."""
        if self.sentence_max:
            return read_by_sentence(self._scorer.logits, texts, self.cut, max_columns=int(self.guide is not None))
        return self._scorer.logits(texts)

    def classify_with_categories(self, texts: Sequence[str]) -> tuple[list[LabelScores], list[dict[str, float]] | None]:
        """Severity scores (as `classify`) and, when the model ships category heads, {category: probability} for
        each text, from one pass of the kernel."""
        if not texts:
            return [], ([] if self.categories is not None else None)
        z = self.outputs(texts)
        scores = self._severity(self._severity_logits(z))
        if self.categories is None:
            return scores, None
        return scores, self.categories.probabilities(z[:, len(LABELS) : len(LABELS) + len(CATEGORIES)])

    def reference_logits(self, texts: Sequence[str]) -> np.ndarray:
        """Logits computed with numpy from `classifiers.features`, the definition the kernel must match: of each
        text's reading, as `outputs` reads it, raised by the guide head as `logits` is."""
        z = (read_by_sentence(self._numpy_logits, texts, self.cut, max_columns=int(self.guide is not None))
             if self.sentence_max else self._numpy_logits(texts))
        return self._severity_logits(z)

    def _numpy_logits(self, texts: Sequence[str]) -> np.ndarray:
        rows, cols = feature_matrix_indices(texts, self._index)
        out = np.tile(self._all_intercept, (len(texts), 1))
        if len(rows):
            starts = np.flatnonzero(np.concatenate(([True], rows[1:] != rows[:-1])))
            sums = np.add.reduceat(self._all_weights[cols], starts, axis=0)
            norms = np.sqrt(np.add.reduceat(self._idf2[cols], starts))
            out[rows[starts]] += sums / norms[:, None]
        return out

    def classify(self, texts: Sequence[str]) -> list[LabelScores]:
        if not texts:
            return []
        return self._severity(self.logits(texts))

    def _severity(self, logits: np.ndarray) -> list[LabelScores]:
        z = logits / self.temperature + self.bias
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        if not np.isfinite(p).all():
            raise ClassifierError("embedded model produced non-finite probabilities")
        return [dict(zip(LABELS, row)) for row in p.tolist()]


def read_by_sentence(logits_of: Callable[[list[str]], np.ndarray], texts: Sequence[str],
                     cut: str = DEFAULT_CUT, max_columns: int = 0) -> np.ndarray:
    """`logits_of` each text as sentence max reads it (`harshest_reading`): the texts and the parts of those that
    have several (`features.sentences_of`, cut at sentences or clauses) scored in one call. Serving, its numpy
    reference and training's `transfer.SentenceMax` all read this way. The last `max_columns` outputs (the guide
    head's) are each the highest over all readings, not the harshest reading's."""
    owner, parts = sentences_of(texts, cut)
    z = logits_of([*texts, *parts])
    whole, z_parts = z[: len(texts)], z[len(texts) :]
    out = harshest_reading(whole, owner, z_parts)
    if max_columns:
        out[:, -max_columns:] = highest_reading(whole[:, -max_columns:], owner, z_parts[:, -max_columns:])
    return out


def highest_reading(whole: np.ndarray, owner: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """For each row of `whole`, the highest value, column by column, over it and the rows of `parts` it owns
    (row k of `parts` belongs to text `owner[k]`, as `features.sentences_of` gives them)."""
    out = np.array(whole, dtype=np.float64)
    if len(owner):
        np.maximum.at(out, owner, parts)
    return out


def harshest_reading(whole: np.ndarray, owner: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """For each row of `whole` (a text's outputs, the severity logits first), the row of whichever reading is likeliest
    harmful-or-worse: the whole text, or one of its parts (`parts`, row k a sentence or clause of text `owner[k]`,
    from `features.sentences_of`); the earliest on a tie. Judged on the logits as trained (no temperature or prior
    shift), so the choice does not depend on the served label mix. One harmful sentence among harmless ones is then
    not diluted by their n-grams: "I'm going to stab you. Thanks for reading!" reads as its first sentence."""
    if not len(owner):
        return whole
    harm, harm_parts = _harm_log_odds(whole), _harm_log_odds(parts)
    order = np.lexsort((-harm_parts, owner))  # by text, harshest part first (stable: the earliest on a tie)
    grouped = owner[order]
    first = order[np.concatenate(([True], grouped[1:] != grouped[:-1]))]
    texts = owner[first]
    harsher = harm_parts[first] > harm[texts]
    out = whole.copy()
    out[texts[harsher]] = parts[first[harsher]]
    return out


def _harm_log_odds(z: np.ndarray) -> np.ndarray:
    """log P(harmful or worse) - log P(safe or potentially harmful) under softmax of the severity logits."""
    harmful = SEVERITY["harmful"]  # LABELS are ordered by severity: harmful and worse are the last columns
    return (np.logaddexp.reduce(z[:, harmful : len(LABELS)], axis=1)
            - np.logaddexp.reduce(z[:, :harmful], axis=1))


CATEGORY_ARTIFACT = "categories.npz"


class CategoryHeads:
    """The category heads of a `categories.npz` (training.categories): weights over the severity model's
    vocabulary (IDF folded in), intercepts, Platt calibration and per-category thresholds. A category without a
    head (too few labelled examples to learn) has threshold 1 and is listed in `missing`."""

    def __init__(self, weights, intercept, thresholds, a, b, shipped: list[str]):
        self.weights, self.intercept = weights, intercept
        self.thresholds = dict(zip(CATEGORIES, (float(t) for t in thresholds)))
        self._a, self._b = a.astype(np.float64), b.astype(np.float64)
        self.shipped = tuple(c for c in CATEGORIES if c in shipped)
        self.missing = tuple(c for c in CATEGORIES if c not in shipped)

    def probabilities(self, logits: np.ndarray) -> list[dict[str, float]]:
        p = 1.0 / (1.0 + np.exp(-(self._a * logits + self._b)))
        if not np.isfinite(p).all():
            raise ClassifierError("embedded model produced non-finite category probabilities")
        p[:, [CATEGORIES.index(c) for c in self.missing]] = 0.0
        return [dict(zip(CATEGORIES, row)) for row in p.tolist()]

    def flagged(self, probabilities: dict[str, float]) -> list[str]:
        return [c for c in self.shipped if probabilities[c] >= self.thresholds[c]]


def load_category_heads(path: Path, model_sha256: str, n_vocab: int) -> CategoryHeads | None:
    """The heads beside a model (None when there are none); ClassifierError when they belong to another model."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            categories = tuple(str(x) for x in npz["categories"])
            weights = npz["weights"].astype(np.float32)
            intercept = npz["intercept"].astype(np.float32)
            thresholds = npz["thresholds"].astype(np.float64)
            a, b = npz["platt_a"], npz["platt_b"]
            meta = json.loads(str(npz["meta"]))
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise ClassifierError(f"cannot load the category heads {path}: {exc}") from exc
    if categories != CATEGORIES:
        raise ClassifierError(f"{path}: heads for {categories}, this code expects {CATEGORIES}")
    if meta.get("model_sha256") != model_sha256:
        raise ClassifierError(
            f"{path}: trained on the features of another model (sha256 {str(meta.get('model_sha256'))[:12]}, this "
            f"model {model_sha256[:12]}); retrain them: uv run --all-extras python -m training.categories")
    n = len(CATEGORIES)
    if weights.shape != (n_vocab, n) or intercept.shape != (n,) or thresholds.shape != (n,) or a.shape != (n,) or b.shape != (n,):
        raise ClassifierError(f"{path}: arrays do not match the model's vocabulary and {n} categories")
    if not np.all((thresholds > 0) & (thresholds <= 1)):
        raise ClassifierError(f"{path}: thresholds must be probabilities in (0, 1]")
    return CategoryHeads(weights, intercept, thresholds, a, b, list(meta.get("shipped", [])))


GUIDE_ARTIFACT = "guide.npz"


class GuideHead:
    """The label guide's head of a `guide.npz` (training.guide): one binary logistic regression over the severity
    model's features (weights with the IDF folded in), trained on the team's seed corpus (our label guide written
    down) against it and the shared sets' safe texts. `a * logit + b` is its calibrated log-likelihood ratio of
    harmful-or-worse (Platt scaling, classes balanced); it may raise a text only at or above `threshold` (its raw
    logit), set so that it flags at most `budget` of the validation split's safe texts beyond the severity
    model's own flags."""

    def __init__(self, weights: np.ndarray, intercept: float, a: float, b: float, threshold: float, budget: float):
        self.weights, self.intercept = weights, intercept
        self.a, self.b, self.threshold, self.budget = a, b, threshold, budget


def raised_by_guide(z: np.ndarray, h: np.ndarray, guide, temperature: float, bias: np.ndarray,
                    harm_share: float) -> np.ndarray:
    """Severity logits `z` where the guide head's logit `h` reaches its threshold, with the harmful and extremely
    harmful logits raised together (their ratio kept) until the served P(harmful or worse), softmax(z / T + bias),
    is the guide's own calibrated probability under the served label mix (`harm_share` harmful-or-worse), when that
    is the higher. Never lowers a text; below the threshold nothing changes. Serving and leave-one-domain-out both
    apply it, after the decision (T, bias) was fitted on the severity model alone. `guide` is anything with the
    head's `a`, `b` and `threshold`: a served `GuideHead` or a fitted `training.label_guide.Guide`."""
    harmful = SEVERITY["harmful"]
    served = np.asarray(z, dtype=np.float64) / temperature + bias
    model_log_odds = _harm_log_odds(served)
    guide_log_odds = guide.a * np.asarray(h, dtype=np.float64) + guide.b + np.log(harm_share / (1.0 - harm_share))
    lift = np.where(h >= guide.threshold, np.maximum(guide_log_odds - model_log_odds, 0.0), 0.0)
    out = np.array(z, dtype=np.float64)
    out[:, harmful : len(LABELS)] += (temperature * lift)[:, None]
    return out


def load_guide_head(path: Path, model_sha256: str, n_vocab: int) -> GuideHead | None:
    """The guide head beside a model (None when there is none); ClassifierError when it belongs to another model
    or is malformed."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            weights = npz["weights"].astype(np.float32)
            meta = json.loads(str(npz["meta"]))
        if any(isinstance(meta[k], bool) for k in ("intercept", "a", "b", "threshold", "budget")):
            raise TypeError("a boolean where a number belongs")
        values = {k: float(meta[k]) for k in ("intercept", "a", "b", "threshold", "budget")}
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ClassifierError(f"cannot load the guide head {path}: {exc}") from exc
    if meta.get("model_sha256") != model_sha256:
        raise ClassifierError(
            f"{path}: trained on the features of another model (sha256 {str(meta.get('model_sha256'))[:12]}, this "
            f"model {model_sha256[:12]}); retrain it: uv run --all-extras python -m training.guide")
    if weights.shape != (n_vocab,):
        raise ClassifierError(f"{path}: weights do not match the model's vocabulary ({weights.shape}, {n_vocab})")
    if not all(np.isfinite(v) for v in values.values()) or not np.isfinite(weights).all():
        raise ClassifierError(f"{path}: non-finite values")
    if values["a"] <= 0:
        raise ClassifierError(f"{path}: the calibration slope must be positive, got {values['a']}")
    return GuideHead(weights, values["intercept"], values["a"], values["b"], values["threshold"], values["budget"])


def decision_of(meta: dict, path: Path, prior: Sequence[float] | None = None
                ) -> tuple[float, np.ndarray, dict[str, float] | None]:
    """(temperature, logit bias, thresholds) from an artifact's `decision`; an artifact without one is served
    as trained (T = 1, no shift, no thresholds of its own). A prior given here replaces the artifact's."""
    decision = meta.get("decision")
    if decision is None:
        if prior is not None:
            raise ClassifierError(f"{path}: this model has no training prior, so LABEL_PRIOR cannot be applied; retrain it")
        return 1.0, np.zeros(len(LABELS), dtype=np.float32), None
    try:
        if isinstance(decision["temperature"], bool):
            raise TypeError("temperature is a boolean")
        temperature = float(decision["temperature"])
        train_prior = np.asarray(decision["train_prior"], dtype=np.float64)
        target = np.asarray(prior if prior is not None else decision["prior"], dtype=np.float64)
        thresholds = {label: float(decision["thresholds"][label]) for label in LABELS[1:]}
    except (KeyError, TypeError, ValueError) as exc:
        raise ClassifierError(f"{path}: malformed decision block ({exc})") from exc
    for name, p in (("train_prior", train_prior), ("prior", target)):
        if p.shape != (len(LABELS),) or not np.all(p > 0) or abs(p.sum() - 1) > 1e-3:
            raise ClassifierError(f"{path}: {name} must be {len(LABELS)} positive shares summing to 1, got {p.tolist()}")
    if not (1e-3 <= temperature <= 1e3):
        raise ClassifierError(f"{path}: temperature must be positive (between 0.001 and 1000), got {temperature}")
    for label, value in thresholds.items():
        if not 0.0 <= value <= 1.0:  # NaN fails this too
            raise ClassifierError(f"{path}: threshold for {label} must be a probability, got {value}")
    bias = (np.log(target) - np.log(train_prior)).astype(np.float32)
    return temperature, bias, thresholds


def save_artifact(
    path: Path,
    vocab: np.ndarray,
    coef: np.ndarray,
    idf: np.ndarray,
    intercept: np.ndarray,
    meta: dict,
    encoder_weights: np.ndarray | None = None,
    encoder_alpha: float = 1.0,
) -> None:
    """Write a model.npz that EmbeddedClassifier can load. `vocab` is the sorted feature hashes (uint64);
    `coef` is (n_labels, n_features) over them. With `encoder_weights` (n_labels, 384) it is an encoder-tier
    artifact (EncoderTierClassifier)."""
    vocab = np.asarray(vocab, dtype=np.uint64)
    if len(vocab) > 1 and not bool(np.all(vocab[1:] > vocab[:-1])):
        raise ValueError("the vocabulary must be sorted and without duplicates")
    weights = (coef.T * idf[:, None]).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez_compressed(
            f,
            labels=np.array(LABELS),
            feature_version=np.array(FEATURE_VERSION),
            vocab=vocab,
            weights=weights.astype(np.float16),
            idf2=(idf**2).astype(np.float32),
            intercept=intercept.astype(np.float32),
            meta=np.array(json.dumps(meta)),
            **({} if encoder_weights is None else {"encoder_weights": encoder_weights.astype(np.float32),
                                                   "encoder_alpha": np.array(encoder_alpha)}),
        )


class EncoderTierClassifier(EmbeddedClassifier):
    """The slower, more accurate offline tier: the embedded model's n-gram features and an all-MiniLM-L6-v2
    sentence vector (`classifiers.encoder`) in one linear model. Same artifact format plus `encoder_weights`
    (labels x 384) and `encoder_alpha`; logits = the n-gram kernel's + alpha * vector . encoder_weights.
    About 200 texts/s per 2 cores against the n-gram model's tens of thousands: for batch work, appeals, or a
    second opinion, not the default (README, "Which offline model")."""

    name = "encoder"

    def __init__(self, path: Path | str, prior: Sequence[float] | None = None, encoder=None):
        if not Path(path).is_file():
            raise ClassifierError(
                f"no encoder-tier model at {path}: none ships (it measured no better than the embedded model; README, "
                "'Which offline model'); build one with: uv run --all-extras python -m training.train_embedded --recipe combo")
        super().__init__(path, prior, guide=False)  # its lift would be computed without the sentence vector's part
        if self.sentence_max:  # its logits add a whole-text vector to the n-grams' reading: one reading per text
            raise ClassifierError(f"{self.path}: sentence_max is not supported by the encoder tier; retrain without it")
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                if "encoder_weights" not in npz.files:
                    raise ClassifierError(f"{self.path}: not an encoder-tier artifact (no encoder_weights)")
                self._encoder_weights = npz["encoder_weights"].astype(np.float32)
                self._alpha = float(npz["encoder_alpha"])
        except (OSError, ValueError, KeyError) as exc:
            raise ClassifierError(f"cannot load the encoder-tier model {self.path}: {exc}") from exc
        if self._encoder_weights.shape[0] != len(LABELS):
            raise ClassifierError(f"{self.path}: encoder weights are {self._encoder_weights.shape}, expected 4 rows")
        if encoder is None:
            from classifiers.encoder import EncoderUnavailable, SentenceEncoder

            try:
                encoder = SentenceEncoder()
            except EncoderUnavailable as exc:
                raise ClassifierError(str(exc)) from exc
        self.encoder = encoder

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.encoder.encode(list(texts))
        return super().logits(texts) + self._alpha * vectors @ self._encoder_weights.T

    def classify_with_categories(self, texts: Sequence[str]) -> tuple[list[LabelScores], list[dict[str, float]] | None]:
        return self.classify(texts), None  # no category heads for this tier

    def reference_logits(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.encoder.encode(list(texts))
        return super().reference_logits(texts) + self._alpha * vectors @ self._encoder_weights.T
