"""``FitContext``: its memo (what techniques of one run share) and when it tunes."""

from __future__ import annotations

import numpy as np
import pytest
from toy_data import make_toy_dataset

from core.errors import LabError
from core.recommenders import FitContext


@pytest.fixture()
def ctx(tmp_path) -> FitContext:
    ds = make_toy_dataset(tmp_path)
    return FitContext(dataset=ds, train=ds.interactions, train_csr=ds.csr())


def test_memoize_builds_once_per_key(ctx):
    calls = []

    def build(tag):
        calls.append(tag)
        return np.arange(3) + len(calls)

    first = ctx.memoize(("vecs", "a"), lambda: build("a"))
    assert ctx.memoize(("vecs", "a"), lambda: build("a")) is first
    other = ctx.memoize(("vecs", "b"), lambda: build("b"))
    assert calls == ["a", "b"] and other is not first
    assert set(ctx.memo) == {("vecs", "a"), ("vecs", "b")}
    assert "memo" not in repr(ctx)


def test_the_memo_is_emptied_when_the_context_is_re_pointed(ctx):
    ctx.memoize("train_rows", lambda: len(ctx.train))
    ctx.train = ctx.train.iloc[1:]
    ctx.train_csr = ctx.dataset.csr(ctx.train)
    assert "train_rows" not in ctx.memo
    assert ctx.memoize("train_rows", lambda: len(ctx.train)) == len(ctx.dataset.interactions) - 1


def test_each_context_owns_its_memo(ctx):
    twin = FitContext(dataset=ctx.dataset, train=ctx.train, train_csr=ctx.train_csr)
    ctx.memoize("k", lambda: 1)
    assert twin.memoize("k", lambda: 2) == 2


def test_tuning_needs_validation_rows_and_a_validator(ctx):
    assert ctx.tuning() is None  # no validation rows
    valid = ctx.train.iloc[:5]
    ctx.valid = valid
    with pytest.raises(LabError, match="no validator"):
        ctx.tuning()
    ctx.validator = validator = object()
    assert ctx.tuning() is validator
    ctx.options["tune"] = False
    assert ctx.tuning() is None
    ctx.options["tune"] = True
    ctx.valid = valid.iloc[:0]
    assert ctx.tuning() is None
