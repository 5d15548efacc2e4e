"""notebooks/experiment_tracking.ipynb runs top to bottom, offline, on MLflow runs this test creates."""

from pathlib import Path

import pytest

from core.settings import ROOT

NOTEBOOK = ROOT / "notebooks" / "experiment_tracking.ipynb"


def _png(path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1), dpi=20)
    ax.plot([0, 1], [0, 1])
    fig.savefig(path)
    plt.close(fig)
    return path


@pytest.mark.slow
def test_notebook_compares_the_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from training import tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with tracking.run(tracking.DEFAULT_EXPERIMENT, "train-tiny", params={"c": 8}, tags={"kind": "training"}, uri=uri) as m:
        m.log_metrics({"validation_macro_f1": 0.61})
    for name, f1 in (("eval-embedded-old", 0.62), ("eval-embedded-new", 0.65)):
        tags = {"kind": "evaluation", "model_name": "embedded", "model_version": name[-3:], "gate": "passed"}
        with tracking.run(tracking.DEFAULT_EXPERIMENT, name, tags=tags, uri=uri) as m:
            m.log_metrics({"macro_f1": f1, "ece": 0.1, "false_alarm_rate": 0.05, "variant_recall_with_normalizer": 0.8,
                           "variant_recall_without_normalizer": 0.7, "robust_leetspeak_without": 0.7,
                           "robust_leetspeak_with": 0.8})
            m.log_artifact(str(_png(tmp_path / "eval_reliability.png")))

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()

    text = "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/html", ""))
        for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
    )
    assert "3 run(s)" in text
    assert "eval-embedded-new" in text and "train-tiny" in text and "validation_macro_f1=0.61" in text
    assert "eval_reliability.png" in text  # the latest evaluation run's plot was fetched
    # the transfer table of the shipped model, from models/embedded/transfer.json
    assert "held-out domain" in text and "MEAN" in text and "api_traffic" in text
    images = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the comparison figure and the run's plot
