"""The label guide's head: harm as the team's seed corpus defines it, beside the severity model.

    uv run --all-extras python -m training.guide          # after train_embedded --promote: writes guide.npz

The severity model learns what 13 shared sets call harmful, and they label different harms (sexism, hate,
toxicity, abuse of a chatbot, API policy categories): a plain threat or a suicide plan that none of them labels
harmful scores low ("I'm going to find where you live and hurt you." P(harmful or worse) 0.04, "I want to kill
myself tonight." 0.10, the model of 2026-12-07 14:30). The team's seed corpus (data/dataset/seed_corpus.json) is
our label guide written down. This head is one binary logistic regression over the severity model's own features,
trained on the seed's harmful-or-worse sentences against the seed's safe ones and the shared sets' safe training
texts (each half of the negative weight): harm as the guide defines it, and what real safe text looks like.

It may only raise a text (`classifiers.embedded.raised_by_guide`): where its logit reaches a threshold that lets
it flag at most GUIDE_BUDGET of the validation split's safe texts beyond those the severity model flags, the served
P(harmful or worse) becomes the guide's own calibrated probability (Platt scaling on the validation split, classes
balanced, then shifted to the stated traffic mix) when that is the higher. Each text is read as the severity model
reads it: whole and sentence by sentence, the guide's highest logit kept.

Leave-one-domain-out fits it in every fold (`training.transfer --guide-budget`), on that fold's features and
data. Writes models/embedded/guide.npz (bound to the model's sha256, like the category heads) and guide.json.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by its path (python training/guide.py): the repository root on sys.path
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.settings import ROOT
from training.label_guide import GUIDE_BUDGET, GUIDE_C, GUIDE_FAMILIES, HARMFUL, Guide, fit_guide, logits_of


def main(argv: list[str] | None = None) -> int:
    from data.readers import DEFAULT_SHARED_ROOT

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED_ROOT, help="the shared data root")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "embedded" / "model.npz",
                        help="the severity model whose features and decision the guide uses")
    parser.add_argument("--out", type=Path, help="where guide.npz and guide.json go (default: beside --model)")
    parser.add_argument("--budget", type=float, default=GUIDE_BUDGET,
                        help=f"validation safe texts it may flag beyond the model's (default {GUIDE_BUDGET})")
    parser.add_argument("--c", type=float, default=GUIDE_C, help=f"inverse regularisation (default {GUIDE_C})")
    args = parser.parse_args(argv)
    if not 0.0 <= args.budget < 0.5:
        parser.error(f"--budget must be in [0, 0.5), got {args.budget}")
    out = args.out or args.model.parent

    from classifiers.base import ClassifierError
    from classifiers.embedded import GUIDE_ARTIFACT, EmbeddedClassifier
    from data.readers import DataError
    from training import transfer
    from training.categories import Features

    t0 = time.time()
    try:
        features = Features(args.model)
        severity = EmbeddedClassifier(args.model, guide=False)  # fitted against the severity model alone
        if severity.thresholds is None:
            print(f"error: {args.model} has no fitted decision; retrain it with training.train_embedded",
                  file=sys.stderr)
            return 2
        train, val, test = splits(args.shared, severity.meta)
    except (OSError, ValueError, ClassifierError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(train)} training, {len(val)} validation texts ({time.time() - t0:.0f} s)", flush=True)

    def served_harm(z: np.ndarray) -> np.ndarray:
        """P(harmful or worse) as served from severity logits `z`."""
        return transfer.softmax(z / severity.temperature + severity.bias)[:, HARMFUL:].sum(axis=1)

    t_harm = severity.thresholds["harmful"]
    flagged_val = served_harm(severity.logits(val.text)) >= t_harm
    try:
        guide = fit_guide(features, train, val, flagged_val, severity.cut, args.budget, args.c)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    # What it adds, on the validation split it was fitted on and the test split it was not.
    from classifiers.embedded import raised_by_guide

    def figures(part) -> dict[str, Any]:
        z = severity.logits(part.text)
        h = logits_of(features, guide.coef, guide.intercept, part.text, severity.cut)
        before = served_harm(z) >= t_harm
        raised = served_harm(raised_by_guide(z, h, guide, severity.temperature, severity.bias,
                                             harm_share=float(sum(severity.prior[HARMFUL:])))) >= t_harm
        safe, harm = part.label == 0, part.label >= HARMFUL
        return {"texts": len(part), "false_flags_before": round(float(before[safe].mean()), 4),
                "false_flags_after": round(float(raised[safe].mean()), 4),
                "recall_before": round(float(before[harm].mean()), 4),
                "recall_after": round(float(raised[harm].mean()), 4)}

    report = {"model_sha256": features.model_sha, "budget": guide.budget, "c": args.c,
              "families": list(GUIDE_FAMILIES), "seed_corpus": seed_version(),
              "threshold": round(guide.threshold, 4), "platt": [round(guide.a, 4), round(guide.b, 4)],
              "validation": figures(val), "test": figures(test), "seconds": round(time.time() - t0)}
    out.mkdir(parents=True, exist_ok=True)
    save(out / GUIDE_ARTIFACT, guide.coef * features.idf, guide, features.model_sha)  # the IDF folded in
    (out / "guide.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=1))
    print(f"wrote {out / GUIDE_ARTIFACT} and guide.json ({report['seconds']} s)")
    return 0


def splits(shared: Path, meta: dict[str, Any]):
    """(train, validation, test) as the model with `meta` was trained on them: the corpus with its seed expansion,
    train and validation screened as its training screened them (`transfer.screen_single_harm`), test as it comes.
    Raises what `transfer.load_corpus` raises (OSError, ValueError, DataError)."""
    from training import transfer

    corpus = transfer.load_corpus(shared, clean_sentences=6000, seed=meta.get("seed", 13), team_seed=True)
    keep, _ = transfer.screen_single_harm(corpus, seed_weight=meta.get("seed_weight", transfer.SEED_WEIGHT))
    return (corpus.take((corpus.split == "train") & keep), corpus.take((corpus.split == "validation") & keep),
            corpus.take(corpus.split == "test"))


def seed_version() -> str:
    from data.seed import DEFAULT_SEED_CORPUS

    return str(json.loads(DEFAULT_SEED_CORPUS.read_text(encoding="utf-8")).get("version"))


def save(path: Path, weights: np.ndarray, guide: Guide, model_sha: str) -> None:
    meta = {"model_sha256": model_sha, **guide.as_meta()}
    with open(path, "wb") as f:
        np.savez_compressed(f, weights=weights.astype(np.float32), meta=np.array(json.dumps(meta)))


if __name__ == "__main__":
    sys.exit(main())
