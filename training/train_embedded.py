"""Train the embedded (offline) classifier into `out/embedded/`; `--promote` replaces the shipped one in
`models/embedded/` (and refreshes its evaluation report there).

    uv run --all-extras python -m training.train_embedded                 # ~5 minutes on 2 cores
    uv run --all-extras python -m training.train_embedded --promote       # ... and ship it
    uv run --all-extras python -m training.train_embedded --quick         # smaller, for a smoke run
    uv run --all-extras python -m training.transfer --recipe ngram        # how it does on domains it never saw

What it does, in order (the corpus and the decision rule are `training.transfer`'s, so the model that ships is
the one whose transfer figures the README reports):
1. Reads every labelled set in ../shared/data (`data.readers`, 13 sources from 8 domains) plus "clean sentences"
   of Civil Comments (sentences of toxic posts that no rater marked: safe news-comment text), near-duplicates
   removed, split 80/10/10 by a hash of the near-duplicate key.
2. Leaves out of training the negatives of single-harm sources (judged only for sexism or only for hate) that a
   model of the other sources finds harmful: they may be abusive in another way.
3. Weights texts so that within each domain every label carries the same weight: a domain's style (tweets,
   news comments, a forum) then says nothing about harm.
4. With `--context-copies N` (off by default: measured, not shipped), sets each seed-corpus sentence in real
   context N times (`transfer.with_context`: joined to a short safe text of the training split, sharing the
   sentence's weight).
5. Adds algospeak variants of potentially harmful and worse training texts (data.augment, with the pattern
   database), and generic-technique variants (spacing, repetition, leetspeak, homoglyphs) of safe ones
   (`--safe-variants`), each sharing its parent's weight: the model learns coded forms as well as the normalizer's
   output, and does not learn a disguise alone as harm.
6. Fits a multinomial logistic regression on binary IDF-weighted word 1-2-grams and character 3-5-grams
   (classifiers.features).
7. Fits the decision on the validation split (`transfer.fit_decision`): a temperature, the shift from the
   training label mix to the stated traffic mix (DEFAULT_PRIOR), and thresholds for a false-flag budget; all
   stored in the artifact, which serving applies. With `--sentence-max` (the default) each validation text is
   read as serving reads it: the harshest of the whole text and its parts (`classifiers.embedded.
   harshest_reading`), so one friendly sentence after a threat does not dilute it; `--cut clauses` also reads
   each clause (commas, semicolons, colons, spaced dashes: measured, not shipped), `--cut sentences` (the
   default) only each sentence.
8. Reports on the test split, per source, and robustness to algospeak (recall of harmful-or-worse texts plain,
   as variants, and as variants after normalization), into the artifact's meta and model_card.json.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by its path (python training/train_embedded.py): the repository root on sys.path
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from classifiers.features import CUTS, DEFAULT_CUT
from core.labels import LABELS
from core.progress import Progress, progress
from core.settings import DEFAULT_EMBEDDED_MODEL, DEFAULT_ENCODER_MODEL, DEFAULT_PATTERN_DB, ROOT

OUT_MODEL = ROOT / "out" / "embedded" / "model.npz"  # trained models go to out/; --promote ships one
OUT_ENCODER_MODEL = ROOT / "out" / "encoder" / "model.npz"
# Generic-technique variants per safe training text. Without them only harmful texts were ever disguised, and the
# model learned the disguise itself as harm: "the r e s t of us" or "reeeest" made a harmless sentence harmful.
SAFE_VARIANTS = 1
# What a run does, in order (its progress bar counts these).
STAGES = ("corpus", "screening", "variants", "fit", "decision", "serving check", "test", "robustness")
from training.robustness import robustness_report
from training.transfer import MAX_ITER, split_of  # noqa: F401  (split_of: the split every consumer of the corpus uses)
from training.transfer import count_arg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data", help="labelled data root")
    parser.add_argument("--out", type=Path, default=OUT_MODEL, help="artifact path (default %(default)s)")
    parser.add_argument("--promote", action="store_true",
                        help="replace the shipped model (models/embedded/, or models/encoder/ for combo) with this "
                             "one, with a fresh evaluation report (needs out/prepared/test.jsonl)")
    parser.add_argument("--patterns", type=Path, default=DEFAULT_PATTERN_DB, help="pattern database for augmentation")
    parser.add_argument("--clean-sentences", type=int, default=6000, help="Civil Comments clean sentences to add")
    parser.add_argument("--variants", type=int, default=1, help="algospeak variants per non-safe training text")
    parser.add_argument("--safe-variants", type=int, default=SAFE_VARIANTS,
                        help="variants per safe training text, generic techniques only (default %(default)s)")
    parser.add_argument("--max-features", type=int, default=200_000)
    parser.add_argument("--recipe", choices=("ngram", "combo"), default="ngram",
                        help="ngram: the default offline model; combo: n-grams + sentence encoder (the encoder tier, "
                             "written to models/encoder/model.npz unless --out)")
    parser.add_argument("--alpha", type=float, default=1.0, help="combo: weight of the sentence vector")
    parser.add_argument("--c", type=float, default=8.0, help="inverse regularisation")
    parser.add_argument("--max-iter", type=int, default=MAX_ITER, help="L-BFGS iterations (default %(default)s)")
    parser.add_argument("--budget", type=float, default=None, help="validation false-flag budget (default: transfer's)")
    parser.add_argument("--sentence-max", action=argparse.BooleanOptionalAction, default=True,
                        help="ngram: serve each text as its harshest reading, the whole text or one of its sentences; "
                             "the decision is fitted on readings made so (default: on)")
    parser.add_argument("--cut", choices=sorted(CUTS), default=DEFAULT_CUT,
                        help="with sentence max, where a text is cut into parts: sentences, or clauses as well "
                             "(default %(default)s)")
    parser.add_argument("--no-screen", action="store_true", help="keep single-harm sources' negatives as they come")
    parser.add_argument("--seed-weight", type=float, default=None,
                        help="domains' weight of the team's seed corpus, data.seed (default: transfer's; 0 leaves it out)")
    parser.add_argument("--context-copies", type=count_arg, default=None,
                        help="copies of each seed sentence set in real context (default: transfer's; 0: none)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--quick", action="store_true", help="a small run: 8,000 texts")
    parser.add_argument("--limit", type=int, help="use at most this many texts (after deduplication)")
    parser.add_argument("--save-logits", type=Path,
                        help="also write the validation and test logits and labels here (.npz), to study the decision")
    args = parser.parse_args(argv)
    if args.recipe == "combo" and args.out == OUT_MODEL:
        args.out = OUT_ENCODER_MODEL
    if args.recipe == "combo":  # the encoder tier reads each text once (EncoderTierClassifier)
        args.sentence_max = False
    args.out.parent.mkdir(parents=True, exist_ok=True)

    try:
        import sklearn  # noqa: F401
    except ImportError:
        print("error: training needs the train extra: uv run --extra train --extra data python -m training.train_embedded", file=sys.stderr)
        return 1
    from classifiers.embedded import EmbeddedClassifier, EncoderTierClassifier, save_artifact
    from data.augment import Augmenter
    from data.readers import DataError
    from normalizer import Normalizer, PatternDatabaseError, load_database
    from training import transfer

    started = time.time()
    # The run's stages, as a bar with an ETA (a plain line per interval when stderr is not a terminal).
    stages = Progress(total=len(STAGES), desc="train_embedded", unit="stages")
    try:
        db = load_database(args.patterns)
        seed_weight = transfer.SEED_WEIGHT if args.seed_weight is None else args.seed_weight
        corpus = transfer.load_corpus(args.shared, clean_sentences=args.clean_sentences, seed=args.seed,
                                      team_seed=seed_weight > 0)
    except (DataError, PatternDatabaseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.quick or args.limit:
        pick = np.random.default_rng(args.seed).permutation(len(corpus))[: min(args.limit or 8000, len(corpus))]
        mask = np.zeros(len(corpus), dtype=bool)
        mask[pick] = True
        corpus = corpus.take(mask)
    log = lambda message: print(message, file=sys.stderr)  # noqa: E731
    log(f"corpus: {len(corpus)} texts from {len(np.unique(corpus.source))} sources in "
        f"{len(np.unique(corpus.domain))} domains; " + ", ".join(f"{s} {int(np.sum(corpus.split == s))}" for s in transfer.SPLITS))

    if args.recipe == "combo":
        cache = transfer.EmbeddingCache()
        make = lambda: transfer.ComboRecipe(cache, c=args.c, alpha=args.alpha, max_features=args.max_features)  # noqa: E731
    else:
        make = lambda: transfer.NgramRecipe(c=args.c, max_features=args.max_features, max_iter=args.max_iter)  # noqa: E731
    stages.update(1, done="corpus")
    keep, screened = ((np.ones(len(corpus), bool), {}) if args.no_screen
                      else transfer.screen_single_harm(corpus, seed_weight=seed_weight))
    stages.update(1, done="screening")
    if screened:
        log("screened out of training: " + ", ".join(f"{s} {v['left_out']}/{v['negatives']}" for s, v in screened.items()))
    train = corpus.take((corpus.split == "train") & keep)
    # Thresholds are fitted on validation texts screened like the training texts (as leave-one-domain-out does):
    # the single-harm sources' negatives that are abusive in another way would otherwise set the false-flag budget.
    val = corpus.take((corpus.split == "validation") & keep)
    test = corpus.take(corpus.split == "test")
    weights = transfer.balanced_weights(train, seed_weight)
    if args.context_copies is None:
        args.context_copies = transfer.CONTEXT_COPIES

    augmenter = Augmenter.from_database(db, seed=args.seed)
    # Safe texts are disguised with the generic techniques only (spacing, repetition, leetspeak, homoglyphs): no
    # database euphemism turns "killed it at work" into "unalived it at work".
    safe_augmenter = Augmenter.from_database(None, seed=args.seed)
    normalizer = Normalizer(db)
    base_text, base_label, base_weight = transfer.with_context(train, weights, args.context_copies, seed=args.seed)
    x_text, y, w = list(base_text), list(base_label), list(base_weight)
    for i, (text, label, weight) in enumerate(progress(zip(base_text, base_label, base_weight), total=len(base_text),
                                                       desc="algospeak variants", unit="texts")):
        variants = (safe_augmenter.variants(text, parent_id=f"train{i}", n=args.safe_variants) if label == 0
                    else augmenter.variants(text, parent_id=f"train{i}", n=args.variants))
        if not variants:
            continue
        share = weight / (1 + len(variants))  # parent and variants together keep the parent's weight
        w[i] = share
        for variant in variants:
            x_text.append(variant.text)
            y.append(label)
            w.append(share)
    y_arr, w_arr = np.array(y), np.array(w)
    stages.update(1, done="variants")
    log(f"training on {len(x_text)} texts ({len(base_text) - len(train)} seed sentences in context, "
        f"{len(x_text) - len(base_text)} algospeak variants)")
    model = make()
    model.fit(x_text, y_arr, w_arr)
    stages.update(1, done="fit")
    train_prior = transfer.effective_prior(y_arr, w_arr)
    budget = transfer.DEFAULT_FALSE_FLAG_BUDGET if args.budget is None else args.budget
    # The texts as serving reads them: with sentence max, each as its harshest sentence or whole (classifiers.embedded).
    reader = transfer.SentenceMax(model, args.cut) if args.sentence_max else model
    val_logits = reader.logits(val.text)
    decision = transfer.fit_decision(val_logits, val.label, train_prior, false_flag_budget=budget,
                                     fitted_on={"split": "validation", "texts": len(val)})
    log(f"decision: T={decision.temperature:.3f}, thresholds {decision.thresholds}")
    if args.save_logits:
        np.savez_compressed(args.save_logits, val_logits=val_logits, val_labels=val.label, val_text=np.array(list(val.text)),
                            test_logits=reader.logits(test.text),
                            test_labels=test.label, test_source=test.source, train_prior=train_prior)
    stages.update(1, done="decision")

    meta = {
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "recipe": args.recipe,
        "C": args.c,
        "max_iter": args.max_iter,
        "iterations": int(np.max(model.model.n_iter_)),
        **({"encoder": "all-MiniLM-L6-v2-onnx-int8", "alpha": args.alpha} if args.recipe == "combo" else {}),
        "features": len(model.vocab),
        "train_texts": len(train),
        "train_in_context": len(base_text) - len(train),
        "train_variants": len(x_text) - len(base_text),
        "sources": sorted(np.unique(corpus.source).tolist()),
        "screened_out_of_training": screened,
        "seed_weight": seed_weight,
        "context_copies": args.context_copies,
        "safe_variants": args.safe_variants,
        "sentence_max": args.sentence_max,
        **({"cut": args.cut} if args.sentence_max else {}),
        "pattern_db_version": db.version,
        "seed": args.seed,
        "decision": decision.as_dict(),
    }
    order = [list(model.model.classes_).index(k) for k in range(len(LABELS))]
    coef, intercept = model.model.coef_[order], model.model.intercept_[order]
    extra = {}
    if args.recipe == "combo":  # [n-gram columns | alpha * sentence vector]
        coef, extra = coef[:, : len(model.vocab)], {"encoder_weights": coef[:, len(model.vocab):], "encoder_alpha": args.alpha}
    tmp = args.out.with_suffix(".tmp.npz")
    save_artifact(tmp, model.vocab, coef, model.tfidf.idf_, intercept, meta, **extra)
    # Evaluate the saved artifact itself, through the serving code, so the figures describe what ships (the severity
    # model: a guide head, training.guide, is fitted on it afterwards; one left beside it from before is stale).
    classifier = EncoderTierClassifier(tmp) if args.recipe == "combo" else EmbeddedClassifier(tmp, guide=False)
    served = np.array([[s[label] for label in LABELS] for s in classifier.classify(val.text)])
    trained = decision.probs(val_logits)
    # Served as trained, but for near-ties: where two readings of a text (sentence max) are about equally harsh on
    # the raw logits, the served weights' float16 rounding may pick the other, whose served probabilities can be far
    # apart ("lol its photoshopped, I dont own one": its clauses tie). At most 1 text in 1,000 may differ.
    gaps = np.abs(trained - served).max(axis=1) if len(served) else np.zeros(0)
    apart = int((gaps > 0.02).sum())
    if apart > len(served) / 1000:
        print(f"error: serving probabilities differ from training by more than 0.02 for {apart} of {len(served)} "
              f"validation texts (largest {gaps.max():.4f})", file=sys.stderr)
        return 1
    meta["serving_parity_max_abs_diff"] = round(float(gaps[gaps <= 0.02].max(initial=0.0)), 5)  # of the others
    meta["serving_parity_texts_apart"] = apart
    stages.update(1, done="serving check")
    test_probs = np.array([[s[label] for label in LABELS] for s in classifier.classify(test.text)])
    test_pred = transfer.decide_many(test_probs, decision.thresholds)
    meta["test"] = transfer.decision_metrics(test.label, test_pred, test_probs)
    meta["test"]["ece_at_prior"] = round(transfer.weighted_ece(
        test_probs, test.label, transfer.prior_weights(test.label, decision.prior)), 4)
    meta["test_by_source"] = {s: transfer.decision_metrics(test.label[test.source == s], test_pred[test.source == s],
                                                          test_probs[test.source == s]) for s in np.unique(test.source)}
    stages.update(1, done="test")
    meta["robustness"] = robustness_report(classifier, normalizer, augmenter, test.text,
                                           [LABELS[k] for k in test.label])
    stages.update(1, done="robustness")
    stages.close()
    meta["seconds"] = round(time.time() - started, 1)
    save_artifact(args.out, model.vocab, coef, model.tfidf.idf_, intercept, meta, **extra)
    tmp.unlink(missing_ok=True)
    card = args.out.with_name("model_card.json")
    card.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: meta[k] for k in ("test", "robustness")}, indent=2))
    log(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) and {card}")
    if args.promote:
        return promote(args.out, DEFAULT_ENCODER_MODEL if args.recipe == "combo" else DEFAULT_EMBEDDED_MODEL)
    log("not shipped: --promote replaces the model in models/ (with its evaluation report)")
    return 0


def promote(artifact: Path, shipped: Path, data: Path | None = None, subset: str | None = None) -> int:
    """Evaluate `artifact` (training.model_evaluation, as the shipped report was made), then copy it, its card and
    that report over the shipped model; nothing is replaced when the evaluation fails."""
    import shutil

    from training import model_evaluation

    staging = artifact.parent / "eval"
    argv = ["--backend", "embedded", "--model-path", str(artifact), "--out", str(staging), "--no-mlflow"]
    if data is not None:
        argv += ["--data", str(data)]
    if subset is not None:
        argv += ["--subset", subset]
    if model_evaluation.main(argv) != 0:
        print(f"error: not promoted: the evaluation of {artifact} failed (above); {shipped} is unchanged",
              file=sys.stderr)
        return 1
    shutil.copy2(artifact, shipped)
    shutil.copy2(artifact.with_name("model_card.json"), shipped.with_name("model_card.json"))
    for path in staging.iterdir():
        if path.name.startswith("eval_") or path.name == "calibration.json":
            shutil.copy2(path, shipped.parent / path.name)
    print(f"promoted {artifact} to {shipped} with its evaluation report ({shipped.parent / 'eval_report.md'})",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
