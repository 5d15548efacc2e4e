"""Shared test set-up. Tests never reach a network: hubs are off, AWS is moto_server on loopback."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ENVIRONMENT", "test")
os.environ["PREDICTION_LOG_URL"] = ""

# Fixture plugins (one line each): e.g. "tests.plugins.aws" provides moto_server.
pytest_plugins: list[str] = []
pytest_plugins.append("tests.plugins.aws")
pytest_plugins.append("tests.plugins.aws_model_check")
pytest_plugins.append("tests.plugins.tiny_qwen")


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _pipeline_records_in_tmp(tmp_path_factory, monkeypatch):
    """Step records (pipeline/records.py) go to a fresh folder per test, never to the checkout's out/."""
    monkeypatch.setenv("PIPELINE_OUT", str(tmp_path_factory.mktemp("pipeline-out")))
