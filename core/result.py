"""The moderation result: the one description of what the moderator answers for a text.

The moderator builds it (`moderator.py`), the API states it as its response schema (`main.py` uses these types
as its response models), the prediction log stores it (`monitoring/prediction_log.py`) and the metrics count
it (`monitoring/metrics.py`). A TypedDict, so a result is a plain dict at run time (rendered straight to JSON)
and one type everywhere else. The label and score fields come from `core.labels.LABELS`, never retyped.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from typing_extensions import TypedDict  # pydantic needs it (not typing's) on Python < 3.12

from core.categories import CATEGORIES
from core.labels import LABELS

Label = Literal[LABELS]  # type: ignore[valid-type]  # the label names, from LABELS

# {label: probability} for every label of LABELS (a functional TypedDict: the keys come from LABELS).
Scores = TypedDict("Scores", {label: float for label in LABELS})  # type: ignore[misc]

Category = Literal[CATEGORIES]  # type: ignore[valid-type]  # the harm categories, from core.categories
# {category: probability} for every category of CATEGORIES (independent probabilities: they need not sum to 1).
CategoryScores = TypedDict("CategoryScores", {category: float for category in CATEGORIES})  # type: ignore[misc]
Evidence = Literal["classifier", "stage1"]


class Match(TypedDict):
    """One normalizer match, as `normalizer.matcher.Match.as_dict()` renders it."""

    start: Annotated[int, Field(description="start of the span in original_text")]
    end: int
    norm_start: Annotated[int, Field(description="start of the span in normalized_text")]
    norm_end: int
    original: str
    replacement: Annotated[str, Field(description="what normalized_text holds at the span")]
    meaning: Annotated[str, Field(description="the plain meaning of the coded form")]
    entry_id: str
    rule: Annotated[str, Field(description="pattern, decode or safe_context")]
    techniques: list[str]
    category: str
    severity: int
    action: Annotated[str, Field(description="rewrite, annotate (reported, not rewritten) or protect (safe context)")]


class ModelInfo(TypedDict):
    backend: str
    version: str


class ModerationResult(TypedDict):
    request_id: str
    original_text: str
    normalized_text: str
    algospeak_detected: bool
    classification: Annotated[Label, Field(description="the decision: the more severe of the two readings")]
    scores: Annotated[Scores, Field(description="the probabilities of the reading that decided")]
    confidence: Annotated[
        float, Field(description="P(safe) for safe, else P(this label or worse), under `scores`")
    ]
    normalized_classification: Annotated[Label, Field(description="label of the normalized text")]
    raw_classification: Annotated[
        Label | None, Field(description="label of the original text, when the normalizer changed it")
    ]
    raw_scores: Annotated[Scores | None, Field(description="scores of the original text, when it was classified")]
    evasion_gap: Annotated[int, Field(description="severity of the normalized reading minus that of the original")]
    matches: Annotated[list[Match], Field(description="the first MAX_MATCHES_PER_TEXT matches")]
    matches_omitted: Annotated[int, Field(description="matches beyond MAX_MATCHES_PER_TEXT, not listed")]
    stage1_status: Annotated[
        Literal["ok", "degraded", "error"],
        Field(description="degraded: the decoding budget ran out; error: the normalizer failed"),
    ]
    stage2_status: Annotated[str, Field(description='"ok", or "fallback:<backend>" when the fallback answered')]
    mock_mode: Annotated[bool, Field(description="Stage 2 is an offline model, not the tuned LLM")]
    categories: Annotated[
        CategoryScores | None,
        Field(description="probability of each harm category (the more of the two readings), from the classifier's "
                          "category heads; null when the backend has none (README, Harm categories)"),
    ]
    flagged_categories: Annotated[
        list[Category],
        Field(description="the kinds of harm found, for routing: empty when the classification is safe; else each "
                          "category whose probability reaches its threshold, and each category of a Stage 1 match"),
    ]
    category_evidence: Annotated[
        dict[Category, list[Evidence]],
        Field(description="for each flagged category, what found it: the classifier, Stage 1's decoded terms, or both"),
    ]
    model: ModelInfo
    pattern_db_version: str
    latency_ms: float


def rounded_categories(probabilities: dict[str, float]) -> CategoryScores:
    """Category probabilities as a result carries them: in CATEGORIES order, six decimals."""
    return {category: round(probabilities[category], 6) for category in CATEGORIES}  # type: ignore[return-value]


def rounded(scores: dict[str, float]) -> Scores:
    """Scores as a result carries them: in LABELS order, six decimals."""
    return {label: round(scores[label], 6) for label in LABELS}  # type: ignore[return-value]
