"""`uolrps run` against the authors' way of running the method: a per-frame PyTorch loop, side by side, interleaved.

The authors' loop is written from the paper (ICCV 2023, "Unsupervised Object Localization with Representer Point
Selection"), as their research code runs a video: one frame at a time, BGR -> RGB, resize to the input size,
mean/std, the encoder's forward pass, per-position L2 normalisation, the projection on w*, ReLU, min-max, bilinear
upsampling with aligned corners to the frame size, threshold t * max, the bounding rectangle of the largest
contour. PyTorch with its default threads (all cores), the same weights and the same w* as the ONNX file (read
from its projection).

Against it: `uolrps run` (the streaming runtime: decode, preprocess, batched backend, boxes in their own threads)
on the same clip and model, on ONNX Runtime FP32 and on OpenVINO (f32, and each gated setting given with
--setting). Each configuration runs in its own process; a round runs them all once, in turn; rounds repeat and
the medians are printed. Measured in the process, from the first frame to the last: frames per second (wall) and
CPU milliseconds per frame (all threads). Model loading and compilation are not counted on either side.

    python benchmarks/bench_vs_authors.py --model model.onnx --video ../shared/data/video/raccoon_pan.mp4 \
        [--weights vits_random.pth] [--frames 300] [--rounds 3] [--setting openvino:int8=model.int8.onnx]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cpu_name() -> str:
    model, flags = platform.processor() or "?", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = [f for f in line.split(":", 1)[1].split() if f.startswith(("avx", "amx")) or "vnni" in f
                         or "bf16" in f]
                break
    except OSError:
        pass
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores, {' '.join(sorted(set(flags))) or 'no AVX flags listed'}"


def projection_of(model: Path):
    """w* (K x C) from the ONNX file: the weight of its last Conv (the 1x1 projection, see uolrps/export/graph.py)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(model))
    inits = {i.name: i for i in m.graph.initializer}
    conv = [n for n in m.graph.node if n.op_type == "Conv"][-1]
    w = numpy_helper.to_array(inits[conv.input[1]])
    return w.reshape(w.shape[0], w.shape[1])


# ---- the two sides, each run in a child process --------------------------------------------------------------------
def authors_loop(model: Path, video: str, frames: int, weights: str | None, threads: int = 0) -> dict:
    import cv2
    import numpy as np
    import torch
    import torch.nn.functional as F

    if threads:
        torch.set_num_threads(threads)
    from uolrps.calib.encoder import build_encoder
    from uolrps.runtime.backends.ort import OrtBackend

    with OrtBackend(model) as b:  # the metadata only: backbone, input size, threshold
        meta = b.meta
    encoder = build_encoder(meta.backbone, weights, meta.input_size[0], progress=False).eval()
    w = torch.from_numpy(projection_of(model))
    mean = torch.tensor(meta.mean).view(1, 3, 1, 1)
    std = torch.tensor(meta.std).view(1, 3, 1, 1)
    cap = cv2.VideoCapture(video)
    n, t0, c0 = 0, None, None
    with torch.inference_mode():
        while n < frames:
            ok, frame = cap.read()
            if not ok:
                break
            if t0 is None:
                t0, c0 = time.perf_counter(), time.process_time()
            H, W = frame.shape[:2]
            rgb = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), (meta.input_size[1], meta.input_size[0]))
            x = (torch.from_numpy(rgb).permute(2, 0, 1)[None].float() - mean) / std
            f = torch.relu(encoder.net(x))  # 1 x C x h x w
            f = F.normalize(f, dim=1)
            s = torch.relu(torch.einsum("kc,nchw->nkhw", w, f))
            s = (s - s.amin(dim=(2, 3), keepdim=True)) / (s.amax(dim=(2, 3), keepdim=True) - s.amin(dim=(2, 3), keepdim=True) + 1e-8)
            up = F.interpolate(s, size=(H, W), mode="bilinear", align_corners=True)[0, 0].numpy()
            mask = (up >= meta.threshold * up.max()).astype(np.uint8)
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            if contours:
                cv2.boundingRect(max(contours, key=cv2.contourArea))
            n += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"frames": n, "fps": (n - 1) / wall if n > 1 else 0.0, "cpu_ms_per_frame": 1000 * cpu / max(n, 1),
            "threads": torch.get_num_threads()}


