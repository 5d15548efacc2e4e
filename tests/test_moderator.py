"""The moderator's rules, each tested with a scripted classifier and an input where the rule decides the outcome.

- more severe wins, in both directions, and `evasion_gap` = severity(normalized) - severity(raw);
- `confidence` is P(label or worse) for a flag and P(safe) for safe;
- a malformed classifier answer is refused (fallback, or ModerationUnavailable), never answered;
- thresholds: settings > the model's own > 0.5.
"""

from __future__ import annotations

import logging
import math

import pytest

from classifiers.base import ClassifierError, check_scores
from core.labels import LABELS, SEVERITY
from core.settings import DEFAULT_PATTERN_DB, Settings
from moderator import DEFAULT_THRESHOLD, ModerationUnavailable, Moderator, confidence, decide, resolve_thresholds
from normalizer.reload import ReloadingNormalizer
from tests.scripted import EXTREME, HARMFUL, POTENTIALLY, SAFE, Scripted, down

CODED = "go k1ll yourself"  # the normalizer rewrites it ...
DECODED = "go kill yourself"  # ... to this
PLAIN = "hello there"  # the normalizer leaves it alone
HALF = {"potentially_harmful": 0.5, "harmful": 0.5, "extremely_harmful": 0.5}


@pytest.fixture(scope="module")
def normalizer():
    return ReloadingNormalizer(DEFAULT_PATTERN_DB, 0)


@pytest.fixture(scope="module")
def settings():
    return Settings(environment="test", prediction_log_url="", _env_file=None)


@pytest.fixture
def make(normalizer, settings):
    def build(classifier, fallback=None, settings_=None):
        return Moderator(normalizer, classifier, settings_ or settings, fallback)

    return build


def test_the_fixture_texts_are_what_the_tests_assume(normalizer):
    assert normalizer.current().normalize(CODED).text == DECODED
    assert not normalizer.current().normalize(PLAIN).changed


def _rounded(scores):
    return {k: round(v, 6) for k, v in scores.items()}


# ---------------------------------------------------------------------------------------------- more severe wins
def test_the_original_reading_wins_when_normalizing_would_make_the_text_look_safer(make):
    classifier = Scripted({CODED: EXTREME, DECODED: SAFE})
    [result] = make(classifier).moderate_batch([CODED])
    assert classifier.calls == [[DECODED, CODED]]  # one batch: the normalized text, then the original
    assert result["classification"] == "extremely_harmful"
    assert result["scores"] == _rounded(EXTREME)  # the scores of the reading that won
    assert result["confidence"] == pytest.approx(EXTREME["extremely_harmful"])
    assert result["normalized_classification"] == "safe"
    assert result["raw_classification"] == "extremely_harmful"
    assert result["raw_scores"] == _rounded(EXTREME)
    assert result["evasion_gap"] == -3  # severity(normalized) - severity(raw)
    assert result["normalized_text"] == DECODED and result["original_text"] == CODED


def test_the_normalized_reading_wins_when_it_is_more_severe(make):
    classifier = Scripted({CODED: SAFE, DECODED: EXTREME})
    [result] = make(classifier).moderate_batch([CODED])
    assert result["classification"] == "extremely_harmful"
    assert result["scores"] == _rounded(EXTREME)
    assert result["confidence"] == pytest.approx(EXTREME["extremely_harmful"])
    assert result["normalized_classification"] == "extremely_harmful"
    assert result["raw_classification"] == "safe"
    assert result["raw_scores"] == _rounded(SAFE)
    assert result["evasion_gap"] == 3


@pytest.mark.parametrize(
    ("raw", "normalized", "label", "gap"),
    [
        (POTENTIALLY, HARMFUL, "harmful", 1),
        (HARMFUL, POTENTIALLY, "harmful", -1),
        (SAFE, POTENTIALLY, "potentially_harmful", 1),
        (EXTREME, HARMFUL, "extremely_harmful", -1),
    ],
)
def test_more_severe_wins_between_neighbouring_labels(make, raw, normalized, label, gap):
    [result] = make(Scripted({CODED: raw, DECODED: normalized})).moderate_batch([CODED])
    assert result["classification"] == label
    assert result["scores"] == _rounded(raw if SEVERITY[decide(raw, HALF)] > SEVERITY[decide(normalized, HALF)] else normalized)
    assert result["evasion_gap"] == gap == SEVERITY[result["normalized_classification"]] - SEVERITY[result["raw_classification"]]


