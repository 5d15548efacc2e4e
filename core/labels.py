"""The label set, shared by the classifiers, training, evaluation and serving.

Labels are ordinal: a higher index is more severe. Everything that compares severity
(the moderator's "more severe of raw and normalized", the ordinal metrics) uses the index.
"""

from __future__ import annotations

LABELS: tuple[str, ...] = ("safe", "potentially_harmful", "harmful", "extremely_harmful")
SEVERITY: dict[str, int] = {label: i for i, label in enumerate(LABELS)}

# Pattern-database categories (the normalizer's `category` field).
CATEGORIES: tuple[str, ...] = (
    "self_harm",
    "violence",
    "sexual",
    "drugs",
    "hate",
    "harassment",
    "profanity",
    "extremism",
    "weapons",
    "scam",
    "misinformation",
    "safe_context",
)

# Pattern-database techniques: how a form hides the plain word.
TECHNIQUES: tuple[str, ...] = (
    "euphemism",
    "phonetic_respelling",
    "leetspeak",
    "character_insertion",
    "spacing",
    "misspelling",
    "homoglyph",
    "emoji",
    "abbreviation",
    "repetition",
    "masking",
    "code_number",
    "unicode_style",
    "safe_context",
)


def more_severe(a: str, b: str) -> str:
    """The more severe of two labels."""
    return a if SEVERITY[a] >= SEVERITY[b] else b
