#!/usr/bin/env bash
# Mutation testing of the core (issue 19): mutmut mutates moderator.py, main.py, classifiers/base.py and
# registry.py, the normalizer's matcher, decoder and unicode folding, core/ and the prediction log (the
# [tool.mutmut] section of pyproject.toml), runs the tests that reach each mutated function (the inner-loop
# selection there, without `slow` tests), and prints the score per module.
#
#   bash bench/mutation.sh                      # everything (about an hour on 2 cores)
#   bash bench/mutation.sh "moderator.*"        # one module's mutants (mutmut's name globs)
#   MUTMUT_CHILDREN=2 bash bench/mutation.sh    # parallel workers (default 1)
#   bash bench/mutation.sh $(uv run --frozen --all-extras python bench/mutation_sample.py normalizer/matcher.py \
#       --n 150 --seed 19 --tests tests/normalizer/)   # a seeded sample of one module, against its own tests
#
# Not part of CI (too slow). Results accumulate in mutants/ (git-ignored): a rerun only checks mutants of
# functions that changed. `uv run --frozen --all-extras mutmut show NAME` shows one mutant's diff;
# `python bench/mutation_report.py --survivors moderator.py` lists a module's survivors.
set -euo pipefail
cd "$(dirname "$0")/.."
mutmut() { uv run --frozen --all-extras mutmut run --max-children "${MUTMUT_CHILDREN:-1}" "$@" | tr '\r' '\n' | grep -v '^[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]' || true; }
# First the test map (which tests call which function; a few mutants of core/labels.py go with it), then the
# app's construction credited to every API test (bench/mutation_fixtures.py says why), then the mutants asked for.
[ -f mutants/mutmut-stats.json ] || mutmut "core.labels.*"
uv run --frozen --all-extras python bench/mutation_fixtures.py
mutmut "$@"
uv run --frozen --all-extras python bench/mutation_report.py
