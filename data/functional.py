"""The functional test suite: short hand-written cases with expected labels, in families (HateCheck-style).

    from data.functional import coded_cases, load_suite, suite_report
    cases = load_suite()                     # plain cases, from data/dataset/functional_suite.json
    cases += coded_cases(cases, seed=13)     # an algospeak version of each flagged case (data.augment)
    cases += disguised_cases(cases, seed=13) # a harmless case disguised the same way: it must stay harmless
    cases += padded_cases(cases)             # each plain case beside a friendly sentence: the same label
    predicted = [...]                        # one label per case from any classifier, in order
    report = suite_report(cases, predicted)  # per family and overall; no model in here

    uv run --all-extras python -m data.functional --summary            # counts per family and side
    uv run --all-extras python -m data.functional --jsonl cases.jsonl  # every case: plain, coded, disguised

The suite file is the source of truth. A template with `{identity}` / `{Identity}` (the group, plural) or
`{member}` / `{Member}` (one person) expands once per identity; one with `{slur}` / `{Slur}` once per slur
(its case's identity is the slur's target); a capitalised slot capitalises the value's first letter. An
expanded case id is the template id plus the identity or slur key (`dehumanisation.vermin.muslims`); a
template without a slot is one case whose id is the template id (`threat.direct.003`). "Flagged" means
harmful or worse; each family says whether its cases are expected flagged (true), not flagged (false) or
both ("mixed"), and a file that breaks that, or is malformed in any other way, is refused with a ValueError
naming the template or case.

Report figures (for the plain cases of each family and overall):
  n, flagged_expected_n, not_flagged_expected_n
  hateful_flagged       share predicted flagged among cases expected flagged (recall; named after HateCheck,
                        though profanity, self-harm and sexual cases count too)
  non_hateful_flagged   share predicted flagged among cases expected not flagged (false flags)
  accuracy              exact-label accuracy
  coded                 over coded cases whose plain case is also scored: flagged rate of the coded
                        versions and of their plain versions, the gap in points (plain minus coded:
                        positive = coding hides harm) and exact-label accuracy; overall also per technique
  disguised             the same for the disguised versions of harmless cases (negative gap = the disguise
                        itself was read as harm: "see you t.o.n.i.g.h.t" flagged where "see you tonight" is not)
  padded                the same for each flagged case with a friendly sentence before or after it (positive
                        gap = the padding hid harm), and `padded_harmless` for the harmless cases (negative gap =
                        the padding made harm)
A share with nothing to divide by is None.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run by its path (python data/functional.py): the repository root on sys.path
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import logging
import string
import sys
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from core.labels import LABELS, SEVERITY

log = logging.getLogger(__name__)

DEFAULT_SUITE = Path(__file__).resolve().parent / "dataset" / "functional_suite.json"
FLAG_FROM = "harmful"  # flagged = this label or worse
CODED_SUFFIX = ".coded"
DISGUISED_SUFFIX = ".disguised"
PADDED_SUFFIX = ".padded"
# Friendly sentences an evader puts beside the harm: none names a group, a threat, a body or a feeling.
PADDING = (
    "Thanks for reading, let me know what you think in the comments below.",
    "Anyway, have a great weekend everyone!",
    "The weather here has been lovely lately.",
)

IDENTITY_SLOTS = frozenset({"identity", "Identity", "member", "Member"})
SLUR_SLOTS = frozenset({"slur", "Slur"})
TEMPLATE_KEYS = frozenset({"id", "family", "label", "template", "identity"})


def is_flagged(label: str) -> bool:
    """True for harmful or worse."""
    return SEVERITY[label] >= SEVERITY[FLAG_FROM]


@dataclass(frozen=True, slots=True)
class Case:
    """One test case. Coded cases carry the id of their plain case and how they were coded."""

    id: str
    family: str
    text: str
    label: str
    flagged: bool
    identity: str | None = None
    template_id: str = ""
    coded_of: str | None = None
    techniques: tuple[str, ...] = ()
    pattern_ids: tuple[str, ...] = ()

    @property
    def side(self) -> str:
        return "flagged" if self.flagged else "not_flagged"


# --------------------------------------------------------------------------------------------- loading


def load_suite(path: Path | str = DEFAULT_SUITE) -> list[Case]:
    """The plain cases of a suite file, in file order; ValueError for a malformed file, naming the problem."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the suite: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from exc
    return expand(document, source=str(path))


