"""What every source shares: the spec of a source, frames, reads with a status, and the OpenCV capture.

Captures come from a factory (``capture_factory(spec)`` returning an object with OpenCV's ``VideoCapture``
methods ``isOpened``, ``read``, ``get``, ``release``) so that a camera we lack can be replaced by a fake in
tests. :func:`opencv_capture` is the real one; it applies the per-source :class:`CaptureOptions` (V4L2
size, rate and FOURCC; RTSP transport; network timeouts) and keeps OpenCV's own ``[ WARN ...]`` lines quiet
while it opens, since a failed open gets our own one-line error.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from uolrps.core.errors import OptionError
from uolrps.core.options import check_choice, check_positive
from uolrps.core.redact import redact

log = logging.getLogger("uolrps.runtime")

DEFAULT_FPS = 30.0  # when a capture reports no usable frame rate
NETWORK_TIMEOUT_S = 5.0  # FFmpeg open/read timeouts for rtsp:// and http(s):// unless a stall timeout is given


class Status(enum.Enum):
    OK = "ok"
    TIMEOUT = "timeout"  # nothing new within the timeout (live sources); try again
    END = "end"  # end of stream (files), or the source was closed
    ERROR = "error"  # the source gave up (message says why)


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR uint8 H x W x 3
    index: int  # 0-based; live: counts every frame delivered (dropped ones too); images: position in the listing
    timestamp: float  # source time in seconds
    capture_ms: float  # time spent reading and decoding it
    captured: float = 0.0  # time.monotonic() when the frame was ready (for capture-to-result latency)
    path: str | None = None  # the file it came from (file-based sources)


@dataclass(frozen=True)
class Read:
    status: Status
    frame: Frame | None = None
    message: str = ""


@dataclass(frozen=True)
class CaptureOptions:
    """Per-source capture settings: ``size`` (W, H), ``fps`` and ``fourcc`` for V4L2 cameras,
    ``rtsp_transport`` (``tcp`` or ``udp``) for RTSP, ``timeout_s`` for network open/read timeouts."""

    size: tuple[int, int] | None = None
    fps: float | None = None
    fourcc: str | None = None
    rtsp_transport: str = "tcp"
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if self.size is not None and (len(self.size) != 2 or min(self.size) <= 0):
            raise OptionError(f"size must be WIDTHxHEIGHT with positive numbers, but got {self.size}", "size")
        if self.fps is not None:
            check_positive(self.fps, "fps", "frame rate")
        if self.fourcc is not None and not re.fullmatch(r"[A-Za-z0-9 ]{4}", self.fourcc):
            raise OptionError(f"fourcc must be 4 characters such as MJPG or YUYV, but got {self.fourcc!r}", "fourcc")
        check_choice(self.rtsp_transport, ("tcp", "udp"), "rtsp_transport")


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # a registered kind (uolrps.runtime.source_kinds): camera, video, image, folder, glob, rtsp, http, gst
    target: object  # camera index or device path, file path, url, pipeline, or a list of image paths
    text: str = ""
    options: CaptureOptions = field(default_factory=CaptureOptions)

    @property
    def live(self) -> bool:
        from uolrps.runtime.source_kinds import kind_of

        return kind_of(self).live


_OPEN_LOCK = threading.Lock()  # OpenCV's log level and FFmpeg's capture options are process-wide


@contextlib.contextmanager
def quiet_opencv():
    """Silence OpenCV's ``[ WARN ...]`` / ``[ERROR ...]`` lines while a capture opens (we report failures
    ourselves, in one line), and from then on keep OpenCV's warnings and FFmpeg's own messages (``[http @
    0x...] ...``, read timeouts) quiet: a live source's stalls and reopenings are logged by uolrps. FFmpeg's
    level is read once per process, so ``OPENCV_FFMPEG_LOGLEVEL`` is set (if unset) before the first capture;
    set it yourself (e.g. 24 = warnings) to see FFmpeg's messages again."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    try:
        import cv2

        logging_api = cv2.utils.logging
        previous = min(logging_api.getLogLevel(), logging_api.LOG_LEVEL_ERROR)
        logging_api.setLogLevel(logging_api.LOG_LEVEL_SILENT)
    except (ImportError, AttributeError):
        yield
        return
    try:
        yield
    finally:
        logging_api.setLogLevel(previous)


def opencv_capture(spec: SourceSpec):
    """The default capture factory: an OpenCV ``VideoCapture`` with the right API and options for the source."""
    import cv2

    from uolrps.runtime.source_kinds import kind_of

    open_kind = kind_of(spec).capture
    with _OPEN_LOCK, quiet_opencv():
        if open_kind is not None:
            return open_kind(spec, cv2)
        return cv2.VideoCapture(str(spec.target), cv2.CAP_FFMPEG)


def capture_fps(cap) -> float | None:
    """The capture's frame rate when it reports a plausible one."""
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
        self.skipped_files: list[str] = []  # image files that could not be decoded
        self.reopened = 0  # successful reopenings of a live source
        self.state = "running"  # opening, running, reopening, ended, failed (see uolrps.runtime.control)

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
        return f"{type(self).__name__}({redact(self.spec.text)!r})"


def now() -> float:
    return time.monotonic()
