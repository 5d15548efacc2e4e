"""A random sample of one module's mutants, for a mutation run too long to run whole on a small machine.

    bash bench/mutation.sh $(uv run --frozen --all-extras python bench/mutation_sample.py normalizer/matcher.py \
        --n 150 --seed 19 --tests tests/normalizer/)

Prints the names of `--n` mutants of MODULE drawn with `random.Random(seed)` (all of them when the module has
fewer), for `mutmut run`. With `--tests`, the module's functions are first credited only to the tests whose ids
start with one of the prefixes (in mutants/mutmut-stats.json, the test map mutmut collected): the module's own
tests, not every API test that happens to call it. A score measured so is a lower bound for the full selection
(fewer tests can only kill fewer mutants). bench/mutation_report.py gives a sampled module's 95% interval.
Needs the test map: run `bash bench/mutation.sh "core.labels.*"` once first.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"


def mutant_names(module: str) -> list[str]:
    meta = MUTANTS / f"{module}.meta"
    if not meta.exists():
        raise SystemExit(f"no mutants of {module} ({meta} missing): run bash bench/mutation.sh \"core.labels.*\" first")
    return sorted(json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"])


def restrict_tests(module: str, prefixes: list[str]) -> int:
    """Credit MODULE's functions only to tests starting with one of `prefixes`; returns how many functions."""
    stats_path = MUTANTS / "mutmut-stats.json"
    stats = json.loads(stats_path.read_text(encoding="utf-8"))
    dotted = module.removesuffix(".py").replace("/", ".") + "."
    by_function = stats["tests_by_mangled_function_name"]
    changed = 0
    for name, tests in by_function.items():
        if name.startswith(dotted):
            by_function[name] = [t for t in tests if t.startswith(tuple(prefixes))]
            changed += 1
    stats_path.write_text(json.dumps(stats, indent=4), encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("module", help="a mutated file, as in [tool.mutmut] only_mutate (normalizer/matcher.py)")
    parser.add_argument("--n", type=int, required=True, help="how many mutants to draw")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--tests", nargs="+", metavar="PREFIX", help="credit the module only to these tests")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n must be at least 1, not {args.n}")
    names = mutant_names(args.module)
    if args.tests:
        print(f"{restrict_tests(args.module, args.tests)} functions of {args.module} credited to "
              f"{' '.join(args.tests)} only", file=sys.stderr)
    sample = sorted(random.Random(args.seed).sample(names, min(args.n, len(names))))
    print(f"{len(sample)} of {len(names)} mutants of {args.module} (seed {args.seed})", file=sys.stderr)
    print("\n".join(sample))
    return 0


if __name__ == "__main__":
    sys.exit(main())
