"""QLoRA fine-tuning of the Stage 2 classifier: the SageMaker training entry point, also runnable locally.

    # locally, plain paths (a prepared dataset folder or single .jsonl/.parquet files)
    uv run --all-extras python -m training.train_script --train out/prepared --validation out/prepared \\
        --model-dir out/training/model --base-model Qwen/Qwen2.5-1.5B-Instruct --epochs 1 --merge
    # in a SageMaker training job (`training.model_training` launches it): hyperparameters arrive as
    # `--name value`, data in SM_CHANNEL_TRAIN / SM_CHANNEL_VALIDATION, the model goes to SM_MODEL_DIR,
    # checkpoints to /opt/ml/checkpoints (synced to S3, so a spot interruption resumes where it stopped)

What it does, in order:
1. Reads `text` and `label` from the train and validation files and encodes each example with
   `core.prompt.PromptEncoder`, the same prompt serving builds, through the model's chat template. The loss is
   on the assistant's answer only (the prompt's labels are -100).
2. Loads the base model (a hub id or a local directory) in 4-bit NF4 with double quantization, prepares it for
   k-bit training (gradient checkpointing) and puts LoRA adapters on every linear projection (r=16, alpha=32
   unless told otherwise). Compute is bf16 on GPUs that have it, fp16 on GPUs that do not (the T4 of g4dn),
   float32 on CPU.
3. Trains with the Hugging Face Trainer on length-grouped batches (or packed ones, --packing), saving a
   checkpoint every --save-steps and resuming from the newest one it finds, but only when that checkpoint is
   from the same training run (see Checkpoints); evaluates on the validation split each epoch: loss, accuracy
   and macro-F1 (`training.model_evaluation.macro_f1`, the figure the evaluation report gives) of one-pass
   scoring (the four labels' first-token probabilities).
4. Writes to the model dir: the adapter (adapter_config.json, adapter_model.safetensors), the tokenizer,
   labels.json, training_config.json (every hyperparameter, library versions, data file hashes) and
   metrics.json; with --merge also merged/, a full fp16 model that loads without peft.

Checkpoints: when training starts, run_fingerprint.json goes into the checkpoint folder (and into every
checkpoint saved): the sha256 of the train and validation files, the base model and every hyperparameter that
changes the model, the optimizer or the schedule. A checkpoint is resumed only when its fingerprint matches this
run's; otherwise (other data, another --lora-r, a checkpoint without a fingerprint) training refuses to start,
in SageMaker too, rather than continue someone else's run. Then either --no-resume (train from step 0 and keep
no checkpoints; the folder is neither read nor written) or --overwrite-checkpoints (delete the folder's
checkpoints, train from step 0 with checkpoints); from `training.model_training`, `-H overwrite-checkpoints=true`
or `-H no-resume=true`.

Errors a user can fix (missing data, an unknown label, a base model that does not load, checkpoints from
another run) are one line on stderr and exit status 1; in SageMaker the line is also the job's failure reason.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by its path (the SageMaker container runs `python training/train_script.py`)
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.aws import sha256_file
from core.categories import CATEGORIES
from core.labels import LABELS
from core.prompt import PromptEncoder
from training.metrics import macro_f1  # the metrics alone: no report, plot or MLflow code in the job

__all__ = ["TrainError", "build_parser", "main", "read_examples", "run_fingerprint", "train"]

DEFAULT_BASE_MODEL = "Qwen/Qwen2.5-3B-Instruct"
SAGEMAKER_CHECKPOINT_DIR = "/opt/ml/checkpoints"  # CheckpointConfig.LocalPath, synced to S3 by SageMaker
LABELS_FILE = "labels.json"
CONFIG_FILE = "training_config.json"
METRICS_FILE = "metrics.json"
FINGERPRINT_FILE = "run_fingerprint.json"
# What makes two runs the same run: the options that change the model, the optimizer, the schedule or the data
# (and so what a checkpoint holds). Not here: paths, evaluation batch size, logging and saving cadence, --merge.
FINGERPRINT_OPTIONS = (
    "base_model", "quantization", "compute_dtype", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules",
    "max_length", "epochs", "max_steps", "learning_rate", "batch_size", "gradient_accumulation_steps",
    "warmup_ratio", "weight_decay", "lr_scheduler", "group_by_length", "packing", "max_train_samples",
    "max_eval_samples", "seed",
)
# The line SageMaker's metric definitions read (model_training.METRIC_DEFINITIONS parses it).
# Without a hub: a local directory works as --base-model, e.g. a random model of the real shape and tokenizer.
OFFLINE_HINT = ("; without a hub, pass a local model directory (python -m training.base_models --shape tiny --out DIR "
                "writes one offline) and set HF_HUB_OFFLINE=1 so the hub is not retried")
EVAL_LINE = "[eval] epoch={epoch:.2f} step={step} eval_loss={loss:.6f} eval_macro_f1={f1:.6f} eval_accuracy={acc:.6f}"


class TrainError(RuntimeError):
    """A problem the user can fix; the message is one line."""


# --------------------------------------------------------------------------------------------- arguments


def _bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _in_sagemaker() -> bool:
    return "SM_TRAINING_ENV" in os.environ or "SM_MODEL_DIR" in os.environ


class _NegatedFlag(argparse.Action):
    """`--no-resume` (or `--no-resume true|false`, as SageMaker passes it) sets `resume` to the opposite."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, not values)


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="python -m training.train_script",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1].split("What it does")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    flag = {"nargs": "?", "const": True, "type": _bool}  # `--merge` locally, `--merge true` from SageMaker

    io = p.add_argument_group("data and outputs (SageMaker sets them through the environment)")
    io.add_argument("--train", type=Path, default=env("SM_CHANNEL_TRAIN"),
                    help="train split: a .jsonl/.parquet file or a folder holding train.jsonl (SM_CHANNEL_TRAIN)")
    io.add_argument("--validation", type=Path, default=env("SM_CHANNEL_VALIDATION"),
                    help="validation split, the same way (SM_CHANNEL_VALIDATION); omitted: no evaluation")
    io.add_argument("--model-dir", type=Path, default=env("SM_MODEL_DIR"),
                    help="where the adapter, tokenizer, labels.json and configs go (SM_MODEL_DIR)")
    io.add_argument("--output-data-dir", type=Path, default=env("SM_OUTPUT_DATA_DIR"),
                    help="extra outputs (SM_OUTPUT_DATA_DIR; default: beside the model dir)")
    io.add_argument("--checkpoint-dir", type=Path, default=None,
                    help=f"checkpoints ({SAGEMAKER_CHECKPOINT_DIR} in SageMaker; default: beside the model dir)")

    m = p.add_argument_group("model")
    m.add_argument("--base-model", default=env("BASE_MODEL_ID") or DEFAULT_BASE_MODEL,
                   help="hub id or local directory (BASE_MODEL_ID; default %(default)s: Qwen research licence, "
                        "non-commercial; Qwen/Qwen2.5-1.5B-Instruct is Apache-2.0)")
    m.add_argument("--quantization", choices=["nf4", "none"], default="nf4",
                   help="nf4: QLoRA (4-bit NF4, double quantization); none: LoRA on the unquantized model")
    m.add_argument("--compute-dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                   help="auto: bf16 on GPUs with bf16, fp16 on GPUs without (T4), float32 on CPU")
    m.add_argument("--lora-r", type=int, default=16)
    m.add_argument("--lora-alpha", type=int, default=32)
    m.add_argument("--lora-dropout", type=float, default=0.05)
    m.add_argument("--lora-target-modules", default="all-linear",
                   help="comma-separated module names, or all-linear (every linear projection but the head)")
    m.add_argument("--gradient-checkpointing", default=True, **flag)
    m.add_argument("--max-length", type=int, default=512, help="tokens per example, prompt and answer")

    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=float, default=2.0)
    t.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (overrides --epochs)")
    t.add_argument("--learning-rate", type=float, default=2e-4)
    t.add_argument("--batch-size", type=int, default=8, help="per device")
    t.add_argument("--eval-batch-size", type=int, default=16)
    t.add_argument("--gradient-accumulation-steps", type=int, default=2)
    t.add_argument("--warmup-ratio", type=float, default=0.03)
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--lr-scheduler", default="cosine")
    t.add_argument("--group-by-length", default=True, **flag, help="batches of similar lengths (less padding)")
    t.add_argument("--packing", default=False, **flag,
                   help="pack each batch into one row without padding (position ids keep examples apart)")
    t.add_argument("--max-train-samples", type=int, default=None)
    t.add_argument("--max-eval-samples", type=int, default=None)
    t.add_argument("--save-steps", type=int, default=100, help="checkpoint every N optimizer steps")
    t.add_argument("--save-total-limit", type=int, default=2)
    t.add_argument("--resume", default=True, **flag,
                   help="continue from the newest checkpoint of the same run (same data and hyperparameters)")
    t.add_argument("--no-resume", dest="resume", action=_NegatedFlag, nargs="?", const=True, type=_bool,
                   help="train from step 0 and keep no checkpoints (the checkpoint folder is not read or written)")
    t.add_argument("--overwrite-checkpoints", default=False, **flag,
                   help="delete the checkpoint folder's checkpoints (another run's) and train from step 0")
    t.add_argument("--logging-steps", type=int, default=10)
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--merge", default=False, **flag, help="also write merged/, a full fp16 model for serving")
    return p


