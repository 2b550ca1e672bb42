"""A frozen encoder with its weights and its input normalisation: raw uint8 RGB in, method features out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from uolrps.calib.backbones import get_spec
from uolrps.calib.checkpoints import load_strict, read_state_dict
from uolrps.core.digest import sha256_file


@dataclass(frozen=True)
class EncoderInfo:
    backbone: str
    input_size: tuple[int, int]
    grid: tuple[int, int]
    channels: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights: str  # where the weights came from (path or URL)
    weights_sha256: str
    dilated: bool = False


class Encoder(nn.Module):
    """uint8 or float RGB N x H x W x 3 (0..255) -> ReLU'd features N x C x h x w."""

    def __init__(self, net: nn.Module, info: EncoderInfo):
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.info = info
        self.register_buffer("mean", torch.tensor(info.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("inv_std", 1.0 / torch.tensor(info.std, dtype=torch.float32).view(1, 3, 1, 1))

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float()
        return (x - self.mean) * self.inv_std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.net(self.normalise(images)))


def build_encoder(backbone: str, weights: str | Path | None = None, size: int | tuple[int, int] = 224,
                  dilated: bool = False, progress: bool = True) -> Encoder:
    """Encoder ``backbone`` at input ``size`` with ``weights`` (a file), or its published/bundled weights."""
    from uolrps.core.errors import OptionError, UserError

    spec = get_spec(backbone)
    H, W = (size, size) if isinstance(size, int) else tuple(size)
    if dilated and backbone != "r50":
        raise OptionError("dilated applies to the r50 backbone only", "dilated")
    if min(H, W) < spec.stride:
        raise UserError(f"input size {H}x{W} is smaller than the {backbone} stride {spec.stride}")
    net = spec.make((H, W), dilated)
    if weights is None:
        if spec.url is None:
            from uolrps.calib.backbones.efflite import bundled_weights_path

            weights = bundled_weights_path()
            digest = sha256_file(weights)
        else:
            from uolrps.calib.download import cached_weights

            def check(path: Path) -> None:  # a hand-placed cache file: strict load before its hash is recorded
                load_strict(spec.make((H, W), dilated), read_state_dict(path), f"weights file {path}", backbone)

            weights, digest = cached_weights(spec.url, progress=progress, check=check)
    else:
        digest = sha256_file(weights) if Path(weights).is_file() else ""
    load_strict(net, read_state_dict(weights), f"weights file {weights}", backbone)
    stride = 16 if dilated else spec.stride
    if backbone.startswith("vit"):
        grid = (H // stride, W // stride)
    else:
        with torch.no_grad():
            grid = tuple(net.eval()(torch.zeros(1, 3, H, W)).shape[-2:])
    info = EncoderInfo(backbone, (H, W), grid, spec.channels, spec.mean, spec.std,
                       str(weights), digest, dilated)
    return Encoder(net, info)


def features(backbone: str | Encoder, weights=None, images_rgb=(), size=224, batch: int = 32) -> np.ndarray:
    """Raw features (after ReLU, before L2 normalisation) N x C x h x w of RGB uint8 images.

    Images are stretched to ``size`` with the project's one resize (OpenCV INTER_LINEAR).
    """
    from uolrps.core.images import resize

    enc = backbone if isinstance(backbone, Encoder) else build_encoder(backbone, weights, size)
    H, W = enc.info.input_size
    out = []
    with torch.inference_mode():
        for i in range(0, len(images_rgb), batch):
            chunk = np.stack([resize(im, (H, W)) for im in images_rgb[i:i + batch]])
            out.append(enc(torch.from_numpy(chunk)).numpy())
    if not out:
        return np.zeros((0, enc.info.channels) + tuple(enc.info.grid), dtype=np.float32)
    return np.concatenate(out)
