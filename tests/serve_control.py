"""A small, real StreamControl for the server's tests: each stream a thread producing real frames and results.

Sources:
- ``pattern:WxH@FPS/BWxBH``: frames drawn with OpenCV, a white object of BW x BH moving across a grey scene;
  the result's box is where the object was drawn (:func:`pattern_box` gives it from the frame index alone).
- ``video:PATH``: the frames of a real video file (looped); the box is the centre half of the frame.
- ``stall:``: a stream that never delivers a frame.
Anything else is refused with a UserError, as the real runtime refuses a source it cannot use.
"""

from __future__ import annotations

import collections
import functools
import re
import threading
import time

import cv2
import numpy as np

from uolrps.core.errors import UserError
from uolrps.runtime.control import Latest, StreamStatus
from uolrps.runtime.result import LocalizationResult

PATTERN = re.compile(r"pattern:(\d+)x(\d+)@(\d+)/(\d+)x(\d+)$")


def pattern_box(source: str, frame_index: int) -> tuple[int, int, int, int]:
    """Inclusive x1, y1, x2, y2 of the object in frame ``frame_index`` of a pattern source."""
    W, H, fps, bw, bh = (int(v) for v in PATTERN.match(source).groups())
    travel = W - bw - 40
    x1 = 20 + (frame_index * 7) % travel
    y1 = (H - bh) // 2
    return x1, y1, x1 + bw - 1, y1 + bh - 1


def pattern_frame(source: str, frame_index: int) -> np.ndarray:
    W, H = (int(v) for v in PATTERN.match(source).groups()[:2])
    frame = _texture(H, W).copy()
    cv2.putText(frame, f"{frame_index}", (10, H - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (200, 200, 200), 1)
    x1, y1, x2, y2 = pattern_box(source, frame_index)
    cv2.rectangle(frame, (x1 + 6, y1 + 6), (x2 - 6, y2 - 6), (255, 255, 255), -1)
    return frame


@functools.lru_cache(maxsize=8)
def _texture(H: int, W: int) -> np.ndarray:
    """A grey scene with fine grey noise, so that its JPEGs weigh what a camera's do (tens of kB)."""
    noise = np.random.default_rng(0).integers(60, 121, (H, W), dtype=np.uint8)
    return np.repeat(noise[:, :, None], 3, axis=2)


def heatmap_for(box, frame_size, grid=(12, 16)) -> np.ndarray:
    H, W = frame_size
    h, w = grid
    hm = np.zeros((1, h, w), np.float32)
    x1, y1, x2, y2 = box
    hm[0, int(y1 * h / H):int(np.ceil((y2 + 1) * h / H)), int(x1 * w / W):int(np.ceil((x2 + 1) * w / W))] = 1.0
    return hm


class _Stream:
    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.state = "opening"
        self.reason: str | None = None
        self.frames = 0
        self.latest: Latest | None = None
        self.times: collections.deque = collections.deque(maxlen=60)
        self.latencies: collections.deque = collections.deque(maxlen=200)
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None


class SyntheticRun:
    """Implements :class:`uolrps.runtime.control.StreamControl` over threads that make frames."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit  # frames per stream before it ends (None: until removed)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._streams: dict[str, _Stream] = {}
        self._count = 0
        self.publish_s: list[float] = []  # time each publish held the producer thread

    # -- StreamControl -------------------------------------------------------------------------------------

    def statuses(self) -> list[StreamStatus]:
        with self._lock:
            streams = list(self._streams.values())
        out = []
        for s in streams:
            times = list(s.times)
            fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
            lat = sorted(s.latencies)
            p = (lambda q: float(lat[min(len(lat) - 1, int(q * len(lat)))]) if lat else None)
            out.append(StreamStatus(s.name, s.source, s.state, s.reason, s.frames,
                                    {"capture": 0, "infer": 0, "output": 0}, 0, fps, p(0.5), p(0.95)))
        return out

    def latest(self, name: str) -> Latest | None:
        with self._lock:
            return self._streams[name].latest

    def wait_latest(self, name: str, after_seq: int, timeout: float) -> Latest | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            s = self._streams[name]  # like the real engine: the call waits on the stream it started with
            while True:
                if s.latest is not None and s.latest.seq > after_seq:
                    return s.latest
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def add_stream(self, source: str, name: str | None = None) -> str:
        if not (PATTERN.match(source) or source.startswith("video:") or source == "stall:"):
            raise UserError(f"unknown source form {source!r}: give pattern:WxH@FPS/BWxBH, video:PATH or stall:")
        if source.startswith("video:"):
            cap = cv2.VideoCapture(source[6:])
            ok = cap.isOpened()
            cap.release()
            if not ok:
                raise UserError(f"cannot open the video {source[6:]}")
        with self._lock:
            if name is None:
                while f"cam{self._count}" in self._streams:
                    self._count += 1
                name = f"cam{self._count}"
            elif name in self._streams:
                raise UserError(f"a stream named {name!r} already exists")
            s = _Stream(name, source)
            self._streams[name] = s
        s.thread = threading.Thread(target=self._produce, args=(s,), daemon=True)
        s.thread.start()
        return name

    def remove_stream(self, name: str) -> None:
        with self._cond:
            s = self._streams.pop(name)
            self._cond.notify_all()
        s.stop.set()
        s.thread.join(5)

    # -- producing -----------------------------------------------------------------------------------------

    def close(self) -> None:
        for name in [s.name for s in self.statuses()]:
            try:
                self.remove_stream(name)
            except KeyError:
                pass

    def _frames(self, s: _Stream):
        if s.source == "stall:":
            while not s.stop.wait(0.05):
                pass
            return
        if s.source.startswith("video:"):
            cap = cv2.VideoCapture(s.source[6:])
            fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
            try:
                while True:
                    ok, frame = cap.read()
                    if not ok:
                        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                        continue
                    H, W = frame.shape[:2]
                    yield frame, (W // 4, H // 4, W - W // 4 - 1, H - H // 4 - 1), 1.0 / fps
            finally:
                cap.release()
        fps = int(PATTERN.match(s.source).group(3))
        i = 0
        while True:
            yield pattern_frame(s.source, i), pattern_box(s.source, i), 1.0 / fps
            i += 1

    def _produce(self, s: _Stream) -> None:
        s.state = "running"
        next_t = time.monotonic()
        for i, (frame, box, period) in enumerate(self._frames(s)):
            if s.stop.is_set():
                return
            captured = time.monotonic()
            frame.setflags(write=False)
            H, W = frame.shape[:2]
            result = LocalizationResult(boxes=np.array([box], np.float32), scores=np.array([0.9], np.float32),
                                        heatmap=heatmap_for(box, (H, W)), frame_size=(H, W), frame_index=i,
                                        timestamp=i * period)
            latency = (time.monotonic() - captured) * 1000.0
            line = {**result.to_record(), "stream": s.name, "latency_ms": round(latency, 2)}
            t0 = time.perf_counter()
            with self._cond:
                s.latest = Latest(i + 1, frame, result, line)  # per stream: a stream added again starts at 1
                s.frames += 1
                s.times.append(time.monotonic())
                s.latencies.append(latency)
                self._cond.notify_all()
            self.publish_s.append(time.perf_counter() - t0)
            if self.limit is not None and i + 1 >= self.limit:
                s.state, s.reason = "ended", "end of the source"
                return
            next_t += period
            if s.stop.wait(max(0.0, next_t - time.monotonic())):
                return