# --------------------------------------------------------------------------------------------- data


def data_file(path: Path, split: str) -> Path:
    """The file for `split`: `path` itself, or in a folder `<split>.jsonl`, `<split>.parquet`, or its only
    .jsonl/.parquet file (a SageMaker channel holds exactly the file it was given)."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise TrainError(f"{split} data {path} not found")
    for name in (f"{split}.jsonl", f"{split}.parquet"):
        if (path / name).is_file():
            return path / name
    candidates = sorted(p for p in path.iterdir() if p.suffix in (".jsonl", ".parquet"))
    if len(candidates) == 1:
        return candidates[0]
    raise TrainError(f"no {split}.jsonl or {split}.parquet in {path} (found {[c.name for c in candidates]})")


def read_examples(path: Path) -> list[dict[str, Any]]:
    """`text`, `label` and, when the file has them, `categories` ({category: 1, 0 or null}, data.prepare) of every
    row of a .jsonl or .parquet file, checked against LABELS and CATEGORIES."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        try:
            rows = pq.read_table(path, columns=["text", "label", *(["categories"] if "categories" in names else [])]
                                 ).to_pylist()
        except (KeyError, ValueError) as err:
            raise TrainError(f"{path} has no text and label columns ({err})") from None
    else:
        rows = []
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise TrainError(f"{path}:{n} is not JSON ({err})") from None
    examples = []
    for n, row in enumerate(rows, 1):
        text, label, categories = row.get("text"), row.get("label"), row.get("categories")
        if not isinstance(text, str) or label not in LABELS:
            raise TrainError(f"{path} row {n}: needs a text and a label in {', '.join(LABELS)}, got {label!r}")
        if categories is not None and (not isinstance(categories, dict) or not set(categories) <= set(CATEGORIES)
                                       or any(v not in (0, 1, None) for v in categories.values())):
            raise TrainError(f"{path} row {n}: categories must map some of {', '.join(CATEGORIES)} to 1, 0 or "
                             f"null, got {categories!r:.200}")
        examples.append({"text": text, "label": label, "categories": categories})
    if not examples:
        raise TrainError(f"{path} has no rows")
    return examples


