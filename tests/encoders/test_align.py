"""The align: encoder's parts without real towers: spec grammar, pairs and their content hash,
retrieval against hand-computed values, training on synthetic vectors, the CLI report."""

from __future__ import annotations

from math import comb
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from core.encoders.align.config import AlignConfig, parse_align_spec
from core.encoders.align.pairs import build_pairs
from core.encoders.align.quality import retrieval
from core.encoders.align.report import AlignReport, align_spec, format_report
from core.errors import EncoderUnavailable


# --- spec grammar ---------------------------------------------------------------------------------
def test_canonical_spec_drops_defaults_and_orders_options():
    a = parse_align_spec("align:text:minilm+cnn:x?head=linear&pairs=item+caption&dim=128")
    b = parse_align_spec("align:text:minilm+cnn:x?dim=128&head=linear&pairs=caption+item")
    assert a == b and a.spec == "align:text:minilm+cnn:x?dim=128&head=linear"
    assert parse_align_spec("align:text:minilm+cnn:x?epochs=120").spec == "align:text:minilm+cnn:x"


def test_tower_suffixes_stay_with_their_tower():
    cfg = parse_align_spec("align:text:minilm+bf16+cnn:efficientnet-lite0+bf16")
    assert (cfg.text, cfg.image) == ("text:minilm+bf16", "cnn:efficientnet-lite0+bf16")


@pytest.mark.parametrize("spec, words", [
    ("align:text:minilm", "text encoder and an image encoder"),
    ("align:text:minilm+cnn:x?colour=red", "unknown option"),
    ("align:text:minilm+cnn:x?epochs=0", "bad value for epochs"),
    ("align:text:minilm+cnn:x?pairs=caption+likes", "bad value for pairs"),
    ("align:text:minilm+cnn:x?dim=64", "head=locked"),
])
def test_bad_specs_say_what_is_wrong(spec, words):
    with pytest.raises(EncoderUnavailable, match=words):
        parse_align_spec(spec)


def test_cli_options_are_validated_like_a_spec():
    assert align_spec("text:a", "cnn:b", {"head": "mlp", "dim": 32, "epochs": None}) == \
        "align:text:a+cnn:b?dim=32&head=mlp"
    with pytest.raises(EncoderUnavailable, match="head=locked"):
        align_spec("text:a", "cnn:b", {"dim": 32})


def test_an_align_spec_needs_the_dataset():
    from core.encoders import create_encoder

    with pytest.raises(EncoderUnavailable, match="needs the dataset"):
        create_encoder("align:text:minilm+cnn:efficientnet-lite0")


# --- pairs ---------------------------------------------------------------------------------------
def _dataset(captions: list[str]) -> SimpleNamespace:
    n_items = 10
    photos = pd.DataFrame({"photo_id": [f"p{i}" for i in range(2 * n_items)],
                           "item": np.repeat(np.arange(n_items), 2),
                           "caption": captions, "label": ""})
    docs = [f"place {i}" for i in range(n_items)]
    return SimpleNamespace(name="toy", photos=photos, item_text=lambda: docs,
                           interactions=pd.DataFrame({"item": [], "text": []}))


def test_pairs_split_by_item_and_hash_their_content():
    captions = [f"dish {i}" if i % 2 else "" for i in range(20)]
    hashes = [f"h{i}" for i in range(20)]
    ps = build_pairs(_dataset(captions), ("caption", "item"), hashes, seed=0)
    assert ps.counts["pairs_caption"] == 10 and ps.counts["captions_empty"] == 10
    assert ps.counts["pairs_item"] == 20 and ps.counts["items_heldout"] == 1
    for item in np.unique(ps.item):  # every pair of an item is on one side
        assert len(set(ps.heldout[ps.item == item].tolist())) == 1
    same = build_pairs(_dataset(captions), ("caption", "item"), hashes, seed=0)
    edited = build_pairs(_dataset(["x", *captions[1:]]), ("caption", "item"), hashes, seed=0)
    other_seed = build_pairs(_dataset(captions), ("caption", "item"), hashes, seed=1)
    assert same.content_hash == ps.content_hash
    assert edited.content_hash != ps.content_hash
    assert other_seed.content_hash != ps.content_hash  # another held-out item
    unreadable = build_pairs(_dataset(captions), ("caption",), [None, *hashes[1:]], seed=0)
    assert unreadable.counts["photos_unreadable"] == 1


# --- retrieval -----------------------------------------------------------------------------------
def test_retrieval_against_hand_computed_values():
    # 3 texts, 4 photos; text 0 ↔ photos 0 and 1, text 1 ↔ photo 2, text 2 ↔ photo 3
    texts = np.eye(4, dtype=np.float32)[[0, 2, 1]]  # text 2 points at photo 1 (a wrong one)
    photos = np.eye(4, dtype=np.float32)
    fig = retrieval(texts, photos, [0, 0, 1, 2], [0, 1, 2, 3])
    t2i = fig["text_to_image"]
    assert t2i["recall@1"] == pytest.approx(2 / 3)  # texts 0 and 1 find theirs first
    chance1 = np.mean([1 - comb(4 - r, 1) / comb(4, 1) for r in (2, 1, 1)])
    assert t2i["chance@1"] == pytest.approx(chance1)
    assert t2i["recall@10"] == 1.0 and t2i["chance@10"] == 1.0  # k ≥ candidates
    assert fig["texts"] == 3 and fig["photos"] == 4


# --- training ------------------------------------------------------------------------------------
def _train_and_measure(pair_text: np.ndarray, seed: int = 0) -> tuple[dict, list[float]]:
    from core.encoders.align.train import train_heads

    rng = np.random.default_rng(seed)
    n, d_t, d_i = 200, 24, 40
    text_x = rng.normal(size=(n, d_t)).astype(np.float32)
    image_x = (text_x @ rng.normal(size=(d_t, d_i)) + 0.1 * rng.normal(size=(n, d_i)))
    image_x = image_x.astype(np.float32)  # photo j shows text j
    train, held = np.arange(160), np.arange(160, 200)
    cfg = AlignConfig("text:t", "cnn:i", head="linear", dim=16, epochs=40, batch=64, seed=seed)
    heads = train_heads(text_x, image_x, pair_text[train], train, cfg)
    fig = retrieval(heads.project("text", text_x), heads.project("image", image_x),
                    pair_text[held], held)
    return fig["text_to_image"], heads.info["loss"]


def test_training_lowers_the_loss_and_finds_held_out_pairs():
    fig, loss = _train_and_measure(np.arange(200))
    assert loss[-1] < 0.5 * loss[0]
    assert fig["recall@5"] > 5 * fig["chance@5"]


def test_shuffled_pairs_teach_nothing_about_held_out_pairs():
    shuffled = np.random.default_rng(7).permutation(200)
    fig, _ = _train_and_measure(shuffled)
    assert fig["recall@5"] < 3 * fig["chance@5"]


# --- the CLI report ------------------------------------------------------------------------------
def test_report_prints_chance_with_or_without_compared_encoders():
    fig = retrieval(np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32), [0, 1, 2],
                    [0, 1, 2])
    info = {"key": "k", "heldout": fig, "pairs": {"kinds": ["caption"]}}
    alone = format_report(AlignReport("align:t+i", "id", info, True, 0.1))
    assert "chance" in alone and "align (this space)" in alone
    compared = format_report(AlignReport("align:t+i", "id", info, True, 0.1,
                                         {"clip:x": {"error": "weights absent"}}))
    assert "clip:x" in compared and "not measured: weights absent" in compared
