"""Write a ViT-S/16 checkpoint in the official DINO layout with random values (plausible scales), for timing and
export checks where the published weights cannot be downloaded. Usage:

    python scripts/random_vits_checkpoint.py vits_random.pth [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def random_state_dict(module, seed: int = 0) -> dict:
    import torch

    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in module.state_dict().items():
        if not v.is_floating_point():
            out[k] = v.clone()
        elif k.endswith("bias") and "norm" in k:
            out[k] = torch.randn(v.shape, generator=g) * 0.1
        elif k.endswith("weight") and v.ndim == 1:  # norm scales near 1
            out[k] = 1.0 + torch.randn(v.shape, generator=g) * 0.1
        else:  # He-like scale keeps activations finite through 12 blocks
            fan_in = max(1, v[0].numel()) if v.ndim > 1 else 1
            out[k] = torch.randn(v.shape, generator=g) / math.sqrt(fan_in)
    return out


def main() -> int:
    import torch

    from uolrps.calib.backbones.vit import VisionTransformer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.save(random_state_dict(VisionTransformer("vits"), args.seed), args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
