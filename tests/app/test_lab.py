"""The app's engine API (``core.lab``) on stored runs: hand-made results go through the path
production takes (``run_comparison`` computes, stores them in a temp ``runs.duckdb`` and reloads
them) and come back as tables, CIs, user lists and top-k lists; explanations; run keys; and
sessions (threads, processes) asking for the same missing runs at once: computed once, shown to
both."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import core.evaluation.experiment as experiment
from core import lab as api
from core.encoders import runtime
from core.evaluation.experiment import ExperimentResult
from core.progress import ProgressEvent
from core.store.runs import RunLock, RunStore

REPO = Path(__file__).resolve().parents[2]
#: fast techniques (no encoders) whose runs the concurrency tests ask for
TECHNIQUES = ["popular", "itemknn"]


# --- hand-made results, stored and reloaded ---------------------------------------------------
#: per-user nDCG@10 of u1..u4; "bpr" is asked for too and skipped by the (fake) experiment
NDCG = {"als": [1.0, 0.5, 0.0, 0.5], "popular": [0.0, 0.5, 0.0, 0.25]}
USERS = ["u1", "u2", "u3", "u4"]
ASKED = ["popular", "als", "bpr"]
SKIP_REASON = "needs a GPU here"


def _hand_made(ds, split, techniques, ks, *args, **kwargs) -> ExperimentResult:
    """Stands in for ``run_experiment``: the same results whatever the data (raw user ids in
    ``user_id``, as the real one returns them), said to be computed at ``ks``."""
    assert [getattr(t, "label", t) for t in techniques] == ASKED  # names or rows
    per_user = pd.DataFrame([
        {"technique": t, "user_id": u, "metric": "ndcg", "k": 10, "value": v}
        for t, vals in NDCG.items() for u, v in zip(USERS, vals)
    ])
    metrics = pd.DataFrame([
        {"technique": t, "encoder": "", "metric": "ndcg", "k": 10, "value": float(np.mean(v)),
         "n_users": 4} for t, v in NDCG.items()
    ] + [{"technique": "als", "encoder": "", "metric": "map", "k": 10, "value": 0.3,
          "n_users": 4}])
    recs = pd.DataFrame([
        {"technique": t, "user_id": "u1", "rank": r, "item_id": i, "score": 1.0 / r}
        for t in NDCG for r, i in enumerate(["x", "a", "y"] if t == "als" else "abc", start=1)
    ])
    truth = pd.DataFrame({"user_id": ["u1", "u2", "u3", "u3", "u4"],
                          "item_id": ["a", "b", "c", "d", "e"]})
    return ExperimentResult(
        metrics=metrics, per_user=per_user, recs=recs, truth=truth,
        skipped=pd.DataFrame([{"technique": "bpr", "reason": SKIP_REASON}]),
        meta={"ks": list(ks)})


def _data(key: str = "k") -> api.LabData:
    """A ``LabData`` for what needs only its key (the fake experiment ignores the dataset)."""
    return api.LabData(ds=None, spec="hand", key=key, cover=np.array([]), category=np.array([]))


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> api.Comparison:
    """The hand-made results, computed into a temp cache by ``run_comparison``, then reloaded by
    a second call (as a page rerun does)."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(experiment, "run_experiment", _hand_made)
        first = api.run_comparison(_data(), root, "random", 1, ASKED, {}, {"tune": False})
    assert first.computed == ["popular", "als"] and first.skipped == {"bpr": SKIP_REASON}
    again = api.run_comparison(_data(), root, "random", 1, ASKED, {}, {"tune": False},
                               compute=False)
    assert again.reused == ["popular", "als"] and again.computed == []
    return again


def test_metric_table_rows_follow_request_order_and_skip_absent_techniques(stored):
    table = api.metric_table(stored, ["ndcg", "map"], [10])
    assert stored.available == ["popular", "als"]
    assert list(table.index) == ["popular", "als"]
    assert list(table.columns) == ["nDCG@10", "MAP@10", "users"]
    assert table.loc["als", "nDCG@10"] == 0.5 and table.loc["popular", "nDCG@10"] == 0.1875
    assert pd.isna(table.loc["popular", "MAP@10"])


def test_paired_ci_difference_and_interval(stored):
    ci = api.paired_ci(stored, "popular", "ndcg", 10, seed=0).set_index("technique")
    assert list(ci.index) == ["als"]
    assert ci.at["als", "diff"] == 0.3125  # mean of (1, 0, 0, 0.25)
    assert 0 <= ci.at["als", "low"] <= 0.3125 <= ci.at["als", "high"] <= 1.0
    assert ci.at["als", "n_users"] == 4
    assert api.paired_ci(stored, "nobody", "ndcg", 10).empty


