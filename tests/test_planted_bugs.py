"""The suite catches the bugs a review planted (issue 19): each is planted in a copy of its module, and the
tests that exercise that module are run against the copy in a fresh interpreter; they must fail.

If a planted line no longer exists (the code was rewritten), the test says so: update the plant, so the bug
stays covered. The mutation run (bench/mutation.sh) covers the same ground more widely.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from core.settings import ROOT

# name: (module, file, the line as written, the line with the bug, the tests that must catch it)
PLANTED = {
    "evasion_gap with its sign flipped": (
        "moderator", "moderator.py",
        "evasion_gap=SEVERITY[normalized_label] - SEVERITY[raw_label] if raw_label else 0,",
        "evasion_gap=SEVERITY[raw_label] - SEVERITY[normalized_label] if raw_label else 0,",
        ["tests/test_moderator.py"],
    ),
    "confidence is P(label), not P(label or worse)": (
        "moderator", "moderator.py",
        "return sum(scores[other] for other in LABELS[SEVERITY[label] :])",
        "return scores[label]",
        ["tests/test_moderator.py"],
    ),
    "the sum-to-one check removed": (
        "core.scores", "core/scores.py",
        "or abs(math.fsum(values) - 1.0) > SUM_TOLERANCE:",
        "or False:",
        ["tests/test_moderator.py"],
    ),
    "the micro-batcher hands results back in reverse order": (
        "main", "main.py",
        "for (_, _, future), result in zip(live, results):",
        "for (_, _, future), result in zip(live, reversed(results)):",
        ["tests/api/test_concurrency.py"],
    ),
    "/ready is ready whatever the probe says": (
        "main", "main.py",
        "failure = probe_classifier(m)",
        "failure = probe_classifier(m) and None",
        ["tests/api/test_concurrency.py"],
    ),
    "the normalized reading always wins (normalizing can make a text look safer)": (
        "moderator", "moderator.py",
        "if SEVERITY[raw_label] > SEVERITY[normalized_label]:",
        "if False:",
        ["tests/test_moderator.py", "tests/api/test_api.py::test_normalizing_never_makes_a_text_look_safer"],
    ),
}

# Loads the planted copy under the module's own name before pytest imports anything, so every test's import
# of the module gets the copy.
RUNNER = textwrap.dedent(
    """
    import importlib, importlib.util, sys
    name, path, *args = sys.argv[1:]
    if "." in name:
        importlib.import_module(name.rpartition(".")[0])
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    import pytest
    sys.exit(pytest.main(args))
    """
)


def _run_against(module: str, file: str, source: str, tests: list[str], tmp_path) -> subprocess.CompletedProcess:
    copy = tmp_path / file.replace("/", "_")
    copy.write_text(source, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-c", RUNNER, module, str(copy), "-x", "-q", "-p", "no:cacheprovider", *tests],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=600,
    )


@pytest.mark.slow
@pytest.mark.parametrize("bug", list(PLANTED))
def test_the_planted_bug_fails_a_test(bug, tmp_path):
    module, file, line, planted, tests = PLANTED[bug]
    source = (ROOT / file).read_text(encoding="utf-8")
    assert source.count(line) == 1, f"{file} no longer has {line!r}: plant {bug!r} in the code as it is now"
    run = _run_against(module, file, source.replace(line, planted), tests, tmp_path)
    # 1: tests ran and failed. (2 or more would be an error in the plant itself, not a caught bug.)
    assert run.returncode == 1, f"{bug}: exit {run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}"
    assert "FAILURES" in run.stdout


@pytest.mark.slow
@pytest.mark.parametrize("module, file", sorted({(m, f) for m, f, *_ in PLANTED.values()}))
def test_the_copies_without_a_bug_pass(module, file, tmp_path):
    """The control: loaded the same way, the module as written passes the same tests (so a failure above is
    the bug's doing, not the loading's)."""
    tests = sorted({t for m, _, _, _, ts in PLANTED.values() if m == module for t in ts})
    run = _run_against(module, file, (ROOT / file).read_text(encoding="utf-8"), tests, tmp_path)
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}"