def expand(document: Any, source: str = "suite") -> list[Case]:
    """Validate a suite document and expand its templates into cases."""

    def fail(message: str) -> ValueError:
        return ValueError(f"{source}: {message}")

    if not isinstance(document, dict):
        raise fail("the top level must be an object")
    for key in ("version", "families", "templates"):
        if key not in document:
            raise fail(f"missing top-level key {key!r}")
    if "labels" in document and list(document["labels"]) != list(LABELS):
        raise fail(f"labels {document['labels']!r} differ from core.labels.LABELS {list(LABELS)!r}")

    identities = _keyed(document.get("identities", []), "identities", ("key", "group", "member"), fail)
    slurs = _keyed(document.get("slurs", []), "slurs", ("key", "word", "identity"), fail)
    for key, slur in slurs.items():
        if slur["identity"] not in identities:
            raise fail(f"slur {key!r}: unknown identity {slur['identity']!r}")

    families = document["families"]
    if not isinstance(families, dict) or not families:
        raise fail("'families' must be a non-empty object")
    for name, family in families.items():
        expected = family.get("flagged_expected") if isinstance(family, dict) else None
        if not (isinstance(expected, bool) or expected == "mixed"):
            raise fail(f"family {name!r}: 'flagged_expected' must be true, false or \"mixed\"")

    templates = document["templates"]
    if not isinstance(templates, list) or not templates:
        raise fail("'templates' must be a non-empty list")
    cases: list[Case] = []
    seen_templates: set[str] = set()
    for i, template in enumerate(templates):
        tid = template.get("id") if isinstance(template, dict) else None
        where = f"template {tid!r}" if isinstance(tid, str) and tid else f"template #{i}"
        if not isinstance(template, dict):
            raise fail(f"{where}: must be an object")
        unknown = sorted(set(template) - TEMPLATE_KEYS)
        if unknown:
            raise fail(f"{where}: unknown key(s) {unknown}")
        for key in ("id", "family", "label", "template"):
            if not isinstance(template.get(key), str) or not template[key].strip():
                raise fail(f"{where}: {key!r} must be a non-empty string")
        if tid in seen_templates:
            raise fail(f"{where}: the id appears twice")
        seen_templates.add(tid)
        family, label = template["family"], template["label"]
        if family not in families:
            raise fail(f"{where}: unknown family {family!r}")
        if not tid.startswith(family + "."):
            raise fail(f"{where}: the id must start with its family, {family + '.'!r}")
        if label not in LABELS:
            raise fail(f"{where}: label {label!r} is not one of {', '.join(LABELS)}")
        cases += _expand_one(template, identities, slurs, where, fail)

    seen: set[str] = set()
    for case in cases:
        if case.id in seen:
            raise fail(f"case {case.id!r}: the id appears twice")
        seen.add(case.id)
        expected = families[case.family]["flagged_expected"]
        if expected != "mixed" and case.flagged != expected:
            raise fail(
                f"case {case.id!r}: label {case.label!r} is {'' if case.flagged else 'not '}flagged, but "
                f"family "
                f"{case.family!r} expects {'flagged' if expected else 'not flagged'} cases only"
            )
    for name, family in families.items():
        sides = {case.flagged for case in cases if case.family == name}
        if not sides:
            raise fail(f"family {name!r} has no cases")
        if family["flagged_expected"] == "mixed" and len(sides) < 2:
            only = "flagged" if True in sides else "not-flagged"
            raise fail(f"family {name!r} is mixed but has only {only} cases")
    return cases


def _keyed(items: Any, what: str, fields: tuple[str, ...], fail) -> dict[str, dict[str, str]]:
    if not isinstance(items, list):
        raise fail(f"{what!r} must be a list")
    out: dict[str, dict[str, str]] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or any(not isinstance(item.get(f), str) or not item[f] for f in fields):
            raise fail(f"{what} #{i}: needs non-empty strings {', '.join(fields)}")
        if item["key"] in out:
            raise fail(f"{what}: key {item['key']!r} appears twice")
        out[item["key"]] = item
    return out


