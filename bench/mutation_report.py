"""The mutation score per module, from the last mutation run's results (mutants/*.meta, written by mutmut).

    uv run --frozen --all-extras python bench/mutation_report.py            # a Markdown table
    uv run --frozen --all-extras python bench/mutation_report.py --survivors moderator.py   # the survivors' names

Score = killed / (killed + survived + timeout-as-killed...): killed and timed-out mutants count as caught;
survivors and mutants no test reaches ("no tests") count against; mutants not yet checked are left out and
counted separately, so a partial run is visible as such.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
CAUGHT = {1: "killed", 3: "killed", 36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout",
          37: "caught"}  # fmt: skip
MISSED = {0: "survived", 5: "no tests", 33: "no tests"}


def results() -> dict[str, dict[str, int | None]]:
    out = {}
    for meta in sorted(MUTANTS.rglob("*.py.meta")):
        codes = json.loads(meta.read_text(encoding="utf-8")).get("exit_code_by_key", {})
        if codes:
            out[str(meta.relative_to(MUTANTS))[: -len(".meta")]] = codes
    return out


def table(by_module: dict[str, dict[str, int | None]]) -> str:
    lines = ["| module | mutants | killed | timeout | survived | no tests | not checked | score |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for module, codes in by_module.items():
        values = list(codes.values())
        killed = sum(CAUGHT.get(v) in ("killed", "caught") for v in values)
        timeout = sum(CAUGHT.get(v) == "timeout" for v in values)
        survived = sum(MISSED.get(v) == "survived" for v in values)
        no_tests = sum(MISSED.get(v) == "no tests" for v in values)
        unchecked = sum(v is None for v in values)
        checked = killed + timeout + survived + no_tests
        score = f"{(killed + timeout) / checked:.0%}" if checked else "-"
        lines.append(f"| {module} | {len(values)} | {killed} | {timeout} | {survived} | {no_tests} | {unchecked} | {score} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--survivors", metavar="MODULE", help="list the surviving mutants of one module")
    args = parser.parse_args(argv)
    by_module = results()
    if not by_module:
        print("no mutation results: run bash bench/mutation.sh first", file=sys.stderr)
        return 1
    if args.survivors:
        for name, code in by_module.get(args.survivors, {}).items():
            if code in MISSED:
                print(name, MISSED[code])
        return 0
    print(table(by_module))
    return 0


if __name__ == "__main__":
    sys.exit(main())
