"""What the browser view costs: drawing and JPEG encoding per frame, and a served replay watched by viewers.

(a) Draw the boxes (and the heatmap) and encode one 640 x 480 frame of ../shared/data/video/raccoon_pan.mp4
    as JPEG (quality 80), ms per frame on one thread.
(b) A replay of the same video at 30 FPS behind ``uolrps.serve.start_server`` (the StreamControl is a small
    replay here, not a model: this measures the server alone), watched by 0, 1, 2 and 4 fast viewers plus one
    slow one (5 FPS): frames each viewer received per second, JPEG encodes per produced frame (at most 1
    however many viewers), and the process's CPU use (of one core) over the window.
(c) With ``--model MODEL``: the real ``uolrps run`` pipeline (the library's ``run``, ``serve="127.0.0.1:0"``)
    on 2 streams of the same video, with no viewer against 2 fast viewers + 1 slow one (each run alternated,
    ``--rounds`` times): aggregate FPS, and the ratio. Viewers cost CPU (drawing, JPEG), never waiting.

    python benchmarks/bench_serve.py [--video PATH] [--seconds 5] [--model eff.onnx --rounds 2]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from viewers import Viewer  # noqa: E402

from uolrps.runtime.control import Latest, StreamStatus  # noqa: E402
from uolrps.core.drawing import Annotator  # noqa: E402
from uolrps.runtime.result import LocalizationResult  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load_frames(path: Path, n: int = 300) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < n:
        ok, frame = cap.read()
        if not ok:
            break
        frame.setflags(write=False)
        frames.append(frame)
    cap.release()
    if not frames:
        sys.exit(f"error: cannot read frames from {path}")
    return frames


def result_for(frame: np.ndarray, i: int) -> LocalizationResult:
    H, W = frame.shape[:2]
    box = np.array([[W * 0.25, H * 0.25, W * 0.75 - 1, H * 0.75 - 1]], np.float32)
    hm = np.zeros((1, 15, 20), np.float32)
    hm[0, 4:11, 5:15] = 0.8
    return LocalizationResult(box, np.array([0.8], np.float32), hm, (H, W), frame_index=i, timestamp=i / 30)


class Replay:
    """One stream replaying frames at ``fps`` (a minimal StreamControl)."""

    def __init__(self, frames, fps: float = 30.0) -> None:
        self.frames, self.fps = frames, fps
        self.cond = threading.Condition()
        self.cur: Latest | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        t, i = time.monotonic(), 0
        while not self.stop.is_set():
            frame = self.frames[i % len(self.frames)]
            res = result_for(frame, i)
            with self.cond:
                self.cur = Latest(i + 1, frame, res, {**res.to_record(), "stream": "cam0", "latency_ms": 0.0})
                self.cond.notify_all()
            i += 1
            t += 1.0 / self.fps
            self.stop.wait(max(0.0, t - time.monotonic()))

    def statuses(self):
        n = self.cur.seq if self.cur else 0
        return [StreamStatus("cam0", "replay", "running", None, n, {}, 0, self.fps, None, None)]

    def latest(self, name):
        if name != "cam0":
            raise KeyError(name)
        return self.cur

    def wait_latest(self, name, after_seq, timeout):
        self.latest(name)
        with self.cond:
            self.cond.wait_for(lambda: self.cur is not None and self.cur.seq > after_seq, timeout)
            return self.cur if self.cur is not None and self.cur.seq > after_seq else None

    def add_stream(self, source, name=None):
        from uolrps.core.errors import UserError

        raise UserError("this replay has one stream")

    def remove_stream(self, name):
        raise KeyError(name)


def bench_encode(frames) -> None:
    params = [int(cv2.IMWRITE_JPEG_QUALITY), 80]
    for heatmap in (False, True):
        ann = Annotator(heatmap=heatmap)
        times = []
        for i, frame in enumerate(frames[:200]):
            t0 = time.perf_counter()
            ok, buf = cv2.imencode(".jpg", ann.annotate(frame, result_for(frame, i)), params)
            times.append((time.perf_counter() - t0) * 1000)
        print(f"(a) draw + JPEG {frames[0].shape[1]}x{frames[0].shape[0]}, heatmap={heatmap}: "
              f"p50 {np.percentile(times, 50):.2f} ms, p95 {np.percentile(times, 95):.2f} ms, "
              f"{len(buf) / 1000:.0f} kB")


def bench_viewers(frames, seconds: float) -> None:
    from uolrps.serve import start_server

    for fast in (0, 1, 2, 4):
        replay = Replay(frames)
        handle = start_server(replay, port=0)
        viewers = [Viewer(handle.url, "cam0") for _ in range(fast)] + [Viewer(handle.url, "cam0", delay=0.2)]
        for v in viewers:
            v.start()
        time.sleep(1.0)  # warm up
        seq0, cpu0, t0 = replay.cur.seq, time.process_time(), time.monotonic()
        enc0 = sum(handle._state.hubs.encoded().values())
        f0 = [v.frames for v in viewers]
        time.sleep(seconds)
        dt = time.monotonic() - t0
        produced = replay.cur.seq - seq0
        encoded = sum(handle._state.hubs.encoded().values()) - enc0
        cpu = (time.process_time() - cpu0) / dt * 100
        rates = [(v.frames - f) / dt for v, f in zip(viewers, f0)]
        for v in viewers:
            v.stop()
        handle.close()
        replay.stop.set()
        fast_txt = f"{np.mean(rates[:-1]):.1f}" if fast else "-"
        print(f"(b) {fast} fast + 1 slow viewer: fast {fast_txt} FPS each, slow {rates[-1]:.1f} FPS, "
              f"{encoded / max(1, produced):.2f} encodes per frame, CPU {cpu:.0f}% of one core "
              f"(replay at {produced / dt:.1f} FPS included)")


def run_with_viewers(model: Path, video: Path, viewers: bool) -> tuple[float, int]:
    """Aggregate FPS and frames of a 2-stream run of ``video`` with --serve, with or without viewers."""
    from uolrps.runtime.runner import RunConfig, run
    from uolrps.serve import start_server

    started: list[Viewer] = []

    def on_start(engine, server) -> None:
        if viewers:
            a, b = (st.name for st in engine.statuses())
            started.extend([Viewer(server.url, a), Viewer(server.url, b), Viewer(server.url, a, delay=0.2)])
            for v in started:
                v.start()

        engine.keep_running = False  # with --serve a run waits for more streams; here it ends with its files

    config = RunConfig(source=(str(video), str(video)), model=model, serve="127.0.0.1:0", progress=False)
    stats = run(config, on_start=on_start, say=lambda text: None, serve_with=start_server)
    for v in started:
        v.stop()
    received = [v.frames for v in started]
    if viewers and min(received) == 0:
        sys.exit(f"error: a viewer received nothing: {[v.summary() for v in started]}")
    return stats.fps, stats.frames


def bench_run(model: Path, video: Path, rounds: int) -> None:
    fps = {False: [], True: []}
    for _ in range(rounds):
        for with_viewers in (False, True):
            f, frames = run_with_viewers(model, video, with_viewers)
            fps[with_viewers].append(f)
    bare, watched = np.median(fps[False]), np.median(fps[True])
    print(f"(c) uolrps run, 2 streams of {video.name} ({frames} frames), {model.name}: no viewer {bare:.1f} FPS, "
          f"2 fast + 1 slow viewers {watched:.1f} FPS (ratio {watched / bare:.2f}; rounds: "
          f"{[round(x, 1) for x in fps[False]]} vs {[round(x, 1) for x in fps[True]]})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", type=Path, default=ROOT.parent / "shared" / "data" / "video" / "raccoon_pan.mp4")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--model", type=Path, help="a uolrps ONNX model for (c), e.g. from "
                    "`uolrps export -b efflite0 -o eff.onnx --dynamic-batch`")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if not args.video.exists():
        sys.exit(f"error: {args.video} not found: give --video PATH")
    frames = load_frames(args.video)
    bench_encode(frames)
    bench_viewers(frames, args.seconds)
    if args.model is not None:
        bench_run(args.model, args.video, args.rounds)


if __name__ == "__main__":
    main()
