"""Fixtures of the store tests (see store_helpers.py)."""

from __future__ import annotations

import pytest
from store_helpers import FakeEncoder, tiny_dataset


@pytest.fixture
def fake():
    return FakeEncoder()


@pytest.fixture
def tiny(tmp_path):
    return tiny_dataset(tmp_path / "data")
