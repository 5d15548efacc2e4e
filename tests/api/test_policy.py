"""What happens when Stage 2 fails, and API keys: never a silent "safe"."""

import pytest

from classifiers.base import ClassifierError
from classifiers.embedded import EmbeddedClassifier
from core.settings import DEFAULT_EMBEDDED_MODEL, Settings
from moderator import ModerationUnavailable, Moderator, decide
from normalizer.reload import ReloadingNormalizer
from tests.api.conftest import LiveServer


class BrokenBackend:
    """A remote backend that is down: every call fails the way a real client reports it."""

    name = "sagemaker"
    version = "endpoint-v7"

    def classify(self, texts):
        raise ClassifierError("endpoint timed out after 5.0 s")


@pytest.fixture(scope="module")
def embedded():
    return EmbeddedClassifier(DEFAULT_EMBEDDED_MODEL)


def _moderator(settings, classifier, fallback):
    return Moderator(ReloadingNormalizer(settings.pattern_db_path, 0), classifier, settings, fallback)


def test_failure_falls_back_and_says_so(server_settings, embedded):
    moderator = _moderator(server_settings, BrokenBackend(), embedded)
    [result] = moderator.moderate_batch(["i will unalive you"])
    assert result["stage2_status"] == "fallback:embedded"
    assert result["model"]["backend"] == "embedded"
    assert result["mock_mode"] is True


class ShortAnswers:
    """A backend with a bug: one answer for a whole batch."""

    name = "sagemaker"
    version = "endpoint-v8"

    def classify(self, texts):
        return [{"safe": 1.0, "potentially_harmful": 0.0, "harmful": 0.0, "extremely_harmful": 0.0}]


def test_malformed_answers_are_failures_not_safe(server_settings, embedded):
    [a, b] = _moderator(server_settings, ShortAnswers(), embedded).moderate_batch(["i will unalive you", "hello"])
    assert a["stage2_status"] == b["stage2_status"] == "fallback:embedded"
    with pytest.raises(ModerationUnavailable, match="1 results for 3 texts"):  # "unalive" doubles a text
        _moderator(server_settings, ShortAnswers(), None).moderate_batch(["i will unalive you", "hello"])


def test_failure_without_fallback_is_503(server_settings):
    with pytest.raises(ModerationUnavailable):
        _moderator(server_settings, BrokenBackend(), None).moderate("hello")
    with LiveServer(server_settings, _moderator(server_settings, BrokenBackend(), None)) as client:
        response = client.post("/moderate", json={"text": "hello"})
        assert response.status_code == 503
        assert "timed out" in response.json()["detail"]
        assert client.get("/ready").status_code == 503


