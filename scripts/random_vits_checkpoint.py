"""Write a ViT-S/16 checkpoint in the official DINO layout with random values (plausible scales), for timing and
export checks where the published weights cannot be downloaded. Usage:

    python scripts/random_vits_checkpoint.py vits_random.pth [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    import torch

    from uolrps.calib.backbones.random_weights import random_state_dict
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
