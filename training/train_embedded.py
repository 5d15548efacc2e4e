"""Train the embedded (offline) classifier and write `models/embedded/`.

    uv run --extra train --extra data python -m training.train_embedded            # ~2 minutes on 2 cores
    uv run --extra train --extra data python -m training.train_embedded --quick    # smaller, for a smoke run

What it does, in order:
1. Reads the real labelled sets in ../shared/data (data.readers.load_shared_sources) and adds "clean
   sentences" from Civil Comments: sentences of toxic-span posts that no rater marked, labelled safe. Without
   them every safe text is a tweet and every harmful one a news comment, and a model learns the source's style
   instead of harm. They are a weak label and are reported as their own source.
2. Splits 80/10/10 by a hash of each text's near-duplicate key (so duplicates never straddle splits).
3. Adds algospeak variants of potentially harmful and worse training texts (data.augment, with the pattern
   database): the model learns coded forms as well as the normalizer's output.
4. Weights samples so that within each label every source carries the same total weight.
5. Fits a multinomial logistic regression on binary IDF-weighted word 1-2-grams and character 3-5-grams
   (classifiers.features), choosing C on the validation split by macro-F1.
6. Reports on the test split: macro-F1 overall, by label and by source, and robustness to algospeak
   (recall of harmful-or-worse texts on plain text, on variants, and on variants after normalization).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from core.labels import LABELS, SEVERITY
from core.settings import DEFAULT_EMBEDDED_MODEL, DEFAULT_PATTERN_DB, ROOT
from training.model_evaluation import macro_f1, robustness_report  # the metrics live with the evaluation

SPLITS = ("train", "validation", "test")
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")


def split_of(key: str) -> str:
    bucket = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "train" if bucket < 80 else "validation" if bucket < 90 else "test"


def civil_clean_sentences(shared_root: Path, limit: int, seed: int) -> list[tuple[str, str]]:
    """(sentence, post id) pairs from Civil Comments toxic-span posts that overlap no rater's span."""
    import polars as pl

    folder = shared_root / "civil_comments_toxic_spans"
    comments = pl.read_csv(folder / "comments_dev.csv", infer_schema=False)
    annotations = pl.read_csv(folder / "annotations_dev.csv", infer_schema=False)
    spans = pl.read_csv(folder / "spans_dev.csv", infer_schema=False)
    spans = spans.join(annotations.select("annotation", "comment_id"), on="annotation").with_columns(
        pl.col("start").cast(pl.Int64, strict=False), pl.col("end").cast(pl.Int64, strict=False)
    )
    by_post: dict[str, list[tuple[int, int]]] = {}
    for cid, start, end in spans.select("comment_id", "start", "end").iter_rows():
        if start is not None and end is not None:
            by_post.setdefault(cid, []).append((start, end))
    out: list[tuple[str, str]] = []
    for cid, text in comments.select("comment_id", "comment_text").iter_rows():
        marked = by_post.get(cid)
        if not marked or not text:
            continue  # posts without spans are toxic as a whole: nothing in them is known to be clean
        for m in _SENTENCE.finditer(text):
            sentence = m.group().strip()
            if len(sentence) < 30 or any(m.start() < e and s < m.end() for s, e in marked):
                continue
            out.append((sentence, cid))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(out))[:limit]
    return [out[i] for i in sorted(order)]


def load_corpus(shared_root: Path, clean_limit: int, seed: int):
    """Rows of (text, label, source, group key) with near-duplicates removed."""
    import polars as pl

    from data.readers import dedupe_key, load_shared_sources

    df = load_shared_sources(shared_root)
    clean = civil_clean_sentences(shared_root, clean_limit, seed)
    extra = pl.DataFrame(
        {"text": [s for s, _ in clean], "label": ["safe"] * len(clean), "source": ["civil_comments_clean_sentences"] * len(clean)}
    )
    df = pl.concat([df, extra]).with_columns(dedupe_key(pl.col("text")).alias("key"))
    df = df.filter(pl.col("key").str.len_chars() > 0)
    # The same text with different labels across sources: keep the most severe reading once.
    df = (
        df.with_columns(pl.col("label").replace_strict(SEVERITY).alias("sev"))
        .sort("sev", descending=True)
        .unique(subset="key", keep="first", maintain_order=True)
        .drop("sev")
    )
    return df