def test_api_key_is_required_when_set(server_settings, embedded):
    settings = server_settings.model_copy(update={"api_key": "s3cret-key"})
    with LiveServer(settings, _moderator(settings, embedded, None)) as client:
        missing = client.post("/moderate", json={"text": "hi"})
        assert missing.status_code == 401
        assert missing.json()["detail"] == "missing or wrong API key (send it as X-API-Key)"  # says how to send it
        assert client.post("/moderate", json={"text": "hi"}, headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.post("/moderate", json={"text": "hi"}, headers={"X-API-Key": "s3cret-key"}).status_code == 200
        assert client.post("/normalize", json={"text": "hi"}, headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
        assert client.get("/health").status_code == 200


def test_production_refuses_to_start_without_a_key():
    with pytest.raises(ValueError, match="API_KEY"):
        Settings(environment="production", _env_file=None)


@pytest.mark.parametrize("key", ["clé-secrète-1234567", "a key with spaces 123", "tab\tseparated-123456"])
def test_an_api_key_no_client_could_send_is_refused_at_start(key):
    """Header values travel as bytes a server reads as Latin-1 and clients send as UTF-8: "clé..." could never match."""
    with pytest.raises(ValueError, match="printable ASCII"):
        Settings(api_key=key, _env_file=None)
    assert Settings(api_key="s3cret-K3Y_with.punct!", _env_file=None).api_key == "s3cret-K3Y_with.punct!"


@pytest.mark.parametrize(
    "scores, label",
    [
        ({"safe": 0.9, "potentially_harmful": 0.05, "harmful": 0.03, "extremely_harmful": 0.02}, "safe"),
        ({"safe": 0.4, "potentially_harmful": 0.1, "harmful": 0.2, "extremely_harmful": 0.3}, "harmful"),
        ({"safe": 0.3, "potentially_harmful": 0.1, "harmful": 0.05, "extremely_harmful": 0.55}, "extremely_harmful"),
        ({"safe": 0.45, "potentially_harmful": 0.3, "harmful": 0.15, "extremely_harmful": 0.1}, "potentially_harmful"),
    ],
)
def test_cumulative_thresholds(scores, label):
    assert decide(scores, {"potentially_harmful": 0.5, "harmful": 0.5, "extremely_harmful": 0.5}) == label


def test_stricter_threshold_flags_more():
    scores = {"safe": 0.7, "potentially_harmful": 0.1, "harmful": 0.15, "extremely_harmful": 0.05}
    assert decide(scores, {"potentially_harmful": 0.5, "harmful": 0.5, "extremely_harmful": 0.5}) == "safe"
    assert decide(scores, {"potentially_harmful": 0.5, "harmful": 0.2, "extremely_harmful": 0.5}) == "harmful"


class Tuned:
    """A backend that says P(harmful or worse) = 0.6 for everything and was tuned to flag only from 0.8."""

    name = "embedded"
    version = "tuned-v1"
    thresholds = {"potentially_harmful": 0.3, "harmful": 0.8, "extremely_harmful": 0.9}

    def classify(self, texts):
        return [{"safe": 0.3, "potentially_harmful": 0.1, "harmful": 0.5, "extremely_harmful": 0.1} for _ in texts]


def test_the_models_own_thresholds_decide_unless_settings_override_them(server_settings):
    [tuned] = _moderator(server_settings, Tuned(), None).moderate_batch(["hello"])
    assert tuned["classification"] == "potentially_harmful"  # 0.6 < the model's 0.8 for harmful
    assert tuned["confidence"] == pytest.approx(0.7)
    override = server_settings.model_copy(update={"threshold_harmful": 0.5})
    [overridden] = _moderator(override, Tuned(), None).moderate_batch(["hello"])
    assert overridden["classification"] == "harmful"


def test_the_fallback_decides_with_its_own_thresholds(server_settings):
    untuned = BrokenBackend()  # no thresholds of its own: 0.5 would flag 0.6 as harmful
    [result] = _moderator(server_settings, untuned, Tuned()).moderate_batch(["hello"])
    assert result["stage2_status"] == "fallback:embedded"
    assert result["classification"] == "potentially_harmful"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("safe=0.9,harmful=0.1", "missing potentially_harmful, extremely_harmful"),
        ("safe=0.9,potentially_harmful=0.05,harmful=0.03,extremely_harmful=0.03", "sum to 1"),
        ("safe=0.9,potentially_harmful=x,harmful=0.05,extremely_harmful=0.05", "'x' is not a number"),
        ("benign=0.9,potentially_harmful=0.05,harmful=0.03,extremely_harmful=0.02", "unknown label 'benign'"),
        ("safe=1,potentially_harmful=0,harmful=0,extremely_harmful=0", "between 0 and 1"),
    ],
)
def test_a_malformed_label_prior_is_refused_with_the_reason(value, message):
    with pytest.raises(ValueError, match=message):
        Settings(label_prior=value, _env_file=None)


def test_a_stated_prior_moves_the_embedded_models_probabilities(embedded):
    from core.settings import parse_prior

    text = ["you people are disgusting and should leave"]
    [base] = embedded.classify(text)
    harmful_traffic = EmbeddedClassifier(DEFAULT_EMBEDDED_MODEL, prior=parse_prior(
        "safe=0.4,potentially_harmful=0.2,harmful=0.2,extremely_harmful=0.2"))
    [shifted] = harmful_traffic.classify(text)
    assert shifted["harmful"] + shifted["extremely_harmful"] > base["harmful"] + base["extremely_harmful"]
    assert shifted["safe"] < base["safe"]
    assert harmful_traffic.thresholds == embedded.thresholds  # the decision rule is the model's; only the mix moved


def test_a_harmful_threshold_above_the_models_extreme_one_still_bars_the_extreme_label(server_settings):
    # THRESHOLD_HARMFUL=0.5 over a model tuned at 0.225 for both: P(extreme)=0.3 with P(harmful or worse)=0.45
    # must not come out extremely_harmful when it is not even harmful.
    from moderator import resolve_thresholds

    class Low(Tuned):
        thresholds = {"potentially_harmful": 0.2, "harmful": 0.225, "extremely_harmful": 0.225}

        def classify(self, texts):
            return [{"safe": 0.5, "potentially_harmful": 0.05, "harmful": 0.15, "extremely_harmful": 0.3} for _ in texts]

    settings = server_settings.model_copy(update={"threshold_harmful": 0.5})
    assert resolve_thresholds(settings.thresholds, Low())["extremely_harmful"] == 0.5
    [result] = _moderator(settings, Low(), None).moderate_batch(["hello"])
    assert result["classification"] == "potentially_harmful"


def test_label_prior_refuses_duplicates_and_stray_commas():
    with pytest.raises(ValueError, match="given twice"):
        Settings(label_prior="safe=0.1,safe=0.8,potentially_harmful=0.1,harmful=0.05,extremely_harmful=0.05",
                 _env_file=None)
    with pytest.raises(ValueError, match="stray comma"):
        Settings(label_prior="safe=0.8,potentially_harmful=0.1,harmful=0.05,extremely_harmful=0.05,",
                 _env_file=None)


def test_the_encoder_backend_without_its_model_says_how_to_build_one(tmp_path):
    from classifiers.embedded import EncoderTierClassifier

    with pytest.raises(ClassifierError, match="none ships.*--recipe combo"):
        EncoderTierClassifier(tmp_path / "missing.npz")
