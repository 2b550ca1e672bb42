"""ONNX Runtime CPU thread settings, quiet and with another job on the cores, side by side.

For each setting: the bare session (batch 1, frames decoded and preprocessed beforehand) and the `uolrps run`
pipeline on the same clip, first as the machine is, then with one busy process per core running beside it
(what a new user's machine looks like with a build or a browser going). Rounds alternate the settings, so
slow drifts of the machine hit them all alike.

    python benchmarks/bench_threads.py MODEL.onnx [--frames 300] [--rounds 2] [--settings ort,spin0,1,half]

Settings: ``ort`` = ONNX Runtime's defaults (one intra-op thread per core, spinning workers) for the bare
session, and `uolrps run` at its defaults (as many threads, no spinning, two calls in flight); ``one`` = as
many threads, no spinning, one call at a time (`uolrps run --inflight 1`); ``spin0`` = as many threads, no
spinning (bare session only); a number = that many threads (no spinning); ``half`` = half the cores, at least 1.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import multiprocessing as mp  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

VIDEO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "video" / "raccoon_pan.mp4"


def busy(stop) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def options_for(setting: str):
    import onnxruntime as ort

    o = ort.SessionOptions()
    cores = os.cpu_count() or 1
    if setting == "ort":
        return o
    o.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if setting in ("spin0", "one"):
        return o
    o.intra_op_num_threads = max(1, cores // 2) if setting == "half" else int(setting)
    return o


def bare(model: Path, inputs: np.ndarray, setting: str) -> float:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model), options_for(setting), providers=["CPUExecutionProvider"])
    name, out = sess.get_inputs()[0].name, sess.get_outputs()[0].name
    for x in inputs[:10]:
        sess.run([out], {name: x[None]})
    t0 = time.perf_counter()
    for x in inputs:
        sess.run([out], {name: x[None]})
    return len(inputs) / (time.perf_counter() - t0)


def pipeline(model: Path, video: Path, frames: int, setting: str) -> float | None:
    """`uolrps run` FPS with ``--threads`` for this setting (None for ``spin0``: the run has no such switch)."""
    from uolrps.runtime.runner import RunConfig, run

    if setting == "spin0":
        return None
    threads = None if setting in ("ort", "one") else max(1, (os.cpu_count() or 1) // 2) if setting == "half" \
        else int(setting)
    stats = run(RunConfig(source=str(video), model=model, max_frames=frames, threads=threads, progress=False,
                          inflight=1 if setting == "one" else None), say=lambda text: None)
    return stats.fps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--video", type=Path, default=VIDEO)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--settings", default="ort,spin0,1,half")
    args = ap.parse_args()
    if not args.video.exists():
        print(f"skipped: {args.video} is absent")
        return 0
    from uolrps.runtime import Localizer
    from uolrps.runtime.preprocess import preprocess
    from uolrps.runtime.sources import open_source

    with Localizer(args.model) as loc:
        meta = loc.meta
    with open_source(str(args.video)) as src:
        inputs = np.stack([preprocess(f.image, meta) for _, f in zip(range(args.frames), src)])
    settings = args.settings.split(",")
    print(f"model {args.model.name}; {len(inputs)} frames; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}")
    results: dict = {}
    for r in range(args.rounds):
        for loaded in (False, True):
            stop = mp.Event()
            workers = [mp.Process(target=busy, args=(stop,), daemon=True) for _ in range(os.cpu_count() or 1)] \
                if loaded else []
            for w in workers:
                w.start()
            try:
                for s in settings:
                    a, b = bare(args.model, inputs, s), pipeline(args.model, args.video, args.frames, s)
                    results.setdefault((s, loaded), []).append((a, b))
                    print(f"round {r + 1} {'with a busy job per core' if loaded else 'as the machine is':24s} "
                          f"{s:6s}: bare {a:6.1f} FPS, uolrps run {b or float('nan'):6.1f} FPS", flush=True)
            finally:
                stop.set()
                for w in workers:
                    w.join()
    print("median over rounds (bare / uolrps run FPS):")
    for s in settings:
        q = [np.median([v[i] or np.nan for v in results[(s, False)]]) for i in (0, 1)]
        b = [np.median([v[i] or np.nan for v in results[(s, True)]]) for i in (0, 1)]
        print(f"  {s:6s}: as is {q[0]:6.1f} / {q[1]:6.1f} | busy job per core {b[0]:6.1f} / {b[1]:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
