"""The embedded classifier's training features: the vocabulary a model keeps and the sparse texts x vocabulary
matrix, built on the serving code's hashed n-grams (`classifiers/features.py`), so training and serving cannot
drift apart.

Shared by the shipped model's training (`training/train_embedded.py`), leave-one-domain-out
(`training/transfer.py`) and the category heads (`training/categories.py`); it sits below all three, so none of
them imports another for these.
"""

from __future__ import annotations

import numpy as np


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
