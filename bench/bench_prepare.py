"""Benchmark `data.prepare` on a Jigsaw-sized file, side by side with a straightforward pandas version.

    uv run --all-extras python bench/bench_prepare.py                    # 1.8M rows, polars and pandas
    uv run --all-extras python bench/bench_prepare.py --rows 200000      # quicker
    uv run --all-extras python bench/bench_prepare.py --setup-pandas     # first make the throwaway pandas venv

The input is a file with the real 45-column Jigsaw Unintended Bias schema, generated from real texts in
../shared/data (each row joins two real texts, so rows are distinct as in the real file; 2% are exact
copies, to give deduplication work). Both implementations run the same steps on it: read and validate,
clean, drop empty and near-duplicate texts, sample to --target-size with a label mix, split, augment, write
JSONL and Parquet. Each runs in its own subprocess; wall time and peak RSS (getrusage of that child) are
measured. pandas is not a project dependency: it runs from a throwaway venv under /tmp (--setup-pandas makes
it), and is skipped with a message when that venv is missing. Results go to bench/results/prepare.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results" / "prepare.json"
WORK = Path("/tmp/bench_prepare")
PANDAS_VENV = Path("/tmp/bench-pandas-venv")
LABEL_MIX = "safe=0.4,potentially_harmful=0.2,harmful=0.2,extremely_harmful=0.2"
# Integer columns of train.csv (ids, reaction and annotator counts).
COUNT_COLUMNS = ("publication_id", "parent_id", "article_id", "funny", "wow", "sad", "likes", "disagree",
                 "identity_annotator_count", "toxicity_annotator_count")  # fmt: skip
TARGETS = {"seconds": 90.0, "peak_gb": 4.0, "speedup_vs_pandas": 3.0}


# --------------------------------------------------------------------------------------------- input


def generate(path: Path, n_rows: int, seed: int = 0) -> None:
    """Write an n_rows CSV with the real Jigsaw train.csv header, texts joined from real shared texts."""
    import numpy as np
    import polars as pl

    from data.readers import JIGSAW_UB_COLUMNS, JIGSAW_UB_SCORES, load_shared_sources

    texts = load_shared_sources()["text"]
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(texts), n_rows), rng.integers(0, len(texts), n_rows)
    copies = np.flatnonzero(rng.random(n_rows) < 0.02)  # these rows repeat the row before them
    a[copies], b[copies] = a[copies - 1], b[copies - 1]
    # Jigsaw's target: most comments score 0, the rest spread over (0, 1].
    target = np.where(rng.random(n_rows) < 0.7, 0.0, rng.random(n_rows)).round(6)
    pair = pl.DataFrame({"a": texts.gather(a), "b": texts.gather(b)})
    columns: dict[str, object] = {
        "id": np.arange(239_000, 239_000 + n_rows),
        "target": target,
        "comment_text": pair.select(pl.concat_str("a", pl.lit(" "), "b"))[:, 0],
    }
    for name in JIGSAW_UB_SCORES:
        columns[name] = (target * rng.random(n_rows)).round(6)
    identity = rng.random(n_rows) < 0.05
    for name in JIGSAW_UB_COLUMNS:
        if name in columns:
            continue
        if name == "created_date":
            columns[name] = ["2016-01-01 10:00:00.000000+00"] * n_rows
        elif name == "rating":
            columns[name] = np.where(rng.random(n_rows) < 0.9, "approved", "rejected")
        elif name in COUNT_COLUMNS:
            columns[name] = rng.integers(0, 50, n_rows)
        else:  # identity columns: empty unless annotated
            columns[name] = pl.Series(np.where(identity, rng.random(n_rows).round(6), np.nan)).fill_nan(None)
    pl.DataFrame({name: columns[name] for name in JIGSAW_UB_COLUMNS}).write_csv(path)


# --------------------------------------------------------------------------------------------- measuring


def measure(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run `cmd` under a wrapper process whose only child it is, so the wrapper's RUSAGE_CHILDREN peak RSS is
    the command's own."""
    wrapper = [sys.executable, __file__, "--child", json.dumps(cmd)]
    done = subprocess.run(wrapper, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _child(cmd_json: str) -> None:
    cmd = json.loads(cmd_json)
    start = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        sys.exit(done.returncode)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    print(json.dumps({"seconds": round(wall, 2), "peak_gb": round(peak_kb / 1024**2, 3)}))


# --------------------------------------------------------------------------------------------- pandas


def setup_pandas() -> None:
    """A throwaway venv under /tmp with pandas and what the project modules the pandas version reuses need."""
    if not (PANDAS_VENV / "bin" / "python").exists():
        subprocess.run(["uv", "venv", "--python", sys.executable, str(PANDAS_VENV)], check=True)
    subprocess.run(
        [
            "uv",
            "pip",
            "install",
            "--python",
            str(PANDAS_VENV / "bin" / "python"),
            "pandas",
            "pyarrow",
            "polars",
            "numpy",
            "jsonschema",
            "pydantic-settings",
            "pyahocorasick",
        ],
        check=True,
    )


def pandas_python() -> Path | None:
    python = PANDAS_VENV / "bin" / "python"
    if not python.exists():
        return None
    ok = (
        subprocess.run(
            [str(python), "-c", "import pandas, pyarrow"], capture_output=True, check=False
        ).returncode
        == 0
    )
    return python if ok else None


def run_pandas(csv_path: str, out_dir: str, target_size: int, seed: int) -> None:
    """The same steps written the straightforward pandas way (eager frames, Python-level regex via .str)."""
    import hashlib

    import numpy as np
    import pandas as pd

    from core.labels import LABELS, SEVERITY
    from core.prompt import build_training_messages
    from data.augment import Augmenter
    from data.prepare import PrepareConfig, plan_quotas
    from data.readers import JIGSAW_UB_COLUMNS, JIGSAW_UB_SCORES
    from normalizer.database import load_database

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    missing = [c for c in JIGSAW_UB_COLUMNS if c not in df.columns]
    if missing:
        raise SystemExit(f"missing columns {missing}")
    for column in ("target", *JIGSAW_UB_SCORES):
        values = pd.to_numeric(df[column], errors="coerce")
        if values.isna().any() or ((values < 0) | (values > 1)).any():
            raise SystemExit(f"bad values in {column}")
        df[column] = values
    df["label"] = pd.cut(df["target"], [-1, 0.2, 0.5, 0.8, 2], right=False, labels=list(LABELS)).astype(str)
    text = df["comment_text"]
    for pattern, repl in (
        (r"&amp;", "&"),
        (r"&lt;", "<"),
        (r"&gt;", ">"),
        (r"&quot;", '"'),
        (r"&#0?39;", "'"),
        (r"(?i)\b(?:https?://|www\.)\S+", "URL"),
        (r"@\w+", "@user"),
        (r"\s+", " "),
    ):
        text = text.str.replace(pattern, repl, regex=True)
    df["text"] = text.str.strip()
    key = df["text"].str.lower()
    for pattern, repl in (
        (r"(?i)\b(?:https?://|www\.)\S+", " "),
        (r"@\w+", " "),
        (r"\burl\b", " "),
        (r"^\s*rt\b", " "),
        (r"[^\w\s]|_", ""),
        (r"\s+", " "),
    ):
        key = key.str.replace(pattern, repl, regex=True)
    df["key"] = key.str.strip()
    df = df[df["text"] != ""]
    df["severity"] = df["label"].map(SEVERITY)
    df["source"], df["source_id"] = "jigsaw_unintended_bias", df["id"]
    df = df.sort_values(["key", "severity", "source_id"], ascending=[True, False, True]).drop_duplicates(
        "key"
    )
    counts = df.groupby(["label", "source"]).size().reset_index(name="len")
    mix = dict(item.split("=") for item in LABEL_MIX.split(","))
    config = PrepareConfig(
        target_size=target_size, label_mix={k: float(v) for k, v in mix.items()}, seed=seed
    )

    class Counts:  # plan_quotas reads rows as dicts
        def iter_rows(self, named=True):
            return counts.to_dict("records")

    quotas, _ = plan_quotas(Counts(), config)
    rng = np.random.default_rng(seed)
    df["order"] = rng.random(len(df))
    df["rank"] = df.groupby(["label", "source"])["order"].rank(method="first")
    df["quota"] = [quotas.get((lab, src), 0) for lab, src in zip(df["label"], df["source"])]
    df = df[df["rank"] <= df["quota"]].copy()
    n = df.groupby(["label", "source"])["rank"].transform("size")
    df["split"] = np.where(
        df["rank"] <= (n * 0.8).round(),
        "train",
        np.where(df["rank"] <= (n * 0.9).round(), "validation", "test"),
    )
    df["id"] = "jigsaw_unintended_bias:" + df["source_id"]
    db_path = ROOT / "data" / "dataset" / "algospeak_patterns.json"
    augmenter = Augmenter.from_database(load_database(db_path) if db_path.exists() else None, seed=seed)
    chosen = df[df["label"].isin(["harmful", "extremely_harmful"]) & (df["order"] < 0.5)]
    variants = []
    for row in chosen.itertuples():
        for i, v in enumerate(augmenter.variants(row.text, row.id, n=1)):
            variants.append(
                {
                    "id": f"{row.id}~v{i + 1}",
                    "parent_id": row.id,
                    "text": v.text,
                    "label": row.label,
                    "split": row.split,
                    "source": row.source,
                    "techniques": list(v.techniques),
                }
            )
    records = pd.concat(
        [df.assign(parent_id=None, techniques=[[] for _ in range(len(df))]), pd.DataFrame(variants)]
    )
    records["messages"] = [
        build_training_messages(t, lab) for t, lab in zip(records["text"], records["label"])
    ]
    columns = ["messages", "id", "parent_id", "split", "source", "label", "text", "techniques"]
    for split in ("train", "validation", "test"):
        part = records.loc[records["split"] == split, columns]
        part.to_json(out / f"{split}.jsonl", orient="records", lines=True, force_ascii=False)
        part.to_parquet(out / f"{split}.parquet", compression="zstd")
    summary = {f.name: hashlib.sha256(f.read_bytes()).hexdigest()[:12] for f in sorted(out.iterdir())}
    print(json.dumps({"records": len(records), "files": summary}))


# --------------------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=1_800_000)
    parser.add_argument("--target-size", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--skip-pandas", action="store_true")
    parser.add_argument(
        "--setup-pandas", action="store_true", help=f"create {PANDAS_VENV} with pandas, then run"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--pandas-run", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return 0
    if args.pandas_run:
        run_pandas(*args.pandas_run, args.target_size, args.seed)
        return 0
    if args.setup_pandas:
        setup_pandas()

    WORK.mkdir(parents=True, exist_ok=True)
    csv_path = WORK / f"jigsaw_train_{args.rows}.csv"
    if not csv_path.exists():
        print(f"generating {csv_path} ({args.rows} rows)...", file=sys.stderr)
        generate(csv_path, args.rows)
    size_mb = csv_path.stat().st_size / 1024**2
    db = ROOT / "data" / "dataset" / "algospeak_patterns.json"
    db_args = ["--pattern-db", str(db)] if db.exists() else ["--no-pattern-db"]
    polars_cmd = [
        sys.executable,
        "-m",
        "data.prepare",
        "--sources",
        "none",
        "--jigsaw-train",
        str(csv_path),
        "--out",
        str(WORK / "out_polars"),
        "--target-size",
        str(args.target_size),
        "--label-mix",
        LABEL_MIX,
        "--seed",
        str(args.seed),
        "--no-seed-corpus",  # the pandas version has no seed step: the same steps on the same rows
        *db_args,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results: dict[str, object] = {
        "rows": args.rows,
        "input_mb": round(size_mb, 1),
        "target_size": args.target_size,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "pattern_db": db.exists(),
    }
    print(f"polars: {' '.join(polars_cmd[1:])}", file=sys.stderr)
    results["polars"] = measure(polars_cmd, env)
    python = None if args.skip_pandas else pandas_python()
    if python is None:
        reason = (
            "--skip-pandas"
            if args.skip_pandas
            else f"no pandas venv at {PANDAS_VENV} (run with --setup-pandas)"
        )
        print(f"pandas: skipped ({reason})", file=sys.stderr)
        results["pandas"] = {"skipped": reason}
    else:
        pandas_cmd = [
            str(python),
            __file__,
            "--pandas-run",
            str(csv_path),
            str(WORK / "out_pandas"),
            "--target-size",
            str(args.target_size),
            "--seed",
            str(args.seed),
        ]
        print("pandas: same steps, eager", file=sys.stderr)
        results["pandas"] = measure(pandas_cmd, env)
        results["speedup_vs_pandas"] = round(results["pandas"]["seconds"] / results["polars"]["seconds"], 2)
    results["targets"] = TARGETS
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(table(results))
    return 0


def table(results: dict) -> str:
    lines = [
        f"{results['rows']:,} rows, {results['input_mb']} MB CSV, {results['machine']['cpus']} CPUs",
        f"{'':8} {'wall s':>8} {'peak GB':>8}",
    ]
    for name in ("polars", "pandas"):
        r = results[name]
        lines.append(
            f"{name:8} {r['seconds']:>8} {r['peak_gb']:>8}"
            if "seconds" in r
            else f"{name:8} skipped: {r['skipped']}"
        )
    if "speedup_vs_pandas" in results:
        lines.append(
            f"polars is {results['speedup_vs_pandas']}x faster (target >= {TARGETS['speedup_vs_pandas']}x)"
        )
    lines.append(f"targets: polars < {TARGETS['seconds']} s and < {TARGETS['peak_gb']} GB peak")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
