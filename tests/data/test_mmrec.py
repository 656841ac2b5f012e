"""MMRec loader (``mmrec:DIR``) on a synthetic folder written here: counts and ids, the file's own
split, the item features as ``features:image`` / ``features:text`` (content identity, vectors,
refusals), bad input naming file and line, filters, and ``evaluate --split file`` end to end."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.__main__ import main
from core.data import LoadOptions, list_datasets, load_dataset
from core.data.dataset import SPLIT_LABEL
from core.encoders import FEATURES_WEIGHTS, create_encoder, list_encoders
from core.errors import DatasetError, EncoderUnavailable, TechniqueUnavailable
from core.evaluation.splits import make_split
from core.recommenders import FitContext
from core.recommenders.representations import (
    item_photo_vectors,
    item_text_vectors,
    user_photo_vectors,
)
from core.store.runs import encoder_id

REPO = Path(__file__).resolve().parents[2]
HEADER = "userID\titemID\trating\ttimestamp\tx_label\n"
N_USERS, N_ITEMS = 30, 20
T0 = 1_400_000_000


def make_rows() -> list[tuple[int, int, int, int, int]]:
    """(userID, itemID, rating, timestamp, x_label): users 0..28 each take 6 items of their group
    (items 0-9 for even users, 10-19 for odd ones): 4 train, 1 valid, 1 test; user 29 has only a
    valid and a test row (a cold-start user MMRec leaves out)."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(N_USERS - 1):
        chosen = rng.choice(np.arange(10) + 10 * (u % 2), size=6, replace=False)
        for r, item in enumerate(chosen):
            label = 0 if r < 4 else 1 if r == 4 else 2
            rows.append((u, int(item), int(rng.integers(1, 6)), T0 + 100 * u + r, label))
    rows += [(29, 3, 5, T0 + 9_999, 1), (29, 4, 4, T0 + 10_000, 2)]
    return rows


ROWS = make_rows()


