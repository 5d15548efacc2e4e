"""Progress on long work (core/progress.py): where the log is not a terminal (CI, SageMaker, a pipe) it is one plain
line per interval with the count, the total, the elapsed time and an ETA, and a last line when the work ends; on a
terminal it is a tqdm bar. The LLM training loop, the deployment waits, data preparation and embedded training
use it."""

from __future__ import annotations

import io
import re
import types

import pytest

from core.progress import Progress, Waiting, progress

LINE = re.compile(r"^(?P<desc>[^:]+): (?P<done>\d+)/(?P<total>\d+) (?P<unit>\w+) \((?P<pct>\d+)%\), "
                  r"(?P<elapsed>\d+)s elapsed, eta (?P<eta>\d+s|\?)(?P<extra>.*)$")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_not_a_terminal_one_plain_line_per_interval_with_total_and_eta():
    stream = io.StringIO()
    assert list(progress(range(5), desc="evaluating", unit="batches", interval=0, stream=stream)) == [0, 1, 2, 3, 4]
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and len(lines) == 5  # one per update (interval 0); the last says it all
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [int(m["done"]) for m in parsed] == [1, 2, 3, 4, 5]
    assert {m["total"] for m in parsed} == {"5"} and {m["unit"] for m in parsed} == {"batches"}
    assert parsed[-1]["pct"] == "100" and parsed[-1]["eta"] == "0s"


def test_a_long_interval_writes_only_the_last_line_not_one_per_item():
    stream = io.StringIO()
    with Progress(total=10_000, desc="augmenting", unit="texts", interval=3600, stream=stream) as bar:
        for _ in range(10_000):
            bar.update(1, loss=0.25)
    [line] = stream.getvalue().splitlines()  # the last line only
    match = LINE.match(line)
    assert match["done"] == match["total"] == "10000" and match["extra"] == ", loss=0.2500"


def test_a_resumed_count_reports_from_where_it_started():
    stream = io.StringIO()
    with Progress(total=100, desc="training", unit="steps", initial=40, interval=0, stream=stream) as bar:
        bar.update(10)
    first = LINE.match(stream.getvalue().splitlines()[0])
    assert first["done"] == "50" and first["pct"] == "50" and first["eta"] != "?"


def test_a_terminal_gets_a_tqdm_bar():
    stream = Terminal()
    list(progress(range(3), desc="scoring", unit="batches", stream=stream))
    text = stream.getvalue()
    assert "\r" in text and "scoring" in text and "3/3" in text and "batches" in text


def test_a_wait_writes_each_change_of_state_at_once_and_its_deadline():
    stream = io.StringIO()
    with Waiting("endpoint e1", limit_s=3600, interval=3600, stream=stream) as wait:
        for state in ("Creating", "Creating", "Creating", "InService"):
            wait.status(state)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("endpoint e1: Creating, 0s elapsed (gives up after 3600s)")
    assert lines[1].startswith("endpoint e1: InService, ") and len(lines) == 2  # each change; nothing repeated


def test_the_training_loop_reports_steps_total_eta_and_loss():
    pytest.importorskip("transformers")
    from training.train_script import _Progress

    stream, logged = io.StringIO(), []
    callback = _Progress(log=logged.append, interval=0, stream=stream)
    args = types.SimpleNamespace(num_train_epochs=1.0)
    state = types.SimpleNamespace(max_steps=4, global_step=0)
    callback.on_train_begin(args, state, None)
    for step in range(1, 5):
        state.global_step = step
        callback.on_log(args, state, None, logs={"loss": 1.0 / step})
        callback.on_step_end(args, state, None)
    callback.on_train_end(args, state, None)
    assert logged == ["training: 4 steps (1 epoch(s) or --max-steps)"]
    lines = [LINE.match(line) for line in stream.getvalue().splitlines()]
    assert all(lines) and [int(m["done"]) for m in lines] == [1, 2, 3, 4]
    assert lines[-1]["total"] == "4" and lines[-1]["unit"] == "steps" and lines[-1]["extra"] == ", loss=0.2500"
