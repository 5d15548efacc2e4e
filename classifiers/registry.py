"""The classifier backends' factories. Adding a backend: its name in core.settings.BACKEND_NAMES, its factory here.

- `embedded`: the n-gram model shipped in models/embedded/ (offline; responses say mock_mode=true).
- `encoder`: the slower offline tier in models/encoder/ (n-grams and an all-MiniLM-L6-v2 sentence vector; the
  encoder extra; mock_mode=true too).
- `sagemaker`: the tuned model behind a SageMaker endpoint (`classifiers/sagemaker.py`: timeouts, retries,
  circuit breaker, validated answers).
- `transformers`: the tuned model in this process (`classifiers/transformers.py`, over the same inference core
  as the endpoint, `core/llm_inference.py`).

Heavy stacks (boto3, torch) load only when their backend is chosen; a missing extra is a ClassifierError that
names the install command.
"""

from __future__ import annotations

from collections.abc import Callable

from classifiers.base import Classifier, ClassifierError
from core.settings import BACKEND_NAMES, OFFLINE_BACKENDS, Settings


def _embedded(settings: Settings) -> Classifier:
    from classifiers.embedded import EmbeddedClassifier

    return EmbeddedClassifier(settings.embedded_model_path, prior=settings.prior)


def _encoder(settings: Settings) -> Classifier:
    from classifiers.embedded import EncoderTierClassifier

    return EncoderTierClassifier(settings.encoder_model_path, prior=settings.prior)


def _sagemaker(settings: Settings) -> Classifier:
    from classifiers.sagemaker import SagemakerClassifier

    return SagemakerClassifier.from_settings(settings)


def _transformers(settings: Settings) -> Classifier:
    from classifiers.transformers import TransformersClassifier

    if settings.transformers_model_path is None:
        raise ClassifierError("the transformers backend needs TRANSFORMERS_MODEL_PATH (a model or adapter directory)")
    return TransformersClassifier(settings.transformers_model_path, base_model=settings.transformers_base_model,
                                  device=settings.transformers_device, dtype=settings.transformers_dtype,
                                  batch_size=settings.transformers_batch_size)


_FACTORIES: dict[str, Callable[[Settings], Classifier]] = {
    "embedded": _embedded,
    "encoder": _encoder,
    "sagemaker": _sagemaker,
    "transformers": _transformers,
}
# One factory per name of core.settings.BACKEND_NAMES, in that order (the names are listed there, once).
BACKENDS = {name: _FACTORIES[name] for name in BACKEND_NAMES}
assert set(_FACTORIES) == set(BACKENDS), "a factory without a name in core.settings.BACKEND_NAMES"
__all__ = ["BACKENDS", "OFFLINE_BACKENDS", "create_classifier"]


def create_classifier(settings: Settings, backend: str | None = None) -> Classifier:
    name = backend or settings.resolved_backend
    factory = BACKENDS.get(name)
    if factory is None:
        raise ClassifierError(
            f"classifier backend {name!r} is not available in this build (available: {', '.join(BACKENDS)})"
        )
    return factory(settings)
