"""The in-process `transformers` backend: the tuned model loaded in this process, scored in one forward pass.

For one-machine set-ups and evaluation; production serves the same core behind SageMaker (`sagemaker` backend).
Everything model-specific (artifact layouts, the prompt, batching, fp16 checks) lives in
`core/llm_inference.py`, which the SageMaker container runs too, so both backends give the same scores.

    CLASSIFIER_BACKEND=transformers TRANSFORMERS_MODEL_PATH=out/training/model uv run python moderator.py "..."
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from classifiers.base import AnswerCategories, ClassifierError, LabelScores


class TransformersClassifier:
    name = "transformers"
    thresholds = None  # the tuned LLM carries none yet: settings or 0.5
    categories = AnswerCategories()  # the model answers each category yes or no (core.prompt)

    def __init__(self, model_path: Path | str, *, base_model: str | None = None, device: str = "auto",
                 dtype: str = "auto", batch_size: int = 16):
        try:
            from core.llm_inference import LabelScorer
        except ImportError as exc:  # the base install has no torch
            raise ClassifierError(f"the transformers backend needs the llm extra (uv sync --extra llm): {exc}") from exc
        self.scorer = LabelScorer.from_dir(model_path, base_model=base_model, device=device, dtype=dtype,
                                           batch_size=batch_size)
        self.version = self.scorer.version

    def classify(self, texts: Sequence[str]) -> list[LabelScores]:
        return self.classify_with_categories(texts)[0]

    def classify_with_categories(self, texts: Sequence[str]) -> tuple[list[LabelScores], list[dict[str, float]]]:
        """Severity scores and the category field's probabilities, from the same forward pass."""
        try:
            predictions = self.scorer.score(list(texts))
            return [p.scores for p in predictions], [p.categories for p in predictions]
        except ClassifierError:
            raise
        except RuntimeError as exc:  # e.g. CUDA out of memory: a failure the fallback policy handles
            raise ClassifierError(f"transformers backend failed: {exc}") from exc