def test_a_tie_reports_the_normalized_reading(make):
    other_harmful = {"safe": 0.3, "potentially_harmful": 0.05, "harmful": 0.55, "extremely_harmful": 0.1}
    [result] = make(Scripted({CODED: other_harmful, DECODED: HARMFUL})).moderate_batch([CODED])
    assert result["classification"] == result["raw_classification"] == result["normalized_classification"] == "harmful"
    assert result["scores"] == _rounded(HARMFUL)
    assert result["evasion_gap"] == 0


def test_an_unchanged_text_is_classified_once_and_has_no_raw_reading(make):
    classifier = Scripted({PLAIN: HARMFUL})
    [result] = make(classifier).moderate_batch([PLAIN])
    assert classifier.calls == [[PLAIN]]
    assert result["classification"] == result["normalized_classification"] == "harmful"
    assert result["raw_classification"] is None and result["raw_scores"] is None
    assert result["evasion_gap"] == 0
    assert result["algospeak_detected"] is False and result["matches"] == []


def test_a_batch_pairs_each_text_with_its_own_readings(make):
    """Changed and unchanged texts interleaved: each result takes its scores from its own slots."""
    table = {
        PLAIN: POTENTIALLY,
        CODED: EXTREME, DECODED: SAFE,
        "i will unal1ve you": SAFE, "i will kill you": HARMFUL,
        "good morning": SAFE,
    }  # fmt: skip
    texts = [PLAIN, CODED, "good morning", "i will unal1ve you"]
    classifier = Scripted(table)
    results = make(classifier).moderate_batch(texts, ["a", "b", "c", "d"])
    assert classifier.calls == [[PLAIN, DECODED, CODED, "good morning", "i will kill you", "i will unal1ve you"]]
    assert [r["original_text"] for r in results] == texts
    assert [r["request_id"] for r in results] == ["a", "b", "c", "d"]
    assert [r["classification"] for r in results] == ["potentially_harmful", "extremely_harmful", "safe", "harmful"]
    assert [r["raw_classification"] for r in results] == [None, "extremely_harmful", None, "safe"]
    assert [r["evasion_gap"] for r in results] == [0, -3, 0, 2]


# ---------------------------------------------------------------------------------------------- confidence
TAIL_CASES = [
    # scores, label at 0.5, P(label), P(label or worse)
    ({"safe": 0.3, "potentially_harmful": 0.1, "harmful": 0.35, "extremely_harmful": 0.25}, "harmful", 0.35, 0.6),
    ({"safe": 0.45, "potentially_harmful": 0.3, "harmful": 0.15, "extremely_harmful": 0.1}, "potentially_harmful", 0.3, 0.55),
    ({"safe": 0.6, "potentially_harmful": 0.2, "harmful": 0.1, "extremely_harmful": 0.1}, "safe", 0.6, 0.6),
    ({"safe": 0.2, "potentially_harmful": 0.1, "harmful": 0.1, "extremely_harmful": 0.6}, "extremely_harmful", 0.6, 0.6),
]


@pytest.mark.parametrize(("scores", "label", "p_label", "expected"), TAIL_CASES)
def test_confidence_is_the_probability_behind_the_decision(scores, label, p_label, expected):
    assert decide(scores, HALF) == label
    assert scores[label] == p_label
    assert confidence(scores, label) == pytest.approx(expected)


def test_confidence_of_safe_is_p_safe_not_the_whole_mass():
    scores = {"safe": 0.6, "potentially_harmful": 0.2, "harmful": 0.1, "extremely_harmful": 0.1}
    assert confidence(scores, "safe") == pytest.approx(0.6)


@pytest.mark.parametrize(("scores", "label", "p_label", "expected"), TAIL_CASES)
def test_the_result_carries_that_confidence(make, scores, label, p_label, expected):
    [result] = make(Scripted({PLAIN: scores})).moderate_batch([PLAIN])
    assert result["classification"] == label
    assert result["confidence"] == pytest.approx(expected)


def test_confidence_comes_from_the_reading_that_won(make):
    raw = {"safe": 0.3, "potentially_harmful": 0.1, "harmful": 0.35, "extremely_harmful": 0.25}  # harmful, 0.6
    [result] = make(Scripted({CODED: raw, DECODED: SAFE})).moderate_batch([CODED])
    assert result["classification"] == "harmful"
    assert result["confidence"] == pytest.approx(0.6)


