"""How much the prediction log costs the request path, and how fast it drains.

    uv run python bench/bench_prediction_log.py                      # SQLite in a temp folder
    uv run python bench/bench_prediction_log.py --threads 8 --records 50000 --db sqlite:///bench.db
    uv run python bench/bench_prediction_log.py --compare-journal    # queue / journal / journal+fsync, one run

Prints the latency of record() (what a request pays) and the end-to-end write throughput, and checks
that every record reached the database. --compare-journal runs the three durability modes one after the other
on fresh databases, each thread logging batches of --batch records with record_many (as the API does per
micro-batch), and prints what a batch waits in each.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitoring.prediction_log import PredictionLog, read_records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="SQLAlchemy URL (default: a temporary SQLite file)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--records", type=int, default=20_000, help="total records")
    parser.add_argument("--queue-size", type=int, default=10_000)
    parser.add_argument("--log-text", action="store_true")
    parser.add_argument("--compare-journal", action="store_true", help="queue vs journal vs journal+fsync")
    parser.add_argument("--batch", type=int, default=16, help="records per record_many call (--compare-journal)")
    args = parser.parse_args()
    if args.compare_journal:
        return compare_journal(args)
    url = args.db or f"sqlite:///{tempfile.mkdtemp()}/bench.db"

    result = RESULT
    log = PredictionLog(url, queue_size=args.queue_size, log_text=args.log_text)
    log.start()
    per_thread = args.records // args.threads
    latencies: list[list[float]] = [[] for _ in range(args.threads)]

    def produce(t: int) -> None:
        lat = latencies[t]
        for i in range(per_thread):
            start = time.perf_counter()
            log.record({**result, "request_id": f"{t}-{i}"})
            lat.append(time.perf_counter() - start)

    start = time.perf_counter()
    _run_threads(produce, args.threads)
    enqueued = time.perf_counter() - start
    log.close()
    total = time.perf_counter() - start
    lat_us = np.concatenate([np.array(x) for x in latencies]) * 1e6
    n = per_thread * args.threads
    stored = len(read_records(url).records) if not args.db else None
    print(f"{n} records, {args.threads} threads, {url}")
    print(f"record(): p50 {np.percentile(lat_us, 50):.1f} us, p99 {np.percentile(lat_us, 99):.1f} us, "
          f"max {lat_us.max() / 1000:.1f} ms")
    print(f"enqueue {n / enqueued:,.0f}/s; written end-to-end {n / total:,.0f}/s; stats {log.stats()}")
    if stored is not None:
        print(f"stored {stored} of {n}: {'OK' if stored == n else 'LOST RECORDS'}")


def _run_threads(produce, n: int) -> None:
    """produce(0) .. produce(n - 1), each on its own thread; returns when all are done."""
    threads = [threading.Thread(target=produce, args=(t,)) for t in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def compare_journal(args: argparse.Namespace) -> None:
    rows = []
    for mode in ("queue", "journal", "journal+fsync"):
        folder = Path(tempfile.mkdtemp())
        url = f"sqlite:///{folder}/bench.db"
        log = PredictionLog(url, queue_size=args.queue_size, journal_dir=folder / "journal" if mode != "queue" else None,
                            journal_fsync=mode == "journal+fsync")  # fmt: skip
        log.start()
        calls = args.records // args.batch // args.threads
        latencies: list[list[float]] = [[] for _ in range(args.threads)]

        def produce(t: int) -> None:
            for i in range(calls):
                batch = [{**RESULT, "request_id": f"{t}-{i}-{j}"} for j in range(args.batch)]
                start = time.perf_counter()
                log.record_many(batch)
                latencies[t].append(time.perf_counter() - start)

        start = time.perf_counter()
        _run_threads(produce, args.threads)
        log.close()
        total = time.perf_counter() - start
        n = calls * args.batch * args.threads
        lat_us = np.concatenate([np.array(x) for x in latencies]) * 1e6
        stored = len(read_records(url).records)
        rows.append((mode, np.percentile(lat_us, 50), np.percentile(lat_us, 99), n / total, stored, n))
    print(f"{args.threads} threads, batches of {args.batch} (record_many), SQLite in a temp folder")
    print(f"{'mode':<14} {'batch p50 µs':>12} {'batch p99 µs':>12} {'records/s':>10}  stored")
    for mode, p50, p99, rate, stored, n in rows:
        print(f"{mode:<14} {p50:>12.0f} {p99:>12.0f} {rate:>10,.0f}  {stored}/{n}")


RESULT = {
    "request_id": "r", "original_text": "i will unalive you tomorrow at the park " * 3,
    "normalized_text": "i will kill you tomorrow at the park " * 3, "algospeak_detected": True,
    "classification": "harmful", "confidence": 0.8, "raw_classification": "safe",
    "scores": {"safe": 0.1, "potentially_harmful": 0.05, "harmful": 0.8, "extremely_harmful": 0.05},
    "matches": [{"entry_id": "violence.unalive", "techniques": ["euphemism"]}],
    "stage1_status": "ok", "stage2_status": "ok", "model": {"backend": "embedded", "version": "b"},
    "pattern_db_version": "1.0.0", "latency_ms": 1.0,
}  # fmt: skip


if __name__ == "__main__":
    main()
