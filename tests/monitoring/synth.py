"""Synthetic moderation traffic for the monitoring tests: a baseline, and a shifted version of it.

The shift is the kind a user of the monitoring would care about: texts get longer, the label mix moves
toward harmful, and coded words the pattern database does not know appear in harmful texts.
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any

from core.labels import LABELS

SAFE_WORDS = ["the", "a", "and", "to", "of", "in", "my", "your", "we", "they", "it", "is", "was", "this", "that", "with", "for", "on", "at", "today", "tomorrow", "weekend", "morning", "coffee", "lunch", "dinner", "pizza", "movie", "music", "song", "game", "team", "friend", "family", "dog", "cat", "park", "garden", "book", "school", "work", "office", "rain", "sun", "beach", "trip", "train", "bus", "happy", "great", "nice", "fun", "love", "best", "new", "old", "little", "big", "really", "very", "just", "going", "went", "watch", "play", "read", "cook", "bake", "walk", "run", "call", "meet", "see", "think", "know", "feel", "want", "need", "like"]
HARM_WORDS = ["hate", "stupid", "idiot", "hurt", "fight", "attack", "threat", "kill", "die", "destroy", "beat", "punch", "weapon", "gun", "knife", "drugs", "suicide", "porn", "loser", "trash"]

# The pattern database the tests use: small, like the real one while it is being written.
PATTERN_DB: dict[str, Any] = {
    "version": "0.1.0",
    "date": "2024-05-01",
    "description": "test database",
    "entries": [
        {"id": "violence.unalive", "forms": ["unalive", "unalived"], "replacement": "kill",
         "technique": "euphemism", "category": "violence", "severity": 3,
         "examples": {"positive": ["i will unalive you"], "negative": []}, "source": ["t"]},
        {"id": "self_harm.sewer_slide", "forms": ["sewer slide"], "replacement": "suicide",
         "technique": "phonetic_respelling", "category": "self_harm", "severity": 3,
         "examples": {"positive": ["thinking about sewer slide"], "negative": []}, "source": ["t"]},
        {"id": "sexual.corn", "forms": ["corn"], "replacement": "porn", "technique": "euphemism",
         "category": "sexual", "severity": 2, "action": "annotate",
         "examples": {"positive": ["watching corn"], "negative": []}, "source": ["t"]},
        {"id": "drugs.pharm", "forms": ["pharm"], "replacement": "drugs", "patterns": ["ph+a+r+m+s?"],
         "technique": "abbreviation", "category": "drugs", "severity": 2,
         "examples": {"positive": ["got pharm"], "negative": []}, "source": ["t"]},
    ],
}

# Coded words planted in the shifted window: two new terms (one a phrase) and two variants of known words.
NEW_TERMS = ("zoinked", "pew pew")
VARIANTS = {"k1ll": ("kill", "leetspeak"), "suuuicide": ("suicide", "repetition")}
PLANTED = NEW_TERMS + tuple(VARIANTS)


def _label(rng: random.Random, harmful_share: float) -> str:
    if rng.random() >= harmful_share:
        return "safe" if rng.random() < 0.85 else "potentially_harmful"
    return "harmful" if rng.random() < 0.75 else "extremely_harmful"


def make_result(rng: random.Random, *, shifted: bool = False) -> dict[str, Any]:
    """One moderation result, like main.py's."""
    label = _label(rng, 0.45 if shifted else 0.12)
    n_words = rng.randint(18, 40) if shifted else rng.randint(4, 14)
    words = [rng.choice(SAFE_WORDS) for _ in range(n_words)]
    matches: list[dict[str, Any]] = []
    if label != "safe":
        for _ in range(rng.randint(1, 2)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(HARM_WORDS))
        if shifted and rng.random() < 0.6:
            words.insert(rng.randrange(len(words) + 1), rng.choice(PLANTED))
    # The normalizer finds "unalive" in a share of texts; more often, and with leetspeak, after the shift.
    if rng.random() < (0.30 if shifted else 0.08):
        words.insert(0, "unalive")
        matches.append({"start": 0, "end": 7, "original": "unalive", "replacement": "kill",
                        "entry_id": "violence.unalive", "techniques": ["euphemism"], "category": "violence",
                        "severity": 3, "action": "rewrite"})
    if shifted and rng.random() < 0.15:
        matches.append({"entry_id": "violence.k1ll", "techniques": ["leetspeak"], "category": "violence"})
    # Sentences of 4-9 words, capitalized and punctuated, so character shares do not depend on length.
    sentences, i = [], 0
    while i < len(words):
        k = rng.randint(4, 9)
        sentences.append(" ".join(words[i : i + k]).capitalize() + rng.choice(".!?"))
        i += k
    text = " ".join(sentences)
    scores = {lb: 0.02 for lb in LABELS}
    confidence = round(rng.uniform(0.55, 0.98), 3)
    scores[label] = confidence
    raw = None
    if matches:
        # When the normalizer rewrote something, the raw text's label sometimes differs (it missed the code).
        raw = "safe" if rng.random() < (0.5 if shifted else 0.1) else label
    return {
        "request_id": str(uuid.UUID(int=rng.getrandbits(128))),
        "original_text": text,
        "normalized_text": text.replace("unalive", "kill"),
        "algospeak_detected": bool(matches),
        "classification": label,
        "scores": scores,
        "confidence": confidence,
        "raw_classification": raw,
        "matches": matches,
        "stage1_status": "ok",
        "stage2_status": "ok" if rng.random() < 0.98 else "fallback:embedded",
        "mock_mode": True,
        "model": {"backend": "embedded", "version": "test-1"},
        "pattern_db_version": "0.1.0",
        "latency_ms": round(rng.uniform(0.5, 5.0), 2),
    }


def results(n: int, *, seed: int, shifted: bool = False) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [make_result(rng, shifted=shifted) for _ in range(n)]


def write_training_jsonl(path: Path, n: int, *, seed: int) -> Path:
    """Training data: just texts and labels."""
    with path.open("w", encoding="utf-8") as f:
        for r in results(n, seed=seed):
            f.write(json.dumps({"text": r["original_text"], "label": r["classification"]}) + "\n")
    return path


def write_results_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path


def write_pattern_db(path: Path) -> Path:
    path.write_text(json.dumps(PATTERN_DB), encoding="utf-8")
    return path


def capture_lines(rows: list[dict[str, Any]], *, encoding: str = "BASE64", batch: int = 2) -> list[str]:
    """SageMaker data-capture JSONL lines for these results, `batch` texts per request."""
    import base64

    lines = []
    for i in range(0, len(rows), batch):
        chunk = rows[i : i + batch]
        request = json.dumps({"inputs": [r["original_text"] for r in chunk]})
        response = json.dumps({"predictions": [
            {"label": r["classification"], "scores": r["scores"], "confidence": r["confidence"]} for r in chunk
        ]})
        if encoding == "BASE64":
            request, response = (base64.b64encode(x.encode()).decode() for x in (request, response))
        lines.append(json.dumps({
            "captureData": {
                "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                                  "data": request, "encoding": encoding},
                "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                   "data": response, "encoding": encoding},
            },
            "eventMetadata": {"eventId": f"e{i}", "inferenceTime": "2024-05-01T12:00:00Z"},
            "eventVersion": "0",
        }))
    return lines