def _slots(text: str, where: str, fail) -> set[str]:
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise fail(f"{where}: bad braces in the template ({exc})") from exc
    slots = set()
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in IDENTITY_SLOTS | SLUR_SLOTS or spec or conversion:
            raise fail(
                f"{where}: unknown slot {{{name}}}; use {{identity}}, {{member}} or {{slur}} (capitalised to "
                "capitalise)"
            )
        slots.add(name)
    if slots & IDENTITY_SLOTS and slots & SLUR_SLOTS:
        raise fail(f"{where}: a template fills identity slots or slur slots, not both")
    return slots


def _capitalise(value: str) -> str:
    return value[:1].upper() + value[1:]


def _expand_one(template: dict, identities: dict, slurs: dict, where: str, fail) -> list[Case]:
    tid, text = template["id"], template["template"]
    slots = _slots(text, where, fail)
    fixed_identity = template.get("identity")
    if fixed_identity is not None:
        if slots:
            raise fail(f"{where}: 'identity' is only for templates without a slot (a slot sets it)")
        if fixed_identity not in identities:
            raise fail(f"{where}: unknown identity {fixed_identity!r}")
    if slots & IDENTITY_SLOTS:
        if not identities:
            raise fail(f"{where}: an identity slot but no identities in the file")
        fills = [
            (key, key, {"identity": i["group"], "Identity": _capitalise(i["group"]),
                        "member": i["member"], "Member": _capitalise(i["member"])})
            for key, i in identities.items()
        ]
    elif slots & SLUR_SLOTS:
        if not slurs:
            raise fail(f"{where}: a slur slot but no slurs in the file")
        fills = [
            (key, slur["identity"], {"slur": slur["word"], "Slur": _capitalise(slur["word"])})
            for key, slur in slurs.items()
        ]
    else:
        fills = [(None, fixed_identity, {})]
    out = []
    for suffix, identity, values in fills:
        case_id = f"{tid}.{suffix}" if suffix else tid
        expanded = text.format(**values)
        if not expanded.strip():
            raise fail(f"case {case_id!r}: empty text")
        out.append(
            Case(case_id, template["family"], expanded, template["label"], is_flagged(template["label"]),
                 identity, tid)
        )
    return out


# --------------------------------------------------------------------------------------------- coded versions


def code_suite(cases: Sequence[Case], seed: int = 13, augmenter=None) -> tuple[list[Case], list[str]]:
    """(coded cases, ids of the flagged plain cases the augmenter could not change). One coded version per
    flagged plain case, made by `data.augment` (the pattern database in reverse, else a generic technique);
    it keeps the plain case's label, and depends only on the seed, the case id and its text."""
    if augmenter is None:
        from core.settings import DEFAULT_PATTERN_DB
        from data.augment import Augmenter
        from normalizer import load_database

        augmenter = Augmenter.from_database(load_database(DEFAULT_PATTERN_DB), seed=seed)
    coded: list[Case] = []
    skipped: list[str] = []
    for case in cases:
        if not case.flagged or case.coded_of is not None:
            continue
        variants = augmenter.variants(case.text, parent_id=case.id, n=1)
        if not variants:
            skipped.append(case.id)
            continue
        [variant] = variants
        coded.append(
            replace(case, id=case.id + CODED_SUFFIX, text=variant.text, coded_of=case.id,
                    techniques=tuple(variant.techniques), pattern_ids=tuple(variant.pattern_ids))
        )
    return coded, skipped


def coded_cases(cases: Sequence[Case], seed: int = 13, augmenter=None) -> list[Case]:
    """A coded (algospeak) version of each flagged plain case; cases the augmenter cannot change are skipped,
    and their number is logged (`code_suite` returns their ids)."""
    coded, skipped = code_suite(cases, seed=seed, augmenter=augmenter)
    if skipped:
        log.warning("coded_cases: %d flagged case(s) could not be coded and were skipped: %s",
                    len(skipped), ", ".join(skipped))
    return coded


def disguised_cases(cases: Sequence[Case], seed: int = 13) -> list[Case]:
    """A disguised version of each harmless plain case: one generic technique of `data.augment` (spacing,
    repetition, leetspeak, homoglyphs; never the pattern database, whose forms are coded harm). People write
    "soooo good" and "h e l l o" too: a model that learned the disguise as harm flags them."""
    from data.augment import Augmenter

    augmenter = Augmenter.from_database(None, seed=seed)
    out: list[Case] = []
    for case in cases:
        if case.flagged or case.coded_of is not None:
            continue
        for variant in augmenter.variants(case.text, parent_id=case.id, n=1):
            out.append(replace(case, id=case.id + DISGUISED_SUFFIX, text=variant.text, coded_of=case.id,
                               techniques=tuple(variant.techniques)))
    return out


