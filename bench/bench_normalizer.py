"""Normalizer throughput on real texts, against the naive approach, and as the database grows.

    uv run --extra data python -m bench.bench_normalizer            # ~3 minutes
    uv run --extra data python -m bench.bench_normalizer --quick
    uv run --extra data python -m bench.bench_normalizer --baseline 0bb5311   # and an earlier normalizer, same run

Measured in one run, on one core, over the same real texts from shared/data:
- ours: Normalizer (Unicode canonicalisation, generic decoding, one Aho-Corasick automaton);
- naive: a loop of one `re.sub` per database entry (its forms as a word-bounded, case-insensitive
  alternation), the way moderation filters are usually first written. It does no Unicode or generic decoding,
  so it does less work than ours;
- scaling: ours with the product database plus synthetic entries, from 100 to 10,000 entries.
With `--baseline REV`, the normalizer (and database) of a git revision is measured on the same texts, on the
same core, alternating with ours (two rounds each, the best of each kept): a before/after ratio from one run.
Targets (issue 2): >= 10x naive at our database size, >= 20,000 texts/s, <= 2x slowdown from 100 to 10,000.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.common import git_revision, pin_one_core, real_texts, revision_tree, write_result
from normalizer import Normalizer, load_database
from normalizer.database import Entry


class NaiveNormalizer:
    """One compiled regex per entry, applied one after another."""

    def __init__(self, entries):
        self.rules = []
        for e in entries:
            if e.action != "rewrite" or not e.forms:
                continue
            alternation = "|".join(re.escape(f) for f in sorted(e.forms, key=len, reverse=True))
            self.rules.append((re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE), e.replacement))

    def normalize(self, text: str) -> str:
        for pattern, replacement in self.rules:
            text = pattern.sub(replacement, text)
        return text


def synthetic_entries(n: int, seed: int = 0) -> list[Entry]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        forms = tuple("".join(rng.choices(string.ascii_lowercase, k=rng.randint(5, 9))) for _ in range(2))
        out.append(
            Entry(id=f"profanity.synthetic{i}", forms=forms, replacement="swear", technique="misspelling",
                  category="profanity", severity=1, positive=(forms[0],))
        )  # fmt: skip
    return out


def throughput(normalize, texts: list[str], min_seconds: float = 2.0) -> float:
    """Texts per second, best of repeated passes lasting at least `min_seconds` in all."""
    best, spent = 0.0, 0.0
    while spent < min_seconds:
        started = time.perf_counter()
        for text in texts:
            normalize(text)
        elapsed = time.perf_counter() - started
        spent += elapsed
        best = max(best, len(texts) / elapsed)
    return best


BASELINE_WORKER = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
from bench.bench_normalizer import throughput
from normalizer import Normalizer, load_database
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {int(sys.argv[3])})
texts = json.load(open(sys.argv[2], encoding="utf-8"))
n = Normalizer(load_database(sys.argv[1] + "/data/dataset/algospeak_patterns.json"))
print(throughput(n.normalize, texts))
"""


def baseline_throughput(tree: Path, texts: list[str]) -> float:
    """Texts per second of the normalizer exported to `tree` (`revision_tree`) on `texts`, in a child process on
    this process's core."""
    core = sorted(os.sched_getaffinity(0))[0] if hasattr(os, "sched_getaffinity") else 0
    with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as f:
        json.dump(texts, f)
        f.flush()
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        done = subprocess.run([sys.executable, "-c", BASELINE_WORKER, str(tree), f.name, str(core)], env=env,
                              capture_output=True, text=True, check=True)  # fmt: skip
    return float(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--baseline", metavar="REV", type=git_revision, help="also measure this git revision's normalizer, same texts")
    args = parser.parse_args(argv)
    pin_one_core()

    n_texts = 2_000 if args.quick else args.texts
    texts = real_texts(n_texts)
    mean_chars = sum(map(len, texts)) / len(texts)
    db = load_database()
    ours = Normalizer(db)
    naive = NaiveNormalizer(db.entries)
    naive_texts = texts[: max(500, n_texts // 10)]  # the naive loop is slow; a tenth of the texts is plenty

    ours_tps = throughput(ours.normalize, texts)
    baseline_tps = None
    if args.baseline:  # alternating with ours, best of two rounds each
        with revision_tree(args.baseline) as tree:
            baseline_tps = baseline_throughput(tree, texts)
            ours_tps = max(ours_tps, throughput(ours.normalize, texts))
            baseline_tps = max(baseline_tps, baseline_throughput(tree, texts))
    naive_tps = throughput(naive.normalize, naive_texts)
    # The same normalizer without open-vocabulary decoding (issue 16), to show what that path costs.
    closed = Normalizer(db)
    closed._decode_open = lambda *args: []  # type: ignore[method-assign]
    closed_tps = throughput(closed.normalize, texts)
    rewritten = sum(ours.normalize(t).changed for t in texts)
    print(f"{len(texts)} real texts, mean {mean_chars:.0f} characters; database {db.version}, {len(db)} entries")
    print(f"{'':24}{'texts/s':>12}")
    print(f"{'ours':24}{ours_tps:>12,.0f}")
    print(f"{'ours, no open vocabulary':24}{closed_tps:>12,.0f}")
    print(f"{'naive re.sub loop':24}{naive_tps:>12,.0f}")
    print(f"{'ratio':24}{ours_tps / naive_tps:>11.1f}x")
    if baseline_tps:
        print(f"{f'baseline {args.baseline}':24}{baseline_tps:>12,.0f}")
        print(f"{'ours / baseline':24}{ours_tps / baseline_tps:>11.2f}x")

    scaling = {}
    sizes = (100, 1_000, 10_000)
    for size in sizes:
        entries = list(db.entries[:size]) + synthetic_entries(max(0, size - len(db)))
        scaled = replace(db, entries=tuple(entries[:size]))
        tps = throughput(Normalizer(scaled).normalize, texts[: max(1000, n_texts // 4)])
        scaling[size] = round(tps)
        print(f"{f'ours, {size:,} entries':24}{tps:>12,.0f}")
    slowdown = scaling[100] / scaling[10_000]
    print(f"{'slowdown 100 -> 10,000':24}{slowdown:>11.2f}x")

    path = write_result(
        "normalizer",
        {
            "texts": len(texts),
            "mean_chars": round(mean_chars, 1),
            "database_entries": len(db),
            "database_version": db.version,
            "ours_texts_per_second": round(ours_tps),
            "naive_texts_per_second": round(naive_tps),
            "ours_without_open_vocabulary_texts_per_second": round(closed_tps),
            "speedup_vs_naive": round(ours_tps / naive_tps, 1),
            "texts_rewritten_share": round(rewritten / len(texts), 4),
            "scaling_texts_per_second": scaling,
            "slowdown_100_to_10000": round(slowdown, 2),
            **({"baseline": {"revision": args.baseline, "texts_per_second": round(baseline_tps),
                             "ours_over_baseline": round(ours_tps / baseline_tps, 3)}} if baseline_tps else {}),
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
