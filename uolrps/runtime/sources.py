"""Frame sources chosen by one string, read with a timeout and a status.

Forms: ``cam0`` / ``0`` / ``/dev/video0`` (V4L2 camera), a video file, an image file, a folder or glob of
images, ``rtsp://...``, ``http(s)://...`` and ``gst:PIPELINE`` (GStreamer, e.g. a Jetson CSI camera).

Files are read losslessly in the caller's thread. Live sources (camera, stream, GStreamer) run a capture
thread that keeps only the newest frame (every overwritten frame is counted in ``dropped``) and reopens
the capture with exponential backoff when it stops delivering. Captures come from a factory
(``capture_factory(spec)`` returning an object with OpenCV's ``VideoCapture`` methods ``isOpened``, ``read``,
``get``, ``release``) so that a camera we lack can be replaced by a fake in tests.
"""

from __future__ import annotations

import enum
import glob as globlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from uolrps.errors import UserError
from uolrps.images import is_image, list_images, read_bgr

log = logging.getLogger("uolrps.runtime")

FORMS = ("cam0 / 0 / /dev/video0 (camera), a video file, an image file, a folder or glob of images "
         "('photos/*.jpg'), rtsp://host/path, http(s)://host/path, gst:PIPELINE")
IMAGE_FPS = 1.0  # nominal rate of image sequences: frame i has timestamp i seconds
DEFAULT_FPS = 30.0  # when a capture reports no usable frame rate
NETWORK_TIMEOUT_MS = 5000  # FFmpeg open/read timeouts for rtsp:// and http(s)://


class Status(enum.Enum):
    OK = "ok"
    TIMEOUT = "timeout"  # nothing new within the timeout (live sources); try again
    END = "end"  # end of stream (files), or the source was closed
    ERROR = "error"  # the source gave up (message says why)


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR uint8 H x W x 3
    index: int  # 0-based, increasing, counts every frame the source delivered (dropped ones too)
    timestamp: float  # source time in seconds
    capture_ms: float  # time spent reading and decoding it


@dataclass(frozen=True)
class Read:
    status: Status
    frame: Frame | None = None
    message: str = ""


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # camera, video, image, folder, glob, rtsp, http, gst
    target: object  # camera index or device path, file path, url, pipeline, or a list of image paths
    text: str = ""

    @property
    def live(self) -> bool:
        return self.kind in ("camera", "rtsp", "http", "gst")


def parse_source(text: str | int | Path) -> SourceSpec:
    """Classify a source string (checks that files exist; opens nothing)."""
    raw = str(text).strip()
    if not raw:
        raise UserError(f"empty source: use {FORMS}")
    m = re.fullmatch(r"(?:cam)?(\d+)", raw)
    if m:
        return SourceSpec("camera", int(m.group(1)), raw)
    if re.fullmatch(r"/dev/video\d+", raw) or raw.startswith("/dev/v4l/"):  # also the stable by-id/by-path names
        if not Path(raw).exists():
            raise UserError(f"camera {raw} does not exist: check the cable and `ls /dev/video* /dev/v4l/by-id`")
        return SourceSpec("camera", raw, raw)
    low = raw.lower()
    if low.startswith(("rtsp://", "rtsps://")):
        return SourceSpec("rtsp", raw, raw)
    if low.startswith(("http://", "https://")):
        return SourceSpec("http", raw, raw)
    if low.startswith("gst:"):
        if not raw[4:].strip():
            raise UserError("empty GStreamer pipeline: use gst:'nvarguscamerasrc ! ... ! appsink'")
        return SourceSpec("gst", raw[4:].strip(), raw)
    if low.startswith("file://"):
        raw = raw[7:]
    elif re.match(r"[a-z][a-z0-9+.-]*://", low):
        raise UserError(f"unknown source scheme in {raw!r}: use {FORMS}")
    path = Path(raw).expanduser()
    if path.is_dir():
        images = list_images(path)
        if not images:
            raise UserError(f"folder {raw!r} holds no images (.jpg, .jpeg, .png, .bmp, .webp)")
        return SourceSpec("folder", images, raw)
    if path.is_file():
        return SourceSpec("image" if is_image(path) else "video", [path] if is_image(path) else path, raw)
    if any(c in raw for c in "*?["):
        images = sorted(Path(p) for p in globlib.glob(str(path), recursive=True) if is_image(Path(p)))
        if not images:
            raise UserError(f"glob {raw!r} matches no images (.jpg, .jpeg, .png, .bmp, .webp)")
        return SourceSpec("glob", images, raw)
    raise UserError(f"source {raw!r} is not an existing file or folder, nor a known form: use {FORMS}")


def opencv_capture(spec: SourceSpec):
    """The default capture factory: an OpenCV ``VideoCapture`` with the right API for the source kind."""
    import cv2

    if spec.kind == "camera":
        api = cv2.CAP_V4L2 if hasattr(cv2, "CAP_V4L2") and Path("/dev").is_dir() else cv2.CAP_ANY
        cap = cv2.VideoCapture(spec.target, api)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap
    if spec.kind in ("rtsp", "http"):
        return cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG, [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, NETWORK_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, NETWORK_TIMEOUT_MS])
    if spec.kind == "gst":
        info = cv2.getBuildInformation()
        if not re.search(r"GStreamer:\s+YES", info):
            raise UserError("this OpenCV build has no GStreamer support, so gst: sources cannot open: "
                            "use the system OpenCV (JetPack's python3-opencv) or a video file / camera form")
        return cv2.VideoCapture(spec.target, cv2.CAP_GSTREAMER)
    return cv2.VideoCapture(str(spec.target), cv2.CAP_FFMPEG)


