"""``python -m core evaluate`` and ``recommend`` on a small generated dataset."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

import core.evaluation.experiment as experiment
from core.__main__ import build_parser, main
from core.errors import LabError
from core.evaluation.cli import evaluate_command, recommend_command
from core.evaluation.experiment import load_run, recompute_metrics


def _run(taste, argv, command):
    args = build_parser().parse_args(argv)
    out = io.StringIO()
    assert command(args, lambda a: taste, out=out) == 0
    return out.getvalue()


EVAL = ["evaluate", "--dataset", "x", "--techniques", "random,popular,itemknn", "--k", "5,10",
        "--seed", "3"]


def test_table_has_a_row_per_technique_and_notes(taste, tmp_path):
    text = _run(taste, EVAL + ["--cache-dir", str(tmp_path)], evaluate_command)
    lines = text.splitlines()
    assert lines[0].startswith("dataset taste | split random (seed 3")
    header = next(line for line in lines if line.startswith("technique"))
    assert "MAP@5" in header and "nDCG@10" in header and "n_users" in header
    for label in ("Random", "Popular", "ItemKNN"):
        assert any(line.startswith(label) for line in lines)
    assert any(line.startswith("cold users") for line in lines)
    assert any(line.startswith("time: random fit") for line in lines)


def test_temporal_header_has_no_seed(taste, tmp_path):
    argv = EVAL + ["--split", "temporal", "--cache-dir", str(tmp_path)]
    first = _run(taste, argv, evaluate_command).splitlines()[0]
    assert first.startswith("dataset taste | split temporal (train ") and "seed" not in first


def test_metrics_option_limits_columns(taste, tmp_path):
    text = _run(taste, EVAL + ["--metrics", "map,ndcg", "--cache-dir", str(tmp_path)],
                evaluate_command)
    assert "Recall" not in text and "MAP@10" in text


def test_json_and_csv_are_tidy_and_agree(taste, tmp_path):
    rows = json.loads(_run(taste, EVAL + ["--format", "json", "--cache-dir", str(tmp_path)],
                           evaluate_command))
    assert set(rows[0]) == {"technique", "encoder", "metric", "k", "value", "n_users"}
    assert {r["metric"] for r in rows} == {"map", "ndcg", "recall", "precision", "hit_rate",
                                           "mrr", "coverage", "novelty"}
    assert len(rows) == 3 * 8 * 2
    csv = pd.read_csv(io.StringIO(_run(taste, EVAL + ["--format", "csv",
                                                      "--cache-dir", str(tmp_path)],
                                       evaluate_command)))
    assert list(csv.columns) == ["technique", "encoder", "metric", "k", "value", "n_users"]
    by_json = {(r["technique"], r["metric"], r["k"]): r["value"] for r in rows}
    for r in csv.itertuples():
        assert r.value == pytest.approx(by_json[(r.technique, r.metric, r.k)], abs=1e-6)


def test_techniques_take_params_one_row_each(taste, tmp_path):
    argv = ["evaluate", "--dataset", "x", "--techniques", "als:factors=8,als", "--k", "5",
            "--seed", "3", "--no-tune", "--cache-dir", str(tmp_path)]
    rows = json.loads(_run(taste, argv + ["--format", "json"], evaluate_command))
    assert list(dict.fromkeys(r["technique"] for r in rows)) == ["als:factors=8", "als"]
    ndcg = {r["technique"]: r["value"] for r in rows if r["metric"] == "ndcg"}
    assert ndcg["als:factors=8"] != ndcg["als"]  # two fits, not one row twice
    table = _run(taste, argv, evaluate_command).splitlines()
    assert any(line.startswith("ALS (factors=8) ") for line in table)
    assert any(line.startswith("ALS ") for line in table)


def test_save_run_is_recomputable(taste, tmp_path):
    out = tmp_path / "run"
    rows = json.loads(_run(taste, EVAL + ["--format", "json", "--save-run", str(out),
                                          "--cache-dir", str(tmp_path)], evaluate_command))
    run = load_run(out)
    meta = run["run"]
    assert meta["dataset"] == "taste" and meta["split"]["kind"] == "random"
    again = recompute_metrics(run["recs"], run["truth"], meta["ks"], meta["n_items"],
                              run["items"], meta["n_train_users"])
    got = {(r.technique, r.metric, r.k): r.value for r in again.itertuples()}
    for r in rows:
        assert got[(r["technique"], r["metric"], r["k"])] == pytest.approx(r["value"], abs=1e-9)
    recs = run["recs"]
    assert set(recs.columns) == {"technique", "user_id", "rank", "item_id", "score"}
    assert recs["user_id"].str.startswith("u").all() and recs["item_id"].str.startswith("i").all()


def test_recommend_prints_unseen_items_with_names(taste, tmp_path):
    argv = ["recommend", "--dataset", "x", "--technique", "itemknn", "--user", "u0007", "-n", "5",
            "--cache-dir", str(tmp_path)]
    text = _run(taste, argv, recommend_command)
    assert text.splitlines()[0].startswith("top 5 for user u0007 by ItemKNN")
    body = text.splitlines()[2:]
    assert len(body) == 5 and all("Item " in line for line in body)
    payload = json.loads(_run(taste, argv + ["--format", "json"], recommend_command))
    seen = set(taste.interactions[taste.interactions.user == taste.user_index("u0007")]["item"])
    ids = [taste.item_index(r["item_id"]) for r in payload["items"]]
    assert len(ids) == 5 and not seen & set(ids)
    assert [r["rank"] for r in payload["items"]] == [1, 2, 3, 4, 5]
    scores = [r["score"] for r in payload["items"]]
    assert scores == sorted(scores, reverse=True)


def test_recommend_unknown_user_is_a_clear_error(taste, tmp_path):
    args = build_parser().parse_args(["recommend", "--dataset", "x", "--technique", "popular",
                                      "--user", "nobody", "--cache-dir", str(tmp_path)])
    with pytest.raises(LabError, match="unknown user id 'nobody'"):
        recommend_command(args, lambda a: taste, out=io.StringIO())


def test_main_turns_engine_errors_into_one_line(capsys, tmp_path):
    code = main(["evaluate", "--dataset", "nope:x", "--cache-dir", str(tmp_path)])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: unknown dataset spec")


# --- one run store: evaluate records, reuses and exports; `runs` lists, shows, exports -----------
def _evaluate(taste, argv, capsys) -> tuple[str, list[str]]:
    """Run evaluate on ``taste``; its stdout and the lines it wrote on stderr about stored runs."""
    out = _run(taste, argv, evaluate_command)
    err = capsys.readouterr().err.splitlines()
    return out, [line for line in err if "stored run " in line]


def _no_compute(*args, **kwargs):
    raise AssertionError("a stored run was computed again")


def test_every_row_is_a_stored_run_a_second_evaluate_reuses(taste, tmp_path, capsys,
                                                             monkeypatch):
    argv = EVAL + ["--cache-dir", str(tmp_path)]
    first, told = _evaluate(taste, argv, capsys)
    assert [line.split()[0:2] + line.split()[3:] for line in told] == [
        ["stored", "run", t] for t in ("random", "popular", "itemknn")]
    from core.store.runs import RunStore

    runs = RunStore.in_cache(tmp_path).list_runs()
    assert sorted(runs["label"]) == ["itemknn", "popular", "random"]
    assert set(runs["seed"]) == {3} and set(runs["split"]) == {"random"}
    monkeypatch.setattr(experiment, "run_experiment", _no_compute)
    second, told = _evaluate(taste, argv, capsys)
    assert second == first  # the same table, read from the same stored runs
    assert [line.split()[:3] + line.split()[4:] for line in told] == [
        ["reused", "stored", "run", t] for t in ("random", "popular", "itemknn")]
    # a subset, another format, fewer cut-offs: still nothing to compute
    rows = json.loads(_run(taste, ["evaluate", "--dataset", "x", "--techniques", "popular",
                                   "--k", "10", "--seed", "3", "--format", "json",
                                   "--cache-dir", str(tmp_path)], evaluate_command))
    assert {r["k"] for r in rows} == {10} and {r["technique"] for r in rows} == {"popular"}


def test_settings_outside_a_stored_run_compute_a_new_one(taste, tmp_path, capsys):
    argv = EVAL + ["--cache-dir", str(tmp_path)]
    _evaluate(taste, argv, capsys)
    _, told = _evaluate(taste, argv + ["--no-tune"], capsys)  # another option: other runs
    assert all(line.startswith("stored run") for line in told)
    _, told = _evaluate(taste, [*EVAL[:-2], "--seed", "4", "--cache-dir", str(tmp_path)], capsys)
    assert all(line.startswith("stored run") for line in told)
    # a cut-off the stored run lacks: computed again, and stored with its cut-offs kept
    _, told = _evaluate(taste, [*argv, "--techniques", "popular", "--k", "7,60"], capsys)
    assert told[0].startswith("stored run")
    _, told = _evaluate(taste, [*argv, "--techniques", "popular", "--k", "5,7"], capsys)
    assert told[0].startswith("reused stored run")
    from core.store.runs import RunStore

    assert len(RunStore.in_cache(tmp_path).list_runs()) == 3 * 3


def test_save_run_and_runs_export_write_the_same_stored_run(taste, tmp_path, capsys):
    argv = EVAL + ["--techniques", "popular", "--cache-dir", str(tmp_path / "cache"),
                   "--save-run", str(tmp_path / "saved")]
    _evaluate(taste, argv, capsys)
    assert main(["runs", "list", "--cache-dir", str(tmp_path / "cache")]) == 0
    head, line = capsys.readouterr().out.splitlines()
    key, dataset, split, seed, row, _day, _time, encoders = line.split()[:8]
    assert (dataset, split, seed, row, encoders) == ("taste", "random", "3", "popular", "-")
    assert main(["runs", "export", key, str(tmp_path / "exported"),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert capsys.readouterr().out.startswith(f"run {key} (popular) exported to ")
    saved, exported = load_run(tmp_path / "saved"), load_run(tmp_path / "exported")
    assert saved["run"]["runs"] == exported["run"]["runs"] and \
        saved["run"]["runs"]["popular"].startswith(key)
    assert exported["run"]["ks"] == [1, 5, 10, 20, 30, 50]  # everything stored ...
    assert saved["run"]["ks"] == [5, 10]  # ... the export of evaluate: what it printed
    m = exported["metrics"]
    pd.testing.assert_frame_equal(saved["metrics"], m[m["k"].isin([5, 10])].reset_index(
        drop=True))
    pd.testing.assert_frame_equal(saved["truth"], exported["truth"])
    pd.testing.assert_frame_equal(saved["items"], exported["items"])
    for name in ("audit", "split", "n_items", "n_users", "n_train_users", "params", "timings",
                 "cold_users", "labels", "fallbacks", "rows", "options"):
        assert saved["run"][name] == exported["run"][name], name


def test_runs_show_names_the_run_and_its_metrics(taste, tmp_path, capsys):
    _evaluate(taste, EVAL + ["--cache-dir", str(tmp_path)], capsys)
    assert main(["runs", "show", "no-such-key", "--cache-dir", str(tmp_path)]) == 2
    assert "no stored run has a key starting with 'no-such-key'" in capsys.readouterr().err
    from core.store.runs import RunStore

    key = RunStore.in_cache(tmp_path).list_runs().set_index("label").at["itemknn", "run_key"]
    assert main(["runs", "show", key[:8], "--cache-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0] == f"run       {key}"
    assert lines[3].startswith("row       itemknn (technique itemknn")
    assert any(line.startswith("protocol audit:") for line in lines)
    header = next(line for line in lines if line.startswith("metric"))
    assert header.split() == ["metric", "@1", "@5", "@10", "@20", "@30", "@50"]
    assert any(line.split()[:1] == ["nDCG"] and len(line.split()) == 7 for line in lines)


def test_runs_list_without_a_store(tmp_path, capsys):
    assert main(["runs", "list", "--cache-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("no stored runs")
    assert not (tmp_path / "runs.duckdb").exists()
