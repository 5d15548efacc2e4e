"""Embedded classifier throughput: the compiled kernel against the numpy implementation it replaced.

    uv run python -m bench.bench_classifier            # ~30 s
    git show 785abc6:models/embedded/model.npz > /tmp/old.npz
    uv run --all-extras python -m bench.bench_classifier --baseline /tmp/old.npz --encoder   # + two comparisons

Measured in one run, on one core, over the same 8,192 real texts from shared/data, in batches of 256 (what
`/moderate/batch` sends) and of 1 (a lone `/moderate` request):
- kernel: `EmbeddedClassifier.logits`, one numba loop per batch (`classifiers/kernel.py`);
- numpy: `EmbeddedClassifier.reference_logits`, the vectorised numpy path (hashing, open-addressing lookup,
  sort-based deduplication, segmented sums) that served before the kernel and still defines the features.
Both give the same logits (checked here too). Reported: texts per second (best of 3) and the ratio, and the
text reading alone (`classifiers.features.joined_text`: canonical text, tokens, identity blinding) in µs per text.
With --baseline MODEL_NPZ: the served path (`classify`, the decision included) of the shipped model against that
artifact, same texts, batches of 256. With --encoder: the sentence encoder (`classifiers.encoder`, what the
encoder tier adds per text) on the same texts, on both cores, against the shipped model's `classify`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.common import pin_one_core, real_texts, write_result
from classifiers.embedded import EmbeddedClassifier
from classifiers.features import joined_text
from core.settings import DEFAULT_EMBEDDED_MODEL


def rate(fn, texts: list[str], batch: int, repeats: int = 3) -> float:
    """Texts per second through `fn` in batches of `batch` (best of `repeats` passes)."""
    batches = [texts[i : i + batch] for i in range(0, len(texts), batch)]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for part in batches:
            fn(part)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, help="another embedded artifact to compare the served path with")
    parser.add_argument("--encoder", action="store_true", help="also time the sentence encoder")
    args = parser.parse_args(argv)
    if args.encoder:  # the encoder runs on both cores: measure it before pinning this process to one
        from classifiers.encoder import SentenceEncoder

        texts = [t for t in real_texts(20_000) if len(t) < 1000][:2048]
        shipped = EmbeddedClassifier(DEFAULT_EMBEDDED_MODEL)
        encoder = SentenceEncoder()
        encoder_rate = rate(encoder.encode, texts, 256, repeats=1)
        ngram_rate = rate(shipped.classify, texts, 256)
        print(f"sentence encoder {encoder_rate:,.0f} texts/s (2 cores)   shipped model {ngram_rate:,.0f} texts/s   "
              f"{ngram_rate / encoder_rate:.0f}x")
        encoder_result = {"encoder_texts_per_second": round(encoder_rate), "shipped_texts_per_second": round(ngram_rate)}
    pin_one_core()
    texts = [t for t in real_texts(20_000) if len(t) < 1000][:8192]
    model = EmbeddedClassifier(DEFAULT_EMBEDDED_MODEL)
    np.testing.assert_allclose(model.logits(texts[:512]), model.reference_logits(texts[:512]), atol=1e-5)
    results = {}
    for batch in (256, 1):
        sample = texts if batch > 1 else texts[:2048]
        kernel = rate(model.logits, sample, batch)
        numpy_path = rate(model.reference_logits, sample, batch)
        results[f"batch_{batch}"] = {
            "kernel_texts_per_second": round(kernel),
            "numpy_texts_per_second": round(numpy_path),
            "ratio": round(kernel / numpy_path, 2),
        }
        print(f"batch {batch:>3}: kernel {kernel:>9,.0f} texts/s   numpy {numpy_path:>9,.0f} texts/s   "
              f"{kernel / numpy_path:.1f}x")
    # The text reading alone (canonical text, tokens, identity blinding), which both paths above include.
    reading = rate(lambda part: [joined_text(t) for t in part], texts, 256)
    results["reading_us_per_text"] = round(1e6 / reading, 1)
    print(f"text reading (joined_text): {1e6 / reading:.1f} µs per text")
    if args.baseline:
        baseline = EmbeddedClassifier(args.baseline)
        for _ in range(2):  # alternate, so a slower moment of the machine does not fall on one side only
            new, old = rate(model.classify, texts, 256), rate(baseline.classify, texts, 256)
            print(f"served path, batch 256: shipped {new:>9,.0f} texts/s   {args.baseline.name} {old:>9,.0f} texts/s   "
                  f"{new / old:.2f}x")
        results["served_vs_baseline"] = {"baseline": str(args.baseline), "shipped_texts_per_second": round(new),
                                         "baseline_texts_per_second": round(old), "ratio": round(new / old, 2)}
    if args.encoder:
        results["encoder"] = encoder_result
    mean_chars = round(sum(map(len, texts)) / len(texts), 1)
    path = write_result("classifier", {"texts": len(texts), "texts_mean_chars": mean_chars, **results})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