def _fps(cap) -> float | None:
    import cv2

    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS))
    except Exception:
        return None
    return fps if 0.5 <= fps <= 1000.0 else None


class Source:
    """Base of every source: ``read(timeout)`` -> :class:`Read`; counters; context manager; iterable."""

    live = False
    fps: float = DEFAULT_FPS  # nominal frames per second (for the annotated video)
    total: int | None = None  # frames in one pass, when known (files)

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        self.dropped = 0  # frames overwritten before anyone read them (live sources)
        self.skipped = 0  # frames that could not be read or decoded
        self.reopened = 0  # successful reopenings of a live source

    def read(self, timeout: float = 1.0) -> Read:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self):
        """Frames until the end (timeouts are waited through)."""
        while True:
            r = self.read()
            if r.status is Status.OK:
                yield r.frame
            elif r.status is not Status.TIMEOUT:
                return

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.text!r})"


class ImageSource(Source):
    """An image file, a folder or a glob: every image in order, unreadable ones skipped and counted."""

    fps = IMAGE_FPS

    def __init__(self, spec: SourceSpec, loop: bool = False) -> None:
        super().__init__(spec)
        self.paths = list(spec.target)
        self.loop = loop
        self.total = len(self.paths)
        self._pos = 0
        self._index = 0
        self._good_in_pass = 0

    def read(self, timeout: float = 1.0) -> Read:
        while True:
            if self._pos >= len(self.paths):
                if not self.loop:
                    return Read(Status.END)
                if self._good_in_pass == 0:
                    return Read(Status.ERROR, message=f"{self.spec.text}: no image could be decoded")
                self._pos, self._good_in_pass = 0, 0
            path = self.paths[self._pos]
            self._pos += 1
            t0 = time.perf_counter()
            img = read_bgr(path)
            if img is None:
                self.skipped += 1
                log.warning("skipped %s: not a decodable image", path)
                continue
            self._good_in_pass += 1
            frame = Frame(img, self._index, self._index / IMAGE_FPS, (time.perf_counter() - t0) * 1000.0)
            self._index += 1
            return Read(Status.OK, frame)


class VideoFileSource(Source):
    """A video file, decoded losslessly in the caller's thread; ``loop`` restarts it with continuing times."""

    MAX_BAD_READS = 25  # consecutive failed reads before the middle of a file is taken as its end

    def __init__(self, spec: SourceSpec, loop: bool = False, capture_factory: Callable = opencv_capture) -> None:
        super().__init__(spec)
        self.loop = loop
        self._factory = capture_factory
        self._cap = self._open()
        self.fps = _fps(self._cap) or DEFAULT_FPS
        import cv2

        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.total = count if count > 0 else None
        self._index = 0
        self._in_pass = 0
        self._offset = 0.0
        self._last_t = -1.0

    def _open(self):
        cap = self._factory(self.spec)
        if cap is None or not cap.isOpened():
            raise UserError(f"cannot open video file {self.spec.text!r}: not a format OpenCV/FFmpeg can decode")
        return cap

    def read(self, timeout: float = 1.0) -> Read:
        import cv2

        bad = 0  # counted as skipped only if a good frame follows (frame counts are often overestimated)
        while True:
            t0 = time.perf_counter()
            ok, img = self._cap.read() if self._cap is not None else (False, None)
            if ok and img is not None:
                self.skipped += bad
                break
            remaining = self.total is not None and self._in_pass < self.total
            if remaining and bad < self.MAX_BAD_READS:
                bad += 1
                continue
            if not self.loop or self._in_pass == 0 or self._cap is None:
                return Read(Status.END)
            self._offset = self._last_t + 1.0 / self.fps
            self._cap.release()
            self._cap, self._in_pass = self._open(), 0
        pos = float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
        t = self._offset + (pos if pos > 0 or self._in_pass == 0 else self._in_pass / self.fps)
        frame = Frame(img, self._index, t, (time.perf_counter() - t0) * 1000.0)
        self._index += 1
        self._in_pass += 1
        self._last_t = t
        return Read(Status.OK, frame)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def open_source(source: str | int | Path | SourceSpec, loop: bool = False, capture_factory: Callable | None = None,
                backoff: tuple[float, float] = (0.5, 8.0), reopen_limit: int | None = None) -> Source:
    """Open a source given by one string (see :data:`FORMS`).

    ``loop`` restarts files and image sequences at their end. ``capture_factory(spec)`` replaces OpenCV's
    ``VideoCapture`` (video files and live sources). Live sources reopen after a failure, waiting
    ``backoff[0]`` seconds, doubling up to ``backoff[1]``; ``reopen_limit`` failed attempts in a row end the
    source with :data:`Status.ERROR` (None: keep trying).
    """
    spec = source if isinstance(source, SourceSpec) else parse_source(source)
    factory = capture_factory or opencv_capture
    if spec.kind in ("image", "folder", "glob"):
        return ImageSource(spec, loop=loop)
    if spec.kind == "video":
        return VideoFileSource(spec, loop=loop, capture_factory=factory)
    from uolrps.runtime.live import LiveSource

    if loop:
        log.info("--loop has no effect on the live source %s", spec.text)
    return LiveSource(spec, capture_factory=factory, backoff=backoff, reopen_limit=reopen_limit)