# ---------------------------------------------------------------------------------------------- the answer check
GOOD = {"safe": 0.7, "potentially_harmful": 0.1, "harmful": 0.1, "extremely_harmful": 0.1}
MALFORMED = {
    "too few results": lambda texts: [dict(GOOD)] * (len(texts) - 1),
    "too many results": lambda texts: [dict(GOOD)] * (len(texts) + 1),
    "no results": lambda texts: [],
    "not a list": lambda texts: tuple(dict(GOOD) for _ in texts),
    "an item is not a dict": lambda texts: [[0.7, 0.1, 0.1, 0.1] for _ in texts],
    "a missing label": lambda texts: [{"safe": 0.8, "potentially_harmful": 0.1, "harmful": 0.1} for _ in texts],
    "an extra label": lambda texts: [{**GOOD, "spam": 0.0} for _ in texts],
    "a renamed label": lambda texts: [{"benign": 0.7, "potentially_harmful": 0.1, "harmful": 0.1, "extremely_harmful": 0.1} for _ in texts],
    "a negative value": lambda texts: [{"safe": 1.2, "potentially_harmful": -0.2, "harmful": 0.0, "extremely_harmful": 0.0} for _ in texts],
    "just above one, within the sum's tolerance": lambda texts: [{"safe": 1.0005, "potentially_harmful": 0.0, "harmful": 0.0, "extremely_harmful": 0.0} for _ in texts],
    "a value above one": lambda texts: [{"safe": 1.5, "potentially_harmful": 0.0, "harmful": 0.0, "extremely_harmful": 0.0} for _ in texts],
    "NaN": lambda texts: [{"safe": math.nan, "potentially_harmful": 0.1, "harmful": 0.1, "extremely_harmful": 0.1} for _ in texts],
    "infinity": lambda texts: [{"safe": math.inf, "potentially_harmful": 0.0, "harmful": 0.0, "extremely_harmful": 0.0} for _ in texts],
    "a bool value": lambda texts: [{"safe": True, "potentially_harmful": 0, "harmful": 0, "extremely_harmful": 0} for _ in texts],
    "a string value": lambda texts: [{"safe": "0.7", "potentially_harmful": 0.1, "harmful": 0.1, "extremely_harmful": 0.1} for _ in texts],
    "0.5 each (sums to 2)": lambda texts: [dict.fromkeys(LABELS, 0.5) for _ in texts],
    "sums to 0.5": lambda texts: [{"safe": 0.2, "potentially_harmful": 0.1, "harmful": 0.1, "extremely_harmful": 0.1} for _ in texts],
    "sums to 1.01": lambda texts: [{"safe": 0.71, "potentially_harmful": 0.1, "harmful": 0.1, "extremely_harmful": 0.1} for _ in texts],
    "only the second text is bad": lambda texts: [dict(GOOD), dict.fromkeys(LABELS, 0.5)][: len(texts)],
}


