"""The QLoRA entry point end to end on a tiny random Qwen2 (real Qwen2.5 tokenizer), through the real
bitsandbytes 4-bit NF4 + peft path on CPU: train, save, reload, resume, merge."""

import json
import shutil

import pytest

pytest.importorskip("peft")
pytest.importorskip("bitsandbytes")

from core.categories import CATEGORIES
from core.labels import LABELS
from training import train_script

TEXTS = ["have a nice day", "go unalive yourself", "ppl who say seggs lol", "i will k1ll you tonight",
         "the cat sat on the mat", "sewer slide is not a joke", "you absolute idiot", "great game last night"]
PROBE = "time to unalive myself"


def write_split(path, n, offset=0):
    # categories as data.prepare writes them: 1 yes, 0 no, null unknown
    rows = [{"text": TEXTS[(i + offset) % len(TEXTS)], "label": LABELS[i % len(LABELS)], "source": "test",
             "categories": {"violence": int(i % len(LABELS) == 3), "self_harm": None if i % 2 else 0}}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def argv(base, data, run, *extra):
    return ["--train", str(data / "train.jsonl"), "--validation", str(data / "validation.jsonl"),
            "--model-dir", str(run / "model"), "--checkpoint-dir", str(run / "checkpoints"),
            "--base-model", str(base), "--max-length", "192", "--batch-size", "2",
            "--gradient-accumulation-steps", "1", "--eval-batch-size", "4", "--epochs", "1", "--save-steps", "2",
            "--save-total-limit", "3", "--learning-rate", "1e-2", "--logging-steps", "1", *extra]


class Watch:
    """A Trainer callback: parameters before and after training, and the trained model's probe logits."""

    def __new__(cls, probe_batch):
        from transformers import TrainerCallback

        class Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, model=None, **kw):
                self.before = {n: p.detach().clone() for n, p in model.named_parameters()}

            def on_train_end(self, args, state, control, model=None, **kw):
                import torch

                self.after = {n: p.detach().clone() for n, p in model.named_parameters()}
                was_training = model.training
                model.eval()
                with torch.no_grad():
                    self.logits = model(**probe_batch).logits.float()
                model.train(was_training)

        return Callback()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    write_split(folder / "train.jsonl", 8)
    write_split(folder / "validation.jsonl", 4, offset=3)
    return folder


def probe_batch(base):
    import torch
    from transformers import AutoTokenizer

    from core.prompt import PromptEncoder

    ids = PromptEncoder(AutoTokenizer.from_pretrained(base), 192).prompt_ids(PROBE)
    return {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}


@pytest.fixture(scope="module")
def trained(tiny_qwen_dir, data, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    watch = Watch(probe_batch(tiny_qwen_dir))
    args = train_script.build_parser().parse_args(argv(tiny_qwen_dir, data, run, "--merge"))
    summary = train_script.train(args, callbacks=[watch])
    return run, watch, summary


def test_writes_the_output_contract(trained, tiny_qwen_dir, data):
    run, _, summary = trained
    model = run / "model"
    assert summary["model_dir"] == str(model)
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "labels.json",
                 "training_config.json", "metrics.json"):
        assert (model / name).is_file(), name
    labels = json.loads((model / "labels.json").read_text())
    assert labels["labels"] == list(LABELS) and len(set(labels["label_first_token_ids"])) == 4
    assert labels["categories"] == list(CATEGORIES) and len(set(labels["category_answer_token_ids"])) == 2
    config = json.loads((model / "training_config.json").read_text())
    assert config["base_model"] == str(tiny_qwen_dir) and config["max_length"] == 192
    assert config["hyperparameters"]["lora_r"] == 16 and config["hyperparameters"]["lora_alpha"] == 32
    assert config["quantization"]["bnb_4bit_quant_type"] == "nf4" and config["quantization"]["bnb_4bit_use_double_quant"]
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= set(config["lora"]["target_modules"])
    assert config["data"]["train"]["rows"] == 8
    assert config["data"]["train"]["sha256"] == train_script.sha256_file(data / "train.jsonl")
    assert {"torch", "transformers", "peft", "bitsandbytes"} <= set(config["versions"])
    metrics = json.loads((model / "metrics.json").read_text())
    assert metrics["global_step"] == 4  # 8 examples, batch 2, one epoch
    [epoch] = metrics["epochs"]  # evaluated once per epoch
    assert epoch["eval_loss"] > 0 and 0.0 <= epoch["eval_macro_f1"] <= 1.0
    # the loss is on the answer only: a label is a few tokens, so the loss starts near ln(vocab), not far above
    assert metrics["train_loss_log"][0]["loss"] < 13.0


