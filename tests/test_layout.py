"""The layout says the flow: no import cycles among the project's modules, and no layer reaching up.

Layers, bottom to top: core/ (settings, labels, the prompt, the score check, the inference core, the step records)
-> normalizer/ and classifiers/ (Stage 1 and the Stage 2 backends) -> moderator.py (the two stages together) ->
the pipeline steps data/, training/, deployment/, monitoring/ -> pipeline/ (runs the steps); main.py and api/ (the API) and
bench/ use what they need. A module may import its own layer and the layers below.
"""

from __future__ import annotations

import pytest

from core.settings import ROOT
from tests.imports import cycles, import_graph

STEPS = ("data", "training", "deployment", "monitoring")
APP = ("main", "api", "bench")  # the API service (main.py, api/) and the benchmarks: above the steps
# What each lower layer may import (its own top-level name and these); everything else is above it.
ALLOWED_BELOW = {
    "core": {"core"},
    "normalizer": {"normalizer", "core"},
    "classifiers": {"classifiers", "normalizer", "core"},
    "moderator": {"moderator", "classifiers", "normalizer", "core"},
}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """'a -> b' for each import of a higher layer: a lower layer (core, normalizer, classifiers, the moderator)
    importing anything above it, or a pipeline step importing pipeline/ (the runner), the API or a benchmark."""
    found = []
    for module, imported in sorted(graph.items()):
        layer = module.split(".")[0]
        for target in sorted(imported):
            above = target.split(".")[0]
            if layer in ALLOWED_BELOW and above not in ALLOWED_BELOW[layer]:
                found.append(f"{module} -> {target}")
            elif layer in STEPS and above in ("pipeline", *APP):
                found.append(f"{module} -> {target}")
    return found


@pytest.fixture(scope="module")
def graph():
    return import_graph(ROOT)


def test_no_import_cycle_among_project_modules(graph):
    assert len(graph) > 60 and "training.train_embedded" in graph  # the whole project was read
    assert cycles(graph) == [], "import cycles (move the shared piece down a layer)"


def test_no_layer_imports_a_layer_above_it(graph):
    assert graph["classifiers.transformers"] >= {"core.llm_inference"}  # the inference core, from below
    assert upward_imports(graph) == []


def test_the_checks_catch_a_cycle_and_an_upward_import(tmp_path):
    """The two checks on a small tree with the faults this layout once had: a backend importing the inference
    core from a pipeline step, and two training modules importing each other (one of them inside a function)."""
    for package in ("core", "classifiers", "deployment", "training", "pipeline"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "core" / "labels.py").write_text("LABELS = ()\n")
    (tmp_path / "deployment" / "inference.py").write_text("from core.labels import LABELS\n")
    (tmp_path / "classifiers" / "transformers.py").write_text("from deployment.inference import LabelScorer\n")
    (tmp_path / "training" / "evaluation.py").write_text("from . import embedded\n")
    (tmp_path / "training" / "embedded.py").write_text("def promote():\n    from training import evaluation\n")
    (tmp_path / "training" / "job.py").write_text("from pipeline import run\n")
    (tmp_path / "pipeline" / "run.py").write_text("import training.job\n")
    planted = import_graph(tmp_path)
    assert cycles(planted) == [["pipeline.run", "training.job"], ["training.embedded", "training.evaluation"]]
    assert upward_imports(planted) == ["classifiers.transformers -> deployment.inference",
                                       "training.job -> pipeline", "training.job -> pipeline.run"]
