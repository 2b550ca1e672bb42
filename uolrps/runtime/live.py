"""Live sources (camera, rtsp/http stream, GStreamer): a capture thread that keeps only the newest frame.

A frame that is overwritten before anyone read it is counted in ``dropped``. Each source is isolated: its
stalls, reopenings and failure are its own. The capture is reopened when it stops delivering (failed reads,
or no frame for ``stall_timeout`` seconds), after a backoff that doubles with every failed recovery. A
failed recovery is an attempt that does not open, or opens and then delivers no frame (or stalls again
before it was healthy for ``stall_timeout`` seconds); after ``reopen_limit`` of them in a row the source
ends with :data:`Status.ERROR` and a one-line reason. A healthy period resets the count. So a source that
opens but never delivers cannot retry forever.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from uolrps.core.errors import UserError
from uolrps.core.options import check_reopen_limit, check_stall_timeout
from uolrps.core.redact import redact
from uolrps.runtime.capture import DEFAULT_FPS, Frame, Read, Source, SourceSpec, Status, capture_fps, log
from uolrps.runtime.source_kinds import kind_of

DEFAULT_STALL_TIMEOUT = 5.0


def open_failure(spec: SourceSpec) -> str:
    """The one-line reason a live source did not open, with the hint for its kind."""
    kind = kind_of(spec)
    return f"cannot open {kind.label or kind.name} {redact(spec.text)}: {kind.hint}"


class LiveSource(Source):
    live = True
    MAX_BAD_READS = 3  # consecutive failed reads before the capture is reopened

    def __init__(self, spec: SourceSpec, capture_factory: Callable, backoff: tuple[float, float] = (0.5, 8.0),
                 reopen_limit: int | None = None, stall_timeout: float = DEFAULT_STALL_TIMEOUT,
                 open_now: bool = True) -> None:
        super().__init__(spec)
        if not (0 < backoff[0] <= backoff[1]):
            raise ValueError(f"backoff must be (first, max) seconds with 0 < first <= max, but got {backoff}")
        check_reopen_limit(reopen_limit)
        check_stall_timeout(stall_timeout)
        self._factory = capture_factory
        self._backoff = backoff
        self._reopen_limit = reopen_limit
        self._stall = float(stall_timeout)
        self.name = f"{kind_of(spec).label or spec.kind} {redact(spec.text)}"  # in logs and reasons
        self.fps = DEFAULT_FPS
        self._cap = None
        self._delivered_since_open = 0
        self._delivered_ever = False  # a source that never delivered is "not opened yet", not "stopped"
        self.state = "opening"
        if open_now:  # a single source: an open failure is the immediate one-line error
            cap = self._try_open()
            if cap is None:
                raise UserError(open_failure(spec))
            self._cap = cap
            self.fps = capture_fps(cap) or DEFAULT_FPS
        self._cond = threading.Condition()
        self._slot: Frame | None = None
        self._ended = False
        self._failure = ""
        self._stop = threading.Event()
        self._index = 0
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"capture {self.name}", daemon=True)
        self._thread.start()

    # ---- capture thread -------------------------------------------------------------------------------
    def _try_open(self):
        try:
            cap = self._factory(self.spec)
        except UserError:
            raise
        except Exception as e:
            log.warning("%s: opening failed (%s)", self.name, redact(e))
            return None
        if cap is not None and cap.isOpened():
            return cap
        if cap is not None:
            cap.release()
        return None

    def _run(self) -> None:
        failures = 0  # failed recoveries in a row
        last = "could not be opened"
        recovering = self._cap is None  # the first period after an open at start-up is not a recovery
        try:
            if self._cap is None:  # opened here (several sources: a source that is down must not stop the others)
                self._cap = self._try_open()
                if self._cap is None:
                    failures, last = 1, "could not be opened"
                else:
                    self.fps = capture_fps(self._cap) or DEFAULT_FPS
            while not self._stop.is_set():
                if self._cap is not None:
                    healthy = self._read_until_stall()
                    if self._stop.is_set():
                        break
                    self._cap.release()
                    self._cap = None
                    if healthy:
                        failures = 0
                    elif recovering:
                        failures += 1
                        last = "opened but delivered no frame" if self._delivered_since_open == 0 else \
                            "stalled again before it was healthy"
                if self._reopen_limit is not None and failures >= self._reopen_limit:
                    self._failure = (f"{self.name} could not be reopened after {failures} attempts "
                                     f"(last attempt: {last})")
                    log.warning("%s", self._failure)
                    return
                self.state = "reopening"
                delay = min(self._backoff[0] * 2.0 ** failures, self._backoff[1])
                if self._delivered_ever:
                    log.warning("%s stopped delivering frames: reopening in %.1f s", self.name, delay)
                else:  # never opened, or opened without a frame: it never delivered anything to stop
                    log.warning("%s has not delivered a frame yet (%s): trying again in %.1f s", self.name, last
                                or "could not be opened", delay)
                if self._stop.wait(delay):
                    return
                recovering = True
                self._cap = self._try_open()
                if self._cap is None:
                    failures, last = failures + 1, "could not be opened"
                else:
                    self.reopened += 1
                    log.warning("%s reopened", self.name)
        except UserError as e:
            self._failure = str(e)
        finally:
            if self._cap is not None:
                self._cap.release()
                self._cap = None
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _read_until_stall(self) -> bool:
        """Read until the capture fails or stalls; True if it was healthy (delivering for ``stall_timeout``)."""
        opened = last_good = time.monotonic()
        self._delivered_since_open = 0
        healthy = False
        bad = 0
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                ok, img = self._cap.read()
            except Exception as e:  # a driver error is a failed read, not the end of the run
                log.warning("%s: read failed (%s)", self.name, redact(e))
                ok, img = False, None
            t = time.monotonic()
            if ok and img is not None:
                bad = 0
                last_good = t
                self._delivered_since_open += 1
                self._delivered_ever = True
                if self.state != "running":
                    self.state = "running"
                healthy = healthy or t - opened >= self._stall
                self._publish(img, (time.perf_counter() - t0) * 1000.0)
                continue
            bad += 1
            self.skipped += 1
            if bad >= self.MAX_BAD_READS or t - last_good > self._stall:
                return healthy
            time.sleep(min(0.01 * bad, 0.1))  # a capture that fails at once must not spin
        return healthy

    def _publish(self, img, capture_ms: float) -> None:
        t = time.monotonic()
        frame = Frame(img, self._index, t - self._t0, capture_ms, t)
        self._index += 1
        with self._cond:
            if self._slot is not None:
                self.dropped += 1
            self._slot = frame
            self._cond.notify()

    # ---- consumer side --------------------------------------------------------------------------------
    def read(self, timeout: float = 1.0) -> Read:
        with self._cond:
            self._cond.wait_for(lambda: self._slot is not None or self._ended, timeout)
            if self._slot is not None:
                frame, self._slot = self._slot, None
                return Read(Status.OK, frame)
            if self._ended:
                if self._failure:
                    self.state = "failed"
                    return Read(Status.ERROR, message=self._failure)
                self.state = "ended"
                return Read(Status.END)
            return Read(Status.TIMEOUT)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
            if self._thread.is_alive():
                log.warning("%s: the capture is blocked in a read; leaving it to exit with the process", self.name)
