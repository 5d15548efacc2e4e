"""The team's seed corpus: short training sentences that say what our labels mean where the shared sets are silent
or disagree (threats without slurs, death wishes, suicide intent, dehumanisation, sexual solicitation, and the
safe texts that look like them). The file is data/dataset/seed_corpus.json; this expands it.

    from data.seed import load_seed
    rows = load_seed()            # [SeedText(text, label, family, template)], the same list on every run

    uv run --all-extras python -m data.seed --summary     # counts per family and label
    uv run --all-extras python -m data.seed --overlap     # the seed sentences closest to a held-out text

The seed trains the offline model (training.transfer adds it as its own domain, "team_seed", which is always
in training and never a held-out domain: a figure on it would be a home figure). It is written apart from the
functional suite (other sentence frames, other identity groups), and a sentence that still comes close to a
suite case or an outside probe (stock phrases such as "I hope you die" are in both) is left out, so that both
measure what the model was not shown; `--overlap` shows the closest pairs and tests/data/test_seed.py holds the bound.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by its path: the repository root on sys.path
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import random
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from core.labels import LABELS

DEFAULT_SEED_CORPUS = Path(__file__).resolve().parent / "dataset" / "seed_corpus.json"
OUTSIDE_PROBES = DEFAULT_SEED_CORPUS.parent / "outside_probes.json"
SOURCE = "team_seed"
_SLOT = re.compile(r"\{(\w+)\}")
_EXPANSION_LIMIT = 50_000
# Seed sentences this close to a held-out text (a functional-suite case or an outside probe; Jaccard of word
# 3-grams) are left out of training.
MAX_SUITE_SIMILARITY = 0.4  # combinations of one template; the file is refused beyond it


@dataclass(frozen=True, slots=True)
class SeedText:
    text: str
    label: str
    family: str
    template: str


def _expand(template: str, slots: dict[str, list[str]], where: str) -> list[str]:
    """Every filling of the template's slots; a slot value may itself hold slots."""
    done: list[str] = []
    todo = [template]
    while todo:
        text = todo.pop()
        m = _SLOT.search(text)
        if m is None:
            done.append(text)
            continue
        if m.group(1) not in slots:
            raise ValueError(f"{where}: unknown slot {{{m.group(1)}}}")
        todo.extend(text[: m.start()] + value + text[m.end():] for value in slots[m.group(1)])
        if len(done) + len(todo) > _EXPANSION_LIMIT:
            raise ValueError(f"{where}: more than {_EXPANSION_LIMIT} combinations")
    return sorted(set(done))


def _styled(text: str, rng: random.Random) -> str:
    """One of the ways people type the same sentence: as written, all lower case, or without a final stop."""
    roll = rng.random()
    if roll < 0.35:
        return text.lower()
    if roll < 0.5:
        return text.rstrip(".!")
    return text


def load_seed(path: Path = DEFAULT_SEED_CORPUS, *, seed: int = 13,
              max_suite_similarity: float | None = MAX_SUITE_SIMILARITY) -> list[SeedText]:
    """The expanded seed corpus: up to each template's `max` fillings, chosen with `seed`, less every sentence
    whose word 3-grams overlap a held-out text (a functional-suite case or an outside probe, `held_out_texts`) by
    `max_suite_similarity` (Jaccard) or more: stock phrases ("I hope you die") are in both, and what measures the
    model must stay unseen. A malformed file is refused with a ValueError naming the template."""
    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
        slots, templates = spec["slots"], spec["templates"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"seed corpus {path}: unreadable ({exc})") from exc
    if not isinstance(slots, dict) or not all(isinstance(v, list) and v and all(isinstance(s, str) for s in v)
                                              for v in slots.values()):
        raise ValueError(f"seed corpus {path}: slots must map names to non-empty lists of strings")
    rng = random.Random(seed)
    out: list[SeedText] = []
    seen: set[str] = set()
    for i, t in enumerate(templates):
        where = f"seed corpus template {i} ({t.get('template')!r})" if isinstance(t, dict) else f"seed corpus template {i}"
        if not isinstance(t, dict) or set(t) != {"family", "label", "template", "max"}:
            raise ValueError(f"{where}: needs exactly family, label, template and max")
        if t["label"] not in LABELS:
            raise ValueError(f"{where}: label {t['label']!r} is not one of {LABELS}")
        if not isinstance(t["max"], int) or t["max"] < 1:
            raise ValueError(f"{where}: max must be a positive integer")
        filled = _expand(t["template"], slots, where)
        for text in rng.sample(filled, min(t["max"], len(filled))):
            text = text.strip()  # an empty slot value at either end leaves a space there
            if not text:
                raise ValueError(f"{where}: a filling is empty")
            text = _styled(text[0].upper() + text[1:], rng)
            if text.lower() not in seen:
                seen.add(text.lower())
                out.append(SeedText(text, t["label"], t["family"], t["template"]))
    if max_suite_similarity is not None:
        near = suite_similarity([r.text for r in out])
        out = [r for r, (score, _) in zip(out, near) if score < max_suite_similarity]
    return out


