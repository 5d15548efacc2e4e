"""Worst-case normalizer cost per character (issue 13): today's code against the code before the fix, one run.

    uv run --frozen python -m bench.bench_worst_case                        # ~4 minutes (the old code is slow)
    uv run --frozen python -m bench.bench_worst_case --quick                # 100 B and 1 KB only
    uv run --frozen python -m bench.bench_worst_case --fuzz-seconds 600     # and a cost-climbing fuzzer's best

For each input family and size (100 B to 20 KB, the API's limit), the time one normalize() takes divided by the
length, cold: every memo is cleared first, and every text is new to the normalizer, as an attacker would send it.
"before" is the normalizer of `--before` (default: the commit before the bounded decoding), exported with
`git archive` and run in a subprocess with the same texts; "after" is this checkout. `--fuzz-seconds` climbs
on measured cost (mutations of the worst families' pieces) and adds the costliest text it found to the table.
Results: bench/results/worst_case.json.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import export, git_revision
from core.settings import ROOT

BEFORE = "f8a605f"  # the last commit with unbounded spaced-word decoding
SIZES = (100, 1_000, 5_000, 20_000)
ISSUE_UNIT = "4.l.i.k.l.3.$.0.a.$.1.o.4.l.a.@.i.i.!.o.o.0.6.|.1.!.|.|.4.t.t.t.3.!.!.!.o.7.@.t zz "
LEET = "0134567@$!|+*"


def _fill(pieces, size: int) -> str:
    out: list[str] = []
    length = 0
    for piece in pieces:
        out.append(piece)
        length += len(piece)
        if length >= size:
            break
    return "".join(out)[:size]


def family_texts(name: str, size: int, seed: int) -> str:
    """One text of `size` characters of the named family; `seed` makes it new (no memo helps)."""
    rng = random.Random(f"{name}-{size}-{seed}")
    if name == "issue_unit":  # finding 1's input: the same spaced leet run again and again
        return _fill(iter(lambda: ISSUE_UNIT, None), size)
    if name == "spaced_random_leet":  # every run different: 40 spaced look-alike characters
        alphabet = "aeiloqstkd" + LEET
        return _fill((".".join(rng.choices(alphabet, k=40)) + " zz " for _ in range(size)), size)
    if name == "spaced_near_words":  # spaced runs that keep spelling the start of known words
        words = ["suicide", "unalive", "kill", "sewer", "seggs", "rape", "nazi", "porn", "die", "kys"]
        subs = {"i": "1|!", "e": "3", "a": "4@", "o": "0", "s": "$5", "l": "1|", "t": "7+", "u": "*"}

        def run() -> str:
            chars = []
            while len(chars) < 38:
                for c in rng.choice(words)[: rng.randint(2, 6)]:
                    chars.append(rng.choice(subs.get(c, c) + c) * rng.choice((1, 1, 3)))
            return " ".join("".join(chars)[:40]) + " zz "

        return _fill((run() for _ in range(size)), size)
    if name == "leet_tokens":  # tokens with many leet readings and repeated runs ("iii111lll|||")
        return _fill(("".join(rng.choice("il1|!") * rng.choice((1, 3)) for _ in range(rng.randint(4, 8))) + " "
                      for _ in range(size)), size)  # fmt: skip
    if name == "lookalike_mix":  # finding 3: look-alikes, combining marks, zero-width interleaving, fullwidth
        pieces = ["k\u0456ll", "\u0455\u0443\u0456c\u0456d\u0435", "k\u200bi\u200bl\u200bl", "ｋｉｌｌ", "u\u0301n\u0308a",
                  "\u202eevila\u202c", "𝐤𝐢𝐥𝐥", "s\u200de\u200dg\u200dg\u200ds", "\U000e0041x"]  # fmt: skip
        return _fill((rng.choice(pieces) + " " for _ in range(size)), size)
    if name == "at_ss":  # finding 3: "@ss " answered with 122.8 MB of matches
        return _fill(iter(lambda: "@ss ", None), size)
    if name == "second_reading":  # texts that change again on a second reading, so both readings are composed
        pieces = ["k.i.l.lsss", "🍑€", "❄#fvck", "s.u.i.c.i.d.e.sss", "k.i.l.led"]
        return _fill((rng.choice(pieces) + " " for _ in range(size)), size)
    if name == "unspaced_hashtags":  # one chunk without spaces: coded words joined by "#" (protected spans)
        pieces = ["a1#", "k1ll#", "t-i-t-@ys#", "🌿s.c.4.m.p@gesss"]
        return _fill((rng.choice(pieces) for _ in range(size)), size)
    if name == "emoji_codes":  # emoji codes with harmful-context rules, back to back: each hit's context is judged
        pieces = ["🌿", "💦🍆", "🥕", "🚌", "🍫", "☝", "🖕🚀", "❄", "🍑"]  # (a review helper's costliest, 2026-12-07)
        return _fill((rng.choice(pieces) for _ in range(size)), size)
    raise ValueError(name)


FAMILIES = ("issue_unit", "spaced_random_leet", "spaced_near_words", "leet_tokens", "lookalike_mix", "at_ss",
            "second_reading", "unspaced_hashtags", "emoji_codes")

# ------------------------------------------------------------------------------------------ measuring
WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from normalizer import Normalizer, load_database
n = Normalizer(load_database(sys.argv[1] + "/data/dataset/algospeak_patterns.json"))
n.normalize("warm up k1ll s.u.i.c.i.d.e")
for line in sys.stdin:
    text = json.loads(line)
    n._token_cache.clear()
    started = time.perf_counter()
    r = n.normalize(text)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "matches": len(r.matches), "degraded": getattr(r, "degraded", False)}), flush=True)
"""