def make_features(dim: int, seed: int) -> np.ndarray:
    """Item features that say which group an item is in (plus a little noise)."""
    rng = np.random.default_rng(seed)
    out = 0.1 * rng.standard_normal((N_ITEMS, dim)).astype(np.float32)
    out[np.arange(N_ITEMS), np.arange(N_ITEMS) // 10] += 1.0
    return out


IMAGE, TEXT = make_features(16, 1), make_features(8, 2)


def inter_text(rows=ROWS, header: str = HEADER) -> str:
    return header + "".join("\t".join(map(str, r)) + "\n" for r in rows)


def write_mmrec(root: Path, inter: str | None = None, image: np.ndarray | None = IMAGE,
                text: np.ndarray | None = TEXT, name: str = "baby") -> Path:
    """An MMRec folder: ``<name>.inter`` and the feature files given (None = left out)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.inter").write_text(inter_text() if inter is None else inter)
    if image is not None:
        np.save(root / "image_feat.npy", image)
    if text is not None:
        np.save(root / "text_feat.npy", text)
    return root


def line_of(row_index: int) -> int:
    """File line of ``ROWS[row_index]`` (line 1 is the header)."""
    return row_index + 2


@pytest.fixture
def folder(tmp_path) -> Path:
    return write_mmrec(tmp_path / "baby")


# --- counts, ids, split --------------------------------------------------------------------------
def test_counts_ids_and_empty_metadata(folder):
    ds = load_dataset(f"mmrec:{folder}")
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (N_USERS, N_ITEMS, len(ROWS))
    assert set(ds.user_ids) == {str(u) for u in range(N_USERS)}
    assert set(ds.item_ids) == {str(i) for i in range(N_ITEMS)}
    assert len(ds.photos) == 0 and not ds.has_text
    assert (ds.items["categories"] == "").all() and (ds.items["description"] == "").all()
    assert (ds.items["name"] == ds.items["item_id"]).all()  # no names in the format
    # each raw (user, item) keeps its rating, time and label
    inter = ds.interactions
    got = {(ds.user_ids[u], ds.item_ids[i]): (r, t, lab) for u, i, r, t, lab in zip(
        inter["user"], inter["item"], inter["rating"], inter["timestamp"], inter[SPLIT_LABEL])}
    assert got == {(str(u), str(i)): (r, t, lab) for u, i, r, t, lab in ROWS}
    counts = ds.report.counts
    assert (counts["file_split_train"], counts["file_split_valid"],
            counts["file_split_test"]) == (116, 30, 30)
    assert counts["users_without_train_interactions"] == 1
    assert counts["image_feature_dim"] == 16 and counts["text_feature_dim"] == 8


def test_the_file_split_is_reproduced_exactly(folder):
    ds = load_dataset(f"mmrec:{folder}")
    split = make_split(ds, "file", seed=0)

    def raw(part):
        return sorted((ds.user_ids[u], ds.item_ids[i]) for u, i in zip(part["user"], part["item"]))

    def expected(label):  # user 29 has no train row: MMRec leaves its valid/test rows out
        return sorted((str(u), str(i)) for u, i, _, _, lab in ROWS if lab == label
                      and (label == 0 or u != 29))

    assert raw(split.train) == expected(0)
    assert raw(split.valid) == expected(1)
    assert raw(split.test) == expected(2)
    assert split.describe()["cold_start_users"] == 1
    assert split.describe()["cold_start_interactions"] == 2
    # the seed plays no role
    assert make_split(ds, "file", seed=7).test.index.equals(split.test.index)


def test_one_inter_file_is_picked_several_need_a_name(tmp_path, folder):
    assert load_dataset(f"mmrec:{folder}/baby.inter").n_users == N_USERS
    (folder / "sports.inter").write_text(inter_text(ROWS[:20]))
    with pytest.raises(DatasetError, match=r"several \.inter files \(baby\.inter, sports\.inter\)"):
        load_dataset(f"mmrec:{folder}")
    assert len(load_dataset(f"mmrec:{folder}/sports.inter").interactions) == 20
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"empty: no <name>\.inter file"):
        load_dataset(f"mmrec:{tmp_path / 'empty'}")
    with pytest.raises(DatasetError, match="MMRec folder not found"):
        load_dataset(f"mmrec:{tmp_path / 'nowhere'}")


def test_listed_as_a_source():
    assert {"source": "mmrec", "spec": "mmrec:DIR"}.items() <= next(
        r for r in list_datasets() if r["source"] == "mmrec").items()


# --- bad input -----------------------------------------------------------------------------------
def _replace_field(row_index: int, column: int, value: str) -> str:
    rows = [list(map(str, r)) for r in ROWS]
    rows[row_index][column] = value
    return HEADER + "".join("\t".join(r) + "\n" for r in rows)


BAD_INTER = [
    ("missing column", inter_text(header="userID\titemID\trating\ttimestamp\tlabel\n"),
     r"baby\.inter: line 1: missing column\(s\) \['x_label'\]"),
    ("non-integer item id", _replace_field(3, 1, "1.5"),
     rf"baby\.inter: line {line_of(3)}: itemID = '1\.5' is not a non-negative integer"),
    ("negative user id", _replace_field(10, 0, "-2"),
     rf"baby\.inter: line {line_of(10)}: userID = '-2' is not a non-negative integer"),
    ("label out of range", _replace_field(5, 4, "3"),
     rf"baby\.inter: line {line_of(5)}: x_label = '3' is not 0 \(train\), 1 \(valid\) or 2"),
    ("rating not a number", _replace_field(7, 2, "five"),
     rf"baby\.inter: line {line_of(7)}: rating = 'five' is not a number"),
    ("extra field", _replace_field(1, 4, "0\t9"),
     rf"baby\.inter: line {line_of(1)}: malformed line \(expected 5 fields, saw 6\)"),
    ("header only", HEADER, r"baby\.inter: no interactions after the header line"),
]


@pytest.mark.parametrize("inter,message", [c[1:] for c in BAD_INTER],
                         ids=[c[0] for c in BAD_INTER])
def test_bad_interactions_name_file_and_line(tmp_path, inter, message):
    root = write_mmrec(tmp_path / "baby", inter=inter)
    with pytest.raises(DatasetError, match=message):
        load_dataset(f"mmrec:{root}")
    # --strict or not: an MMRec file is never read with lines skipped
    with pytest.raises(DatasetError, match=message):
        load_dataset(f"mmrec:{root}", options=LoadOptions(strict=False))


def test_bad_features_name_the_file(tmp_path):
    root = write_mmrec(tmp_path / "rows", image=IMAGE[:19])
    with pytest.raises(DatasetError, match=r"image_feat\.npy: 19 rows, but .*baby\.inter has item "
                                           r"ids up to 19, so 20 rows are expected"):
        load_dataset(f"mmrec:{root}")
    nan = TEXT.copy()
    nan[3, 0] = np.nan
    root = write_mmrec(tmp_path / "nan", text=nan)
    with pytest.raises(DatasetError, match=r"text_feat\.npy: row 3 \(itemID 3\) holds NaN"):
        load_dataset(f"mmrec:{root}")
    root = write_mmrec(tmp_path / "flat", image=IMAGE.ravel())
    with pytest.raises(DatasetError, match=r"image_feat\.npy: expected a 2-D array"):
        load_dataset(f"mmrec:{root}")
    root = write_mmrec(tmp_path / "junk", image=None)
    (root / "image_feat.npy").write_bytes(b"not numpy")
    with pytest.raises(DatasetError, match=r"image_feat\.npy: cannot read it as a NumPy \.npy"):
        load_dataset(f"mmrec:{root}")


def test_categories_filter_is_refused(folder):
    with pytest.raises(DatasetError, match="MMRec data has no item categories"):
        load_dataset(f"mmrec:{folder}", options=LoadOptions(categories=("baby",)))


# --- filters keep the file's split ---------------------------------------------------------------
def test_filters_keep_each_rows_label_and_whole_users(folder):
    truth = {(str(u), str(i)): lab for u, i, _, _, lab in ROWS}
    per_user = {str(u): {(str(v), str(i)) for v, i, *_ in ROWS if v == u} for u in range(N_USERS)}
    for options in (LoadOptions(max_users=10, seed=3), LoadOptions(min_item_interactions=9)):
        ds = load_dataset(f"mmrec:{folder}", options=options)
        inter = ds.interactions
        pairs = [(ds.user_ids[u], ds.item_ids[i]) for u, i in zip(inter["user"], inter["item"])]
        assert [truth[p] for p in pairs] == inter[SPLIT_LABEL].tolist()
        # features follow the items that are left, row for row
        rows = ds.items["item_id"].astype(int).to_numpy()
        np.testing.assert_array_equal(ds.item_features["image"], IMAGE[rows])
    sampled = load_dataset(f"mmrec:{folder}", options=LoadOptions(max_users=10, seed=3))
    assert sampled.n_users == 10
    for u in sampled.user_ids:  # a sampled user keeps every labelled row
        rows = sampled.interactions[sampled.interactions["user"] == sampled.user_index(u)]
        assert len(rows) == len(per_user[u])


# --- features as a fixed encoder -----------------------------------------------------------------
def test_features_are_loaded_in_item_order_and_read_only(folder):
    ds = load_dataset(f"mmrec:{folder}")
    for modality, source in (("image", IMAGE), ("text", TEXT)):
        matrix = ds.item_features[modality]
        assert matrix.dtype == np.float32 and not matrix.flags.writeable
        for raw in ("0", "7", "13", "19"):  # item indices follow the sorted raw ids
            np.testing.assert_array_equal(matrix[ds.item_index(raw)], source[int(raw)])


def test_identity_is_the_content_of_the_feature_file(tmp_path):
    a = load_dataset(f"mmrec:{write_mmrec(tmp_path / 'a')}")
    ident = encoder_id("features:image", a, tmp_path)
    assert re.fullmatch(r"features:image@sha256=[0-9a-f]{16}", ident)
    assert create_encoder("features:image", dataset=a).id == ident
    assert encoder_id("features:text", a, tmp_path).startswith("features:text@sha256=")
    same = load_dataset(f"mmrec:{write_mmrec(tmp_path / 'same')}")
    assert encoder_id("features:image", same, tmp_path) == ident
    changed = IMAGE.copy()
    changed[5, 3] += 1e-3
    other = load_dataset(f"mmrec:{write_mmrec(tmp_path / 'other', image=changed)}")
    assert encoder_id("features:image", other, tmp_path) != ident
    assert encoder_id("features:text", other, tmp_path) == encoder_id("features:text", a,
                                                                      tmp_path)


def test_vectors_are_the_normalised_rows_without_any_cache(folder):
    ds = load_dataset(f"mmrec:{folder}")
    zero = IMAGE.copy()  # rows by raw itemID
    zero[4] = 0.0  # an item without image features: has = False
    ds = replace(ds, item_features={"image": zero[ds.items["item_id"].astype(int)],
                                    "text": ds.item_features["text"]})
    train = make_split(ds, "file", seed=0).train
    ctx = FitContext(dataset=ds, train=train, train_csr=ds.csr(train), embeddings=None)
    vecs, has = item_photo_vectors(ctx, "features:image")
    expected = zero[ds.items["item_id"].astype(int)]
    norms = np.linalg.norm(expected, axis=1, keepdims=True)
    assert has.tolist() == [raw != "4" for raw in ds.item_ids]
    np.testing.assert_allclose(vecs[has], (expected / np.maximum(norms, 1e-12))[has], rtol=1e-6)
    text, text_has = item_text_vectors(ctx, "features:text")
    assert text.shape == (N_ITEMS, 8) and text_has.all()
    users, users_has = user_photo_vectors(ctx, "features:image")
    assert users_has.sum() == N_USERS - 1  # user 29 consumed nothing in train
    with pytest.raises(TechniqueUnavailable, match="features:image holds image features: use it "
                                                   "for the image role"):
        item_text_vectors(ctx, "features:image")


def test_a_dataset_without_features_refuses_them_clearly(tmp_path):
    root = write_mmrec(tmp_path / "bare", image=None, text=None)
    ds = load_dataset(f"mmrec:{root}")
    message = (f"features:image: dataset mmrec:{root} carries no item features (only mmrec: "
               "datasets with image_feat.npy or text_feat.npy do)")
    with pytest.raises(EncoderUnavailable, match=re.escape(message)):
        create_encoder("features:image", dataset=ds)
    assert encoder_id("features:image", ds, tmp_path) == "features:image (unavailable)"
    train = ds.interactions
    ctx = FitContext(dataset=ds, train=train, train_csr=ds.csr(), embeddings=None)
    with pytest.raises(TechniqueUnavailable, match=re.escape(message)):
        item_photo_vectors(ctx, "features:image")
    only_text = load_dataset(f"mmrec:{write_mmrec(tmp_path / 'text', image=None)}")
    with pytest.raises(EncoderUnavailable, match="carries only text features"):
        create_encoder("features:image", dataset=only_text)
    with pytest.raises(EncoderUnavailable, match="need the dataset"):
        create_encoder("features:image")
    with pytest.raises(EncoderUnavailable, match="features:image or features:text"):
        create_encoder("features:audio", dataset=ds)


def test_listed_among_the_encoders():
    rows = {r["spec"]: r for r in list_encoders(check=False)}
    for modality in ("image", "text"):
        row = rows[f"features:{modality}"]
        assert row["modalities"] == [modality] and row["reason"] == FEATURES_WEIGHTS
        assert row["precision"] is None


# --- end to end ---------------------------------------------------------------------------------
def _evaluate(folder: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    """``python -m core evaluate`` in a fresh interpreter that reports whether torch was loaded."""
    argv = ["evaluate", "--dataset", f"mmrec:{folder}", "--split", "file", "--techniques",
            "random,popular,text,image", "--text-encoder", "features:text", "--image-encoder",
            "features:image", "--k", "10", "--no-tune", "--format", "json", "--cache-dir",
            str(cache), *extra]
    code = ("import sys; from core.__main__ import main; rc = main(sys.argv[1:]); "
            "print('torch loaded' if 'torch' in sys.modules else 'torch-free', file=sys.stderr); "
            "sys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_evaluate_split_file_runs_text_and_image_on_the_features(tmp_path, folder):
    cache = tmp_path / "cache"
    done = _evaluate(folder, cache, "--save-run", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    assert "torch-free" in done.stderr
    rows = json.loads(done.stdout)
    recall = {r["technique"]: r["value"] for r in rows if r["metric"] == "recall"}
    encoders = {r["technique"]: r["encoder"] for r in rows}
    assert encoders["text"] == "features:text" and encoders["image"] == "features:image"
    assert {r["n_users"] for r in rows} == {N_USERS - 1}  # user 29 has no train row
    # the features say which group an item is in: every held-out item is in the top 10 of 15
    assert recall["text"] == 1.0 and recall["image"] == 1.0
    assert recall["random"] < 1.0
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["split"]["kind"] == "file" and run["split"]["cold_start_users"] == 1
    assert run["encoder_ids"]["image"]["id"].startswith("features:image@sha256=")

    # the same data again: every run is reused; changed image features: only image is recomputed
    again = _evaluate(folder, cache)
    assert again.stderr.count("reused stored run") == 4, again.stderr
    changed = IMAGE.copy()
    changed[0, 0] += 0.5
    np.save(folder / "image_feat.npy", changed)
    after = _evaluate(folder, cache)
    assert re.search(r"^stored run \w+: image$", after.stderr, re.M), after.stderr
    assert after.stderr.count("reused stored run") == 3


def test_evaluate_without_features_skips_with_the_reason(tmp_path, capsys):
    root = write_mmrec(tmp_path / "bare", image=None, text=None)
    code = main(["evaluate", "--dataset", f"mmrec:{root}", "--split", "file", "--techniques",
                 "popular,image", "--image-encoder", "features:image", "--k", "10", "--no-tune",
                 "--cache-dir", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert code == 0
    assert (f"skipped: image (features:image: dataset mmrec:{root} carries no item features"
            in out)
