"""The inference core on a tiny random Qwen2: one-pass scoring against a plain forward pass, batching and
padding, the artifact layouts, the checks at load, and the SageMaker handler functions."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from classifiers.base import ClassifierError
from core import llm_inference
from core.categories import CATEGORIES
from core.labels import LABELS
from core.llm_inference import BadRequest, LabelScorer
from deployment import inference

TEXTS = ["hi", "go k1ll yourself", "time to unalive myself " * 12, "x", "killed it at work today, so proud", "ok"]


def reference(scorer: LabelScorer, text: str) -> tuple[list[float], float]:
    """The answer position's distribution from an unpadded, ordinary forward pass of the whole model."""
    ids = torch.tensor([scorer.encoder.prompt_ids(text)])
    with torch.no_grad():
        logits = scorer.model(input_ids=ids).logits[0, -1].float()
    full = torch.softmax(logits, -1)
    picked = full[scorer.encoder.label_first_ids]
    return (picked / picked.sum()).tolist(), float(picked.sum())


def test_one_pass_scores_equal_a_plain_forward_pass(scorer):
    for text, prediction in zip(TEXTS, scorer.score(TEXTS)):
        probs, mass = reference(scorer, text)
        assert [prediction.scores[label] for label in LABELS] == pytest.approx(probs, abs=1e-5)
        assert prediction.label_mass == pytest.approx(mass, rel=1e-3)
        assert math.fsum(prediction.scores.values()) == pytest.approx(1.0, abs=1e-6)


def category_reference(scorer: LabelScorer, text: str) -> list[float]:
    """Each category's P(" yes" | " yes" or " no") from an unpadded, ordinary forward pass, read before each of
    the prompt's last len(CATEGORIES) placeholders (found in the ids here, not from the encoder's offsets)."""
    ids = scorer.encoder.prompt_ids(text)
    slots = [i for i, token in enumerate(ids) if token == scorer.encoder.placeholder_id][-len(CATEGORIES):]
    with torch.no_grad():
        logits = scorer.model(input_ids=torch.tensor([ids])).logits[0].float()
    yes, no = scorer.encoder.category_answer_ids
    return [float(torch.softmax(logits[slot - 1, [yes, no]], -1)[0]) for slot in slots]


@pytest.mark.parametrize("side", ["right", "left"])
def test_one_pass_reads_the_category_field_too(scorer, side, monkeypatch):
    """The same forward pass that scores the label gives each category's probability, equal to an ordinary
    forward pass read at that category's answer position, whatever the padding; a text spelling the category
    block itself ("hate?") does not move where the categories are read."""
    monkeypatch.setattr(scorer.tokenizer, "padding_side", side)
    texts = [*TEXTS, "hate? violence? drugs?"]
    for text, prediction in zip(texts, scorer.score(texts)):
        assert list(prediction.categories) == list(CATEGORIES)
        assert [prediction.categories[c] for c in CATEGORIES] == pytest.approx(category_reference(scorer, text), abs=1e-5)
    assert len({round(p, 6) for p in prediction.categories.values()}) > 1  # eight positions, not one read 8 times


@pytest.mark.parametrize("side", ["right", "left"])
def test_batches_are_padding_aware_and_keep_request_order(scorer, side, monkeypatch):
    monkeypatch.setattr(scorer.tokenizer, "padding_side", side)
    alone = [scorer.score([text])[0].scores for text in TEXTS]
    batched = [p.scores for p in scorer.score(TEXTS)]  # batch_size 4: two batches, sorted by length
    for a, b in zip(alone, batched):
        assert [a[k] for k in LABELS] == pytest.approx([b[k] for k in LABELS], abs=1e-5)


def test_the_prompt_is_the_training_prompt(scorer):
    from core.prompt import PromptEncoder

    assert scorer.encoder.prompt_ids("abc") == PromptEncoder(scorer.tokenizer, scorer.encoder.max_length).prompt_ids("abc")
    assert len(set(scorer.encoder.label_first_ids)) == len(LABELS)


def test_adapter_dir_is_merged_onto_its_base(adapter_dir, scorer):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    merged = LabelScorer.from_dir(adapter_dir)
    assert merged.encoder.max_length == 256  # from training_config.json
    base_model = AutoModelForCausalLM.from_pretrained(json.loads((adapter_dir / "training_config.json").read_text())["base_model"])
    unmerged = PeftModel.from_pretrained(base_model, str(adapter_dir)).eval()
    ids = torch.tensor([merged.encoder.prompt_ids(TEXTS[1])])
    with torch.no_grad():
        picked = torch.softmax(unmerged(input_ids=ids).logits[0, -1][merged.encoder.label_first_ids], -1).tolist()
    got = merged.score([TEXTS[1]])[0].scores
    assert [got[k] for k in LABELS] == pytest.approx(picked, abs=1e-4)
    base = scorer.score([TEXTS[1]])[0].scores
    assert max(abs(got[k] - base[k]) for k in LABELS) > 1e-3  # the adapter matters


