"""The ``study`` preset end to end through ``evaluate_command``, with a fake embedding provider
(no model is loaded): every row runs or is listed with its reason; CIs and run.json additions."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recommenders"))
from content_fakes import FakeProvider, topical_dataset  # noqa: E402

from core.__main__ import build_parser  # noqa: E402
from core.evaluation.cli import evaluate_command  # noqa: E402
from core.evaluation.presets import (  # noqa: E402
    STUDY_DEFAULT_ENCODERS,
    apply_preset,
    study_techniques,
)
from core.recommenders.spec import TechniqueSpec  # noqa: E402

ROWS = ["random", "popular", "text", "image", "bpr", "als", "clip-t1", "clip-t2", "clip-t3",
        "clip-t4", "clip-t5", "multiview", "hybrid"]


@pytest.fixture(scope="module")
def ds():
    return topical_dataset(n_users=60, per_user=8)


@pytest.fixture(autouse=True)
def fake_provider(monkeypatch):
    import core.store

    monkeypatch.setattr(core.store, "EmbeddingProvider",
                        lambda dataset, root, progress=None: FakeProvider(dataset))


def _run(ds, tmp_path, *flags):
    # --no-tune keeps this fast; tuning is tested with the techniques themselves
    args = build_parser().parse_args(
        ["evaluate", "--dataset", "fake", "--preset", "study", "--cache-dir", str(tmp_path),
         "--seed", "3", "--no-tune", *flags])
    out = io.StringIO()
    assert evaluate_command(args, lambda a: ds, out=out) == 0
    return out.getvalue()


def test_study_rows_and_defaults(monkeypatch):
    import core.encoders

    assert [r.label for r in study_techniques()] == ROWS
    assert all(r.params == {} and r.technique == r.label for r in study_techniques())
    monkeypatch.setattr(core.encoders, "clip_weights_here", lambda spec: True)
    args = build_parser().parse_args(["evaluate", "--dataset", "demo", "--preset", "study",
                                      "--text-encoder", "text:x"])
    techniques, which = apply_preset("study", args, [], None)
    assert [r.label for r in techniques] == ROWS and which == ["map", "ndcg"]
    assert args.text_encoder == "text:x"
    assert args.image_encoder == STUDY_DEFAULT_ENCODERS["image"]
    assert args.encoder == "clip:ViT-B-32/openai" and args.baseline == "als"
    assert not getattr(args, "preset_notes", None)


def test_study_without_clip_weights_uses_the_aligned_space(monkeypatch):
    """No CLIP weights here and no --encoder: the CLIP rows run on align:TEXT+IMAGE (the run's
    text and first image encoder), and the table header says so; --encoder still wins."""
    import core.encoders

    monkeypatch.setattr(core.encoders, "clip_weights_here", lambda spec: False)
    args = build_parser().parse_args(["evaluate", "--dataset", "demo", "--preset", "study",
                                      "--image-encoder", "cnn:a,cnn:b"])
    apply_preset("study", args, [], None)
    assert args.encoder == "align:text:minilm+cnn:a"
    assert "align:text:minilm+cnn:a" in args.preset_notes[0]
    assert "clip:ViT-B-32/openai" in args.preset_notes[0]
    args = build_parser().parse_args(["evaluate", "--dataset", "demo", "--preset", "study",
                                      "--encoder", "clip:ViT-B-32/untrained"])
    apply_preset("study", args, [], None)
    assert args.encoder == "clip:ViT-B-32/untrained" and not getattr(args, "preset_notes", None)


def test_one_image_row_per_image_encoder():
    from core.recommenders import list_techniques

    before = list_techniques()
    args = build_parser().parse_args(["evaluate", "--dataset", "demo", "--preset", "study",
                                      "--image-encoder", "cnn:a,cnn:b"])
    techniques, _ = apply_preset("study", args, [], None)
    assert techniques[3:5] == [TechniqueSpec("image"),
                               TechniqueSpec("image", {"encoder": "cnn:b"}, label="image@cnn:b")]
    assert args.image_encoder == "cnn:a"
    assert list_techniques() == before  # a row, not a class registered process-wide


@pytest.mark.slow
def test_study_runs_every_row_with_ci_column_and_run_json(ds, tmp_path):
    run_dir = tmp_path / "run"
    text = _run(ds, tmp_path, "--encoder", "clip:fake", "--text-encoder", "text:fake",
                "--image-encoder", "cnn:fake", "--save-run", str(run_dir))
    for row in ROWS:
        assert f"[{row}]" in text or row in text.lower() or row.replace("-", " ") in text.lower()
    assert "skipped" not in text
    assert "Δ nDCG@10 vs als [95% CI]" in text and "(baseline)" in text
    assert "* = the 95% CI excludes 0" in text
    assert "MAP@10" in text and "Recall@10" not in text  # the table shows MAP and nDCG only
    run = json.loads((run_dir / "run.json").read_text())
    assert run["techniques"] == ROWS
    assert set(run["timings"]) == set(ROWS)
    assert all({"fit_s", "eval_s"} <= set(v) for v in run["timings"].values())
    assert set(run["encoder_ids"]) == {"text", "image", "clip"}
    assert run["filters"] == {"photo_filter": None, "review_filter": None}
    assert run["bootstrap"]["baseline"] == "als"
    assert {r["technique"] for r in run["bootstrap"]["rows"]} == set(ROWS) - {"als"}
    # same seed, same output
    again = _run(ds, tmp_path, "--encoder", "clip:fake", "--text-encoder", "text:fake",
                 "--image-encoder", "cnn:fake")
    strip = [ln for ln in text.splitlines() if not ln.startswith("time:")]
    assert strip == [ln for ln in again.splitlines() if not ln.startswith("time:")]


def test_rows_that_cannot_run_are_listed_with_the_reason(ds, tmp_path):
    from core.recommenders import list_techniques

    registry = list_techniques()
    text = _run(ds, tmp_path, "--encoder", "clip:unavailable", "--text-encoder", "text:fake",
                "--image-encoder", "cnn:fake,cnn:noise", "--format", "json")
    rows = json.loads(text)
    ran = {r["technique"] for r in rows}
    clip_rows = {"clip-t1", "clip-t2", "clip-t3", "clip-t4", "clip-t5", "multiview"}
    assert ran == (set(ROWS) | {"image@cnn:noise"}) - clip_rows
    encoders = {r["technique"]: r["encoder"] for r in rows}
    assert encoders["image"] == "cnn:fake" and encoders["image@cnn:noise"] == "cnn:noise"
    assert list_techniques() == registry  # two image rows, no class registered
    assert {r["metric"] for r in rows} >= {"map", "ndcg", "recall", "precision"}  # json: all
    hybrid = [r for r in rows if r["technique"] == "hybrid" and r["metric"] == "ndcg"]
    assert all("ci_low" in r and r["baseline"] == "als" for r in hybrid)


def test_skipped_rows_appear_in_the_table(ds, tmp_path, capsys):
    text = _run(ds, tmp_path, "--encoder", "clip:unavailable", "--text-encoder", "text:fake",
                "--image-encoder", "cnn:fake")
    lines = [ln for ln in text.splitlines() if ln.startswith("skipped")]
    assert len(lines) == 1  # one reason, one line naming every row it stopped
    assert lines[0].startswith(
        "skipped: clip-t1, clip-t2, clip-t3, clip-t4, clip-t5, multiview (")
    assert "clip:unavailable" in lines[0]


def test_filters_are_recorded(ds, tmp_path):
    run_dir = tmp_path / "filtered"
    _run(ds, tmp_path, "--encoder", "clip:fake", "--text-encoder", "text:fake",
         "--image-encoder", "cnn:fake", "--photo-filter", "food", "--review-filter", "positive",
         "--save-run", str(run_dir))
    filters = json.loads((run_dir / "run.json").read_text())["filters"]
    assert filters["photo_filter"] == "food" and filters["review_filter"] == "positive"
    assert filters["source"].startswith("CLIP zero-shot")
    assert filters["photos_kept"] < filters["photos_total"]
    assert filters["train_reviews_kept"] < filters["train_reviews_total"]


def test_multimodal_rows_ablations_and_defaults():
    from core.evaluation.presets import multimodal_techniques
    from core.recommenders import get_technique

    assert [r.label for r in multimodal_techniques()] == [
        "popular", "als", "lightgcn", "vbpr", "freedom", "fusion", "hybrid"]
    rows = multimodal_techniques(ablations=True)
    ablated = [(r.technique, r.params["ablate"]) for r in rows if r.params]
    assert ablated == [(t, m) for t in ("vbpr", "freedom", "fusion") for m in ("text", "image")]
    assert get_technique("freedom").row_title({"ablate": "image"}) == "FREEDOM w/o image"
    args = build_parser().parse_args(["evaluate", "--dataset", "demo", "--preset", "multimodal",
                                      "--ablations", "--image-encoder", "cnn:x"])
    techniques, which = apply_preset("multimodal", args, [], None)
    assert len(techniques) == 13 and which == ["recall", "ndcg"]
    assert args.text_encoder == "text:minilm" and args.image_encoder == "cnn:x"
    assert args.baseline == "als" and args.encoder is None  # no CLIP role needed


def test_ablations_belong_to_the_multimodal_preset():
    from core.errors import LabError

    args = build_parser().parse_args(["evaluate", "--dataset", "demo", "--preset", "study",
                                      "--ablations"])
    with pytest.raises(LabError, match="--ablations.*multimodal"):
        apply_preset("study", args, [], None)


def test_multimodal_preset_end_to_end(ds, tmp_path):
    """Every backbone row runs on the fake provider's features; ablation rows read as such."""
    args = build_parser().parse_args(
        ["evaluate", "--dataset", "fake", "--preset", "multimodal", "--ablations",
         "--text-encoder", "text:fake", "--image-encoder", "cnn:fake",
         "--cache-dir", str(tmp_path), "--seed", "3", "--no-tune"])
    out = io.StringIO()
    assert evaluate_command(args, lambda a: ds, out=out) == 0
    text = out.getvalue()
    for title in ("LightGCN", "VBPR w/o text", "FREEDOM w/o image", "Attention fusion w/o text",
                  "Recall@10", "nDCG@10", "vs als"):
        assert title in text, title
    assert "skipped" not in text.lower()
