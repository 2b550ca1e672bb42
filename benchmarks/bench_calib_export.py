"""Calibration throughput, export time and model load time, printed side by side.

    python benchmarks/bench_calib_export.py [--calib-images ../shared/data/imagenet-calib] [--skip-calib]

1. `uolrps calib` over the calibration folder at 224 with efflite0: images/s (target: 3000 images < 4 min).
2. `uolrps export` of ViT-S/16 at 224 (a checkpoint in the official DINO layout with random values), with
   its FP16 twin: seconds (target < 2 min on 2 CPU cores).
3. ONNX Runtime session creation for both files: seconds (target < 5 s).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calib-images", default=str(ROOT.parent / "shared" / "data" / "imagenet-calib"))
    ap.add_argument("--skip-calib", action="store_true")
    args = ap.parse_args()
    import onnxruntime as ort
    import torch

    from uolrps.calib.backbones.random_weights import random_state_dict
    from uolrps.calib.backbones.vit import VisionTransformer
    from uolrps.calib.wstar import compute_wstar
    from uolrps.export.onnx_export import export_model
    from uolrps.model.files import twin_path

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; onnxruntime {ort.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.skip_calib:
            if not Path(args.calib_images).is_dir():
                print(f"calib: skipped ({args.calib_images} is absent)")
            else:
                t0 = time.perf_counter()
                cal = compute_wstar(args.calib_images, backbone="efflite0", progress=False)
                dt = time.perf_counter() - t0
                n = int(cal.n_images)
                print(f"calib efflite0 224: {n} images in {dt:.1f} s = {n / dt:.1f} images/s")
        ckpt = tmp / "dino_deitsmall16_pretrain.pth"
        torch.save(random_state_dict(VisionTransformer("vits")), ckpt)
        compute_wstar(_images(tmp), backbone="vits", weights=ckpt, progress=False).save(tmp / "w.npz")
        t0 = time.perf_counter()
        export_model("vits", tmp / "vits.onnx", weights=ckpt, wstar=tmp / "w.npz", fp16=True, progress=False,
                     log=lambda m: None)
        print(f"export vits 224 (+ fp16 twin, with verification): {time.perf_counter() - t0:.1f} s")
        for p in (tmp / "vits.onnx", twin_path(tmp / "vits.onnx", "fp16")):
            t0 = time.perf_counter()
            ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
            print(f"load {p.name} in ONNX Runtime: {time.perf_counter() - t0:.2f} s")


def _images(tmp: Path) -> Path:
    from uolrps.export.verify import synthetic_images
    import cv2

    d = tmp / "imgs"
    d.mkdir()
    for i, im in enumerate(synthetic_images((224, 224), 8)):
        cv2.imwrite(str(d / f"{i}.png"), im)
    return d


if __name__ == "__main__":
    main()
