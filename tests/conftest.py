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
    """Step records (core/records.py) go to a fresh folder per test, never to the checkout's out/."""
    monkeypatch.setenv("PIPELINE_OUT", str(tmp_path_factory.mktemp("pipeline-out")))


# Tests marked `shared_data` read the real data sets in ../shared/data; where that folder is absent (a fresh clone
# elsewhere, the mutation run's copy of the tree) they skip and say why, instead of failing.
def pytest_runtest_setup(item):
    if item.get_closest_marker("shared_data") is not None:
        from core.settings import ROOT

        shared = ROOT.parent / "shared" / "data"
        if not shared.is_dir():
            pytest.skip(f"needs the shared data sets in {shared}, which is absent")


# Tests that build, train or serve a torch model (the tiny Qwen fixture, directly or through another fixture)
# take seconds each: they are `slow`, out of the inner loop, without a marker on each.
SLOW_FIXTURES = frozenset({"tiny_qwen_dir"})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
