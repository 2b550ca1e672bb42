"""How many calibration images make a stable w*: cosine to the full-set w* against the number of images.

    python benchmarks/calib_stability.py [--images ../shared/data/imagenet-calib] [--backbone efflite0]
        [--size 224] [--cache /tmp/calib_stability_efflite0.npz]

Every image's contribution (its mean feature and mean L2-normalised feature over the S x S grid) is computed
once, with the same encoder, resize and ReLU as `uolrps calib`; v, u and w* of any subset are then means of
those rows (exact: every image has the same number of positions), so hundreds of random subsets cost
nothing. Printed, per subset size n:
  - cos to full: cosine between w*(random n images) and w*(all images), over many random subsets
    (mean, 5th percentile, minimum);
  - split-half: cosine between the w* of the two halves of each subset (what `uolrps calib` can measure on
    the user's own images, and prints);
and, per class folder (a uniform set: one ImageNet class, 300 images), its w*'s cosine to the full-set w*.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def per_image_means(images: Path, backbone: str, size: int, batch: int = 32) -> tuple[np.ndarray, np.ndarray, list[str]]:
    import torch

    from uolrps.calib.encoder import build_encoder
    from uolrps.core.images import list_images, read_rgb, resize

    enc = build_encoder(backbone, None, size, progress=False)
    paths = list_images(images)
    F, Nn, kept = [], [], []
    t0 = time.monotonic()
    with torch.inference_mode():
        for i in range(0, len(paths), batch):
            chunk = [(p, read_rgb(p)) for p in paths[i:i + batch]]
            chunk = [(p, resize(im, (size, size))) for p, im in chunk if im is not None]
            f = enc(torch.from_numpy(np.stack([im for _, im in chunk]))).double().flatten(2)  # N x C x P
            n = f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)
            F.append(f.mean(2).numpy())
            Nn.append(n.mean(2).numpy())
            kept += [str(p) for p, _ in chunk]
            print(f"\r{len(kept)}/{len(paths)} images, {len(kept) / (time.monotonic() - t0):.1f}/s", end="",
                  file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return np.concatenate(F), np.concatenate(Nn), kept


def wstar(F: np.ndarray, Nn: np.ndarray, idx) -> np.ndarray:
    from uolrps.calib.means import wstar_from_means

    return wstar_from_means(F[idx].mean(0), Nn[idx].mean(0))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "imagenet-calib"))
    ap.add_argument("--backbone", default="efflite0")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--cache", default=None, help="npz of the per-image rows (reused when it exists)")
    ap.add_argument("--sizes", default="5,10,20,50,100,200,500,1500,3000")
    args = ap.parse_args()
    cache = Path(args.cache) if args.cache else None
    if cache and cache.is_file():
        z = np.load(cache)
        F, Nn, paths = z["F"], z["N"], list(z["paths"])
    else:
        t0 = time.monotonic()
        F, Nn, paths = per_image_means(Path(args.images), args.backbone, args.size)
        print(f"per-image rows of {len(paths)} images in {time.monotonic() - t0:.0f} s", file=sys.stderr)
        if cache:
            np.savez(cache, F=F, N=Nn, paths=np.array(paths))
    total = len(paths)
    full = wstar(F, Nn, np.arange(total))
    rng = np.random.default_rng(0)
    print(f"{args.backbone} at {args.size}, {total} images of {args.images}")
    print(f"{'n':>5} {'subsets':>7} | {'cos to full: mean':>17} {'p5':>6} {'min':>6} | {'split-half: mean':>16} {'p5':>6}")
    for n in [int(s) for s in args.sizes.split(",") if int(s) <= total]:
        reps = 200 if n <= 100 else (50 if n <= 500 else 20)
        cos, half = [], []
        for _ in range(reps if n < total else 20):
            idx = rng.permutation(total)[:n]
            cos.append(float(full @ wstar(F, Nn, idx)) if n < total else 1.0)
            if n >= 2:
                half.append(float(wstar(F, Nn, idx[: n // 2]) @ wstar(F, Nn, idx[n // 2:])))
        cos, half = np.array(cos), np.array(half)
        print(f"{n:>5} {len(cos):>7} | {cos.mean():>17.4f} {np.percentile(cos, 5):>6.4f} {cos.min():>6.4f} | "
              f"{half.mean():>16.4f} {np.percentile(half, 5):>6.4f}")
    classes: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        classes.setdefault(Path(p).relative_to(args.images).parts[0], []).append(i)
    if len(classes) > 1:
        print("one class folder alone (uniform images):")
        for name, idx in sorted(classes.items()):
            idx = np.array(idx)
            print(f"  {name}: {len(idx)} images, cos to full {float(full @ wstar(F, Nn, idx)):.4f}, "
                  f"split-half {float(wstar(F, Nn, idx[0::2]) @ wstar(F, Nn, idx[1::2])):.4f}")


if __name__ == "__main__":
    main()
