"""Credit the app's construction to every API test, in the mutation run's test map (mutants/mutmut-stats.json).

mutmut runs, for each mutant, the tests that called the mutated function while it collected its statistics.
`main.create_app` and the objects it builds (the worker pool, the micro-batcher, the middleware, the OpenAPI
limits) run once per server, in a module- or session-scoped fixture, so mutmut credits them only to the first
test that used each server; the endpoints nested in `create_app` then look tested by that one test. This adds
every test of tests/api/ (and the planted-bugs checks' API tests) to those functions, so a mutant of an
endpoint is run against all the tests that call it. Run between a mutmut run that collected the statistics and
the run of main.py's mutants (bench/mutation.sh does).

The normalizer has the same blind spot: the test suites build their Normalizer once per session (the `mini` and
`product` fixtures), so its constructor (and the KnownTrie and `squeeze` it builds with) were credited to the
first test of each module only, and a constructor mutant met a handful of tests that never decode what it
broke. They are credited to every test that calls `Normalizer.normalize`.
"""

from __future__ import annotations

import json
from pathlib import Path

STATS = Path(__file__).resolve().parent.parent / "mutants" / "mutmut-stats.json"
BUILT_ONCE_PER_SERVER = (
    "main.x_create_app",
    "main.x__document_limits",
    "main.xǁMicroBatcherǁ__init__",
    "main.xǁRequestContextǁ__init__",
    "main.xǁWorkerPoolǁ__init__",
    "main.xǁWorkerPoolǁclose",
)

# A function built once per session -> the function whose tests all use what it built.
BUILT_ONCE_PER_SESSION = {
    "normalizer.matcher.xǁNormalizerǁ__init__": "normalizer.matcher.xǁNormalizerǁnormalize",
    "normalizer.decode.xǁKnownTrieǁ__init__": "normalizer.matcher.xǁNormalizerǁnormalize",
    "normalizer.decode.x_squeeze": "normalizer.matcher.xǁNormalizerǁnormalize",
}


def main() -> int:
    stats = json.loads(STATS.read_text(encoding="utf-8"))
    api_tests = sorted(t for t in stats["duration_by_test"] if t.startswith("tests/api/"))
    by_function = stats["tests_by_mangled_function_name"]
    for name in BUILT_ONCE_PER_SERVER:
        by_function[name] = sorted(set(by_function.get(name, [])) | set(api_tests))
    for name, user in BUILT_ONCE_PER_SESSION.items():
        if name in by_function:  # absent where the module is not mutated
            by_function[name] = sorted(set(by_function[name]) | set(by_function.get(user, [])))
    STATS.write_text(json.dumps(stats, indent=4), encoding="utf-8")
    print(f"{len(api_tests)} API tests credited to {len(BUILT_ONCE_PER_SERVER)} functions built once per server; "
          f"the normalizer's constructors credited to the tests that call Normalizer.normalize")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
