"""Stage 2 inference speed: one-pass label scoring vs generate-and-parse, at several batch sizes.

    # the real measurement (a GPU; e.g. on a g4dn.xlarge, fp16):
    uv run --all-extras python bench/bench_inference.py --model-dir out/training/model --dtype float16 \\
        --out inference_t4
    # a random model of the real shape, when no trained model is at hand:
    uv run --all-extras python -m training.base_models --shape qwen2.5-3b --out /tmp/qwen3b-random
    uv run --all-extras python bench/bench_inference.py --model-dir /tmp/qwen3b-random --out inference_t4_random
    # a CPU smoke run on the tiny model (shows the script works; its numbers say nothing about a GPU):
    uv run --all-extras python -m training.base_models --shape tiny --out /tmp/tiny-qwen
    uv run --all-extras python bench/bench_inference.py --model-dir /tmp/tiny-qwen \\
        --batches 3 --threads 1 --out inference_cpu_tiny --label "CPU smoke run on the tiny random model, not the GPU figure"

For each batch size it times `--batches` batches (after one warm-up batch) of real texts from ../shared/data
(synthetic ones when the data is absent) through
- one-pass scoring (`LabelScorer.score`: one forward pass, the four labels' probabilities at the answer), and
- generate-and-parse (`LabelScorer.generate_labels`: greedy generation of the answer, then parsing the label),
and reports texts/s and the p50/p99 latency of a batch, the speed-up, and how often the two methods agree
(meaningful on a tuned model only: a random model's generations are not labels). Results go to
bench/results/<out>.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import load_texts, machine, write_result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def time_batches(fn, texts: list[str], batch: int, batches: int, sync) -> tuple[list[float], list]:
    fn(texts[:batch])  # warm-up (kernels, allocator)
    sync()
    latencies, outputs = [], []
    for i in range(batches):
        chunk = [texts[(i * batch + j) % len(texts)] for j in range(batch)]
        started = time.perf_counter()
        out = fn(chunk)
        sync()
        latencies.append(time.perf_counter() - started)
        outputs.extend(out)
    return latencies, outputs


def summarize(latencies: list[float], batch: int) -> dict:
    return {"texts_per_s": round(batch * len(latencies) / sum(latencies), 2),
            "batch_latency_p50_ms": round(percentile(latencies, 50) * 1000, 2),
            "batch_latency_p99_ms": round(percentile(latencies, 99) * 1000, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--base-model", help="for an adapter dir (default: from the artifact)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--batches", type=int, default=20, help="timed batches per batch size and method")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto", help="auto = float16 on GPU, float32 on CPU")
    parser.add_argument("--max-length", type=int, help="prompt length cap (default: the artifact's)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 avoids oversubscription on a busy host)")
    parser.add_argument("--skip-generate", action="store_true", help="time one-pass scoring only")
    parser.add_argument("--out", default="inference", help="result name under bench/results/")
    parser.add_argument("--label", default="", help="what this run is, recorded in the result")
    args = parser.parse_args(argv)

    import torch

    from core.llm_inference import LabelScorer

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    scorer = LabelScorer.from_dir(args.model_dir, base_model=args.base_model, device=args.device, dtype=args.dtype,
                                  max_length=args.max_length, batch_size=max(args.batch_sizes))
    load_s = time.perf_counter() - started
    sync = torch.cuda.synchronize if scorer.device.type == "cuda" else (lambda: None)
    texts, source = load_texts(max(args.batch_sizes) * 4)
    prompt_tokens = [len(scorer.encoder.prompt_ids(t)) for t in texts]

    rows = []
    for batch in args.batch_sizes:
        scorer.batch_size = batch
        lat, predictions = time_batches(scorer.score, texts, batch, args.batches, sync)
        row = {"batch_size": batch, "one_pass": summarize(lat, batch)}
        if not args.skip_generate:
            glat, generated = time_batches(scorer.generate_labels, texts, batch, args.batches, sync)
            row["generate_and_parse"] = summarize(glat, batch)
            row["generate_and_parse"]["parsed_fraction"] = round(sum(g is not None for g in generated) / len(generated), 4)
            row["agreement"] = round(sum(p.label == g for p, g in zip(predictions, generated)) / len(generated), 4)
            row["speedup"] = round(row["one_pass"]["texts_per_s"] / row["generate_and_parse"]["texts_per_s"], 2)
        if scorer.device.type == "cuda":
            row["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
            torch.cuda.reset_peak_memory_stats()
        rows.append(row)
        print(row, file=sys.stderr)

    device = torch.cuda.get_device_name(0) if scorer.device.type == "cuda" else "cpu"
    payload = {
        "label": args.label or f"{device} {scorer.dtype}",
        "model_dir": str(args.model_dir), "model_version": scorer.version,
        "parameters": sum(p.numel() for p in scorer.model.parameters()),
        "device": device, "dtype": str(scorer.dtype).replace("torch.", ""), "torch_threads": torch.get_num_threads(),
        "load_seconds": round(load_s, 2), "texts": source,
        "prompt_tokens_mean": round(sum(prompt_tokens) / len(prompt_tokens), 1),
        "batches_per_point": args.batches, "results": rows, "host": machine(),
        "host_load_average": list(__import__("os").getloadavg()) if hasattr(__import__("os"), "getloadavg") else None,
    }
    path = write_result(args.out, payload)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
