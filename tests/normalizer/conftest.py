from pathlib import Path

import pytest

from core.settings import DEFAULT_PATTERN_DB
from normalizer import Normalizer, load_database

MINI_DB = Path(__file__).resolve().parent.parent / "fixtures" / "mini_patterns.json"


@pytest.fixture(scope="session")
def mini() -> Normalizer:
    return Normalizer(load_database(MINI_DB))


@pytest.fixture(scope="session")
def product_db():
    return load_database(DEFAULT_PATTERN_DB)


@pytest.fixture(scope="session")
def product(product_db) -> Normalizer:
    return Normalizer(product_db)
