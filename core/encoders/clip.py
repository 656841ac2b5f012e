"""CLIP through open_clip: photos and texts in one space.

Specs: ``clip:<model>/<pretrained tag>`` (any pair of ``open_clip.list_pretrained()``),
``clip:<model>/file=<path>`` (a local checkpoint; its sha256 is part of the id) and
``clip:<model>/untrained`` (seeded random weights: same compute, meaningless vectors; tests and
benchmarks only). Append ``+chunk`` to split long texts into chunks and average them.

Text context: CLIP reads at most 77 tokens (about 55 words); longer texts are truncated by default.
With ``+chunk`` a text is split into windows of 75 BPE tokens, each window is encoded, and the
L2-normalised mean of the windows is its vector (a different id, so both can be cached).
"""

from __future__ import annotations

import ast
import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

from core.encoders.precision import Requested
from core.encoders.runtime import TorchEncoder
from core.encoders.weights import file_sha256, hf_cached_file, offline, unavailable
from core.errors import EncoderUnavailable

CHUNK_SUFFIX = "+chunk"
UNTRAINED_SEED = 0


def clip_url_cache_file(url: str, cache_dir: str | None = None) -> str | None:
    """Path of a URL-hosted open_clip checkpoint in its download cache, if present."""
    root = cache_dir or os.path.expanduser("~/.cache/clip")
    path = os.path.join(root, os.path.basename(url))
    return path if os.path.isfile(path) else None


# --- open_clip's pretrained table, read without importing open_clip (which imports torch) -------
Registry = dict[str, dict[str, dict[str, Any]]]
_registry_memo: dict[tuple[str, int], Registry] = {}
_OPAQUE = object()  # a value the table reader does not evaluate (only url / hf_hub matter)


def _open_clip_table_file() -> Path | None:
    """``open_clip/pretrained.py`` of the installed open_clip, found without importing it."""
    try:
        found = importlib.util.find_spec("open_clip")
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(next(iter(found.submodule_search_locations))) / "pretrained.py"
    return path if path.is_file() else None


