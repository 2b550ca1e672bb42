"""The fused localizer: uint8 frame in, heatmap out, as one PyTorch module ready for ONNX export.

image uint8 N x H x W x 3 RGB -> float, mean/std, NCHW -> encoder (-> ReLU) -> per-position L2
normalisation -> 1x1 convolution with w* (K rows = K output channels) -> clamp at 0 -> per-image
min-max to [0, 1] (a constant map gives zeros) -> heatmap float32 N x K x h x w.

``half=True`` makes the mixed-precision twin: the encoder's weights and activations in float16, while
LayerNorm statistics (see ``backbones.vit.LayerNorm``), the L2 normalisation, the projection and the min-max
stay float32, since squared norms of 384 to 2048 channels overflow float16.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from uolrps.calib.encoder import Encoder

NORM_EPS = 1e-12  # as F.normalize
RANGE_EPS = 1e-8  # min-max denominator: a constant map gives 0, never NaN


def l2_normalise(f: torch.Tensor) -> torch.Tensor:
    """F.normalize(f, dim=1), written so that it exports to plain ONNX ops."""
    return f / torch.sqrt((f * f).sum(dim=1, keepdim=True)).clamp_min(NORM_EPS)


def minmax(s: torch.Tensor) -> torch.Tensor:
    lo = s.amin(dim=(2, 3), keepdim=True)
    hi = s.amax(dim=(2, 3), keepdim=True)
    return (s - lo) / (hi - lo + RANGE_EPS)


class HeatmapGraph(nn.Module):
    def __init__(self, encoder: Encoder, w: np.ndarray, half: bool = False):
        super().__init__()
        w = np.atleast_2d(np.asarray(w, dtype=np.float32))
        if w.shape[1] != encoder.info.channels:
            from uolrps.core.errors import UserError

            raise UserError(f"w* has {w.shape[1]} channels but backbone {encoder.info.backbone} gives "
                            f"{encoder.info.channels}: was it calibrated with another backbone?")
        self.half = half
        self.net = copy.deepcopy(encoder.net)
        if half:
            self.net = self.net.half()
        self.register_buffer("mean", torch.tensor(encoder.info.mean, dtype=torch.float32).view(1, 1, 1, 3))
        self.register_buffer("inv_std", 1.0 / torch.tensor(encoder.info.std, dtype=torch.float32).view(1, 1, 1, 3))
        self.proj = nn.Conv2d(w.shape[1], w.shape[0], kernel_size=1, bias=False)
        with torch.no_grad():
            self.proj.weight.copy_(torch.from_numpy(w)[:, :, None, None])
        self.eval().requires_grad_(False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = ((image.float() - self.mean) * self.inv_std).permute(0, 3, 1, 2)
        if self.half:
            x = x.half()
        f = torch.relu(self.net(x)).float()
        s = torch.clamp(self.proj(l2_normalise(f)), min=0.0)
        return minmax(s)
