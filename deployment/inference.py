"""The SageMaker container's entry point: the Hugging Face PyTorch inference toolkit calls `model_fn`,
`input_fn`, `predict_fn` and `output_fn` of `code/inference.py`, which is this file in the model archive.

Everything model-specific (artifact layouts, the prompt, one-pass scoring, batching, dtype checks, the JSON
contract) is the inference core, `core/llm_inference.py`, which the in-process `transformers` backend and
`deployment/local_server.py` use too. `deployment/model_deployment.py` packages this file as `code/inference.py`
and the core beside it (`code/core/...`, CODE_FILES): the container puts `code/` on sys.path, so the imports
below resolve in the archive's layout as they do in this repository.
"""

from __future__ import annotations

import json
import os
from typing import Any

from core.llm_inference import JSON, BadRequest, LabelScorer, parse_request, render_response


def model_fn(model_dir: str, context: Any = None) -> LabelScorer:
    """Load the model once per worker. Environment: INFERENCE_BASE_MODEL, INFERENCE_DTYPE, INFERENCE_BATCH_SIZE,
    INFERENCE_MODEL_VERSION (the version to report).
    Refuses (ClassifierError) an artifact trained with another transformers major than the container's."""
    scorer = LabelScorer.from_dir(model_dir, base_model=os.environ.get("INFERENCE_BASE_MODEL") or None,
                                  dtype=os.environ.get("INFERENCE_DTYPE") or None,
                                  batch_size=int(os.environ.get("INFERENCE_BATCH_SIZE", "16")))
    if os.environ.get("INFERENCE_MODEL_VERSION"):  # the gated artifact's version (deploy sets it), not the
        scorer.version = os.environ["INFERENCE_MODEL_VERSION"][:64]  # merged copy's own content hash
    return scorer


def input_fn(input_data: bytes | str, content_type: str, context: Any = None) -> list[str]:
    return parse_request(input_data, content_type)


def predict_fn(data: list[str], model: LabelScorer, context: Any = None) -> dict[str, Any]:
    return render_response(model.score(data), model.version)


def output_fn(prediction: dict[str, Any], accept: str | None, context: Any = None) -> bytes:
    if accept and accept not in ("*/*", JSON) and not accept.startswith(JSON):
        raise BadRequest(f"accept {accept!r} is not supported; ask for {JSON}")
    return json.dumps(prediction).encode("utf-8")
