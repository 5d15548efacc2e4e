"""How much the prediction log costs the request path, and how fast it drains.

    uv run python bench/bench_prediction_log.py                      # SQLite in a temp folder
    uv run python bench/bench_prediction_log.py --threads 8 --records 50000 --db sqlite:///bench.db

Prints the latency of record() (what a request pays) and the end-to-end write throughput, and checks
that every record reached the database.
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
    args = parser.parse_args()
    url = args.db or f"sqlite:///{tempfile.mkdtemp()}/bench.db"

    result = {
        "request_id": "r", "original_text": "i will unalive you tomorrow at the park " * 3,
        "normalized_text": "i will kill you tomorrow at the park " * 3, "algospeak_detected": True,
        "classification": "harmful", "confidence": 0.8, "raw_classification": "safe",
        "scores": {"safe": 0.1, "potentially_harmful": 0.05, "harmful": 0.8, "extremely_harmful": 0.05},
        "matches": [{"entry_id": "violence.unalive", "techniques": ["euphemism"]}],
        "stage1_status": "ok", "stage2_status": "ok", "model": {"backend": "embedded", "version": "b"},
        "pattern_db_version": "1.0.0", "latency_ms": 1.0,
    }
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
    workers = [threading.Thread(target=produce, args=(t,)) for t in range(args.threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
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


if __name__ == "__main__":
    main()
