"""Benchmark of `uolrps run` on ../shared/data/video/raccoon_pan.mp4 (900 frames, 640 x 480), side by side:

(a) the bare inference session alone on the same frames (decoded and preprocessed beforehand, batch 1);
(b) the end-to-end `uolrps run` pipeline (the library's ``run``: decode, preprocess, infer, boxes, JSONL; no
    display), and the ratio (b)/(a) (targets: >= 0.8 at uolrps's default threads, >= 0.9 at --threads 1);
(c) post-processing (heatmap -> boxes) per 640 x 480 frame on one core, on the model's real heatmaps;
(d) resident memory at frame 100 and at frame 900 of (b) (target: within 10%);
(e) the GPU case without a GPU: `uolrps run` with the session replaced by a stand-in device that takes a fixed
    time per call and no CPU (a timed wait that returns the heatmaps (a) computed for the same frames), against
    that device's own rate: the pipeline's overhead when inference leaves the CPU free. ``--device-ms bare``
    takes the time per call that (a) measured at one thread in the same round.

    python benchmarks/bench_run.py MODEL.onnx [--video PATH] [--providers cpu] [--threads default,1] [--rounds 1]
        [--device-ms bare,4]

Each round alternates which side runs first; the summary gives every round's ratio and the median. At one
thread, (a) is also timed with the clip decoding in a separate process beside it ("(a) with a neighbour"):
on this VM a busy second core slowed a single-threaded session by 0-28% in the rounds measured, and
`uolrps run` always has its decoder and box extraction beside inference.

With inference on the CPU, ONNX Runtime's default threads take every core, so nothing is left to overlap
decoding and box extraction with; ``--threads 1`` leaves them a core and shows the overlap.

Like `uolrps run`, it limits OpenBLAS to one thread before numpy loads (see uolrps/cli/run_cmd.py).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
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


def make_session(model: Path, providers: str | None = None, spin: bool = False, threads: int | None = None):
    """A plain ONNX Runtime session on ``model``: ORT's defaults with ``spin``, else no spinning (as uolrps);
    ``threads`` intra-op threads (None: ORT's count)."""
    import onnxruntime as ort

    from uolrps.runtime.backends.ort import PROVIDERS, parse_providers

    options = ort.SessionOptions()
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(model), options, providers=[PROVIDERS[p] for p in parse_providers(providers)])


def bare_session(model: Path, inputs: np.ndarray, providers: str | None, spin: bool,
                 threads: int | None, inflight: int = 1) -> tuple[float, np.ndarray]:
    """(a): frames per second of ONNX Runtime alone, one frame per run, plus the heatmaps.

    ``spin``: ONNX Runtime's default session options (intra-op workers spin between runs); without it, no
    spinning, as uolrps' ORT backend runs. ``inflight``: that many calls at once, from as many threads. The
    ratio (b)/(a) is taken against the fastest of these.
    """
    sess = make_session(model, providers, spin, threads)
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


