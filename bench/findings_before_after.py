"""Issue 13's findings, before and after: each finding's tests run on this checkout and on the code before the
hardening (default f8a605f, the parent of the first issue-13 commit 06cbabe), and how each one ends there.

    uv run --frozen --all-extras python -m bench.findings_before_after [--before REV] [--only 1 8] [--timeout 120]

The revision is exported with `git archive` into a temporary folder beside a link to ../shared, the current tests/
and bench/findings_public.py are copied over it, and each test runs in its own pytest process (with `timeout`,
since some old paths never return) under this checkout's interpreter. Two kinds of test per finding:

- the suite's tests as they are (tests/...): on the old code most fail at import (the modules the fixes added do
  not exist there), which says nothing about behaviour; the table says so ("import");
- bench/findings_public.py: the same behaviour through interfaces the old code has (HTTP to create_app's app or to
  `python main.py`, the normalizer's public API), so the old code fails on the behaviour the issue found.

Prints a Markdown table (finding, test, before, now) and writes bench/results/findings_before_after.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from bench.common import export as export_tree, git_revision, write_result
from core.settings import ROOT

BEFORE = "f8a605f"  # the parent of 06cbabe, the first issue-13 commit

H, P, S = "tests/api/test_hardening.py", "bench/findings_public.py", "tests/api/test_serving.py"
FINDINGS: list[tuple[str, str, list[str]]] = [
    ("1", "spaced-word decoding blows up", [
        "tests/normalizer/test_bounded.py::test_worst_input_time_per_character_is_bounded",
        f"{H}::test_the_spaced_leet_input_answers_promptly",
        f"{P}::test_1_the_issue_spaced_leet_input_is_normalized_in_bounded_time",
        f"{P}::test_1_health_answers_while_the_issue_input_is_moderated",
    ]),
    ("1", "Done-when: /health under 50 ms, worst input (full length, main.py)", [
        f"{H}::test_health_answers_within_50ms_while_full_length_worst_batches_are_moderated",
    ]),
    ("2", "a database edit can hang the server", [
        "tests/normalizer/test_reload.py::test_the_issue_patterns_are_refused_quickly",
        f"{P}::test_2_a_database_edit_with_a_catastrophic_pattern_neither_hangs_nor_is_taken",
    ]),
    ("3", "large adversarial batches: answer size", [
        f"{H}::test_answers_are_bounded_matches_capped_with_a_count_of_the_rest",
        f"{P}::test_3_answers_are_bounded",
    ]),
    ("4", "prediction-log backpressure", [
        f"{H}::test_a_full_prediction_log_queue_drops_and_counts_instead_of_blocking",
        f"{P}::test_4_a_locked_prediction_log_neither_slows_answers_nor_health",
    ]),
    ("5", "slow or silent SageMaker endpoint (Done-when: black hole)", [
        f"{H}::test_a_black_hole_endpoint_neither_freezes_health_nor_queues_without_bound",
        f"{P}::test_5_a_black_hole_endpoint_neither_holds_new_requests_nor_health",
    ]),
    ("6", "control characters hide algospeak", [
        "tests/normalizer/test_invisible.py::test_the_api_answers_the_issue_examples",
        "tests/normalizer/test_invisible.py::test_a_control_or_format_character_inside_a_word_hides_nothing",
        f"{H}::test_control_characters_do_not_hide_algospeak",
        f"{P}::test_6_control_characters_do_not_hide_algospeak",
    ]),
    ("7", "unsalted text hash", [
        "tests/monitoring/test_text_hash.py::test_guessing_a_short_text_does_not_find_its_row",
        f"{P}::test_7_a_guessed_short_text_does_not_find_its_logged_row",
    ]),
    ("8a", "405 without Allow", [f"{H}::test_405_says_which_methods_are_allowed",
                                 f"{P}::test_8_405_says_which_methods_are_allowed"]),
    ("8b", "UTF-16/UTF-32 bodies accepted", [f"{H}::test_utf16_and_utf32_bodies_are_refused",
                                             f"{P}::test_8_utf16_and_utf32_bodies_are_refused"]),
    ("8c", "text/plain message does not name the type", [
        f"{H}::test_a_text_plain_body_gets_a_message_naming_the_content_type",
        f"{P}::test_8_a_text_plain_body_gets_a_message_naming_the_content_type"]),
    ("8d", "/ready and 503s show paths and the endpoint URL", [
        f"{H}::test_ready_shows_details_only_with_the_key_and_never_paths_or_urls",
        f"{P}::test_8_ready_shows_no_paths_or_urls_without_the_key"]),
    ("8e", "a flood of /ready invokes the endpoint each time", [
        f"{H}::test_a_flood_of_ready_probes_the_classifier_one_call_at_a_time",
        f"{P}::test_8_a_flood_of_ready_probes_the_classifier_one_call_at_a_time"]),
    ("8f", "incomplete requests held open", [
        f"{H}::test_an_incomplete_body_is_not_held_open",
        f"{S}::test_a_client_trickling_its_headers_gets_408_and_loses_the_connection",
        f"{P}::test_8_an_incomplete_body_is_not_held_open",
        f"{P}::test_8_a_client_trickling_its_headers_is_cut_off"]),
    ("8g", "one-character API_KEY accepted in production", [
        "tests/monitoring/test_text_hash.py::test_production_requires_a_key_and_a_real_api_key",
        f"{P}::test_8_production_refuses_a_one_character_api_key"]),
    ("8h", "real endpoints counted under path=\"other\"", [
        f"{H}::test_real_endpoints_keep_their_metric_label_after_random_paths",
        f"{P}::test_8_real_endpoints_keep_their_metric_label_after_random_paths"]),
    ("8i", "a reload blocks requests (~0.25 s)", [
        "tests/normalizer/test_reload.py::test_a_slow_reload_never_blocks_current",
        f"{P}::test_8_a_database_reload_does_not_block_requests"]),
    ("8j", "fuzzed texts change on a second normalization", [
        "tests/normalizer/test_properties.py::test_fuzz_finds_are_idempotent_with_the_product_database",
        f"{P}::test_8_a_second_normalization_changes_nothing_on_the_fuzz_finds"]),
    ("8k", "unterminated bidi override loses its closing mark", [
        "tests/normalizer/test_invisible.py::test_a_rewrite_keeps_the_closing_bidi_mark",
        f"{P}::test_8_a_rewrite_keeps_the_closing_bidi_mark"]),
    ("8l", "kill -9 loses queued records", [
        "tests/api/test_durable_log.py::test_a_killed_server_loses_no_answered_record_with_the_journal",
        f"{P}::test_8_a_killed_server_loses_no_answered_record_with_the_journal"]),
]  # fmt: skip

IMPORT_MARKS = ("ImportError", "ModuleNotFoundError", "cannot import name", "No module named")


def export(revision: str, into: Path) -> Path:
    """The revision's tree with the current tests over it, beside a link to ../shared (as a worktree has)."""
    tree = export_tree(revision, into / "repo", ())
    shared = ROOT.parent / "shared"
    if shared.exists():
        (into / "shared").symlink_to(shared)
    shutil.copytree(ROOT / "tests", tree / "tests", dirs_exist_ok=True)
    shutil.copy(ROOT / "bench" / "findings_public.py", tree / "bench" / "findings_public.py")
    return tree