class EncodedDataset:
    """Encoded examples as a map-style dataset (what the Trainer and its length-grouped sampler read)."""

    def __init__(self, encoder: PromptEncoder, examples: list[dict[str, str]]):
        self.items = []
        for ex in examples:
            input_ids, labels = encoder.training_example(ex["text"], ex["label"], ex.get("categories"))
            self.items.append({"input_ids": input_ids, "labels": labels})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.items[i]


@dataclass
class PadCollator:
    """Right-pads a batch: pad id in input_ids, 0 in the attention mask, -100 in labels."""

    pad_id: int

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        labels = torch.full((len(features), width), -100, dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            mask[i, :n] = 1
            labels[i, :n] = torch.tensor(f["labels"])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


# --------------------------------------------------------------------------------------------- metrics


def _metrics_fn(label_first_ids: list[int]):
    import numpy as np

    def compute(eval_pred) -> dict[str, float]:
        """Accuracy and macro-F1 as training.model_evaluation defines it (over the labels present in the true
        labels), so the per-epoch figure and the evaluation report's can be compared."""
        scores, labels = eval_pred.predictions, eval_pred.label_ids
        first_answer = np.isin(labels, label_first_ids).argmax(axis=1)  # the category answers come before it
        answer_token = labels[np.arange(len(labels)), first_answer]
        true = [LABELS[label_first_ids.index(int(t))] for t in answer_token]
        pred = [LABELS[int(i)] for i in np.asarray(scores).argmax(axis=1)]
        f1, _ = macro_f1(true, pred)
        return {"macro_f1": f1, "accuracy": sum(t == p for t, p in zip(true, pred)) / len(true)}

    return compute


# --------------------------------------------------------------------------------------------- model


def resolve_dtype(name: str):
    import torch

    if name != "auto":
        return getattr(torch, name)
    if torch.cuda.is_available():
        return torch.bfloat16 if native_bf16() else torch.float16
    return torch.float32


def native_bf16() -> bool:
    """bf16 in hardware (Ampere and newer). torch.cuda.is_bf16_supported() also says True on a T4 (sm_75), where
    bf16 is emulated and slow: ask without emulation, as core/llm_inference.py does."""
    import torch

    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch < 2.3 has no including_emulation (and did not count emulation)
        return bool(torch.cuda.is_bf16_supported())


def check_gpus(environ=os.environ) -> None:
    """On SageMaker (SM_NUM_GPUS > 0) training must run on the GPU: a container that cannot see CUDA (a driver or
    image mismatch) would otherwise train on the CPU for days, silently."""
    import torch

    try:
        gpus = int(environ.get("SM_NUM_GPUS") or 0)
    except ValueError:
        gpus = 0
    if gpus > 0 and not torch.cuda.is_available():
        raise TrainError(f"SM_NUM_GPUS={gpus} but torch.cuda.is_available() is False in this container (torch "
                         f"{torch.__version__}, CUDA {torch.version.cuda}): refusing to train on the CPU")


def secrets_client(secret_id: str):
    """A Secrets Manager client in the secret's region (its ARN's, else AWS_REGION / AWS_DEFAULT_REGION, which the
    training container sets): a client without a region fails with NoRegionError."""
    from core import aws

    parts = secret_id.split(":")
    region = parts[3] if secret_id.startswith("arn:") and len(parts) > 3 and parts[3] else (
        os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    return aws.client("secretsmanager", region or None)


def hf_token() -> str | None:
    """HF_TOKEN, or the Secrets Manager secret HF_TOKEN_SECRET_ID names (a plain string, or JSON with an
    HF_TOKEN key). The token is put in this process's environment for the hub client and never printed."""
    if os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"]
    secret_id = os.environ.get("HF_TOKEN_SECRET_ID")
    if not secret_id:
        return None
    try:
        value = secrets_client(secret_id).get_secret_value(SecretId=secret_id)["SecretString"]
    except Exception as err:  # noqa: BLE001 - any failure is the same user-facing problem
        raise TrainError(f"cannot read the HF token secret {secret_id}: {type(err).__name__}") from None
    try:
        parsed = json.loads(value)
        value = parsed.get("HF_TOKEN") or parsed.get("token") if isinstance(parsed, dict) else value
    except json.JSONDecodeError:
        pass
    if not value:
        raise TrainError(f"secret {secret_id} holds no HF token")
    os.environ["HF_TOKEN"] = value
    return value


def load_model(args: argparse.Namespace, dtype, token: str | None):
    """The base model, 4-bit NF4 (or not), prepared for k-bit training, with LoRA on every linear layer."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    kwargs: dict[str, Any] = {"dtype": dtype, "token": token}
    if args.quantization == "nf4":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        kwargs["device_map"] = {"": torch.cuda.current_device() if torch.cuda.is_available() else "cpu"}
    try:
        model = AutoModelForCausalLM.from_pretrained(str(args.base_model), **kwargs)
    except OSError as err:
        raise TrainError(f"cannot load base model {args.base_model}: {str(err).splitlines()[0]}"
                         f"{OFFLINE_HINT}") from None
    model.config.use_cache = False
    if args.quantization == "nf4" and not torch.cuda.is_available():
        _keep_cpu_4bit_layout(model)
    gc_kwargs = {"use_reentrant": False}
    if args.quantization == "nf4":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=args.gradient_checkpointing,
                                                gradient_checkpointing_kwargs=gc_kwargs)
    elif args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gc_kwargs)
        model.enable_input_require_grads()
    targets = args.lora_target_modules
    lora = LoraConfig(
        r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout, bias="none",
        task_type="CAUSAL_LM",
        target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()],
    )
    return get_peft_model(model, lora)


def _keep_cpu_4bit_layout(model) -> None:
    """bitsandbytes (0.50) repacks 4-bit weights into a CPU inference layout the first time a layer runs in
    eval mode without grad, and never unpacks them for training: the next training step after an evaluation
    fails (an in-place bias add on a leaf). Keeping the training layout costs a little evaluation speed."""
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "peft", "bitsandbytes", "accelerate"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


class _FingerprintSaver:
    """Copies the run's fingerprint into every checkpoint it saves, so a checkpoint says which run it is from
    even when it travels alone."""

    def __new__(cls, fingerprint: dict[str, Any]):
        from transformers import TrainerCallback
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        class Saver(TrainerCallback):
            def on_save(self, args, state, control, **kwargs):
                folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
                if state.is_world_process_zero and folder.is_dir():
                    _write_json(folder / FINGERPRINT_FILE, fingerprint)

        return Saver()


class _EvalPrinter:
    """Prints one parseable line per evaluation, for the log and SageMaker's metric definitions."""

    def __new__(cls):
        from transformers import TrainerCallback

        class Printer(TrainerCallback):
            def on_evaluate(self, args, state, control, metrics=None, **kwargs):
                m = metrics or {}
                print(EVAL_LINE.format(epoch=state.epoch or 0.0, step=state.global_step,
                                       loss=m.get("eval_loss", math.nan), f1=m.get("eval_macro_f1", math.nan),
                                       acc=m.get("eval_accuracy", math.nan)), flush=True)

        return Printer()


class _Progress:
    """A progress bar over the optimizer steps with the total, the ETA and the latest loss (core.progress): tqdm
    on a terminal; elsewhere (SageMaker's logs are not one, and a tqdm bar there is one unreadable line) a plain
    line every `interval` seconds and one when training ends."""

    def __new__(cls, log=lambda msg: print(msg, file=sys.stderr, flush=True), interval: float | None = None,
                stream=None):
        from transformers import TrainerCallback

        from core.progress import INTERVAL_S, Progress

        class ProgressCallback(TrainerCallback):
            bar: Progress | None = None

            def on_train_begin(self, args, state, control, **kwargs):
                log(f"training: {state.max_steps} steps ({args.num_train_epochs:g} epoch(s) or --max-steps)")
                self.bar = Progress(total=state.max_steps, desc="training", unit="steps", initial=state.global_step,
                                    interval=INTERVAL_S if interval is None else interval, stream=stream)

            def on_step_end(self, args, state, control, **kwargs):
                if self.bar is not None:
                    self.bar.update(state.global_step - self.bar.done)

            def on_log(self, args, state, control, logs=None, **kwargs):
                if self.bar is not None and logs and "loss" in logs:
                    self.bar.extra["loss"] = float(logs["loss"])

            def on_train_end(self, args, state, control, **kwargs):
                if self.bar is not None:
                    self.bar.close()

        return ProgressCallback()


# --------------------------------------------------------------------------------------------- training


def _dirs(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    if args.model_dir is None:
        raise TrainError("no model dir: pass --model-dir (SageMaker sets SM_MODEL_DIR)")
    model_dir = Path(args.model_dir)
    output_dir = Path(args.output_data_dir) if args.output_data_dir else model_dir.parent / "output"
    if args.checkpoint_dir:
        checkpoint_dir = Path(args.checkpoint_dir)
    elif _in_sagemaker():
        checkpoint_dir = Path(SAGEMAKER_CHECKPOINT_DIR)
    else:
        checkpoint_dir = model_dir.parent / "checkpoints"
    return model_dir, output_dir, checkpoint_dir


def run_fingerprint(args: argparse.Namespace, train_file: Path, val_file: Path | None) -> dict[str, Any]:
    """What makes a checkpoint this run's: the data files' sha256 and the FINGERPRINT_OPTIONS; `id` hashes both."""
    doc: dict[str, Any] = {
        "data_sha256": {"train": sha256_file(train_file), "validation": sha256_file(val_file) if val_file else None},
        "options": {k: (str(v) if isinstance(v, Path) else v) for k in FINGERPRINT_OPTIONS
                    for v in (getattr(args, k),)},
    }
    doc["id"] = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
    return doc


def _fingerprint_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    out = []
    old_data = recorded.get("data_sha256") if isinstance(recorded.get("data_sha256"), dict) else {}
    for split, sha in current["data_sha256"].items():
        if old_data.get(split) != sha:
            out.append(f"{split} data sha256 {str(old_data.get(split))[:12]} -> {str(sha)[:12]}")
    old_options = recorded.get("options") if isinstance(recorded.get("options"), dict) else {}
    for name, value in current["options"].items():
        if old_options.get(name) != value:
            out.append(f"--{name.replace('_', '-')} {old_options.get(name)} -> {value}")
    return out


def _read_fingerprint(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def clear_checkpoints(checkpoint_dir: Path) -> int:
    """Delete the checkpoint-N folders and the fingerprint in `checkpoint_dir` (nothing else: it may be a
    mount point or hold other files); the number of checkpoints deleted."""
    import re
    import shutil

    if not checkpoint_dir.is_dir():
        return 0
    removed = 0
    for entry in checkpoint_dir.iterdir():
        if entry.is_dir() and re.fullmatch(r"checkpoint-\d+", entry.name):
            shutil.rmtree(entry)
            removed += 1
    (checkpoint_dir / FINGERPRINT_FILE).unlink(missing_ok=True)
    return removed


def prepare_checkpoints(args: argparse.Namespace, checkpoint_dir: Path, fingerprint: dict[str, Any],
                        log=lambda msg: None) -> str | None:
    """The checkpoint to resume from (None: step 0), after making sure it is this run's.

    --overwrite-checkpoints first deletes the folder's checkpoints. With --no-resume the folder is not read (and
    nothing is written to it). Otherwise the newest checkpoint is resumed only when its fingerprint and the
    folder's match this run's; then the folder gets this run's fingerprint."""
    from transformers.trainer_utils import get_last_checkpoint

    if args.overwrite_checkpoints:
        removed = clear_checkpoints(checkpoint_dir)
        if removed:
            log(f"--overwrite-checkpoints: deleted {removed} checkpoint(s) in {checkpoint_dir}")
    if not args.resume:
        return None
    last = get_last_checkpoint(str(checkpoint_dir)) if checkpoint_dir.is_dir() else None
    if last:
        recorded = [doc for doc in (_read_fingerprint(checkpoint_dir / FINGERPRINT_FILE),
                                    _read_fingerprint(Path(last) / FINGERPRINT_FILE)) if doc is not None]
        if not recorded:
            why = f"has no {FINGERPRINT_FILE}, so its data and settings are unknown"
        else:
            differences = list(dict.fromkeys(d for doc in recorded for d in _fingerprint_differences(doc, fingerprint)))
            shown = "; ".join(differences[:4]) + (f"; {len(differences) - 4} more" if len(differences) > 4 else "")
            why = f"is from another training run ({shown})" if differences else ""
        if why:
            how = (" (hyperparameters resume=false or overwrite-checkpoints=true; from training.model_training "
                   "-H no-resume=true or -H overwrite-checkpoints=true)" if _in_sagemaker() else "")
            raise TrainError(
                f"checkpoint {last} {why}: not resuming it; pass --no-resume to train from step 0 without "
                f"checkpoints, or --overwrite-checkpoints to delete the checkpoints in {checkpoint_dir} and "
                f"start over{how}")
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    _write_json(checkpoint_dir / FINGERPRINT_FILE, fingerprint)
    return last


def train(args: argparse.Namespace, log=lambda msg: print(msg, file=sys.stderr, flush=True),
          callbacks: list | None = None) -> dict[str, Any]:
    """Fine-tune, evaluate each epoch, save; return what was written (also in training_config.json).
    `callbacks` are extra Trainer callbacks (tests watch the weights with one)."""
    if args.train is None:
        raise TrainError("no training data: pass --train (SageMaker sets SM_CHANNEL_TRAIN)")
    model_dir, output_dir, checkpoint_dir = _dirs(args)
    train_file = data_file(Path(args.train), "train")
    val_file = data_file(Path(args.validation), "validation") if args.validation else None
    train_rows = read_examples(train_file)[: args.max_train_samples]
    val_rows = read_examples(val_file)[: args.max_eval_samples] if val_file else []
    fingerprint = run_fingerprint(args, train_file, val_file)
    # before anything slow: a checkpoint from another run is refused here, not after loading the model
    resume_from = prepare_checkpoints(args, checkpoint_dir, fingerprint, log)

    import torch
    import transformers
    from transformers import AutoTokenizer, TrainingArguments

    check_gpus()
    started = time.time()
    transformers.set_seed(args.seed)
    token = hf_token()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(args.base_model), token=token)
    except OSError as err:
        raise TrainError(f"cannot load the tokenizer of {args.base_model}: {str(err).splitlines()[0]}"
                         f"{OFFLINE_HINT}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    try:
        encoder = PromptEncoder(tokenizer, args.max_length)
    except ValueError as err:  # --max-length shorter than the prompt itself
        raise TrainError(f"--max-length: {err}") from None
    train_ds = EncodedDataset(encoder, train_rows)
    val_ds = EncodedDataset(encoder, val_rows) if val_rows else None
    log(f"data: {len(train_ds)} train, {len(val_ds or [])} validation examples (max_length {args.max_length})")

    dtype = resolve_dtype(args.compute_dtype)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(args, dtype, token)
    trainable, total = model.get_nb_trainable_parameters()
    log(f"model: {args.base_model} ({args.quantization}, compute {str(dtype).removeprefix('torch.')}, {device}); "
        f"LoRA r={args.lora_r} alpha={args.lora_alpha}: {trainable:,} of {total:,} parameters trainable")

    sampling = {}
    if args.group_by_length and not args.packing:
        fields = TrainingArguments.__dataclass_fields__
        sampling = ({"train_sampling_strategy": "group_by_length"} if "train_sampling_strategy" in fields
                    else {"group_by_length": True})
    evaluating = val_ds is not None
    targs = TrainingArguments(
        output_dir=str(checkpoint_dir),
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.eval_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        warmup_steps=args.warmup_ratio,  # a float below 1 is a ratio of the total steps
        weight_decay=args.weight_decay,
        lr_scheduler_type=args.lr_scheduler,
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        eval_strategy="epoch" if evaluating else "no",
        save_strategy="steps" if args.resume else "no",  # --no-resume: no checkpoints
        save_steps=args.save_steps,
        save_total_limit=args.save_total_limit,
        logging_steps=args.logging_steps,
        seed=args.seed,
        remove_unused_columns=False,
        report_to="none",
        optim="adamw_torch",
        disable_tqdm=True,
        use_cpu=device == "cpu",
        dataloader_pin_memory=device == "cuda",
        **sampling,
    )
    pad = PadCollator(tokenizer.pad_token_id)
    trainer = _trainer_class()(
        model=model, args=targs, train_dataset=train_ds, eval_dataset=val_ds,
        data_collator=_packing_collator() if args.packing else pad,
        compute_metrics=_metrics_fn(encoder.label_first_ids) if evaluating else None,
        callbacks=[_EvalPrinter(), _FingerprintSaver(fingerprint), _Progress(log), *(callbacks or [])],
    )
    trainer.eval_collator = pad
    trainer.label_first_ids = encoder.label_first_ids  # evaluation projects only the positions it reads

    if resume_from:
        log(f"resuming from {resume_from} (same run: fingerprint {fingerprint['id']})")
    result = trainer.train(resume_from_checkpoint=resume_from)

    model_dir.mkdir(parents=True, exist_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    trainer.model.save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    _write_json(model_dir / LABELS_FILE, encoder.labels_document())

    epochs = [
        {"epoch": e["epoch"], "step": e["step"], "eval_loss": e["eval_loss"],
         "eval_macro_f1": e.get("eval_macro_f1"), "eval_accuracy": e.get("eval_accuracy")}
        for e in trainer.state.log_history if "eval_loss" in e
    ]
    train_losses = [{"step": e["step"], "loss": e["loss"]} for e in trainer.state.log_history if "loss" in e]
    metrics = {"epochs": epochs, "train_loss": result.training_loss, "train_loss_log": train_losses,
               "global_step": trainer.state.global_step, "train_runtime_s": round(time.time() - started, 1)}
    _write_json(model_dir / METRICS_FILE, metrics)

    config = {
        "base_model": str(args.base_model),
        "max_length": args.max_length,
        "hyperparameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(vars(args).items())
                            if k not in ("train", "validation", "model_dir", "output_data_dir", "checkpoint_dir")},
        "compute_dtype": str(dtype).removeprefix("torch."),
        "device": device,
        "quantization": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True}
        if args.quantization == "nf4" else None,
        "lora": {"r": args.lora_r, "alpha": args.lora_alpha, "dropout": args.lora_dropout,
                 "target_modules": sorted({m.rsplit(".", 1)[-1] for m in model.peft_config["default"].target_modules})},
        "trainable_parameters": trainable,
        "labels": encoder.labels_document(),
        "data": {name: {"file": f.name, "sha256": fingerprint["data_sha256"][name], "rows": n}
                 for name, f, n in (("train", train_file, len(train_ds)), ("validation", val_file, len(val_rows)))
                 if f is not None},
        "resumed_from_checkpoint": resume_from,
        "run_fingerprint": fingerprint["id"],
        "global_step": trainer.state.global_step,
        "versions": _versions(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _write_json(model_dir / CONFIG_FILE, config)
    _write_json(output_dir / METRICS_FILE, metrics)
    log(f"saved adapter, tokenizer, {LABELS_FILE}, {CONFIG_FILE}, {METRICS_FILE} to {model_dir}")

    if args.merge:
        del trainer, model
        _free_memory()
        merge_adapter(model_dir, str(args.base_model), token=token)
        log(f"saved merged fp16 model to {model_dir / 'merged'}")
    return {"model_dir": str(model_dir), "metrics": metrics, "config": config}


def merge_adapter(model_dir: Path, base_model: str, token: str | None = None) -> Path:
    """Fold the adapter into the (unquantized, fp16) base weights; save model, tokenizer and labels.json."""
    import shutil

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(model_dir) / "merged"
    base = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float16, token=token)
    merged = PeftModel.from_pretrained(base, str(model_dir)).merge_and_unload()
    merged.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(str(out))
    shutil.copy(Path(model_dir) / LABELS_FILE, out / LABELS_FILE)
    return out


def _trainer_class():
    from transformers import Trainer

    class ClassifierTrainer(Trainer):
        """Evaluation always uses padded batches (answer positions are read per row), even with packing."""

        eval_collator = None
        label_first_ids: list[int] | None = None

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            """The evaluation loss and the answer-position label scores, with the vocabulary projection computed
            only where a label token is read (a few positions per row), as serving does: the default computes
            fp32 logits over the whole vocabulary at every position (batch x length x 151k: gigabytes at
            --eval-batch-size 16 on a T4)."""
            if self.label_first_ids is None:
                return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
            return label_only_eval(model, self._prepare_inputs(inputs), self.label_first_ids,
                                   self.compute_loss_context_manager)

        def get_eval_dataloader(self, eval_dataset=None):
            collator, self.data_collator = self.data_collator, self.eval_collator or self.data_collator
            try:
                return super().get_eval_dataloader(eval_dataset)
            finally:
                self.data_collator = collator

    return ClassifierTrainer


def label_only_eval(model, inputs: dict, label_first_ids: list[int], context=None):
    """(loss, scores [batch, labels], labels): the causal-LM loss over the labelled tokens and the label-first-token
    logits at the answer position, from the last hidden states, projecting onto the vocabulary only the positions
    that predict a labelled token."""
    import contextlib

    import torch
    import torch.nn.functional as F

    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    labels = inputs["labels"]
    with torch.no_grad(), (context() if context else contextlib.nullcontext()):
        hidden = causal.model(**{k: v for k, v in inputs.items() if k != "labels"}).last_hidden_state
        target = labels[:, 1:]
        keep = target != -100
        logits = causal.lm_head(hidden[:, :-1][keep]).float()  # [labelled tokens, vocab]
        loss = F.cross_entropy(logits, target[keep])
        # the answer's first token: the first labelled one that is a label's (the category answers come before it)
        first_answer = torch.isin(labels, labels.new_tensor(label_first_ids)).int().argmax(dim=1)
        rows = torch.arange(labels.shape[0], device=labels.device)
        scores = causal.lm_head(hidden[rows, first_answer - 1])[:, label_first_ids].float()
    return loss.detach(), scores, labels


def _packing_collator():
    from transformers import DataCollatorWithFlattening

    return DataCollatorWithFlattening()


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _write_json(path: Path, doc: Any) -> None:
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")


def _sagemaker_failure_reason(message: str) -> None:
    """In a SageMaker job, the error becomes the job's FailureReason (SM_OUTPUT_DIR/failure)."""
    output = os.environ.get("SM_OUTPUT_DIR")
    if not output:
        return
    try:
        Path(output).mkdir(parents=True, exist_ok=True)
        (Path(output) / "failure").write_text(message[:1000], encoding="utf-8")
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = train(args)
    except TrainError as err:
        print(f"error: {err}", file=sys.stderr)
        _sagemaker_failure_reason(str(err))
        return 1
    print(json.dumps({"model_dir": summary["model_dir"], "global_step": summary["metrics"]["global_step"],
                      "epochs": summary["metrics"]["epochs"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
