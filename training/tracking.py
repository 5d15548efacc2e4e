"""Experiment tracking: every training and evaluation run is logged to MLflow.

By default runs go to a local `mlruns/` folder (an SQLite database `mlruns/mlflow.db` and artifacts under
`mlruns/artifacts/`); set MLFLOW_TRACKING_URI to log elsewhere, e.g. SageMaker's managed MLflow tracking server
ARN or an `http://` server. Training runs and the evaluation runs of their models share an experiment, so they
sit side by side in the UI and in `notebooks/experiment_tracking.ipynb`.

    with tracking.run("stage2-qlora", "train-2026-12-02", params={...}, tags={...}) as active:
        active.log_metrics({"eval_loss": 0.41}, step=1)
        active.log_artifact(path)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.settings import ROOT, get_settings

__all__ = ["DEFAULT_EXPERIMENT", "tracking_uri", "run"]

DEFAULT_EXPERIMENT = "algospeak-stage2"


def tracking_uri(root: Path | None = None) -> str:
    """MLFLOW_TRACKING_URI when set (settings or environment), else the local `mlruns/` database."""
    configured = get_settings().mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if configured:
        return configured
    folder = (root or ROOT) / "mlruns"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def _experiment_id(mlflow, name: str, uri: str) -> str:
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = None
    if uri.startswith("sqlite:///"):  # keep local artifacts beside the local database
        location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


@contextmanager
def run(experiment: str, run_name: str, *, params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None, uri: str | None = None) -> Iterator[Any]:
    """An MLflow run with `params` and `tags` logged; yields the `mlflow` module for further logging."""
    try:
        import mlflow
    except ImportError as exc:
        raise RuntimeError("experiment tracking needs MLflow: uv sync --extra tracking") from exc
    uri = uri or tracking_uri()
    mlflow.set_tracking_uri(uri)
    experiment_id = _experiment_id(mlflow, experiment, uri)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags or {}):
        if params:
            mlflow.log_params({k: _short(v) for k, v in params.items()})
        yield mlflow


def _short(value: Any) -> Any:
    text = str(value)
    return text if len(text) <= 500 else text[:497] + "..."
