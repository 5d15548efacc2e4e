"""The offline Qwen2.5 tokenizer and random models that Stage 2 tests and GPU benchmarks are built on."""

import pytest

pytest.importorskip("transformers")

from core.labels import LABELS  # noqa: E402
from core.prompt import build_training_messages  # noqa: E402


def test_tokenizer_gives_qwen25_ids(qwen_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(qwen_tokenizer_dir)
    # Ids read off the published Qwen2.5 tokenizer: "Hello"=9707, " world"=1879, "!"=0; digits one at a time.
    assert tok("Hello world! 123")["input_ids"] == [9707, 1879, 0, 220, 16, 17, 18]
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [151643, 151644, 151645]
    assert tok.decode(tok("unalive 💀 k1ll")["input_ids"]) == "unalive 💀 k1ll"


def test_chat_template_is_qwen_format(qwen_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(qwen_tokenizer_dir)
    rendered = tok.apply_chat_template(build_training_messages("hi", "harmful"), tokenize=False)
    assert rendered.startswith("<|im_start|>system\nYou are a content moderation classifier.")
    assert rendered.endswith("<|im_start|>user\nClassify this text:\n\nhi<|im_end|>\n"
                             "<|im_start|>assistant\nharmful<|im_end|>\n")


def test_label_first_tokens_differ(qwen_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(qwen_tokenizer_dir)
    firsts = [tok(label, add_special_tokens=False)["input_ids"][0] for label in LABELS]
    assert len(set(firsts)) == len(LABELS)


def test_tiny_model_loads_and_runs(tiny_qwen_dir):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen_dir)
    assert model.config.vocab_size == 151936 and model.config.num_hidden_layers == 2
    logits = model(torch.tensor([[9707, 1879]])).logits
    assert logits.shape == (1, 2, 151936) and torch.isfinite(logits).all()


def test_prompt_encoder_matches_chat_template_and_masks_the_prompt(qwen_tokenizer_dir):
    from transformers import AutoTokenizer

    from core.prompt import PromptEncoder, build_messages

    tok = AutoTokenizer.from_pretrained(qwen_tokenizer_dir)
    enc = PromptEncoder(tok, max_length=256)
    text = "i'm gonna unalive myself tonight"
    expected = tok.apply_chat_template(build_messages(text), add_generation_prompt=True, tokenize=False)
    assert tok.decode(enc.prompt_ids(text)) == expected
    ids, labels = enc.training_example(text, "extremely_harmful")
    answer = [i for i, lab in zip(ids, labels) if lab != -100]
    assert tok.decode(answer) == "extremely_harmful<|im_end|>"
    assert labels[: len(enc.prompt_ids(text))] == [-100] * len(enc.prompt_ids(text))


def test_prompt_encoder_cuts_the_text_not_the_instructions(qwen_tokenizer_dir):
    from transformers import AutoTokenizer

    from core.prompt import PromptEncoder

    tok = AutoTokenizer.from_pretrained(qwen_tokenizer_dir)
    enc = PromptEncoder(tok, max_length=128)
    ids, _ = enc.training_example("word " * 1000, "safe")
    assert len(ids) <= 128
    assert ids[: len(enc.prefix_ids)] == enc.prefix_ids and ids[-len(enc.answer_ids["safe"]):] == enc.answer_ids["safe"]
    with pytest.raises(ValueError, match="unknown label"):
        enc.training_example("x", "toxic")
