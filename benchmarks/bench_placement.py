"""How the h x w map is placed on the frame, measured: accuracy on the public sets and the clip, and the
post-processing time of each placement on a 640x480 frame on one core.

    PYTHONPATH=. python benchmarks/bench_placement.py [--model model.onnx] [--stride 1] [--rounds 5]

The heatmaps are computed once per set (the model never changes); each placement (``uolrps.core.boxes``
PLACEMENTS) then sweeps the same maps:
- imagenet-loc and raccoon: MaxBoxAccV2 under the authors' protocol (largest contour, step .01) and the
  wsol protocol (every contour, step .001), boxes scored on the full-resolution image;
- the clip video/raccoon_pan.mp4 with its per-frame ground truth: the same two, plus the IoU50 accuracy of
  the box ``uolrps run`` draws (largest outer contour, at the model's stored threshold).
Post-processing: ``heatmap_to_boxes`` on a 7x7 map to a 640x480 frame, OpenCV on one thread, interleaved
rounds, median per call. Figures go with the CPU's name (printed first).

``--post-only`` measures only the post-processing, cleanly: one thread everywhere (OMP, OpenBLAS and MKL
threads set to 1 before numpy loads, ``cv2.setNumThreads(1)``), the CPU time of this thread
(``time.thread_time``, so time the scheduler gives to other processes on a busy machine is not counted),
``--calls`` calls a round, and a breakdown of one call into its steps (placement, 8-bit map, threshold and
contours, scores), against the 1 ms target of issue 21.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core: before numpy loads
    os.environ.setdefault(_var, "1")

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def clip_maps(loc, video: Path, gt_path: Path, stride: int):
    import cv2

    gts = {}
    for line in gt_path.read_text().splitlines():
        row = json.loads(line)
        gts[int(row["frame"])] = np.asarray(row["boxes"], dtype=np.float64).reshape(-1, 4)
    cap = cv2.VideoCapture(str(video))
    frames, boxes, maps, size, i = [], [], [], None, 0
    while True:
        ok, fr = cap.read()
        if not ok:
            break
        if i % stride == 0 and i in gts:
            frames.append(fr)
            boxes.append(gts[i])
            size = fr.shape[:2]
        if len(frames) == 32:
            maps.append(loc.heatmaps(frames)[:, 0])
            frames = []
        i += 1
    cap.release()
    if frames:
        maps.append(loc.heatmaps(frames)[:, 0])
    return np.concatenate(maps), boxes, size


def run_box_acc(maps, gts, size, threshold, placement) -> float:
    """IoU50 accuracy (percent) of the box run draws: largest outer contour at the model's threshold."""
    from uolrps.core.boxes import box_iou, heatmap_to_boxes

    hits = 0
    for hm, gt in zip(maps, gts):
        b = heatmap_to_boxes(hm, size, threshold, outer_only=True, placement=placement)[0]
        hits += bool(len(b) and box_iou(b[:1], gt).max() >= 0.5)
    return 100.0 * hits / len(gts)


def test_map() -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:7, 0:7]
    hm = np.exp(-((yy - 3.2) ** 2 + (xx - 2.7) ** 2) / 4.0) + 0.1 * rng.random((7, 7))
    return ((hm - hm.min()) / (hm.max() - hm.min())).astype(np.float32)


def post_times(placements, rounds: int, calls: int = 200, clock=time.perf_counter) -> dict:
    """Median ms a call of ``heatmap_to_boxes`` (7x7 to 640x480) per placement, interleaved rounds."""
    import cv2

    from uolrps.core.boxes import heatmap_to_boxes

    cv2.setNumThreads(1)
    hm = test_map()
    out = {p: [] for p in placements}
    for _ in range(rounds):  # interleaved: every placement once per round
        for p in placements:
            t0 = clock()
            for _ in range(calls):
                heatmap_to_boxes(hm, (480, 640), 0.5, outer_only=True, placement=p)
            out[p].append((clock() - t0) * 1000.0 / calls)
    return {p: statistics.median(v) for p, v in out.items()}


def post_steps(placement: str, calls: int) -> dict:
    """CPU ms of each step of one call, median over ``calls`` (the steps of ``heatmap_to_boxes``)."""
    import cv2

    from uolrps.core.boxes import boxes_from_map8, upsample255

    hm, size, steps = test_map(), (480, 640), {"placement": [], "8-bit map": [], "threshold+contours": [],
                                                "scores": []}
    for _ in range(calls):
        t0 = time.thread_time()
        s255 = upsample255(hm, size, placement)
        t1 = time.thread_time()
        m8 = s255.astype(np.uint8)
        t2 = time.thread_time()
        boxes = boxes_from_map8(m8, 0.5, outer_only=True)
        t3 = time.thread_time()
        [s255[int(y1):int(y2) + 1, int(x1):int(x2) + 1].mean() / 255.0 for x1, y1, x2, y2 in boxes]
        t4 = time.thread_time()
        for name, a, b in (("placement", t0, t1), ("8-bit map", t1, t2), ("threshold+contours", t2, t3),
                           ("scores", t3, t4)):
            steps[name].append((b - a) * 1000.0)
    del cv2
    return {k: statistics.median(v) for k, v in steps.items()}