def _grams(text: str) -> set[tuple[str, ...]]:
    """Word 3-grams; a text of one or two words is its words; a text without words (emoji only) has none, so it is
    near nothing (two emoji-only texts are not copies of each other)."""
    words = re.findall(r"[a-z0-9']+", text.lower())
    if not words:
        return set()
    return {tuple(words[i : i + 3]) for i in range(max(0, len(words) - 2))} or {tuple(words)}


def held_out_texts() -> list[str]:
    """The texts the seed must not come close to: the functional suite's cases and the outside probes
    (data/dataset/outside_probes.json, written by a helper that had read nothing of the project). Both measure
    the model on what it was not shown, and a seed writer can land on a probe's very words without reading it (a
    helper that had not seen the probes wrote near-copies of four of them; the README has the story, which a
    helper writing seed sentences must not read). A missing or malformed probes file is a ValueError naming it."""
    from data.functional import load_suite

    try:
        probes = json.loads(OUTSIDE_PROBES.read_text(encoding="utf-8"))
        texts = [*probes["benign"], *probes["harmful"]]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"outside probes {OUTSIDE_PROBES}: unreadable ({exc})") from exc
    if not all(isinstance(t, str) for t in texts):
        raise ValueError(f"outside probes {OUTSIDE_PROBES}: benign and harmful must be lists of texts")
    return [c.text for c in load_suite()] + texts


def suite_similarity(texts: list[str]) -> list[tuple[float, str]]:
    """For each text, the held-out text (`held_out_texts`: a functional-suite case or an outside probe) sharing
    most of its word 3-grams (Jaccard) and that share."""
    return nearest(texts, held_out_texts())


def nearest(texts: list[str], others: list[str]) -> list[tuple[float, str]]:
    """For each of `texts`, the one of `others` sharing most of its word 3-grams (Jaccard) and that share."""
    cases = [(_grams(t), t) for t in others]
    index: dict[tuple[str, ...], list[int]] = {}
    for k, (g, _) in enumerate(cases):
        for gram in g:
            index.setdefault(gram, []).append(k)
    out = []
    for text in texts:
        g = _grams(text)
        candidates = {k for gram in g for k in index.get(gram, ())}
        out.append(max(((round(len(g & cases[k][0]) / len(g | cases[k][0]), 3), cases[k][1]) for k in candidates),
                       default=(0.0, "")))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", type=Path, default=DEFAULT_SEED_CORPUS)
    parser.add_argument("--summary", action="store_true", help="counts per family and label")
    parser.add_argument("--overlap", action="store_true", help="the held-out texts (suite cases, outside probes) closest to a seed sentence")
    parser.add_argument("--jsonl", type=Path, help="write every expanded sentence here")
    args = parser.parse_args(argv)
    try:
        rows = load_seed(args.path)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.jsonl:
        with args.jsonl.open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps({"text": r.text, "label": r.label, "family": r.family}, ensure_ascii=False) + "\n")
    if args.summary or not (args.overlap or args.jsonl):
        counts = Counter((r.family, r.label) for r in rows)
        for (family, label), n in sorted(counts.items()):
            print(f"{family:<22} {label:<20} {n:>5}")
        print(f"{'total':<43} {len(rows):>5}")
    if args.overlap:
        near = sorted(zip(suite_similarity([r.text for r in rows]), (r.text for r in rows)), reverse=True)[:10]
        for (score, case), seed_text in near:
            print(f"{score:.3f}  seed:  {seed_text!r}\n       held out: {case!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