def test_lora_weights_change_and_base_weights_do_not(trained):
    _, watch, _ = trained
    lora = [n for n in watch.before if "lora_" in n]
    base = [n for n in watch.before if "lora_" not in n]
    assert lora and base
    assert all(not watch.before[n].equal(watch.after[n]) for n in lora if "lora_B" in n)
    assert all(watch.before[n].equal(watch.after[n]) for n in base)
    # the base really is 4-bit: packed uint8 weights in the linear layers
    assert any(watch.before[n].dtype == __import__("torch").uint8 for n in base)


def test_reloaded_adapter_gives_the_same_logits(trained, tiny_qwen_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    run, watch, _ = trained
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(tiny_qwen_dir, quantization_config=quant, dtype=torch.float32,
                                                device_map={"": "cpu"})
    model = PeftModel.from_pretrained(base, run / "model").eval()
    # bitsandbytes' CPU inference kernel (a repacked layout) differs from the training one by ~1e-3; compare
    # like with like
    train_script._keep_cpu_4bit_layout(model)
    with torch.no_grad():
        logits = model(**probe_batch(tiny_qwen_dir)).logits.float()
    assert torch.allclose(logits, watch.logits, atol=1e-5, rtol=1e-5)
    with model.disable_adapter(), torch.no_grad():
        untrained = model(**probe_batch(tiny_qwen_dir)).logits.float()
    assert not torch.allclose(untrained, logits, atol=1e-3)  # the adapter matters


def test_merged_model_is_base_plus_lora_delta(trained, tiny_qwen_dir):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    run, _, _ = trained
    merged_dir = run / "model" / "merged"
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    assert merged.dtype == torch.float16
    assert json.loads((merged_dir / "labels.json").read_text())["labels"] == list(LABELS)
    assert (merged_dir / "tokenizer.json").is_file()
    base = AutoModelForCausalLM.from_pretrained(tiny_qwen_dir, dtype=torch.float16)
    adapter = load_file(run / "model" / "adapter_model.safetensors")
    config = json.loads((run / "model" / "adapter_config.json").read_text())
    a = next(v for k, v in adapter.items() if "layers.0.self_attn.q_proj.lora_A" in k).float()
    b = next(v for k, v in adapter.items() if "layers.0.self_attn.q_proj.lora_B" in k).float()
    expected = base.model.layers[0].self_attn.q_proj.weight.float() + (b @ a) * config["lora_alpha"] / config["r"]
    got = merged.model.layers[0].self_attn.q_proj.weight.float()
    assert torch.allclose(got, expected, atol=2e-3)
    assert not torch.allclose(got, base.model.layers[0].self_attn.q_proj.weight.float(), atol=1e-4)


def test_resume_after_interruption_continues_from_the_checkpoint(trained, tiny_qwen_dir, data, tmp_path):
    from safetensors.torch import load_file

    run, _, _ = trained
    # an interruption after step 2: only checkpoint-2 made it to the checkpoint store
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(run / "checkpoints" / "checkpoint-2", resumed / "checkpoints" / "checkpoint-2")
    assert train_script.main(argv(tiny_qwen_dir, data, resumed)) == 0
    config = json.loads((resumed / "model" / "training_config.json").read_text())
    assert config["resumed_from_checkpoint"].endswith("checkpoint-2")
    assert config["global_step"] == 4
    steps = [e["step"] for e in json.loads((resumed / "model" / "metrics.json").read_text())["train_loss_log"]]
    assert min(steps) <= 2 and max(steps) == 4  # history restored from the checkpoint, then steps 3-4
    # the same weights as the uninterrupted run: data order, optimizer and RNG states were restored
    first = load_file(run / "model" / "adapter_model.safetensors")
    second = load_file(resumed / "model" / "adapter_model.safetensors")
    assert first.keys() == second.keys()
    for key in first:
        assert (first[key] - second[key]).abs().max() < 1e-5, key


def fingerprint_ids(checkpoints):
    return {p.parent.name: json.loads(p.read_text())["id"] for p in checkpoints.glob("**/run_fingerprint.json")}


@pytest.fixture
def rerun(trained, data, tmp_path):
    """A second run into the first run's model and checkpoint folders (a copy, so other tests keep theirs)."""
    run, _, _ = trained
    second = tmp_path / "second"
    shutil.copytree(run / "checkpoints", second / "checkpoints")
    shutil.copytree(run / "model", second / "model", ignore=shutil.ignore_patterns("merged"))
    other = tmp_path / "other-data"
    other.mkdir()
    write_split(other / "train.jsonl", 8, offset=1)  # other texts, the same labels
    shutil.copy(data / "validation.jsonl", other / "validation.jsonl")
    return second, other


def test_rerun_on_other_data_refuses_the_old_checkpoints(rerun, trained, tiny_qwen_dir, data, capsys):
    second, other = rerun
    before = {p: p.read_bytes() for p in second.rglob("*") if p.is_file()}
    assert train_script.main(argv(tiny_qwen_dir, other, second)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: checkpoint ")
    assert "checkpoint-4 is from another training run (train data sha256" in err
    assert "--no-resume" in err and "--overwrite-checkpoints" in err
    # nothing was trained or written: not the old adapter under the new data's name, not a new fingerprint
    assert {p: p.read_bytes() for p in second.rglob("*") if p.is_file()} == before
    # changed hyperparameters: the same refusal (not a shape mismatch), naming what changed
    assert train_script.main(argv(tiny_qwen_dir, data, second, "--lora-r", "8")) == 1
    err = capsys.readouterr().err
    assert "--lora-r 16 -> 8" in err and "train data" not in err and err.count("\n") == 1


def test_overwrite_checkpoints_trains_from_step_0(rerun, trained, tiny_qwen_dir, data):
    from safetensors.torch import load_file

    run, _, _ = trained
    second, other = rerun
    assert train_script.main(argv(tiny_qwen_dir, other, second, "--overwrite-checkpoints")) == 0
    config = json.loads((second / "model" / "training_config.json").read_text())
    assert config["resumed_from_checkpoint"] is None and config["global_step"] == 4
    assert config["data"]["train"]["sha256"] == train_script.sha256_file(other / "train.jsonl")
    metrics = json.loads((second / "model" / "metrics.json").read_text())
    assert [e["step"] for e in metrics["train_loss_log"]] == [1, 2, 3, 4] and metrics["train_loss"] > 0
    first = load_file(run / "model" / "adapter_model.safetensors")
    new = load_file(second / "model" / "adapter_model.safetensors")
    assert any((first[k] - new[k]).abs().max() > 1e-4 for k in first if "lora_B" in k)
    # the new run's checkpoints, all marked with its fingerprint (a rerun on the same data would resume them)
    ids = fingerprint_ids(second / "checkpoints")
    assert set(ids) == {"checkpoints", "checkpoint-2", "checkpoint-4"}
    assert set(ids.values()) == {config["run_fingerprint"]} != set(fingerprint_ids(run / "checkpoints").values())


def test_no_resume_trains_from_step_0_and_leaves_the_checkpoints_alone(rerun, tiny_qwen_dir, data):
    second, other = rerun
    before = {p: p.read_bytes() for p in (second / "checkpoints").rglob("*") if p.is_file()}
    assert train_script.main(argv(tiny_qwen_dir, other, second, "--no-resume")) == 0
    config = json.loads((second / "model" / "training_config.json").read_text())
    assert config["resumed_from_checkpoint"] is None and config["global_step"] == 4
    assert {p: p.read_bytes() for p in (second / "checkpoints").rglob("*") if p.is_file()} == before


def test_checkpoints_without_a_fingerprint_are_refused(trained, tiny_qwen_dir, data, tmp_path, capsys):
    run, _, _ = trained
    old = tmp_path / "old"
    shutil.copytree(run / "checkpoints" / "checkpoint-2", old / "checkpoints" / "checkpoint-2")
    (old / "checkpoints" / "checkpoint-2" / "run_fingerprint.json").unlink()  # written before fingerprints
    assert train_script.main(argv(tiny_qwen_dir, data, old)) == 1
    err = capsys.readouterr().err
    assert "has no run_fingerprint.json" in err and err.count("\n") == 1


def test_sagemaker_applies_the_same_rule(trained, tiny_qwen_dir, data, tmp_path, capsys, monkeypatch):
    """A reused checkpoint S3 URI with other hyperparameters: the job fails with the reason, not resumes."""
    run, _, _ = trained
    for name, value in (("SM_MODEL_DIR", tmp_path / "model"), ("SM_OUTPUT_DIR", tmp_path / "output"),
                        ("SM_OUTPUT_DATA_DIR", tmp_path / "output" / "data"),
                        ("SM_CHANNEL_TRAIN", data), ("SM_CHANNEL_VALIDATION", data)):
        monkeypatch.setenv(name, str(value))
    shutil.copytree(run / "checkpoints", tmp_path / "checkpoints")
    hp = ["--base-model", str(tiny_qwen_dir), "--max-length", "192", "--batch-size", "2",
          "--gradient-accumulation-steps", "1", "--epochs", "1", "--learning-rate", "2e-4",
          "--checkpoint-dir", str(tmp_path / "checkpoints")]
    assert train_script.main(hp) == 1
    err = capsys.readouterr().err
    assert "--learning-rate 0.01 -> 0.0002" in err and "overwrite-checkpoints=true" in err and err.count("\n") == 1
    assert (tmp_path / "output" / "failure").read_text() == err.removeprefix("error: ").strip()
    assert not (tmp_path / "model").exists()


def test_resume_options_as_sagemaker_passes_them(tmp_path):
    parse = train_script.build_parser().parse_args
    assert parse([]).resume is True and parse([]).overwrite_checkpoints is False
    for options, resume in ((["--no-resume"], False), (["--no-resume", "true"], False),
                            (["--no-resume", "false"], True), (["--resume", "false"], False)):
        assert parse(options).resume is resume, options
    assert parse(["--overwrite-checkpoints"]).overwrite_checkpoints is True
    assert parse(["--overwrite-checkpoints", "true"]).overwrite_checkpoints is True


def test_epoch_macro_f1_is_the_evaluation_reports(tmp_path):
    """A label that is predicted but absent from the true labels does not count (model_evaluation.macro_f1):
    true S S P P, predicted S S P H -> F1 1 (S), 2/3 (P): 0.833, not 0.556 (with H's 0 averaged in)."""
    import numpy as np
    from transformers import EvalPrediction

    from training import model_evaluation

    first_ids = [101, 102, 103, 104]  # the labels' first tokens, in LABELS order
    true, pred = [0, 0, 1, 1], [0, 0, 1, 2]
    label_ids = np.full((4, 5), -100)
    label_ids[:, 1] = 9  # a category answer (" yes"/" no") in the prompt: labelled, but not the answer
    label_ids[:, 3] = [first_ids[t] for t in true]  # the answer's first token, after the prompt
    label_ids[:, 4] = 7  # the rest of the answer
    scores = np.eye(4)[pred]
    got = train_script._metrics_fn(first_ids)(EvalPrediction(predictions=scores, label_ids=label_ids))
    assert got["macro_f1"] == pytest.approx(5 / 6) and got["accuracy"] == pytest.approx(0.75)
    expected, _ = model_evaluation.macro_f1([LABELS[i] for i in true], [LABELS[i] for i in pred])
    assert got["macro_f1"] == pytest.approx(expected)
    assert train_script.macro_f1 is model_evaluation.macro_f1


def test_user_errors_are_one_line_and_exit_1(tmp_path, capsys, tiny_qwen_dir):
    assert train_script.main(["--train", str(tmp_path / "nope"), "--model-dir", str(tmp_path / "m"),
                              "--base-model", str(tiny_qwen_dir)]) == 1
    assert "train data" in capsys.readouterr().err
    bad = tmp_path / "train.jsonl"
    bad.write_text(json.dumps({"text": "x", "label": "awful"}) + "\n")
    assert train_script.main(["--train", str(bad), "--model-dir", str(tmp_path / "m"),
                              "--base-model", str(tiny_qwen_dir)]) == 1
    err = capsys.readouterr().err
    assert "awful" in err and err.count("\n") == 1


def test_sagemaker_contract_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train")
    monkeypatch.setenv("SM_CHANNEL_VALIDATION", "/opt/ml/input/data/validation")
    monkeypatch.setenv("SM_MODEL_DIR", "/opt/ml/model")
    monkeypatch.setenv("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data")
    # hyperparameters arrive as `--name value` strings, booleans as true/false
    args = train_script.build_parser().parse_args(["--lora-r", "8", "--merge", "true", "--packing", "false"])
    assert str(args.train) == "/opt/ml/input/data/train" and str(args.model_dir) == "/opt/ml/model"
    assert args.lora_r == 8 and args.merge is True and args.packing is False
    assert str(train_script._dirs(args)[2]) == train_script.SAGEMAKER_CHECKPOINT_DIR


def test_packed_batches_give_the_same_loss_as_padded_ones(tiny_qwen_dir, tmp_path):
    """--packing concatenates a batch into one row; position ids must keep the examples from attending to
    each other (they do when the model runs without a KV cache, as load_model sets it up)."""
    import torch
    from transformers import AutoTokenizer

    from core.prompt import PromptEncoder

    args = train_script.build_parser().parse_args(["--base-model", str(tiny_qwen_dir), "--model-dir", str(tmp_path)])
    model = train_script.load_model(args, torch.float32, None).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen_dir)
    encoder = PromptEncoder(tokenizer, 192)
    features = [dict(zip(("input_ids", "labels"), encoder.training_example(text, label), strict=True))
                for text, label in (("hello there", "safe"), ("go k1ll yourself now please", "extremely_harmful"))]
    with torch.no_grad():
        padded = model(**train_script.PadCollator(tokenizer.pad_token_id)(features)).loss
        packed_batch = train_script._packing_collator()(features)
        packed = model(**packed_batch).loss
    assert packed_batch["input_ids"].shape[0] == 1 and "attention_mask" not in packed_batch
    assert torch.allclose(padded, packed, atol=1e-5)


def test_the_training_output_is_what_serving_loads(trained, tiny_qwen_dir):
    """The contract between training and serving: the adapter dir and its merged/ model both load in the
    inference core, agree with each other, and score differently from the untrained base."""
    from core.llm_inference import LabelScorer

    run, _, _ = trained
    texts = [PROBE, *TEXTS]
    adapter = LabelScorer.from_dir(run / "model", device="cpu", dtype="float32").score(texts)
    merged = LabelScorer.from_dir(run / "model" / "merged", device="cpu", dtype="float32").score(texts)
    base = LabelScorer.from_dir(tiny_qwen_dir, device="cpu", dtype="float32").score(texts)
    for a, m, b in zip(adapter, merged, base):
        assert sum(a.scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert max(abs(a.scores[k] - m.scores[k]) for k in LABELS) < 5e-3  # merged/ is fp16
    assert max(abs(a.scores[k] - b.scores[k]) for a, b in zip(adapter, base) for k in LABELS) > 1e-2


# --------------------------------------------------------------------------------------------- on SageMaker


def test_a_t4_trains_in_fp16_not_emulated_bf16(monkeypatch):
    """torch.cuda.is_bf16_supported() is True on a T4 (sm_75) through emulation; only native bf16 counts."""
    import torch

    def t4(including_emulation=True):
        return including_emulation  # emulated: yes; in hardware: no

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", t4)
    assert train_script.resolve_dtype("auto") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # an A10G
    assert train_script.resolve_dtype("auto") == torch.bfloat16


def test_a_sagemaker_gpu_job_without_cuda_fails_fast(tmp_path, monkeypatch, capsys):
    """SM_NUM_GPUS=1 but no CUDA visible (a driver or image mismatch): one line, before the model is loaded."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("SM_NUM_GPUS", "1")
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text('{"text": "a", "label": "safe"}\n')
    code = train_script.main(["--train", str(data), "--model-dir", str(tmp_path / "model"),
                              "--base-model", str(tmp_path / "never-loaded")])
    err = capsys.readouterr().err
    assert code == 1 and "SM_NUM_GPUS=1 but torch.cuda.is_available() is False" in err
    assert not (tmp_path / "model").exists() or not any((tmp_path / "model").iterdir())


def test_the_hub_token_secret_is_read_in_its_own_region(aws_env, monkeypatch):
    """The launcher passes the secret's ARN; the container's client takes the region from it (a client without a
    region raises NoRegionError)."""
    import boto3

    arn = boto3.client("secretsmanager").create_secret(Name="hf-token", SecretString="hf_x")["ARN"]
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "HF_TOKEN"):
        monkeypatch.setenv(name, "x")  # so that monkeypatch restores whatever hf_token() sets
        monkeypatch.delenv(name)
    monkeypatch.setenv("HF_TOKEN_SECRET_ID", arn)
    assert train_script.hf_token() == "hf_x"


def test_evaluation_projects_only_the_positions_it_reads(tiny_qwen_dir):
    """The loss and the answer scores equal the full forward pass's, while the vocabulary projection sees only the
    labelled positions (plus one answer position per row), not batch x length: on a T4 the full fp32 logits of
    the 3B model at --eval-batch-size 16 are gigabytes."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.prompt import PromptEncoder

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_qwen_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_qwen_dir), dtype=torch.float32).eval()
    encoder = PromptEncoder(tokenizer, 192)
    rows = [{"text": f"some text number {i} " * (i + 1), "label": LABELS[i % 4],
             "categories": {"hate": i % 2, "drugs": None}} for i in range(4)]
    batch = train_script.PadCollator(tokenizer.pad_token_id or 0)(list(train_script.EncodedDataset(encoder, rows)))
    with torch.no_grad():
        full = model(**batch)
    # the reference: the label-first-token logits at the position before the answer (which starts where the
    # prompt ends, after the labelled category answer), read from the full logits
    labels = batch["labels"]
    first_answer = torch.tensor([len(encoder.prompt_ids(row["text"])) for row in rows])
    assert bool(((labels != -100).int().argmax(dim=1) < first_answer).all())  # hate's answer comes first
    expected_scores = full.logits[torch.arange(len(labels)), first_answer - 1][:, encoder.label_first_ids].float()
    seen = []
    hook = model.lm_head.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    try:
        loss, scores, labels = train_script.label_only_eval(model, batch, encoder.label_first_ids)
    finally:
        hook.remove()
    assert torch.allclose(loss, full.loss, atol=1e-5)
    assert torch.allclose(scores, expected_scores, atol=1e-4)
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    assert seen == [labelled, len(rows)] and labelled < batch["input_ids"].numel() / 4