@contextlib.contextmanager
def decoding_beside(video: Path):
    """A separate process decoding ``video`` in a loop (and resizing, as the run's capture does) while the
    block runs: the neighbour that `uolrps run`'s own capture is to its inference thread."""
    code = ("import cv2, sys\nwhile True:\n    cap = cv2.VideoCapture(sys.argv[1])\n    while True:\n"
            "        ok, f = cap.read()\n        if not ok:\n            break\n        cv2.resize(f, (224, 224))\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(video)])
    time.sleep(0.5)
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def _digest(x: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(x).tobytes(), digest_size=16).digest()


@contextlib.contextmanager
def stand_in_device(inputs: np.ndarray, heatmaps: np.ndarray, ms_per_call: float):
    """(e): ONNX Runtime's session call replaced by a device that takes ``ms_per_call`` and no CPU per call
    (a timed wait, as a GPU call is to the CPU; one call at a time, as one TensorRT execution context) and
    returns the heatmap (a) computed for the same frame."""
    from uolrps.runtime.backends.ort import OrtBackend

    table = {_digest(x): h for x, h in zip(inputs, heatmaps)}
    real = OrtBackend.__call__
    device = threading.Lock()  # one device, one call at a time (as the TensorRT backend's one execution context)

    def call(self, batch: np.ndarray) -> np.ndarray:
        with device:
            due = time.perf_counter() + ms_per_call / 1000.0
            out = np.stack([table[_digest(x)] for x in batch])
            time.sleep(max(0.0, due - time.perf_counter()))
        return out

    OrtBackend.__call__ = call
    try:
        yield
    finally:
        OrtBackend.__call__ = real


def _thread_cpu() -> dict[tuple[int, int], tuple[str, float]]:
    """CPU seconds (user + system) of every thread of this process so far, by (native thread id, start time:
    an id can be reused once a thread ends), with its name: the Python name where Python started the thread,
    else the kernel's (FFmpeg's decoders name theirs av:...)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    hz = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/self/task/{tid}/comm") as f:
                comm = f.read().strip()
        except OSError:  # the thread ended meanwhile
            continue
        out[(int(tid), int(fields[19]))] = (names.get(int(tid), comm), (int(fields[11]) + int(fields[12])) / hz)
    return out


def _stage_of(name: str) -> str:
    for prefix, stage in (("uolrps-infer", "inference threads"), ("uolrps-feed", "capture (read, resize)"),
                          ("MainThread", "consumer (boxes, JSONL)"), ("av:", "FFmpeg decoder threads")):
        if name.startswith(prefix):
            return stage
    return "other (ONNX Runtime / OpenCV worker pools)"


def end_to_end(model: Path, video: Path, providers: str | None, threads: int | None,
               inflight: int | None = None) -> tuple[dict, dict]:
    """(b) and (d): `uolrps run --video VIDEO --model MODEL --jsonl ...`, sampling RSS at frames 100 and 900
    and each thread's CPU time (the summary's ``cpu_ms``: CPU milliseconds per frame by stage)."""
    from uolrps.runtime.runner import RunConfig, run
    from uolrps.runtime.stats import RunStats

    stats, rss, done = RunStats(), {}, threading.Event()
    before, last = _thread_cpu(), {}

    def watch():
        while not done.is_set():
            n = stats.frames
            for mark in (100, 900):
                if n >= mark and mark not in rss:
                    rss[mark] = (n, rss_mib())
            last.update(_thread_cpu())  # a thread's last sample before it ends
            time.sleep(0.05)  # a coarse poll: a thread waking every 2 ms took the GIL from the run it measures

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig(source=str(video), model=model, jsonl=Path(tmp) / "out.jsonl", providers=providers,
                        threads=threads, progress=False, inflight=inflight)
        run(cfg, stats=stats)
        lines = sum(1 for _ in open(Path(tmp) / "out.jsonl"))
    last.update(_thread_cpu())
    done.set()
    watcher.join()
    rss.setdefault(900, (stats.frames, rss_mib()))
    cpu: dict[str, float] = {}
    for key, (name, secs) in last.items():
        if key[0] != watcher.native_id:
            cpu[_stage_of(name)] = cpu.get(_stage_of(name), 0.0) + secs - before.get(key, (name, 0.0))[1]
    frames = max(1, stats.frames)
    return {**stats.summary(), "jsonl_lines": lines,
            "cpu_ms": {k: 1000.0 * v / frames for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])}}, rss


def post_one_core(heatmaps: Path, size=(480, 640), repeat: int = 3) -> dict:
    """(c): run in a child process pinned to one CPU with single-threaded BLAS."""
    code = f"""
