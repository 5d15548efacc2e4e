"""The shipped offline model on texts written outside the project, with and without its label guide's head.

    uv run --all-extras python -m bench.outside_probes [--model models/embedded/model.npz]

`data/dataset/outside_probes.json`: 250 safe texts built to look like harm and 120 harmful ones, written by a helper
that had read nothing of the project (its description says so). Each text goes through the moderator (Stage 1,
then the embedded model) twice: as served, and with the guide head switched off (`guide=False`), so the guide's
gain and its cost are read side by side: harmful texts flagged (harmful or worse), safe texts flagged, and the safe
texts only the guide flags. The same figures are given on the probes far from every sentence the seed file
expands to before its held-out filter (word 3-gram Jaccard below FAR with each, `data.seed.nearest`), so also far
from what a model trained before that filter saw: the seed's writers are the same kind of model as the probes'
writer and can land on a probe's words without reading it. Word overlap does not see spelling ("u" for "you") or
algospeak ("kys" for "kill yourself"), so a far probe can still be a seed sentence in other spelling.
Writes bench/results/outside_probes.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.common import write_result
from core.settings import DEFAULT_EMBEDDED_MODEL, DEFAULT_PATTERN_DB
from data.seed import OUTSIDE_PROBES as PROBES

FLAGS = ("harmful", "extremely_harmful")
FAR = 0.1  # a probe this far from every seed sentence (word 3-gram Jaccard) counts as far


def flagged(moderator, texts: list[str]) -> list[bool]:
    return [r["classification"] in FLAGS for r in moderator.moderate_batch(texts)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_EMBEDDED_MODEL)
    parser.add_argument("--probes", type=Path, default=PROBES)
    args = parser.parse_args(argv)
    from classifiers.base import ClassifierError
    from classifiers.embedded import EmbeddedClassifier
    from core.settings import Settings
    from data.seed import load_seed, nearest
    from moderator import Moderator
    from normalizer.reload import ReloadingNormalizer

    try:
        probes = json.loads(args.probes.read_text(encoding="utf-8"))
        benign, harmful = list(probes["benign"]), list(probes["harmful"])
        readings = {"with_guide": EmbeddedClassifier(args.model), "without_guide": EmbeddedClassifier(args.model, guide=False)}
    except (OSError, ValueError, KeyError, TypeError, ClassifierError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = Settings(environment="development", prediction_log_url="", _env_file=None)
    seed = [r.text for r in load_seed(max_suite_similarity=None)]
    far_benign, far_harmful = ([score < FAR for score, _ in nearest(texts, seed)] for texts in (benign, harmful))
    report: dict = {"model": str(args.model), "benign": len(benign), "harmful": len(harmful),
                    "far_from_the_seed": {"below": FAR, "benign": sum(far_benign), "harmful": sum(far_harmful)}}
    flags = {}
    for name, classifier in readings.items():
        moderator = Moderator(ReloadingNormalizer(DEFAULT_PATTERN_DB, 0), classifier, settings)
        flags[name] = (flagged(moderator, benign), flagged(moderator, harmful))
        far_safe = [f for f, far in zip(flags[name][0], far_benign) if far]
        far_harm = [f for f, far in zip(flags[name][1], far_harmful) if far]
        report[name] = {"safe_flagged": round(sum(flags[name][0]) / len(benign), 4),
                        "harmful_flagged": round(sum(flags[name][1]) / len(harmful), 4),
                        "far_safe_flagged": round(sum(far_safe) / len(far_safe), 4) if far_safe else None,
                        "far_harmful_flagged": round(sum(far_harm) / len(far_harm), 4) if far_harm else None}
        print(f"{name:14s} safe texts flagged {sum(flags[name][0])}/{len(benign)}, harmful texts flagged "
              f"{sum(flags[name][1])}/{len(harmful)}; far from the seed: {sum(far_safe)}/{len(far_safe)} and "
              f"{sum(far_harm)}/{len(far_harm)}")
    report["safe_flagged_only_by_the_guide"] = [t for t, a, b in zip(benign, *(f[0] for f in flags.values())) if a and not b]
    report["harmful_missed_with_the_guide"] = [t for t, a in zip(harmful, flags["with_guide"][1]) if not a]
    for text in report["safe_flagged_only_by_the_guide"]:
        print(f"  safe, flagged by the guide: {text}")
    print(f"wrote {write_result('outside_probes', report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