def test_paired_cis_every_k_equals_paired_ci_at_each_k(stored):
    """One set of draws for every k (what the Compare page caches) gives each k's numbers."""
    every = api.paired_cis(stored, "popular", "ndcg", seed=3)
    assert sorted(set(every["k"])) == sorted(set(stored.metrics["k"]))
    for k in (10, 30):
        one = api.paired_ci(stored, "popular", "ndcg", k, seed=3)
        pd.testing.assert_frame_equal(
            every[every["k"] == k].drop(columns="k").reset_index(drop=True), one,
            check_dtype=False)
    # a pair's numbers do not depend on the other techniques compared (shared draws)
    for t in set(every["technique"]):
        pair = api.paired_cis(stored, "popular", "ndcg", seed=3, techniques=[t])
        pd.testing.assert_frame_equal(
            pair, every[every["technique"] == t].reset_index(drop=True), check_dtype=False)


def test_worst_users_and_beats_orderings(stored):
    worst = api.worst_users(stored, "als", "ndcg", 10, n=2)
    # u3 has 0 and two held-out items; then 0.5 with ties broken by held-out count, then id
    assert worst["user_id"].tolist() == ["u3", "u2"] and worst["held_out"].tolist() == [2, 1]
    beats = api.beats(stored, "als", "popular", "ndcg", 10, n=4)
    assert beats["user_id"].tolist() == ["u1", "u4", "u2", "u3"]
    assert beats["value"].tolist() == [1.0, 0.25, 0.0, 0.0]


def test_user_lists_and_top_items_come_from_the_store(stored):
    assert api.user_ids(stored) == USERS
    assert stored.top_item_ids("u1", "als", n=2) == ["x", "a"]
    assert stored.top_item_ids("u2", "als") == []
    assert set(stored.recs_rows(user_id="u1")["technique"]) == {"popular", "als"}
    rows = stored.per_user_rows(metric="ndcg", k=10, user_id="u4")
    assert dict(zip(rows["technique"], rows["value"])) == {"als": 0.5, "popular": 0.25}


def test_closest_history_item_explains_a_recommendation():
    vecs = np.array([[1, 0], [0, 1], [0.8, 0.6], [0.6, 0.8]], dtype=np.float32)
    best, sims = api.closest_history(vecs, np.array([2, 3]), np.array([0, 1]))
    assert best.tolist() == [0, 1]
    np.testing.assert_allclose(sims, [0.8, 0.8], rtol=1e-6)


def test_collaborative_runs_do_not_depend_on_encoders():
    a = api.run_keys(_data(), "random", 1, ["als", "image"], {"image": "cnn:a"}, {})
    b = api.run_keys(_data(), "random", 1, ["als", "image"], {"image": "cnn:b"}, {})
    assert a["als"] == b["als"] and a["image"] != b["image"]


def test_run_keys_change_with_encoder_precision(monkeypatch):
    def key(spec: str) -> dict[str, str]:
        return api.run_keys(_data(), "random", 1, ["als", "image"], {"image": spec}, {})

    monkeypatch.setenv("MMREC_BF16", "0")
    fp32, suffixed = key("cnn:efficientnet-lite0"), key("cnn:efficientnet-lite0+bf16")
    assert fp32["image"] != suffixed["image"] and fp32["als"] == suffixed["als"]
    monkeypatch.setenv("MMREC_BF16", "1")  # the environment asks for the same bf16 run
    assert key("cnn:efficientnet-lite0") == suffixed
    # auto: the key holds the precision measured on this machine (Encoder.id), so the run is
    # the fp32 or the bf16 one
    monkeypatch.setattr(runtime, "_auto_reports", {})
    monkeypatch.setattr(runtime.TorchEncoder, "measure_precision", lambda self, repeats=0: {
        "requested": "auto", "precision": "bf16", "reason": "measured (faked here)"})
    monkeypatch.setenv("MMREC_BF16", "auto")
    assert key("cnn:efficientnet-lite0") == suffixed


def test_run_keys_follow_the_encoder_id_not_the_spec(monkeypatch):
    """A spec whose weights change (a ``file=`` checkpoint replaced) is a new run."""
    from core import encoders

    def key() -> str:
        return api.run_keys(_data(), "random", 1, ["image"], {"image": "cnn:mine"}, {})["image"]

    class Weights:
        id = "cnn:mine/sha256=aaaa+fp32"

    monkeypatch.setitem(encoders._cache, "cnn:mine [fp32]", Weights())
    monkeypatch.setenv("MMREC_BF16", "0")
    before = key()
    monkeypatch.setattr(Weights, "id", "cnn:mine/sha256=bbbb+fp32")
    assert key() != before


