"""Where results go: an annotated video, a JSONL file, a window, a progress bar.

Each output is checked when it is created (before the model loads), writes one frame at a time, and is
finalised by ``close()``, which the pipeline calls on every exit path, Ctrl-C included.
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

from uolrps.errors import UserError
from uolrps.paths import check_output_path
from uolrps.runtime.result import LocalizationResult

FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


class VideoOutput:
    """Annotated video with the source's size and frame rate (opened at the first frame).

    Frames of another size (an image folder of mixed sizes) are resized to the first frame's size.
    """

    def __init__(self, path: str | Path, fps: float = 30.0, inputs=()) -> None:
        self.path = check_output_path(path, "--save", FOURCC, inputs)
        if not fps > 0:
            raise ValueError(f"fps must be > 0, but got {fps}")
        self.fps = float(fps)
        self.size: tuple[int, int] | None = None  # (W, H)
        self.frames = 0
        self._writer = None

    def write(self, image: np.ndarray) -> None:
        import cv2

        if self._writer is None:
            self.size = (image.shape[1], image.shape[0])
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*FOURCC[self.path.suffix.lower()])
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self.size)
            if not self._writer.isOpened():
                self._writer = None
                raise UserError(f"--save {str(self.path)!r}: OpenCV cannot write this video "
                                f"({FOURCC[self.path.suffix.lower()]} codec): try a .avi file")
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


class JsonlOutput:
    """One JSON object per line and frame, flushed line by line, so the file is valid after Ctrl-C.

    ``{"frame": 0, "t": 0.0, "boxes": [[x1, y1, x2, y2]], "scores": [0.71], "ms": {...}}`` (see
    :meth:`LocalizationResult.to_record`); ``labels`` is added when the model has several classes.
    """

    def __init__(self, path: str | Path, labels: bool = False, inputs=()) -> None:
        self.path = check_output_path(path, "--jsonl", inputs=inputs)
        self.labels = labels
        self._file = None  # opened at the first line, so a run that fails before it leaves an old file as it was
        self.lines = 0

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="utf-8", buffering=1)
        except OSError as e:
            raise UserError(f"--jsonl {str(self.path)!r}: cannot write ({e.strerror})") from None

    def write(self, result: LocalizationResult) -> None:
        if self._file is None:
            self._open()
        self._file.write(json.dumps(result.to_record(labels=self.labels)) + "\n")
        self.lines += 1

    def finish(self) -> None:
        """The run ended normally: a run of zero frames still leaves an (empty) file."""
        if self._file is None:
            self._open()

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.flush()
            self._file.close()


class WindowOutput:
    """An OpenCV window (``--show``); ``show`` returns False when the user pressed q / Esc or closed it."""

    def __init__(self, title: str = "uolrps") -> None:
        import cv2

        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise UserError("--show needs OpenCV with GUI support and a display: install opencv-python "
                            "instead of opencv-python-headless, or use --save") from None
        self._open = True

    def show(self, image: np.ndarray) -> bool:
        import cv2

        cv2.imshow(self.title, image)
        key = cv2.waitKey(1) & 0xFF
        visible = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
        return key not in (ord("q"), 27) and visible

    def close(self) -> None:
        import cv2

        if self._open:
            self._open = False
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:
                pass


class FpsMeter:
    """Frames per second over the last ``window`` frames (monotonic clock)."""

    def __init__(self, window: int = 30) -> None:
        self._times: deque[float] = deque(maxlen=window)

    def tick(self) -> float | None:
        self._times.append(time.monotonic())
        if len(self._times) < 2:
            return None
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else None


class Progress:
    """A progress bar on stderr for files (rich when available); silent when stderr is not a terminal."""

    def __init__(self, total: int | None, label: str = "run", enabled: bool = True) -> None:
        self.total = total
        self.enabled = enabled and sys.stderr.isatty()
        self._rich = None
        self._task = None
        self._count = 0
        self._last = 0.0
        if not self.enabled:
            return
        try:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, \
                TimeRemainingColumn

            self._rich = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[fps]}"), TimeRemainingColumn(),
                                      console=Console(stderr=True), transient=True)
            self._task = self._rich.add_task(label, total=total, fps="")
            self._rich.start()
        except ImportError:
            self._rich = None

    def update(self, fps: float | None = None) -> None:
        if not self.enabled:
            return
        self._count += 1
        now = time.monotonic()
        text = f"{fps:.1f} FPS" if fps else ""
        if self._rich is not None:
            self._rich.update(self._task, advance=1, fps=text)
        elif now - self._last > 0.25:
            of = f"/{self.total}" if self.total else ""
            sys.stderr.write(f"\r{self._count}{of} frames {text}   ")
            sys.stderr.flush()
            self._last = now

    def close(self) -> None:
        if not self.enabled:
            return
        self.enabled = False
        if self._rich is not None:
            self._rich.stop()
        else:
            sys.stderr.write("\n")
