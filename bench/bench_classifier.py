"""Embedded classifier throughput: the compiled kernel against the numpy implementation it replaced.

    uv run python -m bench.bench_classifier            # ~30 s

Measured in one run, on one core, over the same 8,192 real texts from shared/data, in batches of 256 (what
`/moderate/batch` sends) and of 1 (a lone `/moderate` request):
- kernel: `EmbeddedClassifier.logits`, one numba loop per batch (`classifiers/kernel.py`);
- numpy: `EmbeddedClassifier.reference_logits`, the vectorised numpy path (hashing, open-addressing lookup,
  sort-based deduplication, segmented sums) that served before the kernel and still defines the features.
Both give the same logits (checked here too). Reported: texts per second (best of 3) and the ratio.
"""

from __future__ import annotations

import time

import numpy as np

from bench.common import pin_one_core, real_texts, write_result
from classifiers.embedded import EmbeddedClassifier
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


def main() -> int:
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
    mean_chars = round(sum(map(len, texts)) / len(texts), 1)
    path = write_result("classifier", {"texts": len(texts), "texts_mean_chars": mean_chars, **results})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
