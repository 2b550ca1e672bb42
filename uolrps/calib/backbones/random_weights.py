"""Plausible random weights in a backbone's own key layout, for timing and export checks where the published
weights cannot be downloaded (tests, benchmarks, scripts/random_vits_checkpoint.py). Never a substitute for
real weights: the heatmaps they give localize nothing."""

from __future__ import annotations

import math


def random_state_dict(module, seed: int = 0) -> dict:
    """A state dict with ``module``'s keys and shapes: norm scales near 1, BatchNorm statistics sane, other
    weights at a He-like scale (activations stay finite through a ViT's 12 blocks)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in module.state_dict().items():
        if not v.is_floating_point():
            out[k] = v.clone()
        elif k.endswith("running_var"):
            out[k] = torch.rand(v.shape, generator=g) + 0.5
        elif k.endswith("running_mean") or (k.endswith("bias") and ("norm" in k or "bn" in k)):
            out[k] = torch.randn(v.shape, generator=g) * 0.1
        elif k.endswith("weight") and v.ndim == 1:
            out[k] = 1.0 + torch.randn(v.shape, generator=g) * 0.1
        else:
            fan_in = max(1, v[0].numel()) if v.ndim > 1 else 1
            out[k] = torch.randn(v.shape, generator=g) / math.sqrt(fan_in)
    return out
