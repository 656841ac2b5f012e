"""The sidebar's encoder probes look at files only: no torch, open_clip or torchvision import.

Each probe runs in a fresh interpreter (``sys.modules`` of this test process already holds torch),
once on this machine's caches and once on a private ``$HOME`` whose hub caches hold a few fake
weight files, where the rows must say exactly what open_clip's and torchvision's own registries
say is here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.encoders.clip import _imported_table, pretrained_pairs, pretrained_registry
from core.encoders.cnn import TORCHVISION_WEIGHT_URLS, torch_hub_dir

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "open_clip", "torchvision", "timm", "transformers", "sentence_transformers")
#: what the first page of the app asks: the pickers, the default CLIP, Search's shared-space check
PROBE = f"""
import json, sys
from core.encoders import clip_weights_here, list_encoders
from core.lab.choices import default_encoders, encoder_choices, trained_shared_space
choices = encoder_choices(check=True)
rows = list_encoders(check=True)
out = {{
    "available": sorted(r["spec"] for r in rows if r["available"]),
    "reasons": {{r["spec"]: r["reason"] for r in rows}},
    "specs": [r["spec"] for r in rows],
    "default_clip": default_encoders(choices)["clip"],
    "here": clip_weights_here("clip:ViT-B-32/openai"),
    "shared": trained_shared_space("clip:ViT-B-32/openai"),
    "heavy": [m for m in {HEAVY!r} if m in sys.modules],
}}
print(json.dumps(out))
"""


def _run(code: str, env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _private_home(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TORCH_HOME",
                        "XDG_CACHE_HOME")}
    return {**env, "HOME": str(home), "HF_HUB_OFFLINE": "1"}


def _hf_file(home: Path, repo: str, filename: str) -> None:
    folder = home / ".cache" / "huggingface" / "hub" / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text("0123abcd")
    (folder / "snapshots" / "0123abcd").mkdir(parents=True, exist_ok=True)
    (folder / "snapshots" / "0123abcd" / filename).write_bytes(b"fake weights")


def test_first_page_probes_import_no_torch():
    out = _run(PROBE, dict(os.environ))
    assert out["heavy"] == []
    assert {"text:minilm", "cnn:efficientnet-lite0", "clip:ViT-B-32/untrained"} <= set(
        out["available"])


def test_probes_agree_with_open_clip_and_torchvision(tmp_path: Path):
    """Weights in each cache a probe reads (HF hub: a showcase CLIP, a non-showcase CLIP and a
    sentence-transformers model; open_clip's URL cache; torch hub checkpoints) are found without
    torch, and the same process then checks every pair against open_clip's and torchvision's
    own registries."""
    home = tmp_path / "home"
    _hf_file(home, "timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors")
    _hf_file(home, "timm/resnet50_clip.yfcc15m", "open_clip_pytorch_model.bin")
    _hf_file(home, "sentence-transformers/all-mpnet-base-v2", "config.json")
    (home / ".cache" / "clip").mkdir(parents=True)
    (home / ".cache" / "clip" / "RN101.pt").write_bytes(b"fake")  # URL-hosted openai RN101
    checkpoints = home / ".cache" / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "resnet101-cd907fc2.pth").write_bytes(b"fake")
    (checkpoints / "vgg16-00000000.pth").write_bytes(b"fake")  # not torchvision's default file

    truth = PROBE + """
import os, open_clip, torchvision.models as tvm
from core.encoders.clip import clip_url_cache_file
from core.encoders.weights import hf_cached_file
def here(model, tag):  # the probe as it was, through open_clip's own table
    cfg = open_clip.get_pretrained_cfg(model, tag) or {}
    repo, name = os.path.split(cfg.get("hf_hub", ""))
    names = [name] if name else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    if name.endswith((".bin", ".pth", ".pt")):
        names.insert(0, name.rsplit(".", 1)[0] + ".safetensors")
    if repo and hf_cached_file(repo, names):
        return True
    return bool(cfg.get("url")) and clip_url_cache_file(cfg["url"]) is not None
hub = os.path.expanduser("~/.cache/torch/hub/checkpoints")
print(json.dumps({
    "clip": sorted(f"clip:{m}/{t}" for m, t in open_clip.list_pretrained() if here(m, t)),
    "cnn": sorted(f"cnn:{a}" for a in ("resnet101", "vgg16", "mobilenet_v3_large") if
                  os.path.isfile(os.path.join(hub, os.path.basename(
                      tvm.get_model_weights(a).DEFAULT.url)))),
}))
"""
    done = subprocess.run([sys.executable, "-c", truth], cwd=ROOT, env=_private_home(home),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    probe, registries = (json.loads(line) for line in done.stdout.strip().splitlines()[-2:])
    assert probe["heavy"] == []
    available = set(probe["available"])
    assert {s for s in available if s.startswith("clip:") and "untrained" not in s} == set(
        registries["clip"])
    assert {"clip:ViT-B-32/openai", "clip:RN50/yfcc15m", "clip:RN50-quickgelu/yfcc15m",
            "clip:RN101/openai"} <= available
    assert "clip:RN50/yfcc15m" in probe["specs"]  # cached, so listed beside the showcase
    assert probe["reasons"]["clip:ViT-B-32/openai"] == "in the local hub cache"
    assert {s for s in available if s.startswith("cnn:") and s != "cnn:efficientnet-lite0"} == \
        set(registries["cnn"]) == {"cnn:resnet101"}
    assert "text:all-mpnet-base-v2" in available and "bert:bert-large-uncased" not in available
    assert probe["default_clip"] == "clip:ViT-B-32/openai"
    assert probe["here"] is True and probe["shared"] is True


def test_open_clip_table_is_read_as_open_clip_has_it():
    """The table read from open_clip's source (no import) equals open_clip's own, pair by pair
    and in order, with the ``-quickgelu`` copies open_clip adds."""
    open_clip = pytest.importorskip("open_clip")
    assert pretrained_pairs() == open_clip.list_pretrained()
    assert pretrained_registry() == _imported_table()


def test_torchvision_weight_files_are_torchvisions_defaults(monkeypatch, tmp_path: Path):
    tvm = pytest.importorskip("torchvision.models")
    import torch.hub

    for arch, url in TORCHVISION_WEIGHT_URLS.items():
        assert tvm.get_model_weights(arch).DEFAULT.url == url
    monkeypatch.delitem(sys.modules, "torch.hub")  # the rule used before torch is imported
    for env in ({}, {"XDG_CACHE_HOME": str(tmp_path / "xdg")},
                {"TORCH_HOME": str(tmp_path / "th"), "XDG_CACHE_HOME": str(tmp_path / "x")}):
        for key in ("TORCH_HOME", "XDG_CACHE_HOME"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert torch_hub_dir() == Path(torch.hub.get_dir())


def test_hub_cache_lookup_equals_huggingface_hubs(tmp_path: Path, monkeypatch):
    """``hf_cached_file`` reads the hub cache's files itself (no huggingface_hub import on the
    first page): same folder as huggingface_hub resolves from the environment, same hits."""
    from huggingface_hub import try_to_load_from_cache

    from core.encoders.weights import hf_cached_file, hf_hub_cache

    for env in ({}, {"HF_HOME": str(tmp_path / "hf")}, {"XDG_CACHE_HOME": str(tmp_path / "x")},
                {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hub")}):
        full = {**_private_home(tmp_path / "home"), **env}
        theirs = _run("import json; from huggingface_hub import constants; "
                      "print(json.dumps(constants.HF_HUB_CACHE))", full)
        for key in ("HOME", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME"):
            monkeypatch.delenv(key, raising=False)
            if key in full:
                monkeypatch.setenv(key, full[key])
        assert hf_hub_cache() == Path(theirs)

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    for key in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(key, raising=False)
    _hf_file(home, "org/model", "config.json")
    no_refs = home / ".cache" / "huggingface" / "hub" / "models--org--norefs" / "snapshots" / "a"
    no_refs.mkdir(parents=True)
    (no_refs / "config.json").write_text("{}")
    cache = hf_hub_cache()
    for repo, name in [("org/model", "config.json"), ("org/model", "weights.bin"),
                       ("org/norefs", "config.json"), ("org/absent", "config.json")]:
        hit = try_to_load_from_cache(repo, name, cache_dir=str(cache))
        assert hf_cached_file(repo, [name]) == (hit if isinstance(hit, str) else None), repo
    assert hf_cached_file("org/model", ["weights.bin", "config.json"]).endswith("config.json")
