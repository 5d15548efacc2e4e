"""The backend names are listed once (core.settings.BACKEND_NAMES): settings accept exactly those the registry
can build, and an unknown one is refused with the list."""

import typing

import pytest

from classifiers.base import ClassifierError
from classifiers.registry import BACKENDS, create_classifier
from core.settings import BACKEND_NAMES, OFFLINE_BACKENDS, Settings


def test_settings_accept_exactly_the_backends_the_registry_builds():
    accepted = typing.get_args(Settings.model_fields["classifier_backend"].annotation)
    assert set(accepted) - {"auto"} == set(BACKENDS) == set(BACKEND_NAMES)
    assert OFFLINE_BACKENDS < set(BACKEND_NAMES)


def test_an_unknown_backend_is_refused_with_the_list():
    with pytest.raises(ClassifierError, match="'bogus' is not available.*embedded, encoder, sagemaker, transformers"):
        create_classifier(Settings(_env_file=None), "bogus")


def test_the_embedded_backend_is_built_by_name():
    classifier = create_classifier(Settings(_env_file=None), "embedded")
    assert classifier.name == "embedded" and classifier.name in OFFLINE_BACKENDS
    [scores] = classifier.classify(["have a nice day"])
    assert max(scores, key=scores.get) == "safe"