def source_balanced_weights(labels: list[str], sources: list[str]) -> np.ndarray:
    """Within each label every source gets the same total weight; labels keep their overall share."""
    labels_a = np.array(labels)
    sources_a = np.array(sources)
    w = np.ones(len(labels), dtype=np.float64)
    for label in set(labels):
        in_label = labels_a == label
        present = sorted(set(sources_a[in_label]))
        per_source = in_label.sum() / len(present)
        for source in present:
            mask = in_label & (sources_a == source)
            w[mask] = per_source / mask.sum()
    return w / w.mean()


def select_vocabulary(texts: list[str], max_features: int, min_df: int, chunk: int = 4096) -> np.ndarray:
    """The sorted hashes of the `max_features` features in most texts (and in at least `min_df`)."""
    from classifiers.features import hash_features

    per_chunk = []
    for i in range(0, len(texts), chunk):
        owner, hashes = hash_features(texts[i : i + chunk])
        keys = np.unique(np.stack([owner.astype(np.uint64), hashes], axis=1), axis=0)
        per_chunk.append(keys[:, 1])
    values, df = np.unique(np.concatenate(per_chunk), return_counts=True)
    keep = df >= min_df
    values, df = values[keep], df[keep]
    if len(values) > max_features:
        top = np.argsort(-df, kind="stable")[:max_features]
        values = values[top]
    return np.sort(values)


