"""Idempotence on a fuzz corpus: how many texts change when normalized a second time (issue 16; issue 13 found 6
of 256,786).

    uv run --all-extras python -m bench.bench_idempotence            # 200,000 texts, both databases
    uv run --all-extras python -m bench.bench_idempotence --texts 20000

The corpus is seeded and rebuilt on each run: half are random joins of the pieces the property tests use
(known forms, leet, separators, look-alikes, invisibles, emoji, digits, the coded forms of issue 16) with random
Unicode between them; half are real texts from shared/data with the same pieces spliced in at random places.
Prints the count for the product database and the test fixture's, with up to 10 examples, and writes
bench/results/idempotence.json.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from bench.common import write_result
from normalizer import Normalizer, load_database

ROOT = Path(__file__).resolve().parent.parent
PIECES = [
    "unalive", "unal1ve", "sewer slide", "s3wer", "k1ll", "k i l l", "k.i.l.l", "kiiill", "k\u0456ll",
    "k\u200bill", "ｋｉｌｌ", "f*ck", "$uicide", "kys", "corn", "star", "killed it", "dying to see", "❄️", "❄",
    "1488", "in", "$100", "2024", "a", "b", " ", "  ", "\t", "\n", ".", "-", "*", "!", "@", "1", "3",
    "\u0301", "\u202e", "\u202c", "\U000e0041", "é", "ß", "İ", "ﬁ", "½", "⅚", "🏻", "\u200d", "a1b2",
    "UN@11VE", "m3th", "h@te", "sui.cide", "k-i-l-l", "fu(k", "🍑", "🔫", "€", "£", "¢", "()", "(", ")", "#",
    "$", "+", "v", "ø", "wh*re", "f**k", "|<", "|2", "/\\", "><", "ph", "x", "fvck", "t3rr0rist", "send nudes",
]  # fmt: skip


def corpus(n: int, seed: int = 13) -> list[str]:
    rng = random.Random(seed)
    try:
        from bench.common import real_texts

        real = real_texts(20_000)
    except Exception:  # no shared data: fuzz only
        real = []
    out: list[str] = []
    for i in range(n):
        if real and i % 2:
            text = rng.choice(real)
            for _ in range(rng.randint(1, 3)):
                at = rng.randrange(len(text) + 1)
                text = text[:at] + rng.choice(PIECES) + text[at:]
        else:
            parts = []
            for _ in range(rng.randint(1, 8)):
                if rng.random() < 0.8:
                    parts.append(rng.choice(PIECES))
                else:
                    parts.append("".join(chr(rng.randint(33, 0x2FF)) for _ in range(rng.randint(1, 4))))
            text = rng.choice(["", " ", ""]).join(parts)
        out.append(text)
    return out


def changed_on_second_pass(normalizer: Normalizer, texts: list[str]) -> tuple[int, list[str]]:
    count, examples = 0, []
    for text in texts:
        once = normalizer.normalize(text).text
        if normalizer.normalize(once).text != once:
            count += 1
            if len(examples) < 10:
                examples.append(f"{text!r} -> {once!r}")
    return count, examples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=200_000)
    args = parser.parse_args(argv)
    texts = corpus(args.texts)
    payload = {"texts": len(texts)}
    for name, path in (("product", None), ("mini", ROOT / "tests" / "fixtures" / "mini_patterns.json")):
        normalizer = Normalizer(load_database(path) if path else load_database())
        count, examples = changed_on_second_pass(normalizer, texts)
        print(f"{name} database: {count} of {len(texts):,} texts change on a second normalization")
        for example in examples:
            print("   ", example)
        payload[name] = {"changed": count, "examples": examples}
    print(f"wrote {write_result('idempotence', payload)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
