"""How often Stage 1 rewrites real safe texts (a false alarm: a changed text that needed no change).

    uv run --extra data python -m bench.false_alarms

Safe texts are the rows the data sets label safe (OLID "not offensive", Davidson "neither", the Jigsaw
sample's clean rows). Annotations of ambiguous terms and safe contexts change nothing and are not counted;
a rewrite is. Prints the rate and the most frequent rewritten entries, and writes bench/results/false_alarms.json.
"""

from __future__ import annotations

from collections import Counter

from bench.common import write_result
from normalizer import Normalizer, load_database


def safe_texts(limit: int | None = None) -> list[str]:
    from data.readers import load_shared_sources

    df = load_shared_sources()
    texts = df.filter(df["label"] == "safe")["text"].to_list()
    return texts[:limit] if limit else texts


def false_alarm_report(normalizer: Normalizer, texts: list[str]) -> dict:
    rewritten = []
    by_entry: Counter[str] = Counter()
    by_word: Counter[str] = Counter()  # texts in which a word was written in (issue 16: none above 0.5%)
    for text in texts:
        result = normalizer.normalize(text)
        rewrites = [m for m in result.matches if m.action == "rewrite"]
        if rewrites:
            rewritten.append(text)
            by_entry.update(m.entry_id for m in rewrites)
            by_word.update({m.replacement.strip().casefold() for m in rewrites})
    return {
        "safe_texts": len(texts),
        "rewritten": len(rewritten),
        "rate": round(len(rewritten) / len(texts), 4) if texts else 0.0,
        "top_entries": by_entry.most_common(15),
        "top_words": by_word.most_common(15),
        "max_word_share": round(by_word.most_common(1)[0][1] / len(texts), 4) if by_word and texts else 0.0,
        "examples": rewritten[:10],
    }


def main() -> int:
    db = load_database()
    report = false_alarm_report(Normalizer(db), safe_texts())
    print(f"{report['rewritten']} of {report['safe_texts']} safe texts rewritten ({report['rate']:.2%}), database {db.version}")
    for entry, count in report["top_entries"]:
        print(f"  {count:5d}  {entry}")
    print(f"most frequent word written in: {report['top_words'][:5]}; the most frequent is in "
          f"{report['max_word_share']:.2%} of safe texts")
    path = write_result("false_alarms", {"database_version": db.version, **report})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
