"""The pattern database: load, validate and describe `data/dataset/algospeak_patterns.json`.

A database is refused, with every problem listed, when it does not match the JSON Schema, when an id or a
rewrite form appears twice, when a replacement would itself be decoded again (normalizing must be
idempotent), or when a regular expression can backtrack catastrophically.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from core.settings import DEFAULT_PATTERN_DB
from normalizer.regex_safety import UnsafePatternError, check_pattern
from normalizer.unicode import fold_form

SCHEMA_PATH = DEFAULT_PATTERN_DB.with_name("algospeak_patterns.schema.json")


class PatternDatabaseError(ValueError):
    """The database file is missing, unreadable or invalid. `problems` lists every reason."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        super().__init__(f"invalid pattern database {self.path}: {shown}")


@dataclass(frozen=True, slots=True)
class Context:
    require_any: frozenset[str] = frozenset()
    forbid_any: frozenset[str] = frozenset()
    window: int = 6


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    forms: tuple[str, ...]
    replacement: str
    technique: str
    category: str
    severity: int
    action: str = "rewrite"
    replacements: dict[str, str] = field(default_factory=dict)
    patterns: tuple[str, ...] = ()
    context: Context | None = None
    # For an annotated entry: the context in which its form is rewritten instead (emoji codes: "🍑" is reported
    # everywhere, rewritten to "butt" only next to sexual words).
    rewrite_when: Context | None = None
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    source: tuple[str, ...] = ()

    def replacement_for(self, form: str) -> str:
        return self.replacements.get(form, self.replacement)


@dataclass(frozen=True, slots=True)
class PatternDatabase:
    version: str
    date: str
    entries: tuple[Entry, ...]
    sha256: str
    path: str

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def by_id(self) -> dict[str, Entry]:
        return {e.id: e for e in self.entries}


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _words(phrase: str) -> list[str]:
    return re.findall(r"\w+", phrase.casefold())


def _context(ctx: dict[str, Any] | None) -> Context | None:
    if not ctx:
        return None
    return Context(
        require_any=frozenset(w.casefold() for w in ctx.get("require_any", [])),
        forbid_any=frozenset(w.casefold() for w in ctx.get("forbid_any", [])),
        window=int(ctx.get("window", 6)),
    )


def _entry(raw: dict[str, Any]) -> Entry:
    context = _context(raw.get("context"))
    return Entry(
        id=raw["id"],
        forms=tuple(raw["forms"]),
        replacement=raw["replacement"],
        technique=raw["technique"],
        category=raw["category"],
        severity=int(raw["severity"]),
        action=raw.get("action", "protect" if raw["category"] == "safe_context" else "rewrite"),
        replacements={fold_form(k): v for k, v in raw.get("replacements", {}).items()},
        patterns=tuple(raw.get("patterns", ())),
        context=context,
        rewrite_when=_context(raw.get("rewrite_when")),
        positive=tuple(raw["examples"]["positive"]),
        negative=tuple(raw["examples"].get("negative", ())),
        source=tuple(raw["source"]),
    )


def validate(document: Any) -> list[str]:
    """Every problem with a parsed database document; an empty list means it is valid."""
    validator = jsonschema.Draft202012Validator(_schema())
    problems = [
        f"{'/'.join(str(p) for p in err.absolute_path) or '(top level)'}: {err.message}"
        for err in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    ]
    if problems:
        return problems

    ids: set[str] = set()
    rewrite_forms: dict[str, str] = {}
    sources = set(document.get("sources", {}))
    for raw in document["entries"]:
        eid = raw["id"]
        if eid in ids:
            problems.append(f"{eid}: duplicate id")
        ids.add(eid)
        for key in raw["source"]:
            if sources and key not in sources:
                problems.append(f"{eid}: source {key!r} is not in the sources list")
        if not raw["forms"] and not raw.get("patterns"):
            problems.append(f"{eid}: needs at least one form or pattern")
        for form in raw["forms"]:
            folded = fold_form(form)
            if not folded:
                problems.append(f"{eid}: form {form!r} is empty after canonicalisation")
                continue
            if raw.get("action", "rewrite") == "rewrite" and raw["category"] != "safe_context":
                other = rewrite_forms.get(folded)
                if other and other != eid:
                    problems.append(f"{eid}: form {form!r} is also a form of {other}")
                rewrite_forms.setdefault(folded, eid)
        for pattern in raw.get("patterns", []):
            try:
                check_pattern(pattern)
            except UnsafePatternError as exc:
                problems.append(f"{eid}: pattern {pattern!r} {exc}")

    # Idempotence: a replacement must not contain a rewrite form as a whole-word sequence.
    for raw in document["entries"]:
        outputs = [raw["replacement"], *raw.get("replacements", {}).values()]
        for output in outputs:
            words = _words(output)
            for n in range(1, len(words) + 1):
                for i in range(len(words) - n + 1):
                    phrase = " ".join(words[i : i + n])
                    owner = rewrite_forms.get(phrase)
                    if owner:
                        problems.append(
                            f"{raw['id']}: replacement {output!r} contains {phrase!r}, a form of {owner}; "
                            "normalizing twice would change it again"
                        )
    return problems


def load_database(path: Path | str | None = None, raw: bytes | None = None) -> PatternDatabase:
    """Load and validate a database file (or `raw`, its bytes already read); raise PatternDatabaseError listing
    every problem."""
    path = Path(path) if path else DEFAULT_PATTERN_DB
    try:
        raw_bytes = path.read_bytes() if raw is None else raw
    except OSError as exc:
        raise PatternDatabaseError(path, [f"cannot read the file: {exc.strerror or exc}"]) from exc
    try:
        document = json.loads(raw_bytes.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PatternDatabaseError(path, [f"not UTF-8 at byte {exc.start}"]) from exc
    except json.JSONDecodeError as exc:
        raise PatternDatabaseError(path, [f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]) from exc
    problems = validate(document)
    if problems:
        raise PatternDatabaseError(path, problems)
    return PatternDatabase(
        version=document["version"],
        date=document["date"],
        entries=tuple(_entry(raw) for raw in document["entries"]),
        sha256=hashlib.sha256(raw_bytes).hexdigest(),
        path=str(path),
    )