class Runner:
    """normalize() in a subprocess over one version of the normalizer (a directory with normalizer/, core/, data/)."""

    def __init__(self, root: Path):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def measure(self, text: str) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(text) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def cost(runner: Runner, text: str, repeat: int) -> dict:
    """The cheapest of `repeat` cold runs (each on a fresh text of the same family is not possible for the fuzzer's
    text, so memos are cleared instead)."""
    runs = [runner.measure(text) for _ in range(repeat)]
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "us_per_char": round(best["seconds"] / len(text) * 1e6, 2)}


def fuzz(runner: Runner, seconds: float, size: int = 2_000, seed: int = 0) -> str:
    """Hill-climb on measured cost per character: mutate the costliest text so far, keep what costs more."""
    rng = random.Random(seed)
    pieces = [*LEET, *"aeiklostu", ".", " ", "  ", "_", "\u200b", "\u0456", "\u0301", "ｋ", "zz ", "kill", "sewer",
              "s.u.i.c.i.d.e", "k 1 l l", "iii111lll|||"]  # fmt: skip
    best = family_texts("spaced_random_leet", size, seed)
    best_cost = runner.measure(best)["seconds"]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = list(best)
        for _ in range(rng.randint(1, 20)):
            i = rng.randrange(len(text))
            op = rng.random()
            if op < 0.4:
                text[i] = rng.choice(pieces)
            elif op < 0.7:
                text.insert(i, rng.choice(pieces))
            else:
                span = rng.randint(1, 80)
                text[i:i] = text[max(0, i - span) : i]  # repeat a stretch: what is costly tends to stay costly
        candidate = "".join(text)[:size].ljust(size, "z")
        spent = runner.measure(candidate)["seconds"]
        if spent > best_cost:
            best, best_cost = candidate, spent
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default=BEFORE, type=git_revision, help="the commit to compare against (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="100 B and 1 KB only")
    parser.add_argument("--fuzz-seconds", type=float, default=0.0, help="climb on cost this long (on today's code)")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES), help="only these families")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "worst_case.json"))
    args = parser.parse_args(argv)
    sizes = SIZES[:2] if args.quick else SIZES

    with tempfile.TemporaryDirectory() as tmp:
        before = Runner(export(args.before, Path(tmp)))
        after = Runner(ROOT)
        texts = {family: {size: family_texts(family, size, 0) for size in sizes} for family in args.families}
        if args.fuzz_seconds > 0:
            print(f"fuzzing {args.fuzz_seconds:.0f} s for the costliest 2 KB text (today's code) ...", file=sys.stderr)
            found = fuzz(after, args.fuzz_seconds)
            texts["fuzz_found"] = {size: (found * (size // len(found) + 1))[:size] for size in sizes}
        rows = []
        print(f"{'family':<20} {'size':>6}  {'before µs/char':>14}  {'after µs/char':>13}  {'speedup':>8}  after degraded")
        for family, by_size in texts.items():
            for size, text in by_size.items():
                b = cost(before, text, 1 if size > 1_000 else 3)
                a = cost(after, text, 3)
                speedup = b["seconds"] / max(a["seconds"], 1e-9)
                rows.append({"family": family, "chars": size, "before": b, "after": a, "speedup": round(speedup, 1)})
                print(f"{family:<20} {size:>6}  {b['us_per_char']:>14.2f}  {a['us_per_char']:>13.2f}  {speedup:>7.1f}x  "
                      f"{a['degraded']}", flush=True)  # fmt: skip
        before.close()
        after.close()

    worst_after = max(r["after"]["us_per_char"] for r in rows)
    worst_before = max(r["before"]["us_per_char"] for r in rows)
    print(f"worst: before {worst_before:.1f} µs/char, after {worst_after:.2f} µs/char")
    payload = {
        "benchmark": "normalizer worst case per character (issue 13)",
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "before_commit": args.before,
        "rows": rows,
        "worst_before_us_per_char": worst_before,
        "worst_after_us_per_char": worst_after,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