def test_merged_subdir_is_preferred(tmp_path, tiny_qwen_dir):
    shutil.copytree(tiny_qwen_dir, tmp_path / "merged")
    (tmp_path / "adapter_config.json").write_text("{}")  # would fail to load if chosen
    path, adapter = llm_inference.locate_artifact(tmp_path)
    assert path == tmp_path / "merged" and adapter is None


def test_artifacts_that_do_not_describe_themselves_are_refused(tmp_path, tiny_qwen_dir, adapter_dir):
    with pytest.raises(ClassifierError, match="neither"):
        LabelScorer.from_dir(tmp_path)
    wrong = tmp_path / "wrong-labels"
    shutil.copytree(tiny_qwen_dir, wrong)
    (wrong / "labels.json").write_text(json.dumps({"labels": ["ok", "bad"], "label_first_token_ids": [1, 2]}))
    with pytest.raises(ClassifierError, match="trained for labels"):
        LabelScorer.from_dir(wrong)
    (wrong / "labels.json").write_text(json.dumps({"labels": list(LABELS), "label_first_token_ids": [1, 2, 3, 4],
                                                   "categories": list(CATEGORIES)}))
    with pytest.raises(ClassifierError, match="tokenizer"):
        LabelScorer.from_dir(wrong)
    # an artifact trained before the prompt carried the category field is refused, not served with a new prompt
    (wrong / "labels.json").write_text(json.dumps({"labels": list(LABELS), "label_first_token_ids": [1, 2, 3, 4]}))
    with pytest.raises(ClassifierError, match="before the prompt carried the category field"):
        LabelScorer.from_dir(wrong)
    orphan = tmp_path / "orphan"
    shutil.copytree(adapter_dir, orphan)
    (orphan / "training_config.json").unlink()
    (orphan / "adapter_config.json").write_text(json.dumps({**json.loads((adapter_dir / "adapter_config.json").read_text()),
                                                            "base_model_name_or_path": None}))
    with pytest.raises(ClassifierError, match="names no base model"):
        LabelScorer.from_dir(orphan)


def test_non_finite_output_is_an_error_not_an_answer(scorer):
    import copy

    model = copy.deepcopy(scorer.model)
    with torch.no_grad():
        model.model.norm.weight.fill_(float("inf"))
    with pytest.raises(ClassifierError, match="non-finite"):
        LabelScorer(model, scorer.tokenizer).score(["anything"])


def test_sagemaker_handlers_single_and_batch(tiny_qwen_dir, monkeypatch):
    monkeypatch.setenv("INFERENCE_BATCH_SIZE", "2")
    model = inference.model_fn(str(tiny_qwen_dir))
    assert model.batch_size == 2
    for body, count in ((json.dumps({"inputs": "one text"}), 1), (json.dumps({"inputs": TEXTS}), len(TEXTS)),
                        (json.dumps(["a", "b"]).encode(), 2)):
        data = inference.input_fn(body, "application/json")
        raw = inference.output_fn(inference.predict_fn(data, model), "application/json")
        answer = json.loads(raw)
        assert answer["labels"] == list(LABELS) and answer["model_version"] == model.version
        assert len(answer["predictions"]) == count  # always a list, whatever the request's shape
        scores, categories = llm_inference.validate_response(answer, count)
        texts = data if isinstance(data, list) else [data]
        assert categories == [p.categories for p in model.score(texts)]  # the category field comes back
        for item in answer["predictions"]:
            assert item["label"] == max(item["scores"], key=item["scores"].get)
            assert 0 < item["label_mass"] <= 1
            assert list(item["categories"]) == list(CATEGORIES)


@pytest.mark.parametrize("body,content_type", [
    ("not json", "application/json"), ("{}", "application/json"), ('{"inputs": []}', "application/json"),
    ('{"inputs": [1, 2]}', "application/json"), ('{"inputs": "a"}', "text/csv"), (b"\xff\xfe", "application/json"),
])
def test_input_fn_refuses_what_is_not_the_contract(body, content_type):
    with pytest.raises(BadRequest):
        inference.input_fn(body, content_type)


@pytest.mark.parametrize("answer", [
    None, {}, {"predictions": "x"}, {"predictions": []},
    {"predictions": [{"scores": {"safe": 1.0}}]},
    {"predictions": [{"scores": dict(zip(LABELS, [0.5, 0.5, 0.5, 0.5]))}]},
    {"predictions": [{"scores": dict(zip(LABELS, [float("nan"), 0.5, 0.25, 0.25]))}]},
    {"predictions": [{"scores": dict(zip(LABELS, [True, 0, 0, 0]))}]},
])
def test_validate_response_refuses_garbage(answer):
    with pytest.raises(ClassifierError):
        llm_inference.validate_response(answer, 1)


SCORES = dict(zip(LABELS, [0.7, 0.1, 0.1, 0.1]))
KINDS = dict.fromkeys(CATEGORIES, 0.25)


