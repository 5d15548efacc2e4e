"""Each pipeline step runs as a script by its path (`python training/model_training.py --help`), as it does as a
module (`python -m training.model_training`): from the repository root and from elsewhere, with nothing on
PYTHONPATH. Every file with a `__main__` block in the step folders is found and run; none is listed by hand."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from core.settings import ROOT

STEP_DIRS = ("data", "training", "deployment", "monitoring", "pipeline")


def step_scripts() -> list[str]:
    return sorted(
        path.relative_to(ROOT).as_posix()
        for folder in STEP_DIRS
        for path in (ROOT / folder).glob("*.py")
        if 'if __name__ == "__main__":' in path.read_text(encoding="utf-8")
    )


def test_the_step_scripts_are_found():
    scripts = step_scripts()
    assert {"data/prepare.py", "data/data_ingestion.py", "training/model_training.py", "training/train_script.py",
            "training/model_evaluation.py", "training/train_embedded.py", "deployment/model_deployment.py",
            "monitoring/model_monitoring.py", "pipeline/run.py"} <= set(scripts)


@pytest.mark.parametrize("script", step_scripts())
def test_each_step_runs_by_its_path_with_help(script, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, str(ROOT / script), "--help"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert run.returncode == 0, f"python {script} --help failed: {run.stderr.strip().splitlines()[-1:]}"
    assert run.stdout.lstrip().startswith("usage:") and "--help" in run.stdout