def post_only(placements, rounds: int, calls: int) -> int:
    import cv2

    cv2.setNumThreads(1)
    print(f"CPU: {cpu_name()}; one thread (OMP/OpenBLAS/MKL 1, cv2.setNumThreads(1)); {rounds} rounds of {calls} "
          "calls, interleaved")
    cpu = post_times(placements, rounds, calls, clock=time.thread_time)
    wall = post_times(placements, rounds, calls)
    print("post-processing, 7x7 map to 640x480, median ms a call (target < 1 ms):")
    for p in placements:
        print(f"  {p:<16} CPU {cpu[p]:6.3f} ms   wall {wall[p]:6.3f} ms   {'meets' if cpu[p] < 1.0 else 'OVER'} the target")
    for p in placements:
        steps = post_steps(p, calls)
        print(f"  {p:<16} steps (CPU ms): " + ", ".join(f"{k} {v:.3f}" for k, v in steps.items()))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, help="model file (default: export efflite0 into a temporary folder)")
    ap.add_argument("--stride", type=int, default=1, help="use every n-th frame of the clip")
    ap.add_argument("--rounds", type=int, default=5, help="timing rounds")
    ap.add_argument("--placements", default=None, help="comma-separated subset of the placements")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--post-only", action="store_true", help="only the post-processing cost, cleanly (CPU time)")
    ap.add_argument("--calls", type=int, default=500, help="calls a timing round (--post-only)")
    args = ap.parse_args(argv)
    if args.post_only:
        from uolrps.core.boxes import PLACEMENTS

        return post_only(tuple(args.placements.split(",")) if args.placements else tuple(PLACEMENTS), args.rounds,
                         args.calls)

    from uolrps.eval.datasets import load_dataset
    from uolrps.eval.inference import run_heatmaps
    from uolrps.eval.protocols import sweep_maps
    from uolrps.eval.sweep import summarise_sweep, sweep
    from uolrps.eval import metrics as M
    from uolrps.runtime import Localizer
    from uolrps.core.boxes import PLACEMENTS

    placements = tuple(args.placements.split(",")) if args.placements else PLACEMENTS
    print(f"CPU: {cpu_name()}")
    tmp = None
    model = args.model
    if model is None:
        from uolrps.export.onnx_export import export_model

        tmp = tempfile.TemporaryDirectory()
        model = Path(tmp.name) / "efflite0.onnx"
        export_model(backbone="efflite0", output=model, dynamic_batch=True, progress=False, log=lambda m: None)
    results: dict = {"cpu": cpu_name(), "model": str(args.model or "efflite0 (exported, shipped weights and w*)"),
                     "sets": {}}
    with Localizer(model) as loc:
        threshold = loc.meta.threshold
        for name in ("imagenet-loc", "raccoon"):
            root = SHARED / name
            if not root.exists():
                print(f"{name}: skipped ({root} is absent)")
                continue
            t0 = time.perf_counter()
            ds = load_dataset(root)
            items, maps, sizes = run_heatmaps(ds, loc, workers=2)
            print(f"{name}: {len(items)} images, heatmaps in {time.perf_counter() - t0:.1f} s", flush=True)
            row = {}
            for p in placements:
                s = summarise_sweep(sweep(items, maps, sizes, authors=True, wsol=True, workers=2, placement=p))
                row[p] = {"authors": s["protocols"]["authors"]["MaxBoxAccV2"],
                          "wsol": s["protocols"]["wsol"]["MaxBoxAccV2"]}
                print(f"  {p:<16} authors {row[p]['authors']:6.2f}  wsol {row[p]['wsol']:6.2f}", flush=True)
            results["sets"][name] = row
        video, gt = SHARED / "video" / "raccoon_pan.mp4", SHARED / "video" / "raccoon_pan.gt.jsonl"
        if video.exists() and gt.exists():
            t0 = time.perf_counter()
            maps, gts, size = clip_maps(loc, video, gt, args.stride)
            print(f"clip: {len(maps)} frames (stride {args.stride}), heatmaps in {time.perf_counter() - t0:.1f} s",
                  flush=True)
            row = {}
            sizes = [size] * len(maps)
            for p in placements:
                a = M.authors_summary(None, acc=sweep_maps(maps, sizes, gts, p, M.AUTHORS_THRESHOLDS, False, False,
                                                           workers=2))
                w = M.wsol_summary(None, acc=sweep_maps(maps, sizes, gts, p, M.WSOL_THRESHOLDS, True, True, workers=2))
                row[p] = {"authors": a["MaxBoxAccV2"], "authors_IoU50": a["IoU50"], "wsol": w["MaxBoxAccV2"],
                          "run_IoU50": run_box_acc(maps, gts, size, threshold, p)}
                print(f"  {p:<16} authors {a['MaxBoxAccV2']:6.2f} (IoU50 {a['IoU50']:6.2f})  wsol {w['MaxBoxAccV2']:6.2f}"
                      f"  run's box at t={threshold:.2f}: IoU50 {row[p]['run_IoU50']:6.2f}", flush=True)
            results["sets"]["raccoon_pan.mp4"] = row
        else:
            print(f"clip: skipped ({video} is absent)")
    times = post_times(placements, args.rounds)
    results["post_ms_640x480_one_thread"] = times
    print("post-processing, 7x7 map to 640x480, one OpenCV thread, median ms a call:")
    for p, ms in times.items():
        print(f"  {p:<16} {ms:6.3f} ms")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