def padded_cases(cases: Sequence[Case]) -> list[Case]:
    """Each plain case with one of PADDING before or after it (both chosen by a hash of the case id): the cheapest
    evasion there is. A model that reads a text only as a whole lets the friendly words dilute the harm's: with
    "Thanks for reading, ..." after it, 9.6% of the suite's harmful cases stayed flagged against 66.7% alone. The
    padding is always a sentence of its own: friendly words run on in the harm's sentence are not measured here."""
    out: list[Case] = []
    for case in cases:
        if case.coded_of is not None:
            continue
        pick = zlib.crc32(case.id.encode("utf-8"))
        pad = PADDING[pick % len(PADDING)]
        text = f"{case.text} {pad}" if pick // len(PADDING) % 2 else f"{pad} {case.text}"
        out.append(replace(case, id=case.id + PADDED_SUFFIX, text=text, coded_of=case.id, techniques=("padding",)))
    return out


# --------------------------------------------------------------------------------------------- scoring


def _share(hits: int, n: int) -> float | None:
    return hits / n if n else None


def _plain_figures(cases: list[Case], flagged_pred: list[bool], correct: list[bool]) -> dict[str, Any]:
    expected_flagged = [f for c, f in zip(cases, flagged_pred) if c.flagged]
    expected_clean = [f for c, f in zip(cases, flagged_pred) if not c.flagged]
    return {
        "n": len(cases),
        "flagged_expected_n": len(expected_flagged),
        "not_flagged_expected_n": len(expected_clean),
        "hateful_flagged": _share(sum(expected_flagged), len(expected_flagged)),
        "non_hateful_flagged": _share(sum(expected_clean), len(expected_clean)),
        "accuracy": _share(sum(correct), len(correct)),
    }


def _coded_figures(pairs: list[tuple[bool, bool, bool]]) -> dict[str, Any]:
    """pairs: (plain predicted flagged, coded predicted flagged, coded label correct)."""
    n = len(pairs)
    plain = _share(sum(p for p, _, _ in pairs), n)
    coded = _share(sum(c for _, c, _ in pairs), n)
    return {
        "n": n,
        "plain_flagged": plain,
        "coded_flagged": coded,
        "gap_points": None if plain is None else (plain - coded) * 100,
        "accuracy": _share(sum(ok for _, _, ok in pairs), n),
    }


