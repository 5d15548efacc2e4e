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
        assert client.post("/moderate", json={"text": "hi"}).status_code == 401
        assert client.post("/moderate", json={"text": "hi"}, headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.post("/moderate", json={"text": "hi"}, headers={"X-API-Key": "s3cret-key"}).status_code == 200
        assert client.post("/normalize", json={"text": "hi"}, headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
        assert client.get("/health").status_code == 200


def test_production_refuses_to_start_without_a_key():
    with pytest.raises(ValueError, match="API_KEY"):
        Settings(environment="production", _env_file=None)


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
