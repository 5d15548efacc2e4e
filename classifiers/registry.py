"""The one list of classifier backends. Adding a backend is one line here.

`sagemaker` and `transformers` arrive with the serving issue; until then, choosing them is refused at start-up
with a clear message rather than answered by a stand-in.
"""

from __future__ import annotations

from collections.abc import Callable

from classifiers.base import Classifier, ClassifierError
from core.settings import Settings


def _embedded(settings: Settings) -> Classifier:
    from classifiers.embedded import EmbeddedClassifier

    return EmbeddedClassifier(settings.embedded_model_path)


BACKENDS: dict[str, Callable[[Settings], Classifier]] = {
    "embedded": _embedded,
}


def create_classifier(settings: Settings, backend: str | None = None) -> Classifier:
    name = backend or settings.resolved_backend
    factory = BACKENDS.get(name)
    if factory is None:
        raise ClassifierError(
            f"classifier backend {name!r} is not available in this build (available: {', '.join(BACKENDS)})"
        )
    return factory(settings)
