"""Size / accuracy / speed of one backbone exported at several input sizes, side by side.

    python benchmarks/bench_sizes.py e224.onnx e256.onnx e320.onnx ... [--results DIR] [--rounds 30]

Speed: ONNX Runtime on the CPU, batch 1, the model alone on a real image already resized to its input
(what `uolrps run` feeds it). The models are timed round-robin in the same process (one call of each per
round, after a warm-up), so a load change on a shared machine hits them all alike: compare the ratios.
Accuracy: read from `uolrps eval --json` files named ``<data set>-<size>.json`` in ``--results`` (made
beforehand, e.g. ``uolrps eval ../shared/data/raccoon --model e320.onnx --caam efflite0 --json
DIR/raccoon-320.json``). Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _image() -> np.ndarray:
    import cv2

    found = sorted((DATA / "raccoon" / "images").glob("*.jpg"))[:1]
    if found:
        return cv2.cvtColor(cv2.imread(str(found[0])), cv2.COLOR_BGR2RGB)
    return np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)


def time_models(paths: list[Path], rounds: int, warmup: int = 5, threads: int = 0) -> dict[Path, list[float]]:
    import cv2
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    rgb = _image()
    sessions = {}
    for p in paths:
        s = ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
        shape = s.get_inputs()[0].shape
        x = cv2.resize(rgb, (int(shape[2]), int(shape[1])), interpolation=cv2.INTER_LINEAR)[None]
        sessions[p] = (s, {s.get_inputs()[0].name: x})
    for _ in range(warmup):
        for s, feed in sessions.values():
            s.run(None, feed)
    times: dict[Path, list[float]] = {p: [] for p in paths}
    for _ in range(rounds):
        for p, (s, feed) in sessions.items():
            t0 = time.perf_counter()
            s.run(None, feed)
            times[p].append((time.perf_counter() - t0) * 1000)
    return times


def _meta(path: Path) -> dict:
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return {"size": json.loads(props["uolrps.input_size"])[0], "grid": json.loads(props["uolrps.grid"])}


def _acc(results: Path | None, dataset: str, size: int) -> dict | None:
    if results is None or not (results / f"{dataset}-{size}.json").is_file():
        return None
    return json.loads((results / f"{dataset}-{size}.json").read_text())


def _cell(r: dict | None, method: str | None = None) -> str:
    if r is None:
        return "-"
    src = r if method is None else r.get("baselines", {}).get(method)
    if not src:
        return "-"
    a, w = src["protocols"].get("authors"), src["protocols"].get("wsol")
    t = f" (t {a['threshold']:.2f})" if method is None and a else ""
    return f"{a['MaxBoxAccV2']:.2f} / {w['MaxBoxAccV2']:.2f}{t}" if a and w else "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", type=Path, nargs="+", help="the same model exported at several sizes")
    ap.add_argument("--results", type=Path, help="folder of `uolrps eval --json` results <data set>-<size>.json")
    ap.add_argument("--datasets", default="imagenet-loc,raccoon")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)")
    args = ap.parse_args()
    missing = [str(p) for p in args.models if not p.is_file()]
    if missing:
        print(f"error: model files not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    times = time_models(args.models, args.rounds, threads=args.threads)
    base = statistics.median(times[args.models[0]])
    sets = [d for d in args.datasets.split(",") if d]
    head = ["size", "grid", "ONNX MB", "CPU p50 ms (batch 1)", "vs first"]
    for d in sets:
        head += [f"{d}: w* authors / wsol", f"{d}: CAAM authors / wsol"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for p in args.models:
        m = _meta(p)
        p50 = statistics.median(times[p])
        row = [str(m["size"]), f"{m['grid'][0]} x {m['grid'][1]}", f"{p.stat().st_size / 1e6:.1f}", f"{p50:.1f}",
               f"{p50 / base:.2f}x"]
        for d in sets:
            r = _acc(args.results, d, m["size"])
            row += [_cell(r), _cell(r, "caam")]
        print("| " + " | ".join(row) + " |")
    print(f"\n{args.rounds} rounds, models interleaved; p50 of each model's calls.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
