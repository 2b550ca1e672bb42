"""Benchmark of `uolrps run` on ../shared/data/video/raccoon_pan.mp4 (900 frames, 640 x 480), side by side:

(a) the bare inference session alone on the same frames (decoded and preprocessed beforehand, batch 1);
(b) the end-to-end `uolrps run` pipeline (the library's ``run``: decode, preprocess, infer, boxes, JSONL; no
    display), and the ratio (b)/(a) (targets: >= 0.8 at uolrps's default threads, >= 0.9 at --threads 1);
(c) post-processing (heatmap -> boxes) per 640 x 480 frame on one core, on the model's real heatmaps;
(d) resident memory at frame 100 and at frame 900 of (b) (target: within 10%).

    python benchmarks/bench_run.py MODEL.onnx [--video PATH] [--providers cpu] [--threads default,1] [--rounds 1]

With inference on the CPU, ONNX Runtime's default threads take every core, so nothing is left to overlap
decoding and box extraction with; ``--threads 1`` leaves them a core and shows the overlap.

Like `uolrps run`, it limits OpenBLAS to one thread before numpy loads (see uolrps/cli/run_cmd.py).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VIDEO = DATA / "video" / "raccoon_pan.mp4"


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def decode_and_preprocess(video: Path, meta) -> tuple[list, np.ndarray]:
    from uolrps.runtime.preprocess import preprocess
    from uolrps.runtime.sources import open_source

    with open_source(str(video)) as src:
        frames = [f.image for f in src]
    return frames, np.stack([preprocess(f, meta) for f in frames])


def bare_session(model: Path, inputs: np.ndarray, providers: str | None, spin: bool,
                 threads: int | None, inflight: int = 1) -> tuple[float, np.ndarray]:
    """(a): frames per second of ONNX Runtime alone, one frame per run, plus the heatmaps.

    ``spin``: ONNX Runtime's default session options (intra-op workers spin between runs, as uolrps' ort
    backend keeps them); without it, no spinning. The ratio is taken against the faster of the two.
    """
    import onnxruntime as ort

    from uolrps.runtime.backends.ort import PROVIDERS, parse_providers

    options = ort.SessionOptions()
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads is not None:
        options.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(model), options, providers=[PROVIDERS[p] for p in parse_providers(providers)])
    name, out = sess.get_inputs()[0].name, sess.get_outputs()[0].name
    for x in inputs[:10]:  # warm-up
        sess.run([out], {name: x[None]})
    heatmaps = np.empty((len(inputs),) + sess.run([out], {name: inputs[:1]})[0].shape[1:], np.float32)

    def work(k: int) -> None:
        for i in range(k, len(inputs), inflight):
            heatmaps[i] = sess.run([out], {name: inputs[i][None]})[0][0]

    t0 = time.perf_counter()
    if inflight == 1:
        work(0)
    else:
        workers = [threading.Thread(target=work, args=(k,)) for k in range(inflight)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
    return len(inputs) / (time.perf_counter() - t0), heatmaps


def end_to_end(model: Path, video: Path, providers: str | None, threads: int | None) -> tuple[dict, dict]:
    """(b) and (d): `uolrps run --video VIDEO --model MODEL --jsonl ...`, sampling RSS at frames 100 and 900."""
    from uolrps.runtime.runner import RunConfig, run
    from uolrps.runtime.stats import RunStats

    stats, rss, done = RunStats(), {}, threading.Event()

    def watch():
        while not done.is_set():
            n = stats.frames
            for mark in (100, 900):
                if n >= mark and mark not in rss:
                    rss[mark] = (n, rss_mib())
            time.sleep(0.05)  # a coarse poll: a thread waking every 2 ms took the GIL from the run it measures

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig(source=str(video), model=model, jsonl=Path(tmp) / "out.jsonl", providers=providers,
                        threads=threads, progress=False)
        run(cfg, stats=stats)
        lines = sum(1 for _ in open(Path(tmp) / "out.jsonl"))
    done.set()
    watcher.join()
    rss.setdefault(900, (stats.frames, rss_mib()))
    return {**stats.summary(), "jsonl_lines": lines}, rss


def post_one_core(heatmaps: Path, size=(480, 640), repeat: int = 3) -> dict:
    """(c): run in a child process pinned to one CPU with single-threaded BLAS."""
    code = f"""
