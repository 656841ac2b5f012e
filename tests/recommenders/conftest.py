"""Fixtures of the shared technique contract test (data and contexts live in ``toy_data.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from toy_data import make_toy_dataset

from core.data.dataset import Dataset


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory) -> Dataset:
    return make_toy_dataset(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="session")
def toy_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("toy-cache")
