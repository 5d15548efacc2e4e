"""Fixtures for the monitoring tests: synthetic windows on disk, written once per session (read-only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitoring.prediction_log import PredictionLog
from tests.monitoring import synth


def write_log(url: str, rows: list[dict], *, log_text: bool) -> str:
    """Write results through the real PredictionLog path (queue, writer thread, close)."""
    log = PredictionLog(url, log_text=log_text)
    log.start()
    for row in rows:
        assert log.record(row)
    log.close()
    assert log.stats()["written"] == len(rows)
    return url


@pytest.fixture(scope="session")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    d = tmp_path_factory.mktemp("monitoring-data")
    return {
        "dir": d,
        "train": synth.write_training_jsonl(d / "train.jsonl", 1500, seed=1),
        "same": synth.write_results_jsonl(d / "current_same.jsonl", synth.results(600, seed=2)),
        "shifted": synth.write_results_jsonl(d / "current_shifted.jsonl", synth.results(600, seed=3, shifted=True)),
        "patterns": synth.write_pattern_db(d / "patterns.json"),
        # Prediction logs: a past period and two candidate current periods, texts kept (LOG_TEXT on).
        "log_ref": write_log(f"sqlite:///{d}/ref.db", synth.results(1200, seed=4), log_text=True),
        "log_same": write_log(f"sqlite:///{d}/same.db", synth.results(500, seed=5), log_text=True),
        "log_shifted": write_log(f"sqlite:///{d}/shifted.db", synth.results(500, seed=6, shifted=True),
                                 log_text=True),
        # The default: texts hashed.
        "log_hashed": write_log(f"sqlite:///{d}/hashed.db", synth.results(300, seed=7, shifted=True),
                                log_text=False),
    }

