"""On a CUDA machine: FP16 numerics and speed of the fused graph on the PyTorch side (no TensorRT needed).

    python scripts/gpu_fp16_check.py IMAGES.npz OUT_DIR [--vits-random]      # on the GPU machine
    python scripts/gpu_fp16_check.py --compare OUT_DIR                        # anywhere with OpenCV

IMAGES.npz holds ``images``: uint8 N x 224 x 224 x 3 RGB. For each backbone it saves the heatmaps of the
FP32 graph on the CPU, the FP32 graph on the GPU and the mixed-precision (half=True) graph on the GPU to
OUT_DIR/heatmaps_<backbone>.npz (boxes are compared afterwards with ``--compare``, which needs OpenCV), and
prints / writes timings (CUDA events, batch 1 and 8, after warm-up) to OUT_DIR/timings.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from uolrps.calib.encoder import build_encoder  # noqa: E402
from uolrps.export.graph import HeatmapGraph  # noqa: E402


def timed(graph, x, iters=50, warmup=10) -> float:
    with torch.inference_mode():
        for _ in range(warmup):
            graph(x)
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            graph(x)
        end.record()
        torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("images", nargs="?")
    ap.add_argument("out")
    ap.add_argument("--vits-random", action="store_true", help="also ViT-S/16 with seeded random weights")
    ap.add_argument("--device", default="cuda", help="cpu: a dry run of the script itself (no timings)")
    ap.add_argument("--compare", action="store_true", help="box agreement of saved heatmaps (CPU, OpenCV)")
    args = ap.parse_args()
    out = Path(args.out)
    if args.compare:
        return compare(out)
    out.mkdir(parents=True, exist_ok=True)
    images = torch.from_numpy(np.load(args.images, allow_pickle=False)["images"])
    dev = torch.device(args.device)
    gpu = dev.type == "cuda"
    name = torch.cuda.get_device_name(0) if gpu else "cpu"
    print("device:", name, "torch", torch.__version__)
    timings = {"device": name, "torch": torch.__version__}
    backbones = [("efflite0", None)]
    if args.vits_random:
        from uolrps.calib.backbones.vit import VisionTransformer

        torch.manual_seed(0)
        vit = VisionTransformer("vits")
        for k, v in vit.state_dict().items():
            if v.ndim > 1 or "pos" in k or "cls" in k:
                v.copy_(torch.randn_like(v) / max(1.0, float(v[0].numel()) ** 0.5))
        torch.save(vit.state_dict(), out / "vits_random.pth")
        backbones.append(("vits", out / "vits_random.pth"))
    for name, weights in backbones:
        enc = build_encoder(name, weights, 224, progress=False)
        if name == "vits":  # random weights: calibrate w* on these very images
            from uolrps.calib.means import wstar_from_means

            with torch.inference_mode():
                f = torch.cat([enc(images[i:i + 16]) for i in range(0, len(images), 16)]).double()
            f = f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])
            n = f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)
            w = wstar_from_means(f.mean(0).numpy(), n.mean(0).numpy()).astype(np.float32)
        else:
            from uolrps.calib.means import default_wstar_path
            w = np.load(default_wstar_path(name), allow_pickle=False)["w"]
        g32 = HeatmapGraph(enc, w)
        with torch.inference_mode():
            cpu = torch.cat([g32(images[i:i + 16]) for i in range(0, len(images), 16)]).numpy()
        g32 = g32.to(dev)
        g16 = HeatmapGraph(enc, w, half=True).to(dev)
        x = images.to(dev)
        with torch.inference_mode():
            gpu32 = torch.cat([g32(x[i:i + 16]) for i in range(0, len(x), 16)]).cpu().numpy()
            gpu16 = torch.cat([g16(x[i:i + 16]) for i in range(0, len(x), 16)]).cpu().numpy()
        np.savez(out / f"heatmaps_{name}.npz", cpu32=cpu, gpu32=gpu32, gpu16=gpu16)
        row = {"max_abs_gpu32_vs_cpu32": float(np.abs(gpu32 - cpu).max()),
               "max_abs_gpu16_vs_cpu32": float(np.abs(gpu16 - cpu).max()),
               "finite_fp16": bool(np.isfinite(gpu16).all())}
        for b in ((1, 8) if gpu else ()):
            xb = x[:b].contiguous()
            row[f"fp32_b{b}_ms"] = timed(g32, xb)
            row[f"fp16_b{b}_ms"] = timed(g16, xb)
        timings[name] = row
        print(name, json.dumps(row))
    (out / "timings.json").write_text(json.dumps(timings, indent=2))


def compare(out: Path) -> None:
    from uolrps.core.boxes import first_box_iou
    from uolrps.core.boxes import heatmap_to_boxes

    for f in sorted(out.glob("heatmaps_*.npz")):
        z = np.load(f, allow_pickle=False)
        for other in ("gpu32", "gpu16"):
            ious = np.array([first_box_iou(heatmap_to_boxes(a[0], (224, 224), 0.5)[0], heatmap_to_boxes(b[0], (224, 224), 0.5)[0])
                             for a, b in zip(z["cpu32"], z[other])])
            print(f"{f.stem} {other} vs cpu32: {len(ious)} images, box IoU >= 0.9 on {100 * np.mean(ious >= 0.9):.1f}%, "
                  f"mean IoU {ious.mean():.4f}, max abs heatmap diff {np.abs(z[other] - z['cpu32']).max():.2e}")


if __name__ == "__main__":
    main()
