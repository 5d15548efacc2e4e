"""Stage 1 on coded forms it was not written for (issue 16): how many it decodes to their meaning.

    uv run --all-extras python -m bench.coded_forms                     # ours
    uv run --all-extras python -m bench.coded_forms --baseline 4d24145  # and an earlier commit's normalizer, same items

The items are `data/dataset/coded_forms_benchmark.json` (built by bench/build_coded_benchmark.py, each with its
source). A coded form counts as decoded when the normalized text holds its meaning as words that the original
did not hold (a rewrite); as reported when a rewrite or an annotation carries the meaning. For emoji in innocent
use the figure is the share rewritten (lower is better) and the share reported. Writes
bench/results/coded_forms.json.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from bench.common import git_revision, revision_tree, write_result

ROOT = Path(__file__).resolve().parent.parent
BENCHMARK = ROOT / "data" / "dataset" / "coded_forms_benchmark.json"
TARGETS = {"coded": 0.85, "emoji_harmful": 0.70, "emoji_innocent_rewritten": 0.05}


def load_benchmark(path: Path = BENCHMARK) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["items"]


def _holds(text: str, meaning: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(meaning.casefold()) + r"(?!\w)", text.casefold()) is not None


def outcome(item: dict, normalized: str, matches: list[dict]) -> dict:
    meaning = item["meaning"]
    if item["family"].startswith("emoji"):
        on_form = [m for m in matches if item["form"] in m["original"]]
        rewritten = any(m["action"] == "rewrite" for m in on_form)
        decoded = rewritten and _holds(normalized, meaning)
        reported = bool(on_form) and any(_holds(m["meaning"], meaning) for m in on_form)
        return {"decoded": decoded, "rewritten": rewritten, "reported": reported}
    decoded = _holds(normalized, meaning) and not _holds(item["text"], meaning)
    reported = decoded or any(_holds(m["meaning"], meaning) for m in matches)
    return {"decoded": decoded, "rewritten": decoded, "reported": reported}


def score(items: list[dict], outputs: list[tuple[str, list[dict]]]) -> dict:
    by_family: dict[str, list[dict]] = defaultdict(list)
    misses: dict[str, list[str]] = defaultdict(list)
    for item, (normalized, matches) in zip(items, outputs):
        result = outcome(item, normalized, matches)
        by_family[item["family"]].append(result)
        if not result["decoded"] and item["family"] != "emoji_innocent" and len(misses[item["family"]]) < 12:
            misses[item["family"]].append(f"{item['text']} -> {normalized} (want {item['meaning']})")
    families = {}
    for family, results in sorted(by_family.items()):
        n = len(results)
        families[family] = {
            "items": n,
            "decoded": round(sum(r["decoded"] for r in results) / n, 4),
            "rewritten": round(sum(r["rewritten"] for r in results) / n, 4),
            "reported": round(sum(r["reported"] for r in results) / n, 4),
        }
    coded = [r for f, rs in by_family.items() if f != "emoji_innocent" for r in rs]
    return {
        "coded_forms": len(coded),
        "coded_decoded": round(sum(r["decoded"] for r in coded) / len(coded), 4),
        "coded_reported": round(sum(r["reported"] for r in coded) / len(coded), 4),
        "emoji_harmful_decoded": families.get("emoji_harmful", {}).get("decoded"),
        "emoji_innocent_rewritten": families.get("emoji_innocent", {}).get("rewritten"),
        "emoji_innocent_reported": families.get("emoji_innocent", {}).get("reported"),
        "families": families,
        "misses": dict(misses),
    }


def run_ours(items: list[dict]) -> list[tuple[str, list[dict]]]:
    from normalizer import Normalizer, load_database

    normalizer = Normalizer(load_database())
    out = []
    for item in items:
        result = normalizer.normalize(item["text"])
        out.append((result.text, [m.as_dict() for m in result.matches]))
    return out


WORKER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from normalizer import Normalizer, load_database
n = Normalizer(load_database(sys.argv[1] + "/data/dataset/algospeak_patterns.json"))
for line in sys.stdin:
    r = n.normalize(json.loads(line))
    print(json.dumps([r.text, [m.as_dict() for m in r.matches]]), flush=True)
"""


def run_commit(items: list[dict], commit: str) -> list[tuple[str, list[dict]]]:
    with revision_tree(commit) as tmp:
        lines = "".join(json.dumps(item["text"]) + "\n" for item in items)
        done = subprocess.run([sys.executable, "-c", WORKER, str(tmp)], input=lines, capture_output=True, text=True, check=True)
        return [tuple(json.loads(line)) for line in done.stdout.splitlines()]  # type: ignore[misc]


def _print(name: str, report: dict) -> None:
    print(f"{name}: {report['coded_decoded']:.1%} of {report['coded_forms']} coded forms decoded "
          f"(target >= {TARGETS['coded']:.0%}), {report['coded_reported']:.1%} decoded or reported; emoji in harmful context {report['emoji_harmful_decoded']:.1%} "
          f"(>= {TARGETS['emoji_harmful']:.0%}); emoji in innocent use rewritten {report['emoji_innocent_rewritten']:.1%} "
          f"(<= {TARGETS['emoji_innocent_rewritten']:.0%}), reported {report['emoji_innocent_reported']:.1%}")  # fmt: skip
    for family, f in report["families"].items():
        print(f"  {family:22s} {f['items']:4d} items  decoded {f['decoded']:6.1%}  rewritten {f['rewritten']:6.1%}  reported {f['reported']:6.1%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=git_revision, help="a git revision whose normalizer is measured on the same items")
    parser.add_argument("--misses", action="store_true", help="print examples of coded forms not decoded")
    args = parser.parse_args(argv)
    items = load_benchmark()
    ours = score(items, run_ours(items))
    _print("ours", ours)
    if args.misses:
        for family, examples in ours["misses"].items():
            print(f"  misses in {family}:", *examples, sep="\n    ")
    payload = {"ours": ours}
    if args.baseline:
        base = score(items, run_commit(items, args.baseline))
        _print(f"baseline {args.baseline}", base)
        payload["baseline"] = {"revision": args.baseline, **base}
    print(f"wrote {write_result('coded_forms', payload)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
