"""The harm categories: what kind of harm a text carries, beside how severe it is (core.labels).

The 4-level severity stays the primary decision; a category says where a flagged text should go (self-harm to
support resources, threats to an urgent queue, sexual content involving minors to a legal process). Categories
are independent (a text can be hateful and threatening), so each has its own probability and threshold.

`EXTERNAL` maps each category to the nearest ones of three services teams compare us with; `STAGE1` maps the
pattern database's categories (normalizer) to ours, so a decoded term is evidence for a category.
"""

from __future__ import annotations

CATEGORIES: tuple[str, ...] = (
    "hate",
    "harassment",
    "violence",
    "self_harm",
    "sexual",
    "sexual_minors",
    "drugs",
    "profanity",
)

DESCRIPTIONS: dict[str, str] = {
    "hate": "demeaning, dehumanising or excluding people for a protected attribute (race, religion, gender, "
    "sexuality, disability, origin), slurs used against people, extremist hate symbols",
    "harassment": "insults, personal attacks and bullying aimed at a person, without a protected attribute",
    "violence": "threats, wishes of harm, calls for violence, glorified or graphic violence, weapons used to harm",
    "self_harm": "suicide or self-harm intent, instructions, or urging someone to harm themselves",
    "sexual": "explicit sexual content and sexual solicitation (not sex education)",
    "sexual_minors": "sexual content involving anyone under 18",
    "drugs": "buying, selling or using illegal drugs",
    "profanity": "obscene or vulgar language, whether or not it is aimed at anyone",
}

# The nearest categories of OpenAI's moderation endpoint (omni-moderation), Azure AI Content Safety and Llama
# Guard 3 (MLCommons hazard taxonomy). Approximate: the services draw their boundaries differently.
EXTERNAL: dict[str, dict[str, tuple[str, ...]]] = {
    "hate": {"openai": ("hate", "hate/threatening"), "azure": ("Hate",), "llama_guard": ("S10 Hate",)},
    "harassment": {"openai": ("harassment", "harassment/threatening"), "azure": ("Hate",),
                   "llama_guard": ("S10 Hate",)},
    "violence": {"openai": ("violence", "violence/graphic", "harassment/threatening", "hate/threatening"),
                 "azure": ("Violence",), "llama_guard": ("S1 Violent Crimes", "S9 Indiscriminate Weapons")},
    "self_harm": {"openai": ("self-harm", "self-harm/intent", "self-harm/instructions"), "azure": ("SelfHarm",),
                  "llama_guard": ("S11 Suicide & Self-Harm",)},
    "sexual": {"openai": ("sexual",), "azure": ("Sexual",), "llama_guard": ("S12 Sexual Content",)},
    "sexual_minors": {"openai": ("sexual/minors",), "azure": ("Sexual",),
                      "llama_guard": ("S4 Child Sexual Exploitation",)},
    "drugs": {"openai": ("illicit", "illicit/violent"), "azure": (), "llama_guard": ("S2 Non-Violent Crimes",)},
    "profanity": {"openai": (), "azure": (), "llama_guard": ()},
}

# Pattern-database category -> ours (None: no harm category: a safe context, a scam, misinformation).
STAGE1: dict[str, str | None] = {
    "hate": "hate",
    "extremism": "hate",
    "harassment": "harassment",
    "violence": "violence",
    "weapons": "violence",
    "self_harm": "self_harm",
    "sexual": "sexual",
    "drugs": "drugs",
    "profanity": "profanity",
    "scam": None,
    "misinformation": None,
    "safe_context": None,
}


# Functional-suite family (data/dataset/functional_suite.json) -> the categories its flagged cases should route to
# (any of them counts). Families without an entry (counter speech, negated hate, identity terms used neutrally)
# expect nothing flagged. Used by the category training's report and by training.model_evaluation.
FUNCTIONAL_FAMILIES: dict[str, tuple[str, ...]] = {
    "threat": ("violence",),
    "self_harm": ("self_harm",),
    "dehumanisation": ("hate",),
    "implicit_derogation": ("hate",),
    "slur": ("hate", "harassment"),
    "profanity": ("harassment", "profanity"),
    "sexual": ("sexual",),
}


def stage1_category(database_category: str | None) -> str | None:
    """Our category for a pattern-database category (None when it names no harm or is unknown)."""
    return STAGE1.get(database_category or "")


def stage1_categories(matches) -> list[str]:
    """The categories Stage 1's matches (normalizer.matcher.Match) are evidence for, in CATEGORIES order: every
    decoded or annotated term; a safe context ("protect") never counts."""
    found = {stage1_category(m.category) for m in matches if m.action != "protect"}
    return [c for c in CATEGORIES if c in found]
