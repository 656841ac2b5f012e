"""The experiment runner: tidy results, skipped techniques, saved runs recomputable from disk."""

from __future__ import annotations

import json

import pytest

from core.errors import TechniqueUnavailable
from core.evaluation.experiment import load_run, recompute_metrics, run_experiment, save_run
from core.evaluation.splits import make_split
from core.recommenders import _REGISTRY, get_technique
from core.recommenders.baselines import PopularRecommender


class _NeverAvailable(PopularRecommender):
    """Test-only technique that is never available."""

    name = "test-unavailable"
    label = "Unavailable"

    def fit(self, ctx):
        raise TechniqueUnavailable("test-unavailable needs --encoder clip:SOMETHING")


@pytest.fixture(scope="module")
def result(taste):
    get_technique("random")  # load the built-in techniques first
    _REGISTRY[_NeverAvailable.name] = _NeverAvailable  # registered for this module only
    try:
        return run_experiment(taste, "random", ["random", "popular", "itemknn", "als",
                                                "test-unavailable"], ks=[5, 10], seed=1,
                              options={"threads": 1})
    finally:
        del _REGISTRY[_NeverAvailable.name]


def test_tidy_metrics_for_every_technique(result):
    m = result.metrics
    assert list(m.columns) == ["technique", "encoder", "metric", "k", "value", "n_users"]
    assert list(dict.fromkeys(m["technique"])) == ["random", "popular", "itemknn", "als"]
    assert len(m) == 4 * 8 * 2
    assert (m["n_users"] == result.meta["n_users"]).all()
    ndcg = m[(m.metric == "ndcg") & (m.k == 10)].set_index("technique")["value"]
    assert ndcg["itemknn"] > ndcg["popular"] > ndcg["random"]
    assert ndcg["als"] > ndcg["popular"]


def test_skipped_technique_is_listed_with_its_reason(result):
    assert result.skipped.to_dict(orient="records") == [
        {"technique": "test-unavailable",
         "reason": "test-unavailable needs --encoder clip:SOMETHING"}]


def test_params_timings_cold_users_and_frames(result, taste):
    assert set(result.timings) == {"random", "popular", "itemknn", "als"}
    assert result.params["als"]["factors"] in (50, 100, 200)  # picked on validation
    assert "tuning" in result.params["als"]
    # cold users = evaluated users without a train interaction, counted independently here
    split = make_split(taste, "random", 1)
    train_users = set(taste.user_ids[split.train["user"].unique()])
    expected_cold = sum(u not in train_users for u in result.truth["user_id"].unique())
    assert result.cold_users == {t: expected_cold for t in result.timings}
    users = result.truth["user_id"].nunique()
    assert users == result.meta["n_users"]
    recs = result.recs[result.recs.technique == "popular"]
    assert recs["rank"].min() == 1 and recs["rank"].max() == 10
    assert recs.groupby("user_id").size().eq(10).all()
    pu = result.per_user
    assert set(pu["metric"]) == {"map", "ndcg", "recall", "precision", "hit_rate", "mrr",
                                 "novelty"}
    mean = pu[(pu.technique == "als") & (pu.metric == "ndcg") & (pu.k == 10)]["value"].mean()
    m = result.metrics
    assert mean == pytest.approx(
        m[(m.technique == "als") & (m.metric == "ndcg") & (m.k == 10)]["value"].item())


def test_saved_run_recomputes_every_metric(result, tmp_path):
    save_run(result, tmp_path / "run")
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == ["items.parquet", "metrics.parquet", "recs.parquet", "run.json",
                     "truth.parquet"]
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["split"]["kind"] == "random" and meta["seed"] == 1 and meta["ks"] == [5, 10]
    assert "implicit" in meta["versions"] and meta["timings"] == result.timings
    assert set(meta["timings"]["als"]) == {"fit_s", "eval_s"}
    run = load_run(tmp_path / "run")
    again = recompute_metrics(run["recs"], run["truth"], meta["ks"], meta["n_items"],
                              run["items"], meta["n_train_users"])
    a = result.metrics.set_index(["technique", "metric", "k"])["value"].sort_index()
    b = again.set_index(["technique", "metric", "k"])["value"].sort_index()
    assert list(a.index) == list(b.index)
    assert (a - b).abs().max() < 1e-9


def test_rows_are_keyed_by_label(taste):
    from core.recommenders.spec import TechniqueSpec

    rows = [TechniqueSpec("als", {"factors": 8}), TechniqueSpec("als", {"factors": 16}, "small"),
            "popular"]
    res = run_experiment(taste, "random", rows, ks=[5], seed=1, tune=False)
    labels = ["als:factors=8", "small", "popular"]
    assert list(dict.fromkeys(res.metrics["technique"])) == labels
    assert list(res.timings) == list(res.params) == list(res.models) == labels
    assert res.meta["techniques"] == labels
    assert res.meta["rows"] == {"als:factors=8": {"technique": "als", "params": {"factors": 8}},
                                "small": {"technique": "als", "params": {"factors": 16}},
                                "popular": {"technique": "popular", "params": {}}}
    assert res.meta["labels"] == {"als:factors=8": "ALS (factors=8)",
                                  "small": "ALS (factors=16)", "popular": "Popular"}
    assert res.params["small"]["factors"] == 16


def test_unknown_technique_fails_before_any_work(taste):
    with pytest.raises(TechniqueUnavailable, match="unknown technique 'alss'"):
        run_experiment(taste, "random", ["alss"])