def run_one(tree: Path, node: str, timeout: float) -> dict:
    """One test (all its parameters) in a pytest process of its own; how it ended and the first failure's line."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        command = ["timeout", "-s", "KILL", str(int(timeout)), sys.executable, "-m", "pytest", "-q", "-p", "no:randomly",
                   "-p", "no:cacheprovider", f"--junitxml={report}", node]  # fmt: skip
        started = time.monotonic()
        done = subprocess.run(command, cwd=tree, capture_output=True, text=True)
        seconds = round(time.monotonic() - started, 1)
        if done.returncode in (124, 137, -9):
            return {"outcome": "timeout", "detail": f"killed after {int(timeout)} s (never finished)", "seconds": seconds}
        output = done.stdout + done.stderr
        import_line = next((ln.strip() for ln in output.splitlines() if any(m in ln for m in IMPORT_MARKS)), "")
        if not report.exists():  # a conftest that did not import stops pytest before its report
            last = output.strip().splitlines()[-1:] or [""]
            return {"outcome": "import" if import_line else "error", "detail": import_line or last[0], "seconds": seconds}
        cases = ET.parse(report).getroot().iter("testcase")
        counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
        detail = ""
        for case in cases:
            bad = case.find("failure") if case.find("failure") is not None else case.find("error")
            if case.find("skipped") is not None:
                counts["skipped"] += 1
            elif bad is not None:
                counts["failed" if bad.tag == "failure" else "error"] += 1
                detail = detail or _first_line(bad)
            else:
                counts["passed"] += 1
        if counts["error"] and not counts["passed"] + counts["failed"] and import_line:  # the module did not import
            return {"outcome": "import", "detail": import_line.removeprefix("E").strip(), "seconds": seconds}
        if not sum(counts.values()):
            return {"outcome": "error", "detail": output.strip()[-200:], "seconds": seconds}
        if counts["failed"] or counts["error"]:
            outcome = "import" if any(m in detail for m in IMPORT_MARKS) else "fails"
        else:
            outcome = "passes" if counts["passed"] else "skipped"
        return {"outcome": outcome, "detail": detail, "counts": counts, "seconds": seconds}


def _first_line(element: ET.Element) -> str:
    message = element.get("message") or ""
    text = element.text or ""
    for line in [message, *text.splitlines()]:
        line = line.strip()
        if line.startswith("E ") or line and line == message.strip():
            return line.removeprefix("E").strip()[:220]
    return message[:220]


def describe(result: dict) -> str:
    counts = result.get("counts")
    ran = f" ({counts['failed'] + counts['error']} of {sum(counts.values())})" if counts and result["outcome"] == "fails" else ""
    if result["outcome"] in ("passes", "skipped"):
        return result["outcome"] + (f" ({sum(counts.values())})" if counts and sum(counts.values()) > 1 else "")
    return f"**{result['outcome']}**{ran}: {result['detail']}".replace("|", "\\|")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=BEFORE, type=git_revision, help=f"the revision before the fixes (default {BEFORE})")
    parser.add_argument("--only", nargs="*", help="findings to run (e.g. 1 2 8a); default all")
    parser.add_argument("--timeout", type=float, default=150, help="seconds per test process (default 150)")
    parser.add_argument("--out", default="findings_before_after", help="result name under bench/results/")
    args = parser.parse_args()
    chosen = [f for f in FINDINGS if not args.only or f[0] in args.only or f[0][0] in args.only]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        old = export(args.before, Path(tmp))
        for finding, what, nodes in chosen:
            for node in nodes:
                before = run_one(old, node, args.timeout)
                now = run_one(ROOT, node, args.timeout)
                rows.append({"finding": finding, "what": what, "test": node, "before": before, "now": now})
                why = f"\n      before: {before['detail']}" if before["outcome"] not in ("passes", "skipped") else ""
                print(f"{finding:>3} {node.split('::')[-1][:70]:70} before: {before['outcome']:8} now: {now['outcome']}{why}",
                      file=sys.stderr, flush=True)  # fmt: skip
    print(f"| finding | test | on {args.before} | now |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['finding']} {row['what']} | `{row['test'].replace('tests/', '').replace('bench/', '')}` | "
              f"{describe(row['before'])} | {describe(row['now'])} |")
    path = write_result(args.out, {"before": args.before, "command": " ".join(sys.argv), "rows": rows,
                                   "load_average": os.getloadavg()})  # fmt: skip
    print(f"\nwritten: {path.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
