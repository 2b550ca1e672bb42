"""Live sources (camera, rtsp/http stream, GStreamer): a capture thread that keeps only the newest frame.

A frame that is overwritten before anyone read it is counted in ``dropped``. When the capture stops
delivering (failed reads: unplugged camera, dropped connection, FFmpeg read timeout) it is released and
reopened with exponential backoff, and the run goes on; the frame index keeps counting.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from uolrps.errors import UserError
from uolrps.runtime.sources import DEFAULT_FPS, Frame, Read, Source, SourceSpec, Status, _fps, log

NAMES = {"camera": "camera", "rtsp": "RTSP stream", "http": "HTTP stream", "gst": "GStreamer pipeline"}


class LiveSource(Source):
    live = True
    MAX_BAD_READS = 3  # consecutive failed reads before the capture is reopened

    def __init__(self, spec: SourceSpec, capture_factory: Callable, backoff: tuple[float, float] = (0.5, 8.0),
                 reopen_limit: int | None = None) -> None:
        super().__init__(spec)
        if not (0 < backoff[0] <= backoff[1]):
            raise ValueError(f"backoff must be (first, max) seconds with 0 < first <= max, but got {backoff}")
        self._factory = capture_factory
        self._backoff = backoff
        self._reopen_limit = reopen_limit
        self.name = f"{NAMES.get(spec.kind, spec.kind)} {spec.text}"
        cap = capture_factory(spec)
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            raise UserError(f"cannot open {self.name}: check that it exists, is connected and not used by "
                            "another program (cameras: `ls /dev/video*`; streams: try the URL in a player)")
        self._cap = cap
        self.fps = _fps(cap) or DEFAULT_FPS
        self._cond = threading.Condition()
        self._slot: Frame | None = None
        self._ended = False
        self._failure = ""
        self._stop = threading.Event()
        self._index = 0
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"capture {spec.text}", daemon=True)
        self._thread.start()

    # ---- capture thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        bad = 0
        try:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                try:
                    ok, img = self._cap.read()
                except Exception as e:  # a driver error is a failed read, not the end of the run
                    log.warning("%s: read failed (%s)", self.name, e)
                    ok, img = False, None
                if ok and img is not None:
                    bad = 0
                    self._publish(img, (time.perf_counter() - t0) * 1000.0)
                    continue
                bad += 1
                self.skipped += 1
                if bad >= self.MAX_BAD_READS and not self._stop.is_set():
                    if not self._reopen():
                        break
                    bad = 0
        finally:
            if self._cap is not None:
                self._cap.release()
                self._cap = None
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _publish(self, img, capture_ms: float) -> None:
        frame = Frame(img, self._index, time.monotonic() - self._t0, capture_ms)
        self._index += 1
        with self._cond:
            if self._slot is not None:
                self.dropped += 1
            self._slot = frame
            self._cond.notify()

    def _reopen(self) -> bool:
        """Release and reopen with backoff; False when closed or ``reopen_limit`` attempts failed."""
        self._cap.release()
        self._cap = None
        delay, attempts = self._backoff[0], 0
        while True:
            log.warning("%s stopped delivering frames: reopening in %.1f s", self.name, delay)
            if self._stop.wait(delay):
                return False
            attempts += 1
            try:
                cap = self._factory(self.spec)
            except Exception as e:
                log.warning("%s: reopening failed (%s)", self.name, e)
                cap = None
            if cap is not None and cap.isOpened():
                self._cap = cap
                self.reopened += 1
                log.warning("%s reopened after %d attempt(s)", self.name, attempts)
                return True
            if cap is not None:
                cap.release()
            if self._reopen_limit is not None and attempts >= self._reopen_limit:
                self._failure = f"{self.name} could not be reopened after {attempts} attempts"
                return False
            delay = min(delay * 2.0, self._backoff[1])

    # ---- consumer side --------------------------------------------------------------------------------
    def read(self, timeout: float = 1.0) -> Read:
        with self._cond:
            self._cond.wait_for(lambda: self._slot is not None or self._ended, timeout)
            if self._slot is not None:
                frame, self._slot = self._slot, None
                return Read(Status.OK, frame)
            if self._ended:
                return Read(Status.ERROR, message=self._failure) if self._failure else Read(Status.END)
            return Read(Status.TIMEOUT)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
            if self._thread.is_alive():
                log.warning("%s: the capture is blocked in a read; leaving it to exit with the process", self.name)
