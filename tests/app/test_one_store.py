"""One run store for the CLI and the app: runs made by ``python -m core evaluate`` are listed by
``python -m core runs list`` and shown by the Compare and Inspect pages as they are, with nothing
computed again (the experiment runner is made to fail if anything calls it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import core.evaluation.experiment as experiment
from core.__main__ import main
from tests.app.conftest import APP

CLI_ROWS = ["popular", "als"]


@pytest.fixture()
def cli_cache(demo_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache holding only the small demo of the app tests (no stored runs), set as
    ``MMREC_CACHE_DIR`` for this test."""
    root = tmp_path / "cache"
    shutil.copytree(demo_cache / "demo", root / "demo")
    monkeypatch.setenv("MMREC_CACHE_DIR", str(root))
    return root


def _no_compute(*args, **kwargs):
    raise AssertionError("a stored run was computed again")


def test_cli_runs_are_listed_and_the_app_shows_them_without_computing(
        cli_cache, monkeypatch, capsys):
    argv = ["evaluate", "--dataset", "demo", "--techniques", ",".join(CLI_ROWS),
            "--format", "json", "--cache-dir", str(cli_cache)]
    assert main(argv) == 0
    printed = capsys.readouterr()
    cli = {(r["technique"], r["metric"], r["k"]): r["value"] for r in json.loads(printed.out)}
    assert "reused stored run" not in printed.err

    assert main(["runs", "list", "--cache-dir", str(cli_cache)]) == 0
    head, *lines = capsys.readouterr().out.splitlines()
    assert head.split() == ["key", "dataset", "split", "seed", "row", "created", "encoders"]
    assert len(lines) == 2
    assert sorted(line.split()[4] for line in lines) == sorted(CLI_ROWS)
    assert all(line.split()[1:4] == ["demo", "random", "42"] for line in lines)

    # from here on, computing anything fails: the app may only reload
    monkeypatch.setattr(experiment, "run_experiment", _no_compute)
    assert main(argv) == 0  # the CLI itself reuses them too
    again = capsys.readouterr()
    assert again.out == printed.out
    assert sorted(line.split(": ")[-1] for line in again.err.splitlines()
                  if line.startswith("reused stored run")) == sorted(CLI_ROWS)

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=180)
    at.session_state["techniques"] = list(CLI_ROWS)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error and not at.warning  # nothing reported missing, nothing to run
    table = at.dataframe[0].value
    assert [str(i) for i in table.index] == CLI_ROWS
    for technique in CLI_ROWS:  # the CLI's numbers, as the CLI printed them
        assert table.loc[technique, "nDCG@10"] == pytest.approx(cli[(technique, "ndcg", 10)])
    caption = " ".join(c.value for c in at.caption)
    assert "Reused from the cache: popular, als; computed now: none." in caption

    at.switch_page("app_pages/inspect.py").run()  # the Inspect page opens the same runs
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error
    assert at.multiselect(key="inspect_techniques").options == CLI_ROWS
    user = at.selectbox(key="inspect_user_id").value
    assert at.subheader[0].value == f"User {user}"
    assert [str(i) for i in at.dataframe[0].value.index] == CLI_ROWS  # per-user metrics
    markdown = " ".join(m.value for m in at.markdown)
    assert "**popular**" in markdown and "**als**" in markdown