import os, json, time
os.sched_setaffinity(0, {{sorted(os.sched_getaffinity(0))[0]}})
os.environ["OPENBLAS_NUM_THREADS"] = "1"
import numpy as np
from uolrps.runtime.boxes import heatmap_to_boxes
hms = np.load({str(heatmaps)!r})
for hm in hms[:20]:
    heatmap_to_boxes(hm[0], {size}, 0.5)
ms = []
for _ in range({repeat}):
    for hm in hms:
        t0 = time.perf_counter()
        heatmap_to_boxes(hm[0], {size}, 0.5)
        ms.append((time.perf_counter() - t0) * 1000)
print(json.dumps({{"mean": float(np.mean(ms)), "p50": float(np.median(ms)), "p95": float(np.percentile(ms, 95))}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help="uolrps model (.onnx), e.g. from `uolrps export -b efflite0`")
    ap.add_argument("--video", type=Path, default=VIDEO)
    ap.add_argument("--providers", default=None, help="ONNX Runtime providers for both (a) and (b)")
    ap.add_argument("--rounds", type=int, default=1, help="alternate (a) and (b) this many times")
    ap.add_argument("--threads", default="default,1",
                    help="ONNX Runtime intra-op threads to compare, comma-separated ('default' = ORT's choice)")
    args = ap.parse_args()
    if not args.video.exists():
        print(f"skipped: {args.video} is absent (the shared data lives in ../shared/data beside the repository)")
        return 0
    from uolrps.runtime import Localizer

    with Localizer(args.model, providers=args.providers) as loc:
        meta = loc.meta
    frames, inputs = decode_and_preprocess(args.video, meta)
    print(f"model {args.model.name} ({meta.backbone}, input {meta.input_size[1]}x{meta.input_size[0]}, "
          f"grid {meta.grid[1]}x{meta.grid[0]}); video {args.video.name}: {len(frames)} frames "
          f"{frames[0].shape[1]}x{frames[0].shape[0]}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    del frames
    rows = []
    heatmaps = None
    settings = [None if t == "default" else int(t) for t in args.threads.split(",")]
    for r in range(args.rounds):
        for threads in settings:
            label = f"threads={threads or 'ORT default'}"
            fps_spin, heatmaps = bare_session(args.model, inputs, args.providers, spin=True, threads=threads)
            fps_calm, _ = bare_session(args.model, inputs, args.providers, spin=False, threads=threads)
            bare = [fps_spin, fps_calm]
            two = ""
            if threads is None:  # what uolrps run does at its default threads
                bare.append(bare_session(args.model, inputs, args.providers, spin=False, threads=None, inflight=2)[0])
                two = f" / {bare[-1]:6.1f} FPS (no spinning, 2 calls in flight)"
            summary, rss = end_to_end(args.model, args.video, args.providers, threads)
            fps_a = max(bare)
            rows.append((label, fps_a, summary, rss))
            print(f"round {r + 1}, {label}: (a) bare session {fps_spin:6.1f} FPS (ORT defaults) / {fps_calm:6.1f} FPS "
                  f"(no spinning){two} | (b) uolrps run {summary['fps']:6.1f} FPS ({summary['frames']} frames, "
                  f"{summary['jsonl_lines']} JSONL lines, dropped {summary['dropped']}) | (b)/(a) = "
                  f"{summary['fps'] / fps_a:.3f}")
            print("    (b) stage p50/p95 ms: " + ", ".join(f"{k} {v['p50']:.2f}/{v['p95']:.2f}"
                                                       for k, v in summary["ms"].items()))
            (n1, r1), (n2, r2) = rss[100], rss[900]
            print(f"    (d) RSS {r1:.1f} MiB at frame {n1}, {r2:.1f} MiB at frame {n2}: {100 * (r2 - r1) / r1:+.1f}%")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "heatmaps.npy"
        np.save(path, heatmaps)
        post = post_one_core(path)
    print(f"(c) post-processing 640x480, one core, single-threaded BLAS: mean {post['mean']:.3f} ms, "
          f"p50 {post['p50']:.3f}, p95 {post['p95']:.3f} (target < 1 ms)")
    for label, fps_a, summary, _ in rows:
        target = 0.8 if label == "threads=ORT default" else 0.9
        print(f"summary {label}: (a) {fps_a:.1f} FPS, (b) {summary['fps']:.1f} FPS, (b)/(a) {summary['fps'] / fps_a:.3f} "
              f"(target >= {target})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