def binary_matrix(texts: list[str], vocab: np.ndarray, chunk: int = 4096):
    """Texts x vocabulary, 1 where the feature occurs (the serving code's features, exactly)."""
    from scipy.sparse import csr_matrix, vstack

    from classifiers.features import FeatureIndex, feature_matrix_indices

    index = FeatureIndex(vocab)
    blocks = []
    for i in range(0, len(texts), chunk):
        part = texts[i : i + chunk]
        rows, cols = feature_matrix_indices(part, index)
        blocks.append(csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(part), len(vocab))))
    return vstack(blocks).tocsr()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data", help="labelled data root")
    parser.add_argument("--out", type=Path, default=DEFAULT_EMBEDDED_MODEL, help="artifact path (model.npz)")
    parser.add_argument("--patterns", type=Path, default=DEFAULT_PATTERN_DB, help="pattern database for augmentation")
    parser.add_argument("--clean-sentences", type=int, default=6000, help="Civil Comments clean sentences to add")
    parser.add_argument("--variants", type=int, default=1, help="algospeak variants per non-safe training text")
    parser.add_argument("--max-features", type=int, default=200_000)
    parser.add_argument("--c", type=float, nargs="+", default=[2.0, 8.0, 32.0], help="inverse regularisation grid")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--quick", action="store_true", help="a small run: 8,000 texts, one C")
    parser.add_argument("--limit", type=int, help="use at most this many texts (after deduplication)")
    args = parser.parse_args(argv)

    try:
        from sklearn.feature_extraction.text import TfidfTransformer
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        print("error: training needs the train extra: uv run --extra train --extra data python -m training.train_embedded", file=sys.stderr)
        return 1
    from classifiers.embedded import EmbeddedClassifier, save_artifact
    from data.augment import Augmenter
    from data.readers import DataError
    from normalizer import Normalizer, PatternDatabaseError, load_database

    started = time.time()
    try:
        db = load_database(args.patterns)
        df = load_corpus(args.shared, args.clean_sentences, args.seed)
    except (DataError, PatternDatabaseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.quick or args.limit:
        df = df.sample(n=min(args.limit or 8000, df.height), seed=args.seed)
        args.c = args.c[:1]
    rows = {s: {"text": [], "label": [], "source": []} for s in SPLITS}
    for text, label, source, key in df.select("text", "label", "source", "key").iter_rows():
        split = rows[split_of(key)]
        split["text"].append(text)
        split["label"].append(label)
        split["source"].append(source)
    print(f"corpus: {df.height} texts; " + ", ".join(f"{s} {len(rows[s]['text'])}" for s in SPLITS), file=sys.stderr)

    augmenter = Augmenter.from_database(db, seed=args.seed)
    normalizer = Normalizer(db)
    train = rows["train"]
    aug_text, aug_label, aug_source = [], [], []
    for i, (text, label, source) in enumerate(zip(train["text"], train["label"], train["source"])):
        if label == "safe" or args.variants <= 0:
            continue
        for variant in augmenter.variants(text, parent_id=f"train{i}", n=args.variants):
            aug_text.append(variant.text)
            aug_label.append(label)
            aug_source.append(source)
    x_text = train["text"] + aug_text
    y = train["label"] + aug_label
    sources = train["source"] + aug_source
    weights = source_balanced_weights(y, sources)
    print(f"training on {len(x_text)} texts ({len(aug_text)} algospeak variants)", file=sys.stderr)

    vocab = select_vocabulary(x_text, args.max_features, min_df=2)
    tfidf = TfidfTransformer(norm="l2", use_idf=True, smooth_idf=True)
    x_train = tfidf.fit_transform(binary_matrix(x_text, vocab))
    x_val = tfidf.transform(binary_matrix(rows["validation"]["text"], vocab))

    best = None
    for c in args.c:
        model = LogisticRegression(C=c, max_iter=400, tol=1e-4)
        model.fit(x_train, y, sample_weight=weights)
        score, _ = macro_f1(rows["validation"]["label"], list(model.predict(x_val)))
        print(f"C={c}: validation macro-F1 {score:.4f}", file=sys.stderr)
        if best is None or score > best[0]:
            best = (score, c, model)
    assert best is not None
    val_f1, best_c, model = best
    order = [list(model.classes_).index(label) for label in LABELS]

    meta = {
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "C": best_c,
        "validation_macro_f1": round(val_f1, 4),
        "features": len(vocab),
        "train_texts": len(train["text"]),
        "train_variants": len(aug_text),
        "pattern_db_version": db.version,
        "seed": args.seed,
    }
    tmp = args.out.with_suffix(".tmp.npz")
    save_artifact(tmp, vocab, model.coef_[order], tfidf.idf_, model.intercept_[order], meta)

    # Evaluate the saved artifact itself, through the serving code, so the figures describe what ships.
    classifier = EmbeddedClassifier(tmp)
    # Parity: the serving code must reproduce the trained model's probabilities (up to float16 weights).
    reference = model.predict_proba(x_val)[:, order]
    served = np.array([[s[label] for label in LABELS] for s in classifier.classify(rows["validation"]["text"])])
    gap = float(np.abs(reference - served).max()) if len(served) else 0.0
    if gap > 0.02:
        print(f"error: serving probabilities differ from training by {gap:.4f}", file=sys.stderr)
        return 1
    meta["serving_parity_max_abs_diff"] = round(gap, 5)
    test = rows["test"]
    predicted = [max(s, key=s.get) for s in classifier.classify(test["text"])]
    test_f1, per_label = macro_f1(test["label"], predicted)
    by_source = {}
    for source in sorted(set(test["source"])):
        idx = [i for i, s in enumerate(test["source"]) if s == source]
        f1, _ = macro_f1([test["label"][i] for i in idx], [predicted[i] for i in idx])
        accuracy = float(np.mean([test["label"][i] == predicted[i] for i in idx]))
        by_source[source] = {"n": len(idx), "macro_f1": round(f1, 4), "accuracy": round(accuracy, 4)}

    robustness = robustness_report(classifier, normalizer, augmenter, test["text"], test["label"])
    meta.update(
        test_macro_f1=round(test_f1, 4),
        test_accuracy=round(float(np.mean([t == p for t, p in zip(test["label"], predicted)])), 4),
        test_per_label=per_label,
        test_by_source=by_source,
        robustness=robustness,
        seconds=round(time.time() - started, 1),
    )
    save_artifact(args.out, vocab, model.coef_[order], tfidf.idf_, model.intercept_[order], meta)
    tmp.unlink(missing_ok=True)
    card = args.out.with_name("model_card.json")
    card.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: meta[k] for k in ("test_macro_f1", "test_accuracy", "test_by_source", "robustness")}, indent=2))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) and {card}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