# What the refusal says (it reaches clients in the 503's reason and /ready's): who answered, and what was wrong.
REFUSAL = {
    "too few results": "sagemaker returned 1 results for 2 texts",
    "too many results": "sagemaker returned 3 results for 2 texts",
    "no results": "sagemaker returned 0 results for 2 texts",
    "not a list": "sagemaker returned tuple results for 2 texts",
    "an item is not a dict": "sagemaker returned labels [0.7, 0.1, 0.1, 0.1]",
    "a missing label": "sagemaker returned labels ['harmful', 'potentially_harmful', 'safe']",
    "an extra label": "sagemaker returned labels ['extremely_harmful', 'harmful', 'potentially_harmful', 'safe', 'spam']",
    "a renamed label": "sagemaker returned labels ['benign', 'extremely_harmful', 'harmful', 'potentially_harmful']",
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_the_answer_check_refuses(case):
    answer = MALFORMED[case]([PLAIN, "good morning"])
    with pytest.raises(ClassifierError) as refused:
        check_scores(answer, 2, "sagemaker")
    if case in REFUSAL:
        assert str(refused.value) == REFUSAL[case]
    else:
        bad = next(item for item in answer if item != GOOD)
        assert str(refused.value) == f"sagemaker returned scores that are not finite probabilities summing to 1: {bad}"


@pytest.mark.parametrize(
    "answer",
    [
        [dict(GOOD), {"safe": 1, "potentially_harmful": 0, "harmful": 0, "extremely_harmful": 0}],  # ints are fine
        [{"safe": 0.7004, "potentially_harmful": 0.1, "harmful": 0.1, "extremely_harmful": 0.1}, dict(GOOD)],  # rounding
        [{"safe": 0.0, "potentially_harmful": 0.0, "harmful": 0.0, "extremely_harmful": 1.0}, dict(GOOD)],  # the edges
    ],
)
def test_the_answer_check_passes_probabilities(answer):
    checked = check_scores(answer, 2, "sagemaker")
    assert checked == answer  # the same probabilities ...
    assert all(list(item) == list(LABELS) and all(type(v) is float for v in item.values()) for item in checked)  # as floats


def _categories(**changed):
    from core.categories import CATEGORIES

    return {**dict.fromkeys(CATEGORIES, 0.25), **changed}


@pytest.mark.parametrize(
    "answer, refusal",
    [
        (lambda: [_categories()] * 3, "sagemaker returned 3 category results for 2 texts"),
        (lambda: 42, "sagemaker returned int category results for 2 texts"),
        (lambda: [_categories(), 0.5], "sagemaker returned categories 0.5"),
        (lambda: [_categories(), {k: v for k, v in list(_categories().items())[1:]}],
         f"sagemaker returned categories {sorted(list(_categories())[1:])}"),
        (lambda: [_categories(), _categories(spam=0.1)], f"sagemaker returned categories {sorted(_categories(spam=0.1))}"),
        (lambda: [_categories(), _categories(hate=True)], "not probabilities"),
        (lambda: [_categories(), _categories(hate="0.5")], "not probabilities"),
        (lambda: [_categories(), _categories(hate=1.5)], "not probabilities"),
        (lambda: [_categories(), _categories(hate=-0.1)], "not probabilities"),
    ],
)  # fmt: skip
def test_the_category_check_refuses(answer, refusal):
    """The harm categories a backend answers: one dict per text, exactly the categories, each a probability."""
    from core.scores import check_categories

    value = answer()
    with pytest.raises(ClassifierError) as refused:
        check_categories(value, 2, "sagemaker")
    if refusal == "not probabilities":
        assert str(refused.value) == f"sagemaker returned category scores that are not probabilities: {value[1]}"
    else:
        assert str(refused.value) == refusal


def test_the_category_check_passes_probabilities_and_no_answer():
    from core.categories import CATEGORIES
    from core.scores import check_categories

    assert check_categories(None, 2, "embedded") is None  # a backend without category heads
    edges = [_categories(hate=0.0, violence=1.0), _categories(hate=1)]  # the edges, and an int
    checked = check_categories(edges, 2, "sagemaker")
    assert checked == edges and all(list(c) == list(CATEGORIES) and all(type(v) is float for v in c.values())
                                    for c in checked)  # fmt: skip


def test_a_model_answering_categories_flags_each_from_its_threshold_up():
    from classifiers.base import AnswerCategories
    from core.categories import CATEGORIES

    default = AnswerCategories()
    assert default.thresholds == dict.fromkeys(CATEGORIES, 0.5)
    assert default.flagged(_categories(hate=0.5, violence=0.49)) == ["hate"]  # "yes" at least as likely as "no"
    assert AnswerCategories(0.25).flagged(_categories(hate=0.2)) == [c for c in CATEGORIES if c != "hate"]


class _WithCategories(Scripted):
    """A backend with category heads: severity from the table, category probabilities from `kinds`."""

    def __init__(self, table, kinds):
        from classifiers.base import AnswerCategories

        super().__init__(table, name="sagemaker")
        self.kinds = kinds
        self.categories = AnswerCategories()

    def classify_with_categories(self, texts):
        return self.classify(texts), [dict(self.kinds.get(t, _categories())) for t in texts]


def test_categories_come_from_both_readings_and_from_stage1(make):
    """A flagged text's categories: each the higher of its two readings' probabilities; flagged from the
    category's threshold by the classifier, and by Stage 1's match (the decoded "kill" is violence)."""
    backend = _WithCategories({DECODED: HARMFUL, CODED: SAFE, PLAIN: SAFE},
                              {DECODED: _categories(violence=0.75, harassment=0.5), CODED: _categories(harassment=0.625),
                               PLAIN: _categories(hate=0.875)})  # fmt: skip
    coded, plain = make(backend).moderate_batch([CODED, PLAIN])
    assert coded["classification"] == "harmful"
    assert coded["categories"] == _categories(violence=0.75, harassment=0.625)
    assert coded["flagged_categories"] == ["harassment", "violence"]  # in CATEGORIES order
    assert coded["category_evidence"] == {"harassment": ["classifier"], "violence": ["classifier", "stage1"]}
    assert plain["classification"] == "safe"
    assert plain["categories"] == _categories(hate=0.875)  # reported, though a safe text flags none
    assert (plain["flagged_categories"], plain["category_evidence"]) == ([], {})


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_answer_is_never_answered(make, case):
    """With a fallback the fallback answers and says so; without, moderation is unavailable."""
    texts = [PLAIN, "good morning"]
    broken = Scripted(name="sagemaker", answer=MALFORMED[case])
    fallback = Scripted({PLAIN: HARMFUL}, name="embedded", version="fb-1")
    results = make(broken, fallback).moderate_batch(texts)
    assert fallback.calls == [texts]
    assert [r["stage2_status"] for r in results] == ["fallback:embedded"] * 2
    assert [r["classification"] for r in results] == ["harmful", "safe"]
    assert all(r["model"] == {"backend": "embedded", "version": "fb-1"} and r["mock_mode"] for r in results)
    with pytest.raises(ModerationUnavailable, match="^classifier sagemaker failed: sagemaker returned "):
        make(Scripted(name="sagemaker", answer=MALFORMED[case])).moderate_batch(texts)


def test_a_backend_bug_is_a_failure_too(make):
    broken = Scripted(name="sagemaker", error=KeyError("logits"))
    [result] = make(broken, Scripted(name="embedded")).moderate_batch([PLAIN])
    assert result["stage2_status"] == "fallback:embedded"
    with pytest.raises(ModerationUnavailable, match="logits"):
        make(Scripted(name="sagemaker", error=KeyError("logits"))).moderate_batch([PLAIN])


def test_a_malformed_fallback_answer_is_refused_too(make):
    fallback = Scripted(name="embedded", answer=MALFORMED["0.5 each (sums to 2)"])
    with pytest.raises(ModerationUnavailable, match="both failed: endpoint timed out after 5.0 s; embedded returned scores"):
        make(down(), fallback).moderate_batch([PLAIN])


def test_a_healthy_backend_answers_itself(make):
    primary = Scripted({PLAIN: HARMFUL}, name="sagemaker", version="endpoint-v9")
    fallback = Scripted(name="embedded")
    [result] = make(primary, fallback).moderate_batch([PLAIN], ["rid-1"])
    assert fallback.calls == []
    assert result["stage2_status"] == "ok" and result["stage1_status"] == "ok"
    assert result["model"] == {"backend": "sagemaker", "version": "endpoint-v9"}
    assert result["mock_mode"] is False
    assert result["request_id"] == "rid-1"
    assert result["classification"] == "harmful"


class FailsOn:
    """A normalizer (the ReloadingNormalizer interface) with a bug on one text."""

    def __init__(self, inner: ReloadingNormalizer, bad: str):
        self.inner = inner.current()
        self.bad = bad
        self.version = self.inner.version

    def current(self):
        return self

    def normalize(self, text):
        if text == self.bad:
            raise RuntimeError("normalizer bug")
        return self.inner.normalize(text)


def test_a_normalizer_failure_classifies_the_original_text(normalizer, settings, caplog):
    classifier = Scripted({CODED: HARMFUL, DECODED: SAFE})
    moderator = Moderator(FailsOn(normalizer, CODED), classifier, settings)
    with caplog.at_level(logging.ERROR, logger="moderator"):
        [failed, fine] = moderator.moderate_batch([CODED, "i will unal1ve you"])
    assert caplog.messages == ["normalizer failed; classifying the original text"]  # with the traceback
    assert classifier.calls == [[CODED, "i will kill you", "i will unal1ve you"]]
    assert failed["stage1_status"] == "error" and fine["stage1_status"] == "ok"
    assert failed["normalized_text"] == CODED and failed["matches"] == [] and failed["algospeak_detected"] is False
    assert failed["matches_omitted"] == 0
    assert failed["classification"] == "harmful" and failed["raw_classification"] is None


# ---------------------------------------------------------------------------------------------- thresholds
class NoAttribute:
    name = "bare"
    version = "0"

    def classify(self, texts):
        return [dict(SAFE) for _ in texts]


NONE = {"potentially_harmful": None, "harmful": None, "extremely_harmful": None}


def test_thresholds_default_to_one_half():
    assert resolve_thresholds(NONE, Scripted()) == dict.fromkeys(LABELS[1:], DEFAULT_THRESHOLD) == HALF
    assert resolve_thresholds(NONE, NoAttribute()) == HALF
    assert resolve_thresholds({}, Scripted()) == HALF


def test_the_models_own_thresholds_beat_the_default():
    own = Scripted(thresholds={"harmful": 0.8})  # a partial set: the rest stay at 0.5, but extreme never below harmful
    assert resolve_thresholds(NONE, own) == {"potentially_harmful": 0.5, "harmful": 0.8, "extremely_harmful": 0.8}


def test_settings_beat_the_models_own_thresholds():
    own = Scripted(thresholds={"potentially_harmful": 0.3, "harmful": 0.8, "extremely_harmful": 0.9})
    configured = {"potentially_harmful": None, "harmful": 0.0, "extremely_harmful": 0.0}  # 0.0 is a setting, not "unset"
    assert resolve_thresholds(configured, own) == {"potentially_harmful": 0.3, "harmful": 0.0, "extremely_harmful": 0.0}


def test_threshold_is_reached_at_equality():
    scores = {"safe": 0.5, "potentially_harmful": 0.0, "harmful": 0.0, "extremely_harmful": 0.5}
    assert decide(scores, HALF) == "extremely_harmful"
    assert decide(scores, {**HALF, "extremely_harmful": 0.51}) == "harmful"  # the tail reaches 0.5 there


TUNED = {"potentially_harmful": 0.3, "harmful": 0.8, "extremely_harmful": 0.9}
SIXTY = {"safe": 0.3, "potentially_harmful": 0.1, "harmful": 0.5, "extremely_harmful": 0.1}  # P(harmful+) = 0.6


def test_the_models_thresholds_change_the_label(make, settings):
    [untuned] = make(Scripted({PLAIN: SIXTY})).moderate_batch([PLAIN])
    assert untuned["classification"] == "harmful" and untuned["confidence"] == pytest.approx(0.6)
    [tuned] = make(Scripted({PLAIN: SIXTY}, thresholds=TUNED)).moderate_batch([PLAIN])
    assert tuned["classification"] == "potentially_harmful"  # 0.6 < the model's 0.8
    assert tuned["confidence"] == pytest.approx(0.7)
    override = settings.model_copy(update={"threshold_harmful": 0.55})
    [overridden] = make(Scripted({PLAIN: SIXTY}, thresholds=TUNED), settings_=override).moderate_batch([PLAIN])
    assert overridden["classification"] == "harmful"


def test_the_fallback_decides_with_its_own_thresholds(make):
    primary = Scripted(name="sagemaker", thresholds={"potentially_harmful": 0.1, "harmful": 0.1, "extremely_harmful": 0.1},
                       error=ClassifierError("down"))  # fmt: skip
    [result] = make(primary, Scripted({PLAIN: SIXTY}, name="embedded", thresholds=TUNED)).moderate_batch([PLAIN])
    assert result["stage2_status"] == "fallback:embedded"
    assert result["classification"] == "potentially_harmful"
    [untuned] = make(down(), Scripted({PLAIN: SIXTY}, name="embedded")).moderate_batch([PLAIN])
    assert untuned["classification"] == "harmful"


# ---------------------------------------------------------------------------------------------- building and ids
@pytest.mark.parametrize(
    ("backend", "policy", "fallback"),
    [("sagemaker", "embedded", "embedded"), ("sagemaker", "error", None), ("embedded", "embedded", None)],
)
def test_from_settings_builds_the_fallback_only_for_a_remote_backend(backend, policy, fallback):
    """The embedded fallback answers for a remote backend under the embedded policy; an offline backend has
    none (it is its own last resort), nor does the error policy."""
    settings = Settings(environment="test", prediction_log_url="", classifier_backend=backend, fallback_policy=policy,
                        sagemaker_endpoint_name="endpoint-x", _env_file=None)  # fmt: skip
    moderator = Moderator.from_settings(settings)
    assert moderator.classifier.name == backend
    assert (moderator.fallback.name if moderator.fallback else None) == fallback
    assert (moderator.fallback_thresholds is not None) == (fallback is not None)
    assert moderator.normalizer.current().normalize(CODED).text == DECODED
    assert moderator.mock_mode == (backend == "embedded")


def test_from_settings_without_settings_reads_the_environment(monkeypatch):
    from core.settings import get_settings

    get_settings.cache_clear()
    monkeypatch.setenv("CLASSIFIER_BACKEND", "sagemaker")
    monkeypatch.setenv("SAGEMAKER_ENDPOINT_NAME", "from-env")
    monkeypatch.setenv("FALLBACK_POLICY", "error")
    try:
        moderator = Moderator.from_settings()
    finally:
        get_settings.cache_clear()
    assert moderator.classifier.name == "sagemaker" and moderator.fallback is None


def test_moderate_one_text_keeps_the_callers_request_id_or_makes_one(make):
    moderator = make(Scripted({PLAIN: HARMFUL}))
    given = moderator.moderate(PLAIN, "rid-7")
    assert given["request_id"] == "rid-7" and given["classification"] == "harmful"
    made = [moderator.moderate(PLAIN)["request_id"] for _ in range(2)]
    assert all(len(r) == 32 and int(r, 16) >= 0 for r in made) and made[0] != made[1]


def test_the_start_up_log_states_the_thresholds_in_force(normalizer, settings, caplog):
    """The README tells operators to read the thresholds in force from the start-up log."""
    with caplog.at_level(logging.INFO, logger="moderator"):
        Moderator(normalizer, Scripted(name="sagemaker", thresholds=TUNED), settings)
        override = settings.model_copy(update={"threshold_harmful": 0.55})
        Moderator(normalizer, Scripted(name="sagemaker", thresholds=TUNED), override)
    assert caplog.messages == [
        f"decision thresholds for sagemaker: {TUNED}",
        f"decision thresholds for sagemaker: {TUNED | {'harmful': 0.55}} (THRESHOLD_* settings override the model's)",
    ]


def test_latency_is_the_batchs_time_shared_among_its_texts(make, monkeypatch):
    """A scripted clock, not a measured one: the batch took a third of a second; milliseconds, 3 decimals."""
    import moderator as module

    for texts, per_text in (([PLAIN, "good morning"], 166.667), ([PLAIN], 333.333)):
        ticks = iter([10.0])  # the start, then a third of a second later for every later reading
        monkeypatch.setattr(module.time, "perf_counter", lambda: next(ticks, 10.0 + 1 / 3))
        results = make(Scripted()).moderate_batch(texts)
        assert [r["latency_ms"] for r in results] == [per_text] * len(texts)


def test_scores_and_confidence_are_rounded_to_six_decimals(make):
    thirds = {"safe": 1 / 3, "potentially_harmful": 1 / 3, "harmful": 1 / 6, "extremely_harmful": 1 / 6}
    [result] = make(Scripted({PLAIN: thirds})).moderate_batch([PLAIN])
    assert result["classification"] == "potentially_harmful"  # P(potentially_harmful or worse) = 2/3
    assert result["confidence"] == 0.666667
    assert result["scores"] == {"safe": 0.333333, "potentially_harmful": 0.333333, "harmful": 0.166667,
                                "extremely_harmful": 0.166667}  # fmt: skip


def test_the_result_has_exactly_the_typed_fields(make):
    """core.result.ModerationResult is the one description of a result: the moderator fills every field, no more."""
    from core.result import ModerationResult

    for text in (PLAIN, CODED):
        [result] = make(Scripted()).moderate_batch([text])
        assert list(result) == list(ModerationResult.__annotations__)


def test_a_failure_and_the_fallback_are_logged(make, caplog):
    """What an operator reads: which backend failed, why, and who answered instead; a bug with its traceback."""
    with caplog.at_level(logging.WARNING, logger="moderator"):
        make(down(), Scripted(name="embedded")).moderate_batch([PLAIN])
        make(Scripted(name="sagemaker", error=KeyError("logits")), Scripted(name="embedded")).moderate_batch([PLAIN])
    assert caplog.messages == [
        "classifier sagemaker failed (endpoint timed out after 5.0 s); answering with embedded",
        "classifier sagemaker raised",
        "classifier sagemaker failed ('logits'); answering with embedded",
    ]
    assert caplog.records[1].exc_info is not None


# ---------------------------------------------------------------------------------------------- the command line
# moderator.main in-process, where the mutation run sees it (tests/test_cli.py also runs it as a user does, in a
# subprocess, with the real settings and model).
@pytest.fixture
def cli(make, monkeypatch):
    def use(classifier):
        built = make(classifier)
        monkeypatch.setattr(Moderator, "from_settings", classmethod(lambda cls, settings=None: built))
        return classifier

    return use


def test_the_cli_moderates_the_words_it_is_given_as_one_text(cli, capsys):
    import json

    import moderator

    cli(Scripted({DECODED + " café": EXTREME}))
    assert moderator.main(["go", "k1ll", "yourself", "café"]) == 0
    out = capsys.readouterr().out
    assert out.startswith('{\n  "') and "café" in out  # indented JSON, non-ASCII as written
    result = json.loads(out)
    assert (result["original_text"], result["normalized_text"]) == (CODED + " café", DECODED + " café")
    assert result["classification"] == "extremely_harmful"


def test_the_cli_moderates_a_file_in_batches_to_jsonl_in_order(cli, tmp_path, capsys):
    import json

    import moderator

    texts = [CODED, PLAIN, "naïve café", PLAIN + " again", CODED]
    source, target = tmp_path / "posts.txt", tmp_path / "results.jsonl"
    source.write_bytes("\r\n".join(texts).encode() + b"\r\n")  # Windows line ends are not part of a text
    classifier = cli(Scripted({DECODED: HARMFUL}))
    assert moderator.main(["--file", str(source), "--out", str(target), "--batch-size", "2"]) == 0
    written = target.read_text(encoding="utf-8")
    rows = [json.loads(line) for line in written.splitlines()]
    assert [r["original_text"] for r in rows] == texts
    assert [r["classification"] for r in rows] == ["harmful", "safe", "safe", "safe", "harmful"]
    assert "naïve café" in written  # not \u-escaped
    assert [len(set(batch) - {DECODED}) for batch in classifier.calls] == [2, 2, 1]  # --batch-size texts a call
    assert capsys.readouterr().err.splitlines()[-1] == (
        "labels: safe 3, potentially_harmful 0, harmful 2, extremely_harmful 0")


def test_the_cli_reads_texts_from_stdin(cli, tmp_path, monkeypatch, capsys):
    import io
    import json

    import moderator

    cli(Scripted())
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{PLAIN}\n{CODED}\n"))
    target = tmp_path / "results.jsonl"
    assert moderator.main(["--file", "-", "--out", str(target)]) == 0
    assert [json.loads(line)["original_text"] for line in target.read_text().splitlines()] == [PLAIN, CODED]
    assert capsys.readouterr().err.splitlines()[-1] == "labels: safe 2, potentially_harmful 0, harmful 0, extremely_harmful 0"


def test_cli_user_errors_are_one_line(cli, tmp_path, monkeypatch, capsys):
    import moderator
    from normalizer import PatternDatabaseError

    cli(Scripted())
    with pytest.raises(SystemExit) as exit_:
        moderator.main([])
    assert exit_.value.code == 2 and "give a text, or --file PATH" in capsys.readouterr().err
    missing = tmp_path / "no-such.txt"
    assert moderator.main(["--file", str(missing)]) == 1
    assert capsys.readouterr().err == f"error: {missing}: No such file or directory\n"
    assert moderator.main(["--file", "-", "--out", str(tmp_path / "no-dir" / "out.jsonl")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'no-dir' / 'out.jsonl'}: No such file or directory\n"
    for error in (PatternDatabaseError("/x.json", ["cannot read it"]), ClassifierError("needs SAGEMAKER_ENDPOINT_NAME"),
                  ValueError("bad THRESHOLD_HARMFUL")):
        def broken(cls, settings=None, error=error):
            raise error

        monkeypatch.setattr(Moderator, "from_settings", classmethod(broken))
        assert moderator.main(["hello"]) == 1
        assert capsys.readouterr().err == f"error: {error}\n"


def test_the_cli_help_says_how_to_use_it(capsys):
    import moderator

    with pytest.raises(SystemExit) as done:
        moderator.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: moderator.py [-h] [--file FILE] [--out OUT] [--batch-size BATCH_SIZE]")
    assert moderator.__doc__.strip().splitlines()[0] in out  # the module's own usage notes, as written
    for line in ("a text to moderate", "one text per line ('-' for stdin); results as JSONL",
                 "write results here instead of stdout"):
        assert line in " ".join(out.split()), line
