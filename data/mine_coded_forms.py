"""Mine the shared data for coded harm words the pattern database does not name (issue 16).

    uv run --all-extras python -m data.mine_coded_forms            # report what would be added
    uv run --all-extras python -m data.mine_coded_forms --write    # add the entries, bump the minor version

A mined coded form is a token of a shared text that Stage 1 rewrites, by generic or open-vocabulary decoding,
to a harm word (one with a category from the database, the harm lexicon or the decoder's inflections and
compounds) that no database entry names: the rewrite is attributed to `open_vocabulary.<category>`. The word
must also be written plainly in at least `--min-plain` shared texts (a word people use, not an artefact of
decoding: "$table1" reads "stablei", which nobody writes), and not be in `REJECTED` (read and refused by a
reviewer, each with its reason). Each such word becomes one entry `<category>.shared_<word>`: the coded forms
as seen (at most 8, the most frequent first), the word as replacement, the decoder's category and technique,
up to two real texts around a form as positive examples (cut to 100 characters), and the data sets the forms
came from as sources (`shared_<set>`). Mining runs against the database without its mined entries, and
replaces them; other entries are never changed, and the version is bumped only when the mined entries change.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by its path: the repository root on sys.path
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import re
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

from normalizer import Normalizer, load_database
from normalizer.database import PatternDatabaseError, validate
from core.settings import DEFAULT_PATTERN_DB as DEFAULT_PATH

MINED_PREFIX = "shared_"
_TECHNIQUES = ("leetspeak", "masking", "character_insertion", "homoglyph", "repetition")
# Mined words a reviewer read in their texts and refused, with the reason; the mining leaves them out.
REJECTED = {
    "bitched": "'incompassionate b*****d' is 'bastard': the decoder ranks two masked harm words of seven letters",
    "fag": "'F.A.G.' is spelt out there as 'Fleet Auxiliary General', an acronym, not a slur split by dots",
}
_SEVERITY = {"profanity": 1, "sexual": 1, "drugs": 1, "harassment": 1, "scam": 1}  # others: 2


def _snippet(text: str, start: int, end: int, width: int = 100) -> str:
    """The text around [start, end), at most `width` characters, cut at spaces, on one line."""
    room = max(0, width - (end - start)) // 2
    a, b = max(0, start - room), min(len(text), end + room)
    if a > 0 and " " in text[a:start]:
        a = text.index(" ", a) + 1
    if b < len(text) and " " in text[end:b]:
        b = text.rindex(" ", end, b)
    return re.sub(r"\s+", " ", text[a:b]).strip()


_MECHANICAL = frozenset({*_TECHNIQUES, "spacing", "unicode_style"})


def mine(normalizer: Normalizer, rows, min_texts: int = 1, min_plain: int = 3, stats: dict | None = None) -> list[dict]:
    """Entries for the harm words that shared texts code and the database does not name. `stats`, when given,
    receives how many texts hold any coded form Stage 1 rewrites, and how many distinct forms and words."""
    all_forms: set[str] = set()
    all_words: set[str] = set()
    coded_texts = 0
    plain: Counter = Counter()
    forms: dict[str, Counter] = defaultdict(Counter)
    techniques: dict[str, Counter] = defaultdict(Counter)
    sources: dict[str, set[str]] = defaultdict(set)
    examples: dict[str, dict[str, str]] = defaultdict(dict)  # word -> form -> a snippet (the first in sort order)
    categories: dict[str, str] = {}
    texts: Counter = Counter()
    for text, source in rows:
        plain.update(set(re.findall(r"[a-z]+", text.casefold())))
        seen: set[str] = set()
        coded = False
        for m in normalizer.normalize(text).matches:
            plain_word = m.original.isascii() and m.original.isalpha()
            if m.action == "rewrite" and _MECHANICAL & set(m.techniques) and not plain_word:
                coded = True
                all_forms.add(m.original.casefold())
                all_words.add(m.meaning.strip().casefold())
            if m.action != "rewrite" or not m.entry_id.startswith("open_vocabulary.") or m.category == "none":
                continue
            word = m.meaning.strip().casefold()
            form = m.original.casefold()
            if not word.isalpha() or form == word or form.isalpha() and form.isascii() and "v" not in form:
                continue  # only tokens that spell the word with look-alikes, masks, joiners or repeats
            forms[word][form] += 1
            techniques[word].update(t for t in m.techniques if t in _TECHNIQUES)
            sources[word].add(source)
            categories[word] = m.category
            snippet = _snippet(text, m.start, m.end)
            examples[word][form] = min(examples[word].get(form, snippet), snippet)
            seen.add(word)
        texts.update(seen)
        coded_texts += coded
    if stats is not None:
        stats.update(texts=coded_texts, forms=len(all_forms), words=len(all_words))
    entries = []
    for word in sorted(forms, key=lambda w: (-texts[w], w)):
        if texts[word] < min_texts or plain[word] < min_plain or word in REJECTED:
            continue
        category = categories[word]
        ranked = sorted(forms[word], key=lambda f: (-forms[word][f], f))  # independent of the rows' order
        technique = min(techniques[word], key=lambda t: (-techniques[word][t], t)) if techniques[word] else "leetspeak"
        entries.append({
            "id": f"{category}.{MINED_PREFIX}{word}",
            "forms": ranked[:8],
            "replacement": word,
            "technique": technique,
            "category": category,
            "severity": _SEVERITY.get(category, 2),
            "examples": {"positive": [examples[word][f] for f in ranked[:2]], "negative": []},
            "source": sorted(f"{MINED_PREFIX}{s}" for s in sources[word]),
        })  # fmt: skip
    return entries


def _bump(version: str) -> str:
    major, minor, *_ = (int(p) for p in version.split("."))
    return f"{major}.{minor + 1}.0"


def main(argv: list[str] | None = None) -> int:
    from data.readers import load_shared_sources

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--min-texts", type=int, default=1, help="leave out words coded in fewer shared texts")
    parser.add_argument("--min-plain", type=int, default=3, help="leave out words written plainly in fewer texts")
    parser.add_argument("--write", action="store_true", help="add the entries to the database file")
    args = parser.parse_args(argv)
    document = json.loads(args.db.read_text(encoding="utf-8"))
    kept = [e for e in document["entries"] if f".{MINED_PREFIX}" not in e["id"]]
    mined_before = [e for e in document["entries"] if f".{MINED_PREFIX}" in e["id"]]
    df = load_shared_sources()
    db = load_database(args.db)  # mined against the database without its mined entries
    normalizer = Normalizer(replace(db, entries=tuple(e for e in db.entries if f".{MINED_PREFIX}" not in e.id)))
    stats: dict = {}
    entries = mine(normalizer, zip(df["text"], df["source"]), args.min_texts, args.min_plain, stats)
    print(f"{stats['texts']:,} of {df.height:,} shared texts hold a coded form Stage 1 rewrites (look-alikes, masks, "
          f"joiners, spacing, repeats): {stats['forms']} distinct forms of {stats['words']} words")
    print(f"{len(entries)} harm words coded in {df.height:,} shared texts and named by no entry:")
    for e in entries:
        print(f"  {e['id']:36s} {', '.join(e['forms'])}  ({', '.join(e['source'])})")
    if args.write and entries == mined_before:
        print(f"{args.db} already holds these entries: unchanged")
    elif args.write:
        sources = dict(document["sources"])
        for e in entries:
            for key in e["source"]:
                name = key[len(MINED_PREFIX) :]
                sources.setdefault(key, {
                    "title": f"Shared labelled data set '{name}' (coded forms seen in its texts; data/third_party/README.md)",
                    "authors": "see data/third_party/README.md",
                })  # fmt: skip
        document = dict(document, version=_bump(document["version"]), sources=sources, entries=kept + entries)
        problems = validate(document)  # checked before the file is touched: an invalid database is never written
        if problems:
            raise PatternDatabaseError(args.db, problems)
        args.db.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.db}: version {document['version']}, {len(document['entries'])} entries")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
