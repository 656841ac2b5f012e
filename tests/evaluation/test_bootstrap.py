"""Paired bootstrap CIs over users: sanity on synthetic per-user values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import LabError
from core.evaluation.bootstrap import CI_COLUMNS, bootstrap_ci, format_ci, paired_bootstrap


def _per_user(values: dict[str, np.ndarray], metric: str = "ndcg", k: int = 10) -> pd.DataFrame:
    parts = []
    for tech, v in values.items():
        parts.append(pd.DataFrame({"technique": tech, "user_id": [f"u{i}" for i in range(len(v))],
                                   "metric": metric, "k": k, "value": v}))
    return pd.concat(parts, ignore_index=True)


def test_identical_techniques_give_a_tiny_interval_around_zero():
    rng = np.random.default_rng(0)
    base = rng.random(500)
    ci = paired_bootstrap(_per_user({"als": base, "same": base.copy()}), "als", seed=1)
    row = ci.iloc[0]
    assert list(ci.columns) == CI_COLUMNS
    assert row["technique"] == "same" and row["delta"] == 0.0
    assert row["ci_low"] <= 0.0 <= row["ci_high"] and row["ci_high"] - row["ci_low"] < 1e-12


def test_a_clearly_better_technique_excludes_zero_and_noise_does_not():
    rng = np.random.default_rng(0)
    base = rng.random(400)
    better = base + 0.05 + 0.01 * rng.standard_normal(400)
    noisy = base + 0.2 * rng.standard_normal(400)
    noisy -= noisy.mean() - base.mean()  # same mean as the baseline
    ci = paired_bootstrap(_per_user({"als": base, "better": better, "noisy": noisy}), "als")
    b = ci.set_index("technique")
    assert b.loc["better", "ci_low"] > 0.04 and b.loc["better", "ci_high"] < 0.06
    assert b.loc["noisy", "ci_low"] < 0 < b.loc["noisy", "ci_high"]
    assert b.loc["better", "ci_low"] <= b.loc["better", "delta"] <= b.loc["better", "ci_high"]


def test_interval_matches_the_normal_approximation():
    rng = np.random.default_rng(3)
    d = rng.standard_normal(2000)
    mean, low, high = bootstrap_ci(d, n_resamples=2000, seed=5)
    se = d.std() / np.sqrt(len(d))
    assert abs((high - low) - 2 * 1.96 * se) < 0.15 * (2 * 1.96 * se)
    assert low < mean < high


def test_same_seed_same_interval_and_seed_matters():
    rng = np.random.default_rng(0)
    frame = _per_user({"als": rng.random(300), "t": rng.random(300)})
    a = paired_bootstrap(frame, "als", seed=7)
    pd.testing.assert_frame_equal(a, paired_bootstrap(frame, "als", seed=7))
    assert not a.equals(paired_bootstrap(frame, "als", seed=8))


def test_users_missing_for_one_technique_are_left_out():
    frame = _per_user({"als": np.array([0.0, 0.0, 0.0, 1.0]), "t": np.array([1.0, 1.0, 1.0])})
    row = paired_bootstrap(frame, "als").iloc[0]
    assert row["n_users"] == 3 and row["delta"] == 1.0 and row["ci_low"] == 1.0


def test_every_metric_and_k_is_covered():
    rng = np.random.default_rng(0)
    frame = pd.concat([_per_user({"als": rng.random(50), "t": rng.random(50)}, m, k)
                       for m in ("map", "ndcg") for k in (10, 20)])
    ci = paired_bootstrap(frame, "als")
    assert sorted(zip(ci["metric"], ci["k"])) == [("map", 10), ("map", 20), ("ndcg", 10),
                                                  ("ndcg", 20)]


def test_missing_baseline_is_a_clear_error():
    with pytest.raises(LabError, match="--baseline bpr"):
        paired_bootstrap(_per_user({"als": np.ones(3)}), "bpr")


def test_format_ci():
    assert format_ci({"delta": 0.0123, "ci_low": -0.001, "ci_high": 0.02}) == (
        "+0.0123 [-0.0010, +0.0200]")


def test_format_ci_marks_intervals_that_exclude_zero():
    assert format_ci({"delta": 0.0123, "ci_low": 0.005, "ci_high": 0.019}) == (
        "+0.0123 [+0.0050, +0.0190] *")
    assert format_ci({"delta": -0.41, "ci_low": -0.43, "ci_high": -0.39}).endswith(" *")
    # exactly zero everywhere (identical rankings): the interval includes 0, no mark
    assert format_ci({"delta": 0.0, "ci_low": 0.0, "ci_high": 0.0}) == (
        "+0.0000 [+0.0000, +0.0000]")


def test_format_ci_shows_small_differences_with_significant_digits():
    # at 4 decimals this would read +0.0000 [+0.0000, +0.0001], hiding that it excludes 0
    assert format_ci({"delta": 0.00004, "ci_low": 0.000012, "ci_high": 0.00009}) == (
        "+0.000040 [+0.000012, +0.000090] *")
    assert format_ci({"delta": 3e-6, "ci_low": -1e-6, "ci_high": 8e-6}) == (
        "+0.0000030 [-0.0000010, +0.0000080]")
    assert format_ci({"delta": float("nan"), "ci_low": float("nan"),
                      "ci_high": float("nan")}) == "n/a [n/a, n/a]"
