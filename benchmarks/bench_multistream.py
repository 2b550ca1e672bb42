"""Benchmark of many streams in one `uolrps run` (one model, batched across streams), side by side:

(a) First the bare session's images/s at batch 1, 2, 4, 8 (what batching itself gives on this machine); then
    N = 1, 2, 4, 8 copies of ../shared/data/video/raccoon_pan.mp4 as streams of ONE `uolrps run` process
    against N separate single-stream `uolrps run` processes started at the same time; aggregate FPS = all
    frames / wall time of the streaming phase (start-up and model loading left out on both sides). Target:
    batching wins from 2 streams up. Use a --dynamic-batch model (`uolrps export -b efflite0 --dynamic-batch`).
(c) a live source simulated at 30 FPS (the clip's frames paced by a capture that delivers on the clock, as
    a camera does): p50/p95 capture-to-result latency against the inference period (infer p50). Target:
    both under 2 inference periods.
(d) resident memory over 5000 frames with 4 looping streams and 2 browser viewers on --serve: RSS at
    frame 500 and at frame 5000 (target: within 10%).

    python benchmarks/bench_multistream.py MODEL.onnx [--parts a,c,d] [--frames 150] [--counts 1,2,4,8]
        [--rounds 3] [--one-args "--inflight 2 --threads 1"] [--many-args "--threads 1"]

(a) alternates which side runs first in each round and reports every round and the median ratio;
``--one-args`` / ``--many-args`` add `uolrps run` options to the batched process / to each separate one, so
each side can be given its best settings.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from bench_run import rss_mib  # noqa: E402  (beside this script)

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ROOT.parent / "shared" / "data" / "video" / "raccoon_pan.mp4"
CLI = [sys.executable, "-m", "uolrps.cli.main", "run"]




def _env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def _spawn(args: list) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())


def _reap(procs: list) -> tuple[list[float], list[float]]:
    """Wait for every process; (end times, CPU seconds user + system) per process, in order."""
    ends, cpu = [0.0] * len(procs), [0.0] * len(procs)
    left = {p.pid: i for i, p in enumerate(procs)}
    while left:
        pid, status, usage = os.wait4(-1, 0)
        if pid in left:
            i = left.pop(pid)
            ends[i], cpu[i] = time.monotonic(), usage.ru_utime + usage.ru_stime
            procs[i].returncode = os.waitstatus_to_exitcode(status)
            if procs[i].returncode:
                raise RuntimeError(f"uolrps run failed (exit {procs[i].returncode})")
    return ends, cpu


def batched_vs_separate(model: Path, video: Path, n: int, frames: int, threads: str | None,
                        one_args: tuple = (), many_args: tuple = (), separate_first: bool = False) -> dict:
    """(a) for N streams: one batched process against N separate processes started together.

    ``fps``: all frames over the streaming phase (from each run's summary: first stream opened to the end;
    for the separate processes, from the earliest start to the latest end), start-up left out. ``per_cpu_s``:
    frames per CPU-second of the processes (user + system, start-up of a 1-frame run subtracted per process),
    which a machine shared with other jobs does not distort: the OS gives N processes more of a busy
    machine than one."""
    extra = ["--quiet"] + (["--threads", threads] if threads else [])
    with tempfile.TemporaryDirectory() as tmp:
        def cmd(k: int, tag: str, max_frames: int, more: tuple) -> list:
            return CLI + sum((["--video", str(video)] for _ in range(k)), []) + [
                "--model", str(model), "--summary-json", f"{tmp}/{tag}.json", "--max-frames", str(max_frames)] + \
                extra + list(more)

        _, (startup,) = _reap([_spawn(cmd(1, "startup", 1, ()))])

        def batched() -> dict:
            _, (cpu_one,) = _reap([_spawn(cmd(n, "b", frames, one_args))])
            s = json.load(open(f"{tmp}/b.json"))
            return {"fps": s["frames"] / s["wall_s"], "per_cpu_s": s["frames"] / max(1e-9, cpu_one - startup)}

        def separate() -> dict:
            ends, cpus = _reap([_spawn(cmd(1, f"s{i}", frames, many_args)) for i in range(n)])
            runs = [json.load(open(f"{tmp}/s{i}.json")) for i in range(n)]
            span = max(ends) - min(e - r["wall_s"] for e, r in zip(ends, runs))
            total = sum(r["frames"] for r in runs)
            return {"fps": total / span, "per_cpu_s": total / max(1e-9, sum(cpus) - n * startup)}

        if separate_first:
            many, one = separate(), batched()
        else:
            one, many = batched(), separate()
    return {"one": one, "many": many, "startup_cpu_s": startup}


def batch_scaling(model: Path, video: Path, counts: list[int], seconds: float = 2.0, rounds: int = 3) -> dict:
    """(a), first: what batching itself gives on this machine. The bare session (uolrps's settings: ORT's
    default threads, no spinning) on the clip's frames at batch 1 and at batch N, images per second, the
    batch sizes interleaved ``rounds`` times (median). Batching across streams can only win where a batch of
    N costs less than N single calls."""
    from bench_run import decode_and_preprocess, make_session
    from uolrps.runtime import Localizer

    with Localizer(model) as loc:
        meta = loc.meta
    _, inputs = decode_and_preprocess(video, meta)
    sess = make_session(model)
    name = sess.get_inputs()[0].name
    sizes = sorted({1, *counts})
    rates: dict[int, list] = {b: [] for b in sizes}
    for _ in range(rounds):
        for b in sizes:
            sess.run(None, {name: inputs[:b]})  # warm-up at this shape
            done, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                start = (done % (len(inputs) - b + 1))
                sess.run(None, {name: inputs[start:start + b]})
                done += b
            rates[b].append(done / (time.perf_counter() - t0))
    return {b: statistics.median(v) for b, v in rates.items()}


class PacedCamera:
    """The camera we lack: the clip's frames delivered on a 30 FPS clock (a read blocks until the next one is
    due, as a V4L2 capture does); the newest is taken, frames that came while nobody read are skipped."""

    def __init__(self, frames: list, fps: float = 30.0) -> None:
        self.frames, self.period, self.t0, self.last = frames, 1.0 / fps, time.monotonic(), -1

    def isOpened(self):
        return True

    def read(self):
        k = int((time.monotonic() - self.t0) / self.period) + 1
        k = max(k, self.last + 1)
        time.sleep(max(0.0, self.t0 + k * self.period - time.monotonic()))
        self.last = k
        return True, self.frames[k % len(self.frames)]

    def get(self, prop):
        return 30.0

    def release(self):
        pass


def live_latency(model: Path, video: Path, seconds: float, threads: int | None, inflight: int | None = None) -> dict:
    """(c): one live stream at 30 FPS for ``seconds``."""
    from uolrps.runtime.runner import RunConfig, run
    from uolrps.runtime.sources import open_source
    from uolrps.runtime.stats import RunStats

    with open_source(str(video)) as src:
        frames = [f.image for _, f in zip(range(300), src)]
    stats = RunStats()
    stop = threading.Timer(seconds, lambda: engine_ref[0].close())
    engine_ref: list = []
    cfg = RunConfig(source="cam0", model=model, threads=threads, progress=False, serve=None, inflight=inflight)
    stop.start()
    run(cfg, capture_factory=lambda spec: PacedCamera(frames), stats=stats,
        on_start=lambda engine, server: engine_ref.append(engine))
    s = stats.summary()
    st = s["streams"]["cam0"]
    return {"frames": s["frames"], "fps": s["fps"], "infer_p50": s["ms"]["infer"]["p50"],
            "latency": st["latency_ms"], "drops": st["drops"]}


def memory(model: Path, video: Path, total: int, viewers: int, threads: int | None) -> dict:
    """(d): 4 looping streams, ``viewers`` MJPEG viewers on --serve; RSS at 10% and at 100% of ``total``."""
    from uolrps.runtime.runner import RunConfig, run
    from uolrps.runtime.stats import RunStats
    from uolrps.serve import start_server

    stats, rss, done = RunStats(), {}, threading.Event()
    marks = (total // 10, total)

    def viewer(url: str, name: str) -> None:
        import http.client
        from urllib.parse import urlsplit

        u = urlsplit(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        conn.request("GET", f"/streams/{name}.mjpg")
        resp = conn.getresponse()
        while not done.is_set():
            if not resp.read(65536):
                break
        conn.close()

    def on_start(engine, server):
        for status in engine.statuses()[:viewers]:
            threading.Thread(target=viewer, args=(server.url, status.name), daemon=True).start()

        def watch():
            while not done.is_set():
                for m in marks:
                    if stats.frames >= m and m not in rss:
                        rss[m] = (stats.frames, rss_mib())
                if stats.frames >= total:
                    engine.close()
                    return
                time.sleep(0.005)
        threading.Thread(target=watch, daemon=True).start()

    cfg = RunConfig(source=tuple(str(video) for _ in range(4)), model=model, loop=True, threads=threads,
                    progress=False, serve="127.0.0.1:0" if viewers else None)
    run(cfg, stats=stats, on_start=on_start, serve_with=start_server if viewers else None)
    done.set()
    return {"rss": rss, "frames": stats.frames}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help="a --dynamic-batch uolrps model (.onnx)")
    ap.add_argument("--video", type=Path, default=VIDEO)
    ap.add_argument("--parts", default="a,c,d")
    ap.add_argument("--counts", default="1,2,4,8")
    ap.add_argument("--frames", type=int, default=150, help="(a): frames per stream")
    ap.add_argument("--threads", default=None, help="ONNX Runtime threads for every run (default: uolrps's)")
    ap.add_argument("--rounds", type=int, default=1, help="(a): rounds per count, alternating which side goes first")
    ap.add_argument("--one-args", default="", help="(a): extra `uolrps run` options of the batched process")
    ap.add_argument("--many-args", default="", help="(a): extra `uolrps run` options of each separate process")
    ap.add_argument("--seconds", type=float, default=20.0, help="(c): how long the live stream runs")
    ap.add_argument("--inflight", type=int, default=None, help="(c): inference calls in flight (default: uolrps's)")
    ap.add_argument("--total", type=int, default=5000, help="(d): frames over all streams")
    args = ap.parse_args()
    if not args.video.exists():
        print(f"skipped: {args.video} is absent (the shared data lives in ../shared/data beside the repository)")
        return 0
    parts = set(args.parts.split(","))
    threads = int(args.threads) if args.threads else None
    print(f"model {args.model.name}; video {args.video.name}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    if "a" in parts:
        one_args, many_args = tuple(args.one_args.split()), tuple(args.many_args.split())
        counts = [int(c) for c in args.counts.split(",")]
        scaling = batch_scaling(args.model, args.video, counts)
        print("(a) the bare session alone (ORT default threads, no spinning), images/s by batch size: " + ", ".join(
            f"batch {b} {v:.1f} ({v / scaling[1]:.2f} x batch 1)" for b, v in scaling.items()), flush=True)
        print(f"(a) batched process: {' '.join(one_args) or 'defaults'}; separate processes: "
              f"{' '.join(many_args) or 'defaults'}")
        for n in counts:
            ratios = []
            for k in range(args.rounds):
                r = batched_vs_separate(args.model, args.video, n, args.frames, args.threads, one_args, many_args,
                                        separate_first=bool(k % 2))
                one, many = r["one"], r["many"]
                ratios.append(one["fps"] / many["fps"])
                print(f"(a) {n} stream(s) x {args.frames} frames, round {k + 1}: one batched process {one['fps']:6.1f} "
                      f"FPS, {one['per_cpu_s']:5.1f} frames/CPU-s | {n} separate processes {many['fps']:6.1f} FPS, "
                      f"{many['per_cpu_s']:5.1f} frames/CPU-s | ratio {one['fps'] / many['fps']:.2f} (wall), "
                      f"{one['per_cpu_s'] / many['per_cpu_s']:.2f} (CPU); start-up {r['startup_cpu_s']:.1f} CPU-s; "
                      f"load {os.getloadavg()[0]:.2f}", flush=True)
            print(f"(a) {n} stream(s): median wall ratio over {args.rounds} round(s) {statistics.median(ratios):.2f}"
                  " (target > 1 from 2 streams up)", flush=True)
    if "c" in parts:
        r = live_latency(args.model, args.video, args.seconds, threads, args.inflight)
        period = r["infer_p50"]
        lat = r["latency"]
        print(f"(c) live 30 FPS source, {r['frames']} results at {r['fps']:.1f} FPS: latency p50 {lat['p50']:.1f} / "
              f"p95 {lat['p95']:.1f} ms; inference period (infer p50) {period:.1f} ms -> p50 {lat['p50'] / period:.2f}"
              f" / p95 {lat['p95'] / period:.2f} periods (target < 2); drops {r['drops']}", flush=True)
    if "d" in parts:
        r = memory(args.model, args.video, args.total, 2, threads)
        (n1, r1), (n2, r2) = r["rss"][args.total // 10], r["rss"][args.total]
        print(f"(d) 4 streams, 2 viewers: RSS {r1:.1f} MiB at frame {n1}, {r2:.1f} MiB at frame {n2}: "
              f"{100 * (r2 - r1) / r1:+.1f}% (target within 10%)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
