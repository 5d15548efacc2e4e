"""What a label guide's head over sentence-encoder vectors would add to the shipped offline model (measured, not
shipped).

    uv run --all-extras python -m bench.encoder_guide [--budget 0.0025] [--c 4]

The shipped guide head (`training.guide`) is a logistic regression over the severity model's n-grams, so it
learns the seed corpus's words, not its meaning. This fits the same head (`training.label_guide.fit_guide`, same
data, same budget rule, same Platt calibration) over all-MiniLM-L6-v2 vectors (`classifiers.encoder`, the corpus's
vectors cached in out/cache/embeddings.npz), once on the guide's four families and once on every seed family, and
lets it raise the served model (severity model and n-gram guide) the way the n-gram guide raises the severity
model (`classifiers.embedded.raised_by_guide`). Each text is read whole (the encoder pools over its 128 first word
pieces). Reported: the functional suite per family, the outside probes (`data/dataset/outside_probes.json`), the
home test split, and the texts it newly flags. Writes bench/results/encoder_guide.json. About a minute once the
corpus's vectors are cached (the first run encodes the corpus, 20 minutes or more).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import write_result
from core.settings import DEFAULT_EMBEDDED_MODEL
from data.seed import OUTSIDE_PROBES as PROBES



def main(argv: list[str] | None = None) -> int:
    from training.label_guide import GUIDE_BUDGET, GUIDE_C, GUIDE_FAMILIES

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_EMBEDDED_MODEL)
    parser.add_argument("--budget", type=float, default=GUIDE_BUDGET)
    parser.add_argument("--c", type=float, default=GUIDE_C)
    args = parser.parse_args(argv)

    from classifiers.base import ClassifierError
    from classifiers.embedded import EmbeddedClassifier, raised_by_guide
    from data.functional import load_suite
    from data.readers import DEFAULT_SHARED_ROOT, DataError
    from normalizer import Normalizer, load_database
    from training import transfer
    from training.guide import splits
    from training.label_guide import HARMFUL, fit_guide, logits_of

    t0 = time.time()
    try:
        served = EmbeddedClassifier(args.model)
        probes = json.loads(PROBES.read_text(encoding="utf-8"))
        if served.guide is None:
            print(f"error: {args.model} has no guide head beside it (python -m training.guide)", file=sys.stderr)
            return 2
        train, val, test = splits(DEFAULT_SHARED_ROOT, served.meta)
    except (OSError, ValueError, KeyError, ClassifierError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    vectors = transfer.EmbeddingCache().vectors
    share = float(sum(served.prior[HARMFUL:]))
    threshold = served.thresholds["harmful"]

    def harm(z: np.ndarray) -> np.ndarray:
        return transfer.softmax(z / served.temperature + served.bias)[:, HARMFUL:].sum(axis=1)

    normalizer = Normalizer(load_database())
    suite = load_suite()
    want = np.array([c.flagged for c in suite])
    benign, harmful = list(probes["benign"]), list(probes["harmful"])
    parts = {"suite": [normalizer.normalize(c.text).text for c in suite],
             "probes": [normalizer.normalize(t).text for t in benign + harmful], "test": test.text}
    served_z = {name: served.logits(texts) for name, texts in parts.items()}
    probe_harm = np.arange(len(benign) + len(harmful)) >= len(benign)
    flagged_val = harm(served.logits(val.text)) >= threshold
    report: dict = {"model": str(args.model), "budget": args.budget, "c": args.c, "heads": {}}
    for name, families in (("guide_families", GUIDE_FAMILIES), ("every_family", None)):
        head = fit_guide(vectors, train, val, flagged_val, None, args.budget, args.c, families)
        before, after = {}, {}
        for part, texts in parts.items():
            z = served_z[part]
            before[part] = harm(z) >= threshold
            h = logits_of(vectors, head.coef, head.intercept, texts, None)
            after[part] = harm(raised_by_guide(z, h, head, served.temperature, served.bias, harm_share=share)) >= threshold

        def rate(flags: dict, part: str, mask: np.ndarray) -> float:
            return round(float(flags[part][mask].mean()), 4)

        safe, bad = test.label == 0, test.label >= HARMFUL
        figures = {
            "families": list(families or ["every seed family"]), "threshold": round(head.threshold, 4),
            "suite": {"harmful_flagged": [rate(before, "suite", want), rate(after, "suite", want)],
                      "harmless_flagged": [rate(before, "suite", ~want), rate(after, "suite", ~want)],
                      "per_family": {f"{fam} ({'harmful' if w else 'harmless'})":
                                     [rate(before, "suite", m), rate(after, "suite", m)]
                                     for fam in sorted({c.family for c in suite}) for w in (True, False)
                                     if (m := np.array([c.family == fam for c in suite]) & (want == w)).any()}},
            "probes": {"harmful_flagged": [rate(before, "probes", probe_harm), rate(after, "probes", probe_harm)],
                       "safe_flagged": [rate(before, "probes", ~probe_harm), rate(after, "probes", ~probe_harm)]},
            "test": {"false_flags": [rate(before, "test", safe), rate(after, "test", safe)],
                     "recall": [rate(before, "test", bad), rate(after, "test", bad)]},
            "newly_flagged_probes": [{"text": t, "harmful": bool(y)} for t, y, a, b in
                                     zip(benign + harmful, probe_harm, after["probes"], before["probes"]) if a and not b],
            "newly_flagged_harmless_suite": [c.text for c, a, b, w in zip(suite, after["suite"], before["suite"], want)
                                             if a and not b and not w]}
        report["heads"][name] = figures
        print(f"{name}: suite harmful {figures['suite']['harmful_flagged']}, harmless "
              f"{figures['suite']['harmless_flagged']}; probes harmful {figures['probes']['harmful_flagged']}, safe "
              f"{figures['probes']['safe_flagged']}; test false flags {figures['test']['false_flags']}, recall "
              f"{figures['test']['recall']} (before, after)", flush=True)
    report["seconds"] = round(time.time() - t0)
    print(f"wrote {write_result('encoder_guide', report)} ({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