def test_encoder_roles():
    assert [api.encoder_role(s) for s in ("clip:ViT-B-32/openai", "cnn:vgg16", "text:minilm",
                                          "bert:bert-base-uncased")] == [
        "clip", "image", "text", "text"]


def _waited(events: list[ProgressEvent]) -> bool:
    return any(e.phase == "wait" and e.technique in TECHNIQUES for e in events)


# --- two sessions, one missing run -----------------------------------------------------------
@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> api.LabData:
    """A small demo-like dataset (the demo generator's Yelp layout: 20 restaurants, 60 users)."""
    from core.data.demo import generate_demo

    folder = generate_demo(tmp_path_factory.mktemp("lab") / "yelp", n_businesses=20, n_users=60,
                           n_photos=10)
    return api.load(f"yelp:{folder}")


def _ask(lab: api.LabData, root: Path,
         events: list[ProgressEvent] | None = None) -> api.Comparison:
    """One session asking for ``TECHNIQUES`` (untuned, seed 5)."""
    def progress(event: ProgressEvent) -> None:
        if events is not None:
            events.append(event)

    return api.run_comparison(lab, root, "random", 5, TECHNIQUES, {}, {"tune": False},
                              progress=progress)


class Experiments:
    """``run_experiment`` wrapped: counts the techniques each call computes, and holds a call
    until ``go`` is set (by the other session starting to wait, or entering a second call), so
    the two sessions overlap for sure; ``fail`` makes the first call raise instead."""

    def __init__(self, fail: bool = False) -> None:
        self.real = experiment.run_experiment
        self.calls: Counter[str] = Counter()
        self.go = threading.Event()
        self.fail = fail

    def __call__(self, ds, split, techniques, *args, **kwargs):
        first = not self.calls
        self.calls.update(getattr(t, "label", t) for t in techniques)  # names or rows
        if not first:
            self.go.set()
        self.go.wait(timeout=60)
        if first and self.fail:
            raise RuntimeError("the first session crashed")
        return self.real(ds, split, techniques, *args, **kwargs)

    def progress_of(self, events: list[ProgressEvent]):
        def progress(event: ProgressEvent) -> None:
            events.append(event)
            if event.phase == "wait":
                self.go.set()
        return progress


def _two_sessions(lab, root, runs: Experiments) -> list[tuple[object, list[str]]]:
    """Run two sessions (threads) at once; per session its Comparison (or exception) and its
    progress events."""
    logs: list[list[ProgressEvent]] = [[], []]

    def session(i: int):
        try:
            return api.run_comparison(lab, root, "random", 5, TECHNIQUES, {}, {"tune": False},
                                      progress=runs.progress_of(logs[i]))
        except Exception as exc:  # noqa: BLE001 - returned to the test
            return exc

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(session, range(2)))
    return list(zip(results, logs))


def test_two_sessions_compute_a_missing_run_once_and_both_show_it(lab, tmp_path, monkeypatch):
    runs = Experiments()
    monkeypatch.setattr(experiment, "run_experiment", runs)
    (a, log_a), (b, log_b) = sorted(_two_sessions(lab, tmp_path, runs),
                                    key=lambda r: -len(r[0].computed))
    assert runs.calls == {t: 1 for t in TECHNIQUES}  # once in total, not once per session
    assert a.computed == TECHNIQUES and a.reused == [] and a.waited == []
    assert b.computed == [] and b.reused == TECHNIQUES and b.waited == TECHNIQUES
    assert _waited(log_b) and not _waited(log_a)
    # the session that computed reports each row's phases, keyed by the row
    ended = {e.technique: e.phase for e in log_a if e.phase in ("done", "skipped")}
    assert ended == {t: "done" for t in TECHNIQUES}
    assert [e.phase for e in log_a if e.technique == "popular" and not e.counted] == [
        "fit", "done"]
    assert b.available == TECHNIQUES
    pd.testing.assert_frame_equal(a.metrics, b.metrics)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    # a third session finds everything stored
    c = _ask(lab, tmp_path)
    assert c.reused == TECHNIQUES and c.computed == [] and c.waited == []
    assert runs.calls == {t: 1 for t in TECHNIQUES}


