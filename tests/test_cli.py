"""The command-line entry points, run as a user runs them."""

import json
import subprocess
import sys

from core.settings import ROOT


def run(*args, stdin=None):
    return subprocess.run([sys.executable, *args], cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=120)


def test_normalize_one_text():
    out = run("-m", "normalizer", "ppl", "saying", "unal1ve")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["normalized_text"] == "ppl saying kill" and body["algospeak_detected"]


def test_normalize_a_file_to_jsonl(tmp_path):
    source = tmp_path / "posts.txt"
    source.write_text("k i l l them\nhave a nice day\ns3wer sl1de\n", encoding="utf-8")
    target = tmp_path / "out.jsonl"
    out = run("-m", "normalizer", "--file", str(source), "--out", str(target))
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [r["normalized_text"] for r in rows] == ["kill them", "have a nice day", "suicide"]
    assert "normalized 3 texts, 2 changed" in out.stderr


def test_check_db_passes_on_the_shipped_database():
    out = run("-m", "normalizer", "--check-db", "data/dataset/algospeak_patterns.json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 failing examples" in out.stderr


def test_user_errors_are_one_line():
    out = run("-m", "normalizer", "--file", "/no/such/file.txt")
    assert out.returncode == 1 and out.stderr.strip().startswith("error:") and "Traceback" not in out.stderr
    out = run("-m", "normalizer", "--db", "/no/such/db.json", "hi")
    assert out.returncode == 1 and "cannot read" in out.stderr and "Traceback" not in out.stderr


def test_moderator_cli_file_to_jsonl(tmp_path):
    source = tmp_path / "posts.txt"
    source.write_text("i will k1ll you\nlovely weather today\n", encoding="utf-8")
    target = tmp_path / "results.jsonl"
    out = run("moderator.py", "--file", str(source), "--out", str(target))
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [r["original_text"] for r in rows] == ["i will k1ll you", "lovely weather today"]
    assert rows[0]["normalized_text"] == "i will kill you"
    assert rows[1]["classification"] == "safe"
    assert "labels:" in out.stderr
