"""bench/bench_endpoint_load.py: the load test against the local container on the tiny model, its result read
by deploy's loader; and failing steps (nothing listening) give no sustainable rate, exit 1, and a result deploy
refuses."""

from __future__ import annotations

import json

import pytest

from bench import bench_endpoint_load as load
from deployment.model_deployment import SAFETY_FACTOR, DeploymentError, load_test_target


def test_local_container_load_test_feeds_deploy(tiny_qwen_dir, tmp_path, capsys):
    out = tmp_path / "endpoint_load.json"
    rc = load.main(["--local-model-dir", str(tiny_qwen_dir), "--concurrency", "1", "2", "--step-seconds", "1",
                    "--texts-per-invocation", "2", "--warmup-invocations", "1", "--local-threads", "1",
                    "--output", str(out), "--label", "test"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    result = json.loads(out.read_text())
    assert [s["concurrency"] for s in result["steps"]] == [1, 2]
    for step in result["steps"]:
        assert step["ok"] > 0 and step["errors"] == 0 and step["meets_objective"]
        assert 0 < step["latency_p50_ms"] <= step["latency_p95_ms"] <= step["latency_p99_ms"] <= 1000
        assert step["texts_per_s"] == pytest.approx(2 * step["invocations_per_s"], abs=0.02)
    best = max(s["invocations_per_s"] for s in result["steps"])
    assert result["max_sustainable_invocations_per_second"] == best
    per_minute = result["max_sustainable_invocations_per_minute_per_instance"]
    assert per_minute > 0 and per_minute == pytest.approx(best * 60, abs=0.1)
    assert result["target"]["kind"] == "local container" and result["target"]["model_version"]
    assert result["objective"]["latency_p99_ms"] == 1000 and result["label"] == "test"
    target, source = load_test_target(out, None)
    assert target > 0 and target == round(per_minute * SAFETY_FACTOR, 1)
    assert str(out) in source
    assert "max sustainable" in printed and "p99 ms" in printed


def test_nothing_listening_gives_no_sustainable_rate(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    out = tmp_path / "endpoint_load.json"
    rc = load.main(["--endpoint-name", "algospeak-stage2", "--endpoint-url", f"http://127.0.0.1:{load.free_port()}",
                    "--concurrency", "1", "2", "--step-seconds", "0.3", "--warmup-invocations", "1",
                    "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "NO sustainable rate" in err and "EndpointConnectionError" in err
    result = json.loads(out.read_text())
    assert result["max_sustainable_invocations_per_minute_per_instance"] is None
    assert len(result["steps"]) == 1  # stops at the first step that misses the objective
    step = result["steps"][0]
    assert step["ok"] == 0 and step["errors"] > 0 and not step["meets_objective"]
    with pytest.raises(DeploymentError, match="no load-test result"):
        load_test_target(out, None)


def test_a_container_that_cannot_start_is_a_clear_error(tmp_path, capsys):
    rc = load.main(["--local-model-dir", str(tmp_path / "absent"), "--output", str(tmp_path / "r.json")])
    assert rc == 2
    assert "exited during start-up" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_objective_judgement():
    step = {"ok": 1000, "error_rate": 0.0, "latency_p99_ms": 900.0}
    assert load.judge(step, 1000, 0.001) == (True, "ok")
    assert load.judge({**step, "latency_p99_ms": 1200.0}, 1000, 0.001)[0] is False
    assert load.judge({**step, "error_rate": 0.002}, 1000, 0.001)[1].startswith("error rate")
    assert load.judge({"ok": 0, "error_rate": 1.0, "latency_p99_ms": None}, 1000, 0.001)[0] is False
    steps = [{"meets_objective": True, "invocations_per_s": 5.0}, {"meets_objective": True, "invocations_per_s": 9.0},
             {"meets_objective": False, "invocations_per_s": 12.0}]
    assert load.sustainable(steps)["invocations_per_s"] == 9.0
    assert load.sustainable(steps[2:]) is None