def _literal(node: ast.AST, names: dict[str, Any]) -> Any:
    """The value of a node of open_clip's table: literals, names bound earlier in the module,
    ``dict(...)`` and the ``_pcfg(url=..., hf_hub=..., **kw)`` family (a ``*cfg`` call gives
    ``{"url", "hf_hub", **kw}``); anything else is ``_OPAQUE``."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return names.get(node.id, _OPAQUE)
    if isinstance(node, (ast.Tuple, ast.List)):
        return [_literal(e, names) for e in node.elts]
    if isinstance(node, ast.Dict):
        out: dict[str, Any] = {}
        for key, value in zip(node.keys, node.values):
            item = _literal(value, names)
            if key is None:  # {**other}
                out.update(item if isinstance(item, dict) else {})
            elif isinstance(k := _literal(key, names), str):
                out[k] = item
        return out
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        kwargs: dict[str, Any] = {}
        for kw in node.keywords:
            item = _literal(kw.value, names)
            if kw.arg is None:
                kwargs.update(item if isinstance(item, dict) else {})
            else:
                kwargs[kw.arg] = item
        if node.func.id == "dict" and not node.args:
            return kwargs
        if node.func.id.endswith("cfg"):
            positional = dict(zip(("url", "hf_hub"), (_literal(a, names) for a in node.args)))
            return {"url": "", "hf_hub": "", **positional, **kwargs}
    return _OPAQUE


def _parse_table(source: str) -> Registry:
    """``_PRETRAINED`` of open_clip's ``pretrained.py`` source, with its ``-quickgelu`` copies
    (which open_clip adds in a loop after the table): ``{model: {tag: {url, hf_hub,
    quick_gelu}}}``. Raises ``ValueError`` when the source has no readable table."""
    names: dict[str, Any] = {}
    for stmt in ast.parse(source).body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 \
                and isinstance(stmt.targets[0], ast.Name):
            names[stmt.targets[0].id] = _literal(stmt.value, names)
    table = names.get("_PRETRAINED")
    if not isinstance(table, dict) or not table:
        raise ValueError("no _PRETRAINED table")
    out: Registry = {}
    for model, tags in table.items():
        if not isinstance(tags, dict):
            raise ValueError(f"_PRETRAINED[{model!r}] is not a dict")
        out[model] = {}
        for tag, cfg in tags.items():
            if not isinstance(cfg, dict):
                raise ValueError(f"_PRETRAINED[{model!r}][{tag!r}] is not a dict")
            url, hub = cfg.get("url", ""), cfg.get("hf_hub", "")
            out[model][tag] = {"url": url if isinstance(url, str) else "",
                               "hf_hub": hub if isinstance(hub, str) else "",
                               "quick_gelu": cfg.get("quick_gelu") is True}
    for model, tags in list(out.items()):
        quick = {tag: dict(cfg) for tag, cfg in tags.items() if cfg["quick_gelu"]}
        if quick:
            out[model + "-quickgelu"] = quick
    return out


def _imported_table() -> Registry:
    """The same table through open_clip itself (imports torch): the fallback when its source
    cannot be read."""
    import open_clip

    out: Registry = {}
    for model, tag in open_clip.list_pretrained():
        cfg = open_clip.get_pretrained_cfg(model, tag) or {}
        out.setdefault(model, {})[tag] = {"url": cfg.get("url", "") or "",
                                          "hf_hub": cfg.get("hf_hub", "") or "",
                                          "quick_gelu": bool(cfg.get("quick_gelu"))}
    return out


def pretrained_registry() -> Registry:
    """open_clip's pretrained weights, ``{model: {tag: {url, hf_hub, quick_gelu}}}``, in
    ``open_clip.list_pretrained()`` order; empty when open_clip is not installed.

    Read from the installed ``open_clip/pretrained.py`` source with ``ast`` (no import, so no
    torch: the app's encoder list stays fast), memoised per file and mtime; if that file cannot
    be read as a table, open_clip itself is asked. Do not mutate the result."""
    path = _open_clip_table_file()
    if path is None:
        return {}
    key = (str(path), path.stat().st_mtime_ns)
    if key not in _registry_memo:
        try:
            table = _parse_table(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            table = _imported_table()
        _registry_memo.clear()
        _registry_memo[key] = table
    return _registry_memo[key]


def pretrained_pairs() -> list[tuple[str, str]]:
    """Every ``(model, tag)`` open_clip has pretrained weights for (``list_pretrained()``)."""
    return [(model, tag) for model, tags in pretrained_registry().items() for tag in tags]


def pretrained_cfg(model: str, tag: str) -> dict[str, Any]:
    """``{url, hf_hub, quick_gelu}`` of ``model``/``tag`` (the tag normalised as open_clip
    does: lower case, ``-`` → ``_``), or ``{}`` for an unknown pair."""
    return dict(pretrained_registry().get(model, {}).get(tag.lower().replace("-", "_"), {}))


def local_pretrained_file(model: str, tag: str) -> str | None:
    """Where the weights of ``model``/``tag`` already are on disk (HF or URL cache), else None.
    Looks at files only (no open_clip or torch import, no network)."""
    cfg = pretrained_cfg(model, tag)
    hub = cfg.get("hf_hub", "")
    if hub:
        repo, filename = os.path.split(hub)
        names = [filename] if filename else ["open_clip_model.safetensors",
                                             "open_clip_pytorch_model.bin"]
        if filename.endswith((".bin", ".pth", ".pt")):
            names.insert(0, filename.rsplit(".", 1)[0] + ".safetensors")
        hit = hf_cached_file(repo, names)
        if hit:
            return hit
    if cfg.get("url"):
        return clip_url_cache_file(cfg["url"])
    return None


class ClipEncoder(TorchEncoder):
    """open_clip model; ``shared_space`` is True (image and text vectors are comparable)."""

    kind = "clip"
    shared_space = True
    batch_size = 32

    def __init__(self, spec: str, precision: Requested | None = None) -> None:
        super().__init__(spec, precision)
        import open_clip

        body = self.base_spec.split(":", 1)[1]
        self.chunk_long_texts = body.endswith(CHUNK_SUFFIX)
        if self.chunk_long_texts:
            body = body[: -len(CHUNK_SUFFIX)]
        model, sep, weights = body.partition("/")
        if not sep or not model or not weights:
            raise EncoderUnavailable(
                f"{spec}: CLIP specs look like clip:<model>/<pretrained>, clip:<model>/file=<path> "
                "or clip:<model>/untrained (see `python -m core encoders`)"
            )
        cfg = open_clip.get_model_config(model)
        if cfg is None:
            raise EncoderUnavailable(
                f"{spec}: unknown open_clip model {model!r}; known: "
                f"{', '.join(sorted(open_clip.list_models())[:12])}, ..."
            )
        self.model_name = model
        self.dim = int(cfg["embed_dim"])
        self.modalities = frozenset({"image", "text"})
        self.checkpoint: str | None = None
        self.tag: str | None = None
        suffix = CHUNK_SUFFIX if self.chunk_long_texts else ""
        if weights == "untrained":
            self.untrained = True
            self.base_id = f"clip:{model}/untrained-seed{UNTRAINED_SEED}{suffix}"
        elif weights.startswith("file="):
            path = Path(weights[len("file="):]).expanduser()
            if not path.is_file():
                raise EncoderUnavailable(f"{spec}: checkpoint file {path} does not exist")
            self.checkpoint = str(path.resolve())
            self.base_id = f"clip:{model}/sha256={file_sha256(path)[:16]}{suffix}"
        else:
            if not open_clip.get_pretrained_cfg(model, weights):
                tags = open_clip.list_pretrained_tags_by_model(model)
                raise EncoderUnavailable(
                    f"{spec}: {weights!r} is not a pretrained tag of {model}; known tags: "
                    f"{', '.join(tags) or 'none'} (or use file=<path> / untrained)"
                )
            self.tag = weights
            self.base_id = f"clip:{model}/{weights}{suffix}"

    def _build(self) -> None:
        import open_clip
        import torch

        kwargs: dict[str, Any] = {"pretrained_text": False}
        if self.untrained:
            torch.manual_seed(UNTRAINED_SEED)
            pretrained = None
        elif self.checkpoint:
            pretrained = self.checkpoint
        else:
            pretrained = self.tag
            local = local_pretrained_file(self.model_name, self.tag)
            if local is None and offline():
                raise unavailable(
                    f"CLIP {self.model_name}/{self.tag}", self.spec,
                    "offline and not in the hub cache",
                    f"--encoder clip:{self.model_name}/file=/path/to/checkpoint.pt",
                )
            if (open_clip.get_pretrained_cfg(self.model_name, self.tag) or {}).get("quick_gelu"):
                kwargs["force_quick_gelu"] = True
        try:
            quiet = logging.getLogger()
            level = quiet.level
            if self.untrained:  # open_clip warns that no weights were loaded: that is the point
                quiet.setLevel(logging.ERROR)
            try:
                model, _, preprocess = open_clip.create_model_and_transforms(
                    self.model_name, pretrained=pretrained, **kwargs
                )
            finally:
                quiet.setLevel(level)
        except EncoderUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - download / checkpoint errors
            raise unavailable(
                f"CLIP {self.model_name}/{self.tag or self.checkpoint}", self.spec,
                f"{type(exc).__name__}: {str(exc)[:200]}",
                f"--encoder clip:{self.model_name}/file=/path/to/checkpoint.pt",
            ) from exc
        model.eval()
        self._trim_ok: bool | None = None
        self._preprocess_fn = preprocess
        self._tokenizer = open_clip.get_tokenizer(self.model_name)
        self._model = model

    def _preprocess(self, image):
        return self._preprocess_fn(image)

    def _image_transform(self):
        return self._preprocess_fn

    def _forward_images(self, batch):
        return self._model.encode_image(batch)

    # longest first, so each batch holds texts of similar length and _encode_tokens trims its
    # context to the batch's longest text
    length_sorted_batches = True

    def _encode_tokens(self, tokens):
        """``encode_text`` on a context trimmed to the batch's longest text.

        CLIP's text tower is causal and pools the end-of-text token (the largest token id), so the
        padding after a text's end never reaches its vector: running only the first ``L``
        positions (``L`` = the last end-of-text + 1) gives the same vectors as the full 77 with
        less work on short texts. Checked against ``encode_text`` once per model on the probe
        texts; models built otherwise (custom text towers, other pooling) run ``encode_text``."""
        model = self._model
        if self._trim_ok is None:
            self._trim_ok = self._check_trim()
        if not self._trim_ok:
            return model.encode_text(tokens)
        return self._trimmed_encode(tokens)

    def _trimmed_encode(self, tokens):
        import torch

        model = self._model
        ends = tokens.argmax(dim=-1)
        n_ctx = int(ends.max()) + 1
        tokens = tokens[:, :n_ctx]
        cast = model.transformer.get_cast_dtype()
        x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:n_ctx].to(cast)
        x = model.transformer(x, attn_mask=model.attn_mask[:n_ctx, :n_ctx])
        x = model.ln_final(x)
        x = x[torch.arange(x.shape[0]), ends]
        proj = model.text_projection
        if proj is None:
            return x
        return proj(x) if isinstance(proj, torch.nn.Module) else x @ proj

    def _check_trim(self) -> bool:
        """Whether ``_trimmed_encode`` reproduces ``encode_text`` for this model (the standard
        open_clip ``CLIP`` with a causal mask and argmax pooling) on a few texts of mixed length."""
        import torch

        model = self._model
        shaped = (getattr(model, "text_pool_type", None) == "argmax"
                  and getattr(model, "cls_emb", None) is None
                  and isinstance(getattr(model, "attn_mask", None), torch.Tensor)
                  and all(hasattr(model, a) for a in ("token_embedding", "positional_embedding",
                                                      "transformer", "ln_final",
                                                      "text_projection")))
        if not shaped:
            return False
        tokens = self._tokenizer(["a bowl of ramen", "the service was slow but the sushi was "
                                  "fresh and the staff friendly " * 2, "x"])
        try:  # in fp32 whatever the precision: the check is about the arithmetic, not rounding
            with torch.inference_mode(), torch.autocast("cpu", enabled=False):
                want = model.encode_text(tokens).float()
                got = self._trimmed_encode(tokens).float()
        except Exception:  # noqa: BLE001 - any shape mismatch: keep the full context
            return False
        cos = torch.nn.functional.cosine_similarity(got, want, dim=-1)
        return bool(got.shape == want.shape and cos.min() >= 0.99999)

    def _forward_texts(self, texts: list[str]):
        import torch

        if not self.chunk_long_texts:
            return self._encode_tokens(self._tokenizer(texts))
        rows, owner = self._chunk_tokens(texts)
        feats = self._encode_tokens(rows).float()
        feats = feats / feats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        out = torch.zeros((len(texts), feats.shape[1]), dtype=feats.dtype)
        out.index_add_(0, owner, feats)
        return out

    def _chunk_tokens(self, texts: list[str]):
        """Token rows of every ≤75-token window of every text, and the text each row belongs to."""
        import torch

        tok = self._tokenizer
        ctx = int(getattr(tok, "context_length", 77) or 77)
        if not hasattr(tok, "encode") or not hasattr(tok, "sot_token_id"):
            # non-BPE tokenizers (e.g. SigLIP's): windows of 40 words
            rows, owner = [], []
            for i, text in enumerate(texts):
                words = text.split() or [""]
                for j in range(0, len(words), 40):
                    rows.append(" ".join(words[j:j + 40]))
                    owner.append(i)
            return tok(rows), torch.tensor(owner)
        width = ctx - 2
        rows, owner = [], []
        for i, text in enumerate(texts):
            ids = tok.encode(text) or []
            windows = [ids[j:j + width] for j in range(0, max(1, len(ids)), width)]
            for w in windows:
                row = [tok.sot_token_id, *w, tok.eot_token_id]
                rows.append(row + [0] * (ctx - len(row)))
                owner.append(i)
        return torch.tensor(rows, dtype=torch.long), torch.tensor(owner)
