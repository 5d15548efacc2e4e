"""Normalize algospeak from the command line.

    uv run python -m normalizer "ppl saying unal1ve and s3wer slide"
    uv run python -m normalizer --file posts.txt --out normalized.jsonl     # one text per line -> JSONL
    echo "k i l l" | uv run python -m normalizer --file -
    uv run python -m normalizer --check-db data/dataset/algospeak_patterns.json

Results go to stdout (or --out), diagnostics to stderr. Exit 1 on a user error, with one line saying why.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.settings import DEFAULT_PATTERN_DB


def check_db(path: Path) -> int:
    from normalizer import Normalizer, PatternDatabaseError, load_database

    try:
        db = load_database(path)
    except PatternDatabaseError as exc:
        print(f"INVALID: {exc.path}", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    normalizer = Normalizer(db)
    failures = 0
    for entry in db.entries:
        for example in entry.positive:
            ids = {m.entry_id for m in normalizer.normalize(example).matches}
            if entry.id not in ids:
                failures += 1
                print(f"{entry.id}: positive example not matched: {example!r} (matched: {sorted(ids)})")
        for example in entry.negative:
            # An emoji code (rewrite_when) is reported everywhere: its innocent uses must only not be rewritten.
            if any(
                m.entry_id == entry.id and (entry.rewrite_when is None or m.action == "rewrite")
                for m in normalizer.normalize(example).matches
            ):
                failures += 1
                print(f"{entry.id}: negative example matched: {example!r}")
    by_category: dict[str, int] = {}
    by_technique: dict[str, int] = {}
    for entry in db.entries:
        by_category[entry.category] = by_category.get(entry.category, 0) + 1
        by_technique[entry.technique] = by_technique.get(entry.technique, 0) + 1
    print(
        f"{path}: version {db.version}, {len(db)} entries, {failures} failing examples\n"
        f"  categories: {json.dumps(dict(sorted(by_category.items())))}\n"
        f"  techniques: {json.dumps(dict(sorted(by_technique.items())))}",
        file=sys.stderr,
    )
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m normalizer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("text", nargs="*", help="text to normalize (joined with spaces)")
    parser.add_argument("--file", help="read one text per line from this file ('-' for stdin); write JSONL")
    parser.add_argument("--out", help="write results here instead of stdout")
    parser.add_argument("--db", type=Path, default=DEFAULT_PATTERN_DB, help="pattern database (default: %(default)s)")
    parser.add_argument("--check-db", type=Path, metavar="PATH", help="validate a database and test its examples")
    args = parser.parse_args(argv)

    if args.check_db:
        return check_db(args.check_db)
    if not args.text and not args.file:
        parser.error("give a text, or --file PATH")

    from normalizer import Normalizer, PatternDatabaseError, load_database

    try:
        normalizer = Normalizer(load_database(args.db))
    except PatternDatabaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return 1
    with out:
        if args.text:
            result = normalizer.normalize(" ".join(args.text))
            out.write(json.dumps(result.as_dict(), ensure_ascii=False, indent=2) + "\n")
            return 0
        try:
            source = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8", errors="replace")
        except OSError as exc:
            print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 1
        count = changed = 0
        with source:
            for line in source:
                text = line.rstrip("\n").rstrip("\r")
                result = normalizer.normalize(text)
                count += 1
                changed += result.changed
                out.write(json.dumps(result.as_dict(), ensure_ascii=False) + "\n")
        print(f"normalized {count} texts, {changed} changed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
