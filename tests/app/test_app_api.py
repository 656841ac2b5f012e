"""The app facade on hand-made results: tables, user lists, explanations, stored-run reuse."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core import app_api as api


def _cmp() -> api.Comparison:
    users = ["u1", "u2", "u3", "u4"]
    ndcg = {"als": [1.0, 0.5, 0.0, 0.5], "pop": [0.0, 0.5, 0.0, 0.25]}
    per_user = pd.DataFrame([
        {"technique": t, "user_id": u, "metric": "ndcg", "k": 10, "value": v}
        for t, vals in ndcg.items() for u, v in zip(users, vals)
    ])
    metrics = pd.DataFrame([
        {"technique": t, "encoder": "", "metric": "ndcg", "k": 10, "value": float(np.mean(v)),
         "n_users": 4} for t, v in ndcg.items()
    ] + [{"technique": "als", "encoder": "", "metric": "map", "k": 10, "value": 0.3,
          "n_users": 4}])
    truth = pd.DataFrame({"user_id": ["u1", "u2", "u3", "u3", "u4"],
                          "item_id": ["a", "b", "c", "d", "e"]})
    return api.Comparison(techniques=["pop", "als", "missing"], metrics=metrics,
                          per_user=per_user, recs=pd.DataFrame(), truth=truth)


def test_metric_table_rows_follow_request_order_and_skip_absent_techniques():
    table = api.metric_table(_cmp(), ["ndcg", "map"], [10])
    assert list(table.index) == ["pop", "als"]
    assert list(table.columns) == ["nDCG@10", "MAP@10", "users"]
    assert table.loc["als", "nDCG@10"] == 0.5 and table.loc["pop", "nDCG@10"] == 0.1875
    assert pd.isna(table.loc["pop", "MAP@10"])


def test_paired_ci_difference_and_interval():
    ci = api.paired_ci(_cmp(), "pop", "ndcg", 10, seed=0).set_index("technique")
    assert list(ci.index) == ["als"]
    assert ci.at["als", "diff"] == 0.3125  # mean of (1, 0, 0, 0.25)
    assert 0 <= ci.at["als", "low"] <= 0.3125 <= ci.at["als", "high"] <= 1.0
    assert ci.at["als", "n_users"] == 4
    assert api.paired_ci(_cmp(), "nobody", "ndcg", 10).empty


def test_worst_users_and_beats_orderings():
    worst = api.worst_users(_cmp(), "als", "ndcg", 10, n=2)
    # u3 has 0 and two held-out items; then 0.5 with ties broken by held-out count, then id
    assert worst["user_id"].tolist() == ["u3", "u2"] and worst["held_out"].tolist() == [2, 1]
    beats = api.beats(_cmp(), "als", "pop", "ndcg", 10, n=4)
    assert beats["user_id"].tolist() == ["u1", "u4", "u2", "u3"]
    assert beats["value"].tolist() == [1.0, 0.25, 0.0, 0.0]


def test_closest_history_item_explains_a_recommendation():
    vecs = np.array([[1, 0], [0, 1], [0.8, 0.6], [0.6, 0.8]], dtype=np.float32)
    best, sims = api.closest_history(vecs, np.array([2, 3]), np.array([0, 1]))
    assert best.tolist() == [0, 1]
    np.testing.assert_allclose(sims, [0.8, 0.8], rtol=1e-6)


def test_collaborative_runs_do_not_depend_on_encoders():
    data = api.LabData(ds=None, spec="demo", key="k", cover=np.array([]), category=np.array([]))
    a = api.run_keys(data, "random", 1, ["als", "image"], {"image": "cnn:a"}, {})
    b = api.run_keys(data, "random", 1, ["als", "image"], {"image": "cnn:b"}, {})
    assert a["als"] == b["als"] and a["image"] != b["image"]


def test_encoder_roles():
    assert [api.encoder_role(s) for s in ("clip:ViT-B-32/openai", "cnn:vgg16", "text:minilm",
                                          "bert:bert-base-uncased")] == [
        "clip", "image", "text", "text"]


def test_progress_adapter_accepts_both_engine_styles():
    seen = []
    progress = api._progress_adapter(lambda m, f: seen.append((m, f)))
    progress("als: fitting")
    progress(50, 200, "photos")
    assert seen == [("als: fitting", None), ("photos: 50/200", 0.25)]
