"""File-based sources: an image, a folder or glob of images, a video file; read losslessly in order."""

from __future__ import annotations

import time
from typing import Callable

from uolrps.core.errors import UserError
from uolrps.core.images import read_bgr
from uolrps.runtime.capture import DEFAULT_FPS, Frame, Read, Source, SourceSpec, Status, capture_fps, log, \
    opencv_capture

IMAGE_FPS = 1.0  # nominal rate of image sequences: frame i has timestamp i seconds


class ImageSource(Source):
    """An image file, a folder or a glob: every image in order.

    A frame's ``index`` is the image's position in the listing (unreadable files keep their place, so
    the numbers of later images never shift); its ``path`` is the file. Unreadable files are skipped,
    counted in ``skipped`` and listed in ``skipped_files``.
    """

    fps = IMAGE_FPS

    def __init__(self, spec: SourceSpec, loop: bool = False) -> None:
        super().__init__(spec)
        self.paths = list(spec.target)
        self.loop = loop
        self.total = len(self.paths)
        self._pos = 0
        self._pass = 0
        self._good_in_pass = 0

    def read(self, timeout: float = 1.0) -> Read:
        while True:
            if self._pos >= len(self.paths):
                if not self.loop:
                    return Read(Status.END)
                if self._good_in_pass == 0:
                    return Read(Status.ERROR, message=f"{self.spec.text}: no image could be decoded")
                self._pos, self._good_in_pass = 0, 0
                self._pass += 1
            path = self.paths[self._pos]
            index = self._pass * len(self.paths) + self._pos
            self._pos += 1
            t0 = time.perf_counter()
            img = read_bgr(path)
            if img is None:
                self.skipped += 1
                if self._pass == 0:
                    self.skipped_files.append(str(path))
                log.warning("skipped %s: not a decodable image", path)
                continue
            self._good_in_pass += 1
            frame = Frame(img, index, index / IMAGE_FPS, (time.perf_counter() - t0) * 1000.0, time.monotonic(),
                          str(path))
            return Read(Status.OK, frame)


class VideoFileSource(Source):
    """A video file, decoded losslessly; ``loop`` restarts it with continuing times."""

    MAX_BAD_READS = 25  # consecutive failed reads before the middle of a file is taken as its end

    def __init__(self, spec: SourceSpec, loop: bool = False, capture_factory: Callable = opencv_capture) -> None:
        super().__init__(spec)
        self.loop = loop
        self._factory = capture_factory
        self._cap = self._open()
        self.fps = capture_fps(self._cap) or DEFAULT_FPS
        import cv2

        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.total = count if count > 0 else None
        self._index = 0
        self._in_pass = 0
        self._offset = 0.0
        self._last_t = -1.0
        self._path = str(spec.target)

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
        frame = Frame(img, self._index, t, (time.perf_counter() - t0) * 1000.0, time.monotonic(), self._path)
        self._index += 1
        self._in_pass += 1
        self._last_t = t
        return Read(Status.OK, frame)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
