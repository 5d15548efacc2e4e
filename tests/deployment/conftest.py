"""Stage 2 serving fixtures: a scorer over the tiny random Qwen2, and a PEFT adapter trained on nothing but
initialised away from zero (so merging it visibly changes the scores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")


@pytest.fixture(scope="session")
def scorer(tiny_qwen_dir):
    from core.llm_inference import LabelScorer

    return LabelScorer.from_dir(tiny_qwen_dir, batch_size=4)


@pytest.fixture(scope="session")
def adapter_dir(tmp_path_factory, tiny_qwen_dir) -> Path:
    """A training-output-shaped adapter dir: adapter, tokenizer, labels.json, training_config.json."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.prompt import PromptEncoder

    out = tmp_path_factory.mktemp("adapter")
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_qwen_dir), dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False,
                        task_type="CAUSAL_LM")
    model = get_peft_model(base, config)
    with torch.no_grad():  # big enough to move the label logits
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.mul_(50.0)
    model.save_pretrained(str(out))
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_qwen_dir))
    tokenizer.save_pretrained(str(out))
    encoder = PromptEncoder(tokenizer, 256)
    (out / "labels.json").write_text(json.dumps(encoder.labels_document()))
    (out / "training_config.json").write_text(json.dumps({"base_model": str(tiny_qwen_dir), "max_length": 256}))
    return out