import os, json, time
os.sched_setaffinity(0, {{sorted(os.sched_getaffinity(0))[0]}})
os.environ["OPENBLAS_NUM_THREADS"] = "1"
import numpy as np
from uolrps.core.boxes import heatmap_to_boxes
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
    ap.add_argument("--device-ms", default="bare,4",
                    help="(e), in the --threads 1 rounds: stand-in device times per call, comma-separated ms or "
                         "'bare' (the time (a) measured at one thread); empty: skip (e)")
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
    print("the neighbour in '(a) with the clip decoding beside it' decodes flat out, more than the run's paced "
          "capture does: it bounds what a busy second core costs a one-thread session, it is not a target")
    ratios: dict[str, list] = {}  # setting -> [(label of the reference, ratio), ...] per round
    heatmaps = None
    settings = [None if t == "default" else int(t) for t in args.threads.split(",")]
    devices = [d.strip() for d in args.device_ms.split(",") if d.strip()]

    def note(key: str, *pairs) -> None:
        ratios.setdefault(key, []).append(pairs)

    for r in range(args.rounds):
        for threads in settings:
            label = f"threads={threads or 'ORT default'}"

            def bare() -> tuple:
                spin, hms = bare_session(args.model, inputs, args.providers, spin=True, threads=threads)
                calm, _ = bare_session(args.model, inputs, args.providers, spin=False, threads=threads)
                two = beside = None
                if threads is None:  # what uolrps run does at its default threads
                    two = bare_session(args.model, inputs, args.providers, spin=False, threads=None, inflight=2)[0]
                else:
                    with decoding_beside(args.video):
                        beside = bare_session(args.model, inputs, args.providers, spin=False, threads=threads)[0]
                return spin, calm, two, beside, hms

            if r % 2:  # alternate which side runs first: this VM drifts between runs
                summary, rss = end_to_end(args.model, args.video, args.providers, threads)
                fps_spin, fps_calm, fps_two, fps_beside, heatmaps = bare()
            else:
                fps_spin, fps_calm, fps_two, fps_beside, heatmaps = bare()
                summary, rss = end_to_end(args.model, args.video, args.providers, threads)
            fps_a = max(x for x in (fps_spin, fps_calm, fps_two) if x is not None)
            extra = f" / {fps_two:6.1f} FPS (no spinning, 2 calls in flight)" if fps_two else ""
            extra += f" / {fps_beside:6.1f} FPS (no spinning, the clip decoding beside it)" if fps_beside else ""
            fps_b = summary["fps"]
            print(f"round {r + 1}, {label}: (a) bare session {fps_spin:6.1f} FPS (ORT defaults) / {fps_calm:6.1f} FPS "
                  f"(no spinning){extra} | (b) uolrps run {fps_b:6.1f} FPS ({summary['frames']} frames, "
                  f"{summary['jsonl_lines']} JSONL lines, dropped {summary['dropped']}) | "
                  f"(b)/(a) = {fps_b / fps_a:.3f}")
            print("    (b) stage p50/p95 ms: " + ", ".join(f"{k} {v['p50']:.2f}/{v['p95']:.2f}"
                                                       for k, v in summary["ms"].items()))
            cpu, total = summary["cpu_ms"], sum(summary["cpu_ms"].values())
            print(f"    (b) CPU ms per frame: {total:.2f} = " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
                  + f"; on {os.cpu_count()} cores at most {1000 * os.cpu_count() / total:.0f} FPS")
            (n1, r1), (n2, r2) = rss[100], rss[900]
            print(f"    (d) RSS {r1:.1f} MiB at frame {n1}, {r2:.1f} MiB at frame {n2}: {100 * (r2 - r1) / r1:+.1f}%")
            pairs = [("fastest bare session", fps_b / fps_a)]
            if fps_beside:
                pairs.append(("bare session with a neighbour", fps_b / fps_beside))
            note(label, *pairs)
            if threads == 1:
                for d in devices:
                    ms = 1000.0 / fps_calm if d == "bare" else float(d)
                    with stand_in_device(inputs, heatmaps, ms):
                        s_e, _ = end_to_end(args.model, args.video, args.providers, 1)
                    print(f"    (e) stand-in device {ms:.2f} ms a call ({1000 / ms:.1f} calls/s): uolrps run "
                          f"{s_e['fps']:6.1f} FPS ({s_e['frames']} frames), "
                          f"{s_e['fps'] * ms / 1000:.3f} of the device rate")
                    note(f"device {d}" + (" ms" if d != "bare" else " (the one-thread bare time)"),
                         ("device rate", s_e["fps"] * ms / 1000))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "heatmaps.npy"
        np.save(path, heatmaps)
        post = post_one_core(path)
    print(f"(c) post-processing 640x480, one core, single-threaded BLAS: mean {post['mean']:.3f} ms, "
          f"p50 {post['p50']:.3f}, p95 {post['p95']:.3f} (target < 1 ms)")
    targets = {"threads=ORT default": 0.8, "threads=1": 0.9}
    for key, rounds in ratios.items():
        for j, (ref, _) in enumerate(rounds[0]):
            values = [rnd[j][1] for rnd in rounds]
            target = f" (target >= {targets[key]})" if key in targets and j == 0 else ""
            print(f"summary {key}: (b) / {ref}: " + ", ".join(f"{v:.3f}" for v in values)
                  + f"; median {statistics.median(values):.3f}{target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
