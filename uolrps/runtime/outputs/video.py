"""``--save OUT.mp4``: an annotated video.

Its size is the first frame's; a frame of another size (an image folder of mixed sizes) is letterboxed
into it (scaled to fit with its aspect ratio kept, the rest black), never stretched. A live stream's
recording is written by timestamp (``by_time``): each frame is repeated until the next one's time, and a
frame that comes sooner than the file's rate is left out, so playback runs at the real speed even when
frames were dropped.

A recording never ends silently cut: while it is written, the free space of its disk is watched, and when it
falls below a reserve (what the container's closing index needs, plus a margin) the file is closed, so it
stays playable, and :class:`uolrps.core.checked_io.OutputError` says so. At ``close`` the file is opened again and
its first frame read; a file that cannot be (closed on a full disk, an I/O error) is removed, and said so.

``segment_s``: the recording is a series of files of at most that many seconds each, ``OUT_000.mp4``,
``OUT_001.mp4``..., each closed (playable) before the next opens, so a kill -9 or a power cut loses at most
the last segment. Measured (OpenCV 4.10 with FFmpeg, 2026-12-03): a killed ``.mp4`` or ``.mov`` has no
index ("moov atom not found") and plays not at all, while a killed ``.avi`` or ``.mkv`` plays up to the last
~256 KB FFmpeg had not yet written (a writer killed after 2 s: 0 of ~120 frames readable in .mp4 and .mov,
117 in .avi, 118 in .mkv; tests/test_checked_outputs.py checks the .avi and the segments).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uolrps.core.checked_io import OutputError, free_bytes
from uolrps.core.errors import OptionError
from uolrps.core.paths import check_output_path

RESERVE_BYTES = 2 << 20  # kept free on a recording's disk: its index at close, the JSONL's last lines, the summary
INDEX_BYTES_PER_FRAME = 64  # an upper bound on what the closing index (MP4 moov, AVI idx1) needs per frame

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

    def __init__(self, path: str | Path, fps: float = 30.0, inputs=(), by_time: bool = False,
                 segment_s: float | None = None) -> None:
        self.path = check_output_path(path, "save", FOURCC, inputs)
        if not fps > 0:
            raise ValueError(f"fps must be > 0, but got {fps}")
        if segment_s is not None and not segment_s > 0:
            raise OptionError(f"segment_s must be a positive number of seconds, but got {segment_s}", "segment_s")
        self.segment_s = segment_s
        self.files: list[Path] = []  # the files written, in order (one without segments)
        self._segment_frames = 0
        self.fps = float(fps)
        self.by_time = by_time
        self.size: tuple[int, int] | None = None  # (W, H)
        self.frames = 0  # frames written to the file (repeats included)
        self._writer = None
        self._t0: float | None = None

    def write(self, image: np.ndarray, t: float | None = None) -> None:
        """Write one frame; ``t`` (seconds, source time) places it in time when ``by_time``."""
        import cv2

        if self._writer is not None and self.segment_s is not None and \
                self._segment_frames >= self.segment_s * self.fps:
            self._close_file()  # this segment is complete: closed and playable before the next one opens
        if self._writer is None:
            if self.size is None:
                self.size = (image.shape[1], image.shape[0])
            self._open_file()
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
        self._check_space(repeats)
        for _ in range(repeats):
            self._writer.write(image)
        self.frames += repeats
        self._segment_frames += repeats

    def segment_path(self, index: int) -> Path:
        """File ``index`` of a segmented recording: ``OUT_000.mp4`` for ``OUT.mp4``."""
        return self.path.with_name(f"{self.path.stem}_{index:03d}{self.path.suffix}")

    def _open_file(self) -> None:
        import cv2

        path = self.path if self.segment_s is None else self.segment_path(len(self.files))
        path.parent.mkdir(parents=True, exist_ok=True)
        fourcc = cv2.VideoWriter_fourcc(*FOURCC[self.path.suffix.lower()])
        self._writer = cv2.VideoWriter(str(path), fourcc, self.fps, self.size)
        if not self._writer.isOpened():
            self._writer = None
            raise OptionError(f"save {str(path)!r}: OpenCV cannot write this video "
                              f"({FOURCC[self.path.suffix.lower()]} codec): try a .avi file", "save")
        self.files.append(path)
        self._segment_frames = 0

    def _check_space(self, repeats: int) -> None:
        """Close the recording while it can still be closed: a full disk would cut its index off."""
        free = free_bytes(self.path.parent)
        need = RESERVE_BYTES + INDEX_BYTES_PER_FRAME * (self._segment_frames + repeats)
        if free is not None and free < need:
            frames = self.frames
            self.close()  # raises OutputError itself when even this close could not finish the file
            raise OutputError(f"save {str(self.files[-1])!r}: its disk is nearly full ({free / 1e6:.1f} MB free): the "
                              f"recording was closed after {frames} frames and is playable; free space and run again")

    def close(self) -> None:
        self._close_file()

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            self._verify(self.files[-1])

    def _verify(self, path: Path) -> None:
        """Remove a recording that cannot be played back (cut by a full disk or an I/O error) and say so."""
        import cv2

        if self._segment_frames == 0:
            return
        cap = cv2.VideoCapture(str(path))
        try:
            ok = cap.isOpened() and cap.read()[0]
        finally:
            cap.release()
        if not ok:
            path.unlink(missing_ok=True)
            raise OutputError(f"save {str(path)!r}: the recording could not be finished (a full disk or an "
                              f"I/O error while writing {self._segment_frames} frames) and was removed, as "
                              "unplayable")
