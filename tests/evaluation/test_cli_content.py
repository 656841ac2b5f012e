"""``python -m core evaluate`` with content techniques, through a fake embedding provider (no
model is loaded): documented default encoders, the exit status when nothing ran, and the hybrid's
row label, console line and validation choice."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recommenders"))
from content_fakes import ENCODERS, FakeEncoder, FakeProvider, topical_dataset  # noqa: E402

from core.__main__ import build_parser  # noqa: E402
from core.evaluation.cli import EXIT_NO_RESULTS, encoders_from_args, evaluate_command  # noqa: E402


@pytest.fixture(scope="module")
def ds():
    return topical_dataset(n_users=120, per_user=8, seed=1)


@pytest.fixture(autouse=True)
def fake_provider(monkeypatch):
    import core.store

    monkeypatch.setattr(core.store, "EmbeddingProvider",
                        lambda dataset, root, progress=None: FakeProvider(dataset))
    # the documented default text encoder, faked (its real weights are not loaded here)
    monkeypatch.setitem(ENCODERS, "text:minilm", FakeEncoder("text:minilm", frozenset({"text"})))


def _evaluate(ds, tmp_path, *flags) -> tuple[int, str]:
    args = build_parser().parse_args(["evaluate", "--dataset", "fake", "--cache-dir",
                                      str(tmp_path), "--seed", "1", "--k", "10", *flags])
    out = io.StringIO()
    code = evaluate_command(args, lambda a: ds, out=out)
    return code, out.getvalue()


def test_documented_defaults_fill_the_roles_the_techniques_need():
    args = build_parser().parse_args(["evaluate", "--dataset", "x"])
    assert encoders_from_args(args, ["text", "image", "als"]) == {
        "text": "text:minilm", "image": "cnn:efficientnet-lite0"}
    assert encoders_from_args(args, ["als", "clip-t1", "hybrid"]) == {}  # CLIP has no default
    args = build_parser().parse_args(["evaluate", "--dataset", "x", "--text-encoder", "text:x"])
    assert encoders_from_args(args, ["text"]) == {"text": "text:x"}


def test_text_without_text_encoder_uses_the_default(ds, tmp_path):
    code, text = _evaluate(ds, tmp_path, "--techniques", "popular,text", "--no-tune")
    assert code == 0
    assert any(line.startswith("Text [text:minilm]") for line in text.splitlines())
    assert "skipped" not in text


def test_no_results_is_a_non_zero_exit_with_a_reason(ds, tmp_path, capsys):
    code, text = _evaluate(ds, tmp_path, "--techniques", "clip-t1", "--no-tune")
    assert code == EXIT_NO_RESULTS == 3
    assert "no technique produced results" in text
    assert "skipped: clip-t1 (clip-t1 needs a clip encoder: pass --encoder SPEC" in text
    assert "error: no technique produced results" in capsys.readouterr().err


def test_hybrid_without_content_is_labelled_and_logged(ds, tmp_path, capsys):
    code, text = _evaluate(ds, tmp_path, "--techniques", "hybrid", "--no-tune")
    assert code == 0
    assert any(line.startswith("Hybrid: ALS alone (no content blend: no content technique could "
                               "run)") for line in text.splitlines())
    err = capsys.readouterr().err
    assert "hybrid: ALS alone, no content blend: no content technique could run: text:" in err


def test_picked_on_validation_shows_the_hybrid_choice(ds, tmp_path, monkeypatch):
    from core.evaluation import experiment
    from core.evaluation.bootstrap import format_number

    results = []
    real = experiment.run_experiment
    monkeypatch.setattr(experiment, "run_experiment",
                        lambda *a, **kw: results.append(real(*a, **kw)) or results[-1])
    code, text = _evaluate(ds, tmp_path, "--techniques", "hybrid", "--text-encoder", "text:fake")
    assert code == 0
    params = results[0].params["hybrid"]
    best = params["best_blend"]
    picked = next(line for line in text.splitlines() if line.startswith("picked on validation:"))
    figures = (f"validation nDCG@10 gain {format_number(best['gain'], signed=True)} over text "
               "alone, standard error " + format_number(best['standard_error']))
    # on this data text alone beats ALS alone on validation, and the best blend (over text alone)
    # stays within one standard error: the hybrid is text alone, and says so
    assert params["weight"] == 1.0 and params["best_single"]["part"] == "text"
    assert (f"hybrid text alone (best blend content={best['content']}, weight={best['weight']}: "
            f"{figures}, not above one standard error)") in picked
    assert any(line.startswith("Hybrid: text alone (no blend: best blend within one standard "
                               "error on validation)") for line in text.splitlines())
