"""Finding 7 of issue 13: the prediction log's text hash was unsalted SHA-256, and 8 of 9 guessed short texts
matched stored rows. Now it is HMAC-SHA256 under TEXT_HASH_KEY (required in production)."""

import hashlib
import hmac
import logging

import pytest
from pydantic import ValidationError

import monitoring.prediction_log as prediction_log
from core.settings import Settings
from monitoring.prediction_log import PredictionLog, read_records
from tests.monitoring import synth

GUESSES = ["kys", "kill yourself", "unalive", "i hate you", "die", "go k1ll yourself", "seggs", "hello", "lol"]


def _stored(tmp_path, texts, **kwargs):
    url = f"sqlite:///{tmp_path}/log.db"
    log = PredictionLog(url, **kwargs)
    base = synth.results(1, seed=3)[0]
    for text in texts:
        log.record({**base, "original_text": text})
    log.close()
    return log, [r["text_sha256"] for r in read_records(url).records]


def test_guessing_a_short_text_does_not_find_its_row(tmp_path):
    log, digests = _stored(tmp_path, GUESSES, hash_key=b"k" * 32)
    guessed = {hashlib.sha256(g.encode()).hexdigest() for g in GUESSES}
    assert not guessed & set(digests)  # before: 9 of 9 would match
    # With the key, equal texts still share a digest (repeats can be counted) and it is the HMAC of the text.
    assert digests == [hmac.new(b"k" * 32, g.encode(), hashlib.sha256).hexdigest() for g in GUESSES]


def test_the_key_comes_from_settings(tmp_path):
    settings = Settings(environment="test", prediction_log_url=f"sqlite:///{tmp_path}/s.db",
                        text_hash_key="a-secret-of-32-characters-or-so!", _env_file=None)  # fmt: skip
    log = PredictionLog.from_settings(settings)
    assert log.hash_key == b"a-secret-of-32-characters-or-so!"
    assert "a-secret" not in repr(settings)  # a SecretStr: never printed


def test_without_a_key_a_random_one_is_made_with_a_warning(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(prediction_log, "_PROCESS_KEY", None)
    with caplog.at_level(logging.WARNING, logger="monitoring.prediction_log"):
        log, digests = _stored(tmp_path, ["kys"])
    assert len(log.hash_key) == 32
    assert digests != [hashlib.sha256(b"kys").hexdigest()]
    assert "TEXT_HASH_KEY is not set" in caplog.text


def test_production_requires_a_key_and_a_real_api_key():
    strong = "x" * 32
    logged = {"prediction_log_url": "sqlite:///predictions.db", "_env_file": None}
    with pytest.raises(ValidationError, match="TEXT_HASH_KEY must be set"):
        Settings(environment="production", api_key=strong, **logged)
    with pytest.raises(ValidationError, match="at least 16 characters"):  # before: a one-character key passed
        Settings(environment="production", api_key="k", text_hash_key=strong, **logged)
    with pytest.raises(ValidationError, match="TEXT_HASH_KEY must have at least 16"):
        Settings(environment="development", text_hash_key="short", **logged)
    Settings(environment="production", api_key=strong, text_hash_key=strong, **logged)
    Settings(environment="production", api_key=strong, prediction_log_url="", _env_file=None)  # no log, no key
