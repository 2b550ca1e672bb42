"""Time `uolrps eval` on the 250 imagenet-loc images (target: under 60 s on 2 CPU cores).

    python benchmarks/bench_eval.py MODEL.onnx [--data ../shared/data/imagenet-loc] [--protocol both]

Runs the command line once, as a user would (process start and imports included), and prints the wall time
with its breakdown from the result JSON: inference (decode, preprocess, model) against the threshold sweep
on the stored heatmaps, which never re-runs the model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imagenet-loc"
TARGET_S = 60.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help="uolrps model file (.onnx or .engine)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="data set (default: ../shared/data/imagenet-loc)")
    ap.add_argument("--protocol", default="both", choices=("both", "authors", "wsol"))
    ap.add_argument("--workers", type=int, default=0, help="threads for decoding and the sweep (0: up to 2)")
    args = ap.parse_args()
    if not args.data.exists():
        print(f"data set {args.data} not found: pass --data", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "uolrps.cli.main", "eval", str(args.data), "--model", str(args.model),
               "--protocol", args.protocol, "--workers", str(args.workers), "--json", str(out), "-q"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr or proc.stdout, file=sys.stderr)
            return proc.returncode
        res = json.loads(out.read_text())
    t = res["timings_s"]
    n = res["n_images"]
    print(f"uolrps eval {args.data.name}: {n} images, {res['n_boxes']} boxes, model {args.model.name} "
          f"({res['backbone']} {res['input_size'][0]}x{res['input_size'][1]}), protocol {args.protocol}, "
          f"{os.cpu_count()} CPUs visible")
    print(f"  wall time (process)  {wall:7.2f} s   target < {TARGET_S:.0f} s: {'OK' if wall < TARGET_S else 'MISSED'}")
    print(f"  evaluate() total     {t['total']:7.2f} s")
    print(f"  inference            {t['inference']:7.2f} s   {1000 * t['inference'] / n:6.1f} ms/image "
          "(decode + preprocess + model, once per image)")
    print(f"  threshold sweep      {t['sweep']:7.2f} s   {1000 * t['sweep'] / n:6.1f} ms/image "
          "(on stored heatmaps)")
    print(f"  other (load, imports){wall - t['inference'] - t['sweep']:7.2f} s")
    for name, p in res["protocols"].items():
        print(f"  {name:8s} MaxBoxAccV2 {p['MaxBoxAccV2']:.2f} (IoU30 {p['IoU30']:.2f}, IoU50 {p['IoU50']:.2f}, "
              f"IoU70 {p['IoU70']:.2f}), threshold {p['threshold']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