def test_a_session_waiting_on_one_that_fails_computes_the_run_itself(lab, tmp_path, monkeypatch):
    runs = Experiments(fail=True)
    monkeypatch.setattr(experiment, "run_experiment", runs)
    results = _two_sessions(lab, tmp_path, runs)
    failed = [r for r, _ in results if isinstance(r, Exception)]
    done = [(r, log) for r, log in results if not isinstance(r, Exception)]
    assert [str(e) for e in failed] == ["the first session crashed"]
    (cmp, log), = done
    assert _waited(log)  # it waited, found nothing stored ...
    assert cmp.computed == TECHNIQUES and cmp.waited == []  # ... and computed it
    assert runs.calls == {t: 2 for t in TECHNIQUES}
    assert _ask(lab, tmp_path).reused == TECHNIQUES  # the crash released its locks


HOLD = ("import sys, time; sys.path.insert(0, sys.argv[1]); from core.store.runs import RunLock;"
        " [RunLock(p).acquire() for p in sys.argv[2:]]; print('locked', flush=True); "
        "time.sleep(120)")


def _hold_locks(lab: api.LabData, root: Path) -> subprocess.Popen:
    """Another process holding the compute locks of ``TECHNIQUES``' runs (until killed)."""
    keys = api.run_keys(lab, "random", 5, TECHNIQUES, {}, {"tune": False})
    store = RunStore.in_cache(root)
    paths = [str(store.compute_lock(keys[t]).path) for t in TECHNIQUES]
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(REPO), *paths],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    assert not RunLock(paths[0]).acquire(timeout=0)
    return holder


def test_a_lock_file_left_by_a_killed_session_does_not_block(lab, tmp_path, monkeypatch):
    monkeypatch.setenv("MMREC_RUN_WAIT_TIMEOUT", "5")  # a lock that blocks fails, not hangs
    holder = _hold_locks(lab, tmp_path)
    os.kill(holder.pid, signal.SIGKILL)  # killed mid-compute: its lock files stay behind
    holder.wait()
    assert len(list((tmp_path / "runs.locks").glob("*.lock"))) == len(TECHNIQUES)
    events: list[ProgressEvent] = []
    cmp = _ask(lab, tmp_path, events)
    assert cmp.computed == TECHNIQUES and cmp.waited == []
    assert not _waited(events)


def test_a_session_computes_itself_after_waiting_too_long(lab, tmp_path, monkeypatch):
    monkeypatch.setenv("MMREC_RUN_WAIT_TIMEOUT", "0.5")
    holder = _hold_locks(lab, tmp_path)  # a session that never finishes
    try:
        events: list[ProgressEvent] = []
        cmp = _ask(lab, tmp_path, events)
    finally:
        holder.kill()
        holder.wait()
    assert _waited(events)
    assert cmp.computed == TECHNIQUES and cmp.waited == []


SESSION = textwrap.dedent("""
    import json, os, sys, time
    sys.path.insert(0, {repo!r})
    import core.evaluation.experiment as experiment
    from core import lab as api

    real, log, marker = experiment.run_experiment, {log!r}, {marker!r}

    def counted(ds, split, techniques, *args, **kwargs):
        with open(log, "a") as f:
            f.write(" ".join(getattr(t, "label", t) for t in techniques) + "\\n")
        deadline = time.monotonic() + 60  # hold until the other process waits (or computes)
        while (time.monotonic() < deadline and not os.path.exists(marker)
               and len(open(log).read().splitlines()) < 2):
            time.sleep(0.01)
        return real(ds, split, techniques, *args, **kwargs)

    def progress(event):
        if event.phase == "wait":
            open(marker, "a").close()

    experiment.run_experiment = counted
    lab = api.load({spec!r})
    cmp = api.run_comparison(lab, {root!r}, "random", 5, {techniques!r}, {{}}, {{"tune": False}},
                             progress=progress)
    print(json.dumps({{"computed": cmp.computed, "reused": cmp.reused, "waited": cmp.waited,
                      "metrics": cmp.metrics.to_dict("records")}}))
""")


def test_two_processes_compute_a_missing_run_once(lab, tmp_path):
    root, log = tmp_path / "cache", tmp_path / "calls.log"
    code = SESSION.format(repo=str(REPO), log=str(log), marker=str(tmp_path / "waiting"),
                          spec=lab.spec, root=str(root), techniques=TECHNIQUES)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    calls = Counter(log.read_text().split())
    assert calls == {t: 1 for t in TECHNIQUES}
    a, b = sorted((json.loads(out.splitlines()[-1]) for out, _ in outs),
                  key=lambda r: -len(r["computed"]))
    assert a["computed"] == TECHNIQUES and b["reused"] == TECHNIQUES == b["waited"]
    assert a["metrics"] == b["metrics"] and len(a["metrics"]) > 0
