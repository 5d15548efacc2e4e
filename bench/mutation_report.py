"""The mutation score per module, from the last mutation run's results (mutants/*.meta, written by mutmut).

    uv run --frozen --all-extras python bench/mutation_report.py            # a Markdown table
    uv run --frozen --all-extras python bench/mutation_report.py --survivors moderator.py   # the survivors' names

Score = killed / (killed + survived + timeout-as-killed...): killed and timed-out mutants count as caught;
survivors and mutants no test reaches ("no tests") count against; mutants not yet checked are left out and
counted separately, so a partial run is visible as such. The last column leaves out the command-line entry
points (`main()` of moderator.py and main.py): tests/test_cli.py runs them as a user does, in a subprocess,
which mutmut cannot see, so all their mutants read "no tests".
"""

from __future__ import annotations

import argparse
import json
import math
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


def _counts(values: list[int | None]) -> dict[str, int]:
    return {
        "killed": sum(CAUGHT.get(v) in ("killed", "caught") for v in values),
        "timeout": sum(CAUGHT.get(v) == "timeout" for v in values),
        "survived": sum(MISSED.get(v) == "survived" for v in values),
        "no tests": sum(MISSED.get(v) == "no tests" for v in values),
        "not checked": sum(v is None for v in values),
    }


def _score(c: dict[str, int]) -> str:
    checked = c["killed"] + c["timeout"] + c["survived"] + c["no tests"]
    return f"{(c['killed'] + c['timeout']) / checked:.0%}" if checked else "-"


def wilson(caught: int, checked: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson interval of a score measured on a random sample of `checked` mutants."""
    if not checked:
        return 0.0, 1.0
    p = caught / checked
    centre = (p + z * z / (2 * checked)) / (1 + z * z / checked)
    half = z / (1 + z * z / checked) * math.sqrt(p * (1 - p) / checked + z * z / (4 * checked * checked))
    return max(0.0, centre - half), min(1.0, centre + half)


def _interval(c: dict[str, int]) -> str:
    """For a module checked in part (a random sample: bench/mutation_sample.py), the score's 95% interval."""
    checked = c["killed"] + c["timeout"] + c["survived"] + c["no tests"]
    if not c["not checked"] or not checked:
        return "full" if checked else "-"
    low, high = wilson(c["killed"] + c["timeout"], checked)
    return f"sample of {checked}: {low:.0%}-{high:.0%}"


def _is_cli(name: str) -> bool:
    return name.split(".")[-1].startswith("x_main__mutmut_")


def table(by_module: dict[str, dict[str, int | None]]) -> str:
    lines = ["| module | mutants | killed | timeout | survived | no tests | not checked | score | score without the CLI "
             "| full run, or sample and 95% interval |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
    for module, codes in by_module.items():
        c = _counts(list(codes.values()))
        without_cli = _score(_counts([v for k, v in codes.items() if not _is_cli(k)]))
        lines.append(f"| {module} | {len(codes)} | {c['killed']} | {c['timeout']} | {c['survived']} | {c['no tests']} "
                     f"| {c['not checked']} | {_score(c)} | {without_cli} | {_interval(c)} |")
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
            if code in MISSED and not _is_cli(name):
                print(name, MISSED[code])
        return 0
    print(table(by_module))
    return 0


if __name__ == "__main__":
    sys.exit(main())