@pytest.mark.parametrize("predictions,message", [
    ([{"scores": SCORES, "categories": {**KINDS, "gore": 0.5}}], "returned categories"),
    ([{"scores": SCORES, "categories": {k: v for k, v in KINDS.items() if k != "drugs"}}], "returned categories"),
    ([{"scores": SCORES, "categories": {**KINDS, "hate": 1.5}}], "not probabilities"),
    ([{"scores": SCORES, "categories": {**KINDS, "hate": float("nan")}}], "not probabilities"),
    ([{"scores": SCORES, "categories": {**KINDS, "hate": True}}], "not probabilities"),
    ([{"scores": SCORES, "categories": {**KINDS, "hate": "0.5"}}], "not probabilities"),
    ([{"scores": SCORES, "categories": None}], "returned categories"),
    ([{"scores": SCORES, "categories": ["hate"]}], "returned categories"),
    ([{"scores": SCORES, "categories": KINDS}, {"scores": SCORES}], "categories for 1 of 2 predictions"),
])
def test_a_malformed_category_block_is_refused(predictions, message):
    answer = {"labels": list(LABELS), "model_version": "v", "predictions": predictions}
    with pytest.raises(ClassifierError, match=message):
        llm_inference.validate_response(answer, len(predictions))
    well_formed = [{"scores": SCORES, "categories": KINDS} for _ in predictions]
    assert llm_inference.validate_response({**answer, "predictions": well_formed}, len(predictions))[1] == [KINDS] * len(predictions)


def test_transformers_backend_through_the_registry(tiny_qwen_dir, scorer):
    from classifiers.registry import create_classifier
    from core.settings import Settings

    settings = Settings(classifier_backend="transformers", transformers_model_path=tiny_qwen_dir, transformers_batch_size=3)
    classifier = create_classifier(settings)
    assert classifier.name == "transformers" and classifier.version == scorer.version
    assert classifier.classify(TEXTS[:2]) == [p.scores for p in scorer.score(TEXTS[:2])]
    scores, categories = classifier.classify_with_categories(TEXTS[:2])
    assert categories == [p.categories for p in scorer.score(TEXTS[:2])]
    with pytest.raises(ClassifierError, match="TRANSFORMERS_MODEL_PATH"):
        create_classifier(Settings(classifier_backend="transformers"))


def _fake_bf16(native: bool):
    """torch.cuda.is_bf16_supported as on a GPU with (Ampere+) or without (T4) native bf16; like torch, it
    answers True on a T4 when emulation counts (the default)."""
    def is_bf16_supported(including_emulation: bool = True) -> bool:
        return native or including_emulation
    return is_bf16_supported


@pytest.mark.parametrize("native,device,expected", [
    (True, "cuda", torch.bfloat16),     # A10G, L4, A100, H100: bf16, fp16's overflow risk gone
    (True, "cuda:1", torch.bfloat16),
    (False, "cuda", torch.float16),     # a T4: fp16 (emulated bf16 does not count), outputs checked for finiteness
    (True, "cpu", torch.float32),
    (False, "cpu", torch.float32),
])
def test_auto_dtype_is_bf16_where_the_gpu_has_it(monkeypatch, native, device, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", _fake_bf16(native))
    assert llm_inference.resolve_dtype(None, device) == expected
    assert llm_inference.resolve_dtype("auto", device) == expected
    assert llm_inference.resolve_dtype("float16", device) == torch.float16  # told: as told
    assert llm_inference.resolve_dtype("fp32", device) == torch.float32
    with pytest.raises(ClassifierError, match="unknown dtype"):
        llm_inference.resolve_dtype("int8", device)


def test_auto_dtype_on_an_older_torch_without_the_emulation_argument(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert llm_inference.resolve_dtype("auto", "cuda") == torch.float16


@pytest.mark.parametrize("trained,refused", [("4.49.0", True), ("6.0.0", True), (None, False), ("same-major", False)])
def test_an_artifact_of_another_transformers_major_is_refused(tmp_path, tiny_qwen_dir, monkeypatch, trained, refused):
    """transformers 4.x reads a 5.x artifact wrongly (unknown tokenizer class, rope_parameters ignored so
    rope_theta silently 10000): refuse at load, clearly, rather than serve a different model."""
    import transformers

    artifact = tmp_path / "model"
    shutil.copytree(tiny_qwen_dir, artifact)
    if trained == "same-major":
        trained = f"{transformers.__version__.split('.')[0]}.0.0"
    versions = {"python": "3.12.0", "torch": "2.9.0", "peft": "0.18.0"}
    if trained is not None:
        versions["transformers"] = trained
    (artifact / "training_config.json").write_text(json.dumps({"max_length": 192, "versions": versions}))
    if refused:
        with pytest.raises(ClassifierError, match=rf"transformers {trained} \(major \d+\).*transformers "
                                                  rf"{transformers.__version__}"):
            LabelScorer.from_dir(artifact)
        with pytest.raises(ClassifierError, match="across transformers majors"):
            inference.model_fn(str(artifact))
    else:
        assert inference.model_fn(str(artifact)).encoder.max_length == 192
