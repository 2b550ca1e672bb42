"""``--save OUT.mp4``: an annotated video.

Its size is the first frame's; a frame of another size (an image folder of mixed sizes) is letterboxed
into it (scaled to fit with its aspect ratio kept, the rest black), never stretched. A live stream's
recording is written by timestamp (``by_time``): each frame is repeated until the next one's time, and a
frame that comes sooner than the file's rate is left out, so playback runs at the real speed even when
frames were dropped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uolrps.core.errors import OptionError
from uolrps.core.paths import check_output_path

FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG", ".webm": "VP80"}  # .webm plays in browsers


def letterbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` scaled to fit ``size`` = (W, H) with its aspect ratio kept, centred on black."""
    import cv2

    W, H = size
    h, w = image.shape[:2]
    if (w, h) == (W, H):
        return image
    s = min(W / w, H / h)
    nw, nh = max(1, min(W, round(w * s))), max(1, min(H, round(h * s)))
    out = np.zeros((H, W, 3), dtype=np.uint8)
    x, y = (W - nw) // 2, (H - nh) // 2
    out[y:y + nh, x:x + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


class VideoOutput:
    """Annotated video with the source's size and frame rate (opened at the first frame)."""

    def __init__(self, path: str | Path, fps: float = 30.0, inputs=(), by_time: bool = False) -> None:
        self.path = check_output_path(path, "save", FOURCC, inputs)
        if not fps > 0:
            raise ValueError(f"fps must be > 0, but got {fps}")
        self.fps = float(fps)
        self.by_time = by_time
        self.size: tuple[int, int] | None = None  # (W, H)
        self.frames = 0  # frames written to the file (repeats included)
        self._writer = None
        self._t0: float | None = None

    def write(self, image: np.ndarray, t: float | None = None) -> None:
        """Write one frame; ``t`` (seconds, source time) places it in time when ``by_time``."""
        import cv2

        if self._writer is None:
            self.size = (image.shape[1], image.shape[0])
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*FOURCC[self.path.suffix.lower()])
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self.size)
            if not self._writer.isOpened():
                self._writer = None
                raise OptionError(f"save {str(self.path)!r}: OpenCV cannot write this video "
                                  f"({FOURCC[self.path.suffix.lower()]} codec): try a .avi file", "save")
        if (image.shape[1], image.shape[0]) != self.size:
            image = letterbox(image, self.size)
        repeats = 1
        if self.by_time and t is not None:
            if self._t0 is None:
                self._t0 = t
            due = int(round((t - self._t0) * self.fps)) + 1  # frames the file should hold up to this one
            repeats = due - self.frames
            if repeats <= 0:
                return  # sooner than the file's rate: the previous frame already covers this time
        for _ in range(repeats):
            self._writer.write(image)
        self.frames += repeats

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
