"""A drift report from a real run of the API: two windows of real traffic, the second one shifted.

    uv run --all-extras python -m bench.drift_from_api            # ~1 minute; report in out/drift/

1. Starts the API (offline mode) with the prediction log in out/drift/predictions.db (texts stored, so the
   new-term finder can read them).
2. Reference window: 2,000 real tweets from shared/data (OLID and Davidson), through /moderate/batch.
3. Current window: 2,000 texts that drifted the way moderation traffic does: longer news comments (Civil
   Comments), a harsher label mix, and coded variants (data/augment.py: leetspeak, spacing, look-alikes,
   database forms) of a third of them.
4. Runs monitoring.drift_detection on the two windows of the log and prints the report's summary.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime

from bench.common import serve_api
from core.settings import ROOT

OUT = ROOT / "out" / "drift"


def _post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def _send(base: str, texts: list[str]) -> None:
    for i in range(0, len(texts), 200):
        _post(base + "/moderate/batch", {"texts": texts[i : i + 200]})


def main() -> int:
    from data.augment import Augmenter
    from data.readers import load_shared_sources
    from normalizer import load_database

    rng = random.Random(5)
    df = load_shared_sources()
    # Sorted first: the readers' joins do not promise an order, and the windows must be the same every run.
    tweets = sorted(df.filter(df["source"].is_in(["olid", "davidson"]))["text"].to_list())
    comments = sorted(df.filter(df["source"] == "civil_comments_toxic_spans")["text"].to_list())
    rng.shuffle(tweets)
    rng.shuffle(comments)
    reference = [t for t in tweets if t.strip()][:2000]
    augmenter = Augmenter.from_database(load_database(), seed=5)
    current = []
    for i, text in enumerate(comments[:1200] + tweets[2000:2800]):
        if i % 3 == 0:
            variants = augmenter.variants(text, parent_id=f"drift{i}", n=1)
            text = variants[0].text if variants else text
        current.append(text[:5000])

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    env = {"PREDICTION_LOG_URL": f"sqlite:///{OUT / 'predictions.db'}", "LOG_TEXT": "true", "LOG_LEVEL": "WARNING"}
    with serve_api(env) as base:
        _send(base, reference)
        time.sleep(1.0)
        boundary = datetime.now(UTC).isoformat(timespec="seconds")
        time.sleep(1.0)
        _send(base, current)

    log_url = f"sqlite:///{OUT / 'predictions.db'}"
    command = [
        sys.executable, "-m", "monitoring.drift_detection", "--reference", log_url, "--reference-end", boundary,
        "--current", log_url, "--current-start", boundary, "--out", str(OUT / "report"),
    ]  # fmt: skip
    print("$ python -m monitoring.drift_detection " + " ".join(command[3:]).replace(str(ROOT) + "/", ""))
    status = subprocess.run(command, cwd=ROOT).returncode
    print(f"drift_detection exit status: {status} (0 no drift, 1 alert, 2 bad input)")
    return 0 if status in (0, 1) else status


if __name__ == "__main__":
    raise SystemExit(main())
