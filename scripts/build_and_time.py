#!/usr/bin/env python3
"""Build a TensorRT engine from an ONNX file, time it, and compare it with ONNX Runtime on real images.

Run on a machine with an NVIDIA GPU, TensorRT and pycuda (a Jetson with JetPack 6, or a desktop GPU)::

    python scripts/build_and_time.py model.fp16.onnx --max-batch 8 --batch 1 --runs 200
    python scripts/build_and_time.py model.fp16.onnx --reference model.onnx --images ../shared/data/imagenet-loc/images

Prints: the build time, latency of the backend call (host-to-device copy, execution, device-to-host copy)
as p50/p95 ms over --runs calls after --warmup calls, images per second, and for --compare images the
largest absolute heatmap difference against ONNX Runtime and the IoU of the boxes (authors' protocol at
the model's default threshold) on each image's own size.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = ROOT.parent / "shared" / "data" / "imagenet-loc" / "images"


def load_frames(folder: Path, n: int) -> list[np.ndarray]:
    from uolrps.images import list_images, read_bgr

    frames = [f for f in (read_bgr(p) for p in list_images(folder)[: 4 * n]) if f is not None][:n]
    if not frames:
        sys.exit(f"no readable images under {folder}: pass --images DIR")
    return frames


def time_backend(backend, batch: np.ndarray, warmup: int, runs: int) -> dict:
    for _ in range(warmup):
        backend(batch)
    ms = []
    for _ in range(runs):
        t0 = time.perf_counter()
        backend(batch)
        ms.append((time.perf_counter() - t0) * 1000)
    ms = np.array(ms)
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
            "mean": float(ms.mean()), "fps": float(batch.shape[0] * 1000 / ms.mean())}


def compare(trt_backend, ort_backend, frames, meta) -> tuple[float, list[float]]:
    from uolrps.runtime.boxes import first_box_iou, heatmap_to_boxes
    from uolrps.runtime.preprocess import preprocess

    x = np.stack([preprocess(f, meta) for f in frames])
    a = np.concatenate([trt_backend(x[i:i + 1]) for i in range(len(x))])
    b = np.concatenate([ort_backend(x[i:i + 1]) for i in range(len(x))])
    ious = []
    for f, ha, hb in zip(frames, a, b):
        ba, _, _ = heatmap_to_boxes(ha[0], f.shape[:2], meta.threshold)
        bb, _, _ = heatmap_to_boxes(hb[0], f.shape[:2], meta.threshold)
        ious.append(first_box_iou(ba, bb))
    return float(np.abs(a - b).max()), ious


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("onnx", type=Path, help="ONNX file to build (model.fp16.onnx)")
    ap.add_argument("--engine", type=Path, help="engine path (default: beside the ONNX file)")
    ap.add_argument("--no-build", action="store_true", help="reuse --engine instead of building")
    ap.add_argument("--reference", type=Path, help="ONNX file ONNX Runtime runs for the comparison (default: onnx)")
    ap.add_argument("--providers", default="cpu", help="ONNX Runtime providers for the reference (cpu, cuda)")
    ap.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="folder of real images")
    ap.add_argument("--compare", type=int, default=32, help="images compared with ONNX Runtime")
    ap.add_argument("--batch", type=int, default=1, help="batch size of the timed calls")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--workspace-gib", type=float, default=2.0)
    ap.add_argument("--max-batch", type=int, default=None)
    ap.add_argument("--timing-cache", type=Path, default=None)
    ap.add_argument("--dla", type=int, default=None)
    args = ap.parse_args(argv)

    from uolrps.errors import UserError
    from uolrps.export.trt_build import build_engine
    from uolrps.export.trt_exec import default_engine_path
    from uolrps.runtime.backends.ort import OrtBackend
    from uolrps.runtime.backends.trt import TensorRTBackend
    from uolrps.runtime.preprocess import preprocess

    try:
        engine = args.engine or default_engine_path(args.onnx)
        if not args.no_build:
            t0 = time.perf_counter()
            engine, _ = build_engine(args.onnx, engine, workspace_gib=args.workspace_gib, dla_core=args.dla,
                                     max_batch=args.max_batch, timing_cache=args.timing_cache)
            print(f"build: {time.perf_counter() - t0:.1f} s")
        with TensorRTBackend(engine) as trt_b, OrtBackend(args.reference or args.onnx, providers=args.providers) as ort_b:
            sc = trt_b.sidecar
            print(f"engine: {engine} ({engine.stat().st_size / 2**20:.1f} MiB), TensorRT {sc.tensorrt_version}, "
                  f"{sc.gpu_name} (sm {sc.compute_capability[0]}{sc.compute_capability[1]}), "
                  f"batch {trt_b.io.min_batch}..{trt_b.io.max_batch}")
            for w in trt_b.warnings:
                print(f"warning: {w}")
            frames = load_frames(args.images, max(args.compare, args.batch))
            batch = np.stack([preprocess(f, trt_b.meta) for f in frames[: args.batch]])
            t = time_backend(trt_b, batch, args.warmup, args.runs)
            print(f"tensorrt  batch {args.batch}: p50 {t['p50']:.2f} ms, p95 {t['p95']:.2f} ms, "
                  f"{t['fps']:.1f} images/s ({args.runs} runs after {args.warmup} warm-up)")
            o = time_backend(ort_b, batch, min(args.warmup, 5), min(args.runs, 20))
            print(f"onnxruntime ({args.providers}) batch {args.batch}: p50 {o['p50']:.2f} ms, {o['fps']:.1f} images/s")
            diff, ious = compare(trt_b, ort_b, frames[: args.compare], trt_b.meta)
            ious = np.array(ious)
            print(f"vs onnxruntime on {len(ious)} images: max |heatmap diff| {diff:.2e}, box IoU min {ious.min():.3f}, "
                  f"mean {ious.mean():.3f}, IoU >= 0.9 on {100 * (ious >= 0.9).mean():.1f}%")
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