def uolrps_run(model: Path, video: str, frames: int, backend: str, precision: str | None) -> dict:
    from uolrps.runtime.runner import RunConfig, run

    marks: dict = {}

    def on_start(engine, server):
        marks["t0"], marks["c0"] = time.perf_counter(), time.process_time()

    said: list[str] = []
    stats = run(RunConfig(source=video, model=model, backend=backend, precision=precision, max_frames=frames,
                          progress=False), on_start=on_start, say=said.append)
    wall, cpu = time.perf_counter() - marks["t0"], time.process_time() - marks["c0"]
    return {"frames": stats.frames, "fps": stats.frames / wall, "cpu_ms_per_frame": 1000 * cpu / max(stats.frames, 1),
            "said": [s for s in said if "runs" in s]}


def child(args) -> None:
    if args.child.startswith("authors"):
        out = authors_loop(Path(args.model), args.video, args.frames, args.weights, int(args.child.split(":")[1]))
    else:
        backend, _, precision = args.child.partition(":")
        out = uolrps_run(Path(args.model), args.video, args.frames, backend, precision or None)
    print("RESULT " + json.dumps(out))


def run_child(kind: str, model: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--model", model, "--video", args.video,
           "--frames", str(args.frames)] + (["--weights", args.weights] if args.weights else [])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"{kind} failed ({out.returncode}): {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="the exported FP32 model.onnx")
    ap.add_argument("--video", default=str(Path(__file__).resolve().parents[2] / "shared/data/video/raccoon_pan.mp4"))
    ap.add_argument("--weights", help="the checkpoint the model was exported from (default: the published weights)")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--setting", action="append", default=[],
                    help="another `uolrps run` setting, BACKEND[:PRECISION][=MODEL], e.g. openvino:bf16 or "
                         "openvino=model.int8.onnx (gated first with `uolrps gate`)")
    ap.add_argument("--authors-threads", default="0,1", help="PyTorch threads of the authors' loop, one configuration "
                    "each: 0 = PyTorch's default (all cores, as their code runs), 1 = one thread (fewer stalls on a "
                    "loaded machine)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return 0
    authors = [(f"authors' PyTorch loop, {'default' if t == '0' else t} thread(s)", f"authors:{t}", args.model)
               for t in args.authors_threads.split(",")]
    configs = [*authors, ("uolrps run, ONNX Runtime FP32", "ort", args.model),
               ("uolrps run, OpenVINO f32", "openvino", args.model)]
    for s in args.setting:
        kind, _, model = s.partition("=")
        configs.append((f"uolrps run, {kind}{' ' + Path(model).name if model else ''}", kind, model or args.model))
    results: dict[str, list[dict]] = {label: [] for label, *_ in configs}
    for r in range(args.rounds):
        for label, kind, model in configs:
            res = run_child(kind, model, args)
            results[label].append(res)
            print(f"round {r + 1} {label}: {res['fps']:.1f} fps, {res['cpu_ms_per_frame']:.1f} CPU ms/frame "
                  f"({res['frames']} frames)", flush=True)
    print(f"\n{Path(args.model).name} on {Path(args.video).name}, {args.frames} frames, medians of {args.rounds} "
          f"interleaved rounds; CPU: {cpu_name()}")
    base = max(statistics.median(r["fps"] for r in results[label]) for label, *_ in authors)  # the faster loop
    ort = statistics.median(r["fps"] for r in results[configs[len(authors)][0]])
    print(f"{'configuration':44s} {'fps':>8s} {'CPU ms/frame':>13s} {'vs authors':>11s} {'vs ORT FP32':>12s}"
          "   (vs authors: against the faster authors' loop)")
    for label, *_ in configs:
        fps = statistics.median(r["fps"] for r in results[label])
        cpu = statistics.median(r["cpu_ms_per_frame"] for r in results[label])
        print(f"{label:44s} {fps:8.1f} {cpu:13.1f} {fps / base:10.2f}x {fps / ort:11.2f}x")
    for label, *_ in configs[len(authors):]:
        said = results[label][-1].get("said")
        if said:
            print(f"  {label}: {said[-1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