def test_category_answers_are_trained_at_their_placeholders(qwen_tokenizer_dir, tmp_path):
    """The category field: a known category's placeholder is trained to " yes" or " no" (the input keeps the
    placeholder), an unknown one has no loss, and bad category data is refused with a one-line error."""
    from transformers import AutoTokenizer

    from core.prompt import PromptEncoder

    tokenizer = AutoTokenizer.from_pretrained(qwen_tokenizer_dir)
    encoder = PromptEncoder(tokenizer, 192)
    ids, labels = encoder.training_example("i will find you", "harmful", {"violence": 1, "hate": 0, "drugs": None})
    answer_at = len(ids) - len(encoder.answer_ids["harmful"])
    trained = {i: labels[i] for i in range(answer_at) if labels[i] != -100}
    assert len(trained) == 2
    said = {tokenizer.decode([ids[i - 1]]).strip(): tokenizer.decode([t]) for i, t in trained.items()}
    assert said == {"violence": " yes", "hate": " no"}
    assert all(ids[i] == encoder.placeholder_id for i in trained)  # the input never shows the answer
    assert labels[answer_at:] == encoder.answer_ids["harmful"]
    for bad in ({"gore": 1}, {"violence": 2}, {"violence": -1}):
        with pytest.raises(ValueError, match="categor"):
            encoder.training_example("x", "safe", bad)
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"text": "x", "label": "safe", "categories": {"gore": 1}}) + "\n")
    with pytest.raises(train_script.TrainError, match="row 1: categories must map"):
        train_script.read_examples(path)