def suite_report(cases: Sequence[Case], predicted: Sequence[str]) -> dict[str, Any]:
    """Figures per family and overall for predicted labels (one per case, in order). Plain cases give the
    headline figures; coded cases are compared with their plain cases, which must be among `cases`."""
    if len(cases) != len(predicted):
        raise ValueError(f"{len(cases)} cases but {len(predicted)} predictions")
    for case, label in zip(cases, predicted):
        if label not in SEVERITY:
            raise ValueError(f"case {case.id!r}: predicted label {label!r} is not one of {', '.join(LABELS)}")
    flagged_of = {c.id: is_flagged(label) for c, label in zip(cases, predicted) if c.coded_of is None}
    families = list(dict.fromkeys(case.family for case in cases))

    plain_rows: dict[str, list[tuple[Case, bool, bool]]] = {f: [] for f in families}
    coded_rows: dict[str, list[tuple[Case, tuple[bool, bool, bool]]]] = {f: [] for f in families}
    disguised_rows: dict[str, list[tuple[Case, tuple[bool, bool, bool]]]] = {f: [] for f in families}
    padded_rows: dict[str, list[tuple[Case, tuple[bool, bool, bool]]]] = {f: [] for f in families}
    for case, label in zip(cases, predicted):
        flagged, correct = is_flagged(label), label == case.label
        if case.coded_of is None:
            plain_rows[case.family].append((case, flagged, correct))
        else:
            if case.coded_of not in flagged_of:
                raise ValueError(
                    f"coded case {case.id!r}: its plain case {case.coded_of!r} is not among the cases"
                )
            rows = padded_rows if case.id.endswith(PADDED_SUFFIX) else coded_rows if case.flagged else disguised_rows
            rows[case.family].append((case, (flagged_of[case.coded_of], flagged, correct)))

    def block(rows, coded, disguised, padded) -> dict[str, Any]:
        figures = _plain_figures([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
        figures["coded"] = _coded_figures([pair for _, pair in coded])
        figures["disguised"] = _coded_figures([pair for _, pair in disguised])
        figures["padded"] = _coded_figures([pair for case, pair in padded if case.flagged])
        figures["padded_harmless"] = _coded_figures([pair for case, pair in padded if not case.flagged])
        return figures

    report: dict[str, Any] = {
        "families": {f: block(plain_rows[f], coded_rows[f], disguised_rows[f], padded_rows[f])
                     for f in families if plain_rows[f]},
    }
    all_plain = [row for f in families for row in plain_rows[f]]
    all_coded = [row for f in families for row in coded_rows[f]]
    report["overall"] = block(all_plain, all_coded, [row for f in families for row in disguised_rows[f]],
                              [row for f in families for row in padded_rows[f]])
    by_technique: dict[str, list[tuple[bool, bool, bool]]] = {}
    for case, pair in all_coded:
        for technique in case.techniques or ("none",):
            by_technique.setdefault(technique, []).append(pair)
    report["overall"]["coded"]["by_technique"] = {
        t: _coded_figures(pairs) for t, pairs in sorted(by_technique.items())
    }
    return report


# --------------------------------------------------------------------------------------------- CLI


def summary_lines(cases: Sequence[Case], coded: Sequence[Case], skipped: Sequence[str]) -> list[str]:
    plain = [c for c in cases if c.coded_of is None]
    coded_by_family = Counter(c.family for c in coded)
    width = max(len(c.family) for c in plain) if plain else 6
    lines = [f"{'family':<{width}}  {'flagged':>7}  {'not':>5}  {'total':>5}  {'coded':>5}  labels"]
    for family in dict.fromkeys(c.family for c in plain):
        members = [c for c in plain if c.family == family]
        flagged = sum(c.flagged for c in members)
        labels = Counter(c.label for c in members)
        label_text = ", ".join(f"{label} {labels[label]}" for label in LABELS if labels[label])
        lines.append(
            f"{family:<{width}}  {flagged:>7}  {len(members) - flagged:>5}  {len(members):>5}  "
            f"{coded_by_family[family]:>5}  {label_text}"
        )
    flagged = sum(c.flagged for c in plain)
    lines.append(
        f"{'all':<{width}}  {flagged:>7}  {len(plain) - flagged:>5}  {len(plain):>5}  {len(coded):>5}"
    )
    techniques = Counter(t for c in coded for t in c.techniques)
    lines.append(
        f"coded: {len(coded)} of {flagged} flagged cases ({len(skipped)} skipped: the augmenter could not "
        f"change them); techniques: " + ", ".join(f"{t} {n}" for t, n in techniques.most_common())
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.functional", description=__doc__.split("\n")[0])
    parser.add_argument("--suite", type=Path, default=DEFAULT_SUITE, help="suite file (default: shipped)")
    parser.add_argument("--seed", type=int, default=13, help="seed of the coded versions")
    parser.add_argument("--summary", action="store_true", help="print counts per family and side")
    parser.add_argument("--jsonl", type=Path, help="write every case (plain, coded, disguised, padded) to this JSONL file")
    args = parser.parse_args(argv)
    if not args.summary and not args.jsonl:
        args.summary = True
    try:
        cases = load_suite(args.suite)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    coded, skipped = code_suite(cases, seed=args.seed)
    disguised = disguised_cases(cases, seed=args.seed)
    padded = padded_cases(cases)
    if args.summary:
        print(f"functional suite {args.suite.name}: {len(cases)} plain cases")
        print("\n".join(summary_lines(cases, coded, skipped)))
        print(f"disguised: {len(disguised)} of {sum(not c.flagged for c in cases)} harmless cases")
        print(f"padded: {len(padded)}, each plain case beside a friendly sentence")
    if args.jsonl:
        every = [*cases, *coded, *disguised, *padded]
        with args.jsonl.open("w", encoding="utf-8") as f:
            for case in every:
                f.write(json.dumps(asdict(case), ensure_ascii=False) + "\n")
        print(f"wrote {len(every)} cases to {args.jsonl}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
