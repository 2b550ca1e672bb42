"""The streaming pipeline: capture + preprocessing, inference, and post-processing + output in separate threads.

``localize_stream(source, model)`` is a generator of :class:`LocalizationResult`; capture and inference run
in worker threads joined by bounded queues, post-processing runs in the consumer's thread (in frame order,
so ``smooth`` behaves exactly as calling the :class:`Localizer` frame by frame). Every exit path (end of
stream, ``max_frames``, a stage raising, the consumer stopping, Ctrl-C) sets one stop event, drains the
queues so no producer stays blocked, and joins the workers; an exception in a worker is re-raised in the
consumer's thread. ``run(RunConfig)`` is what ``uolrps run`` calls.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Iterator

from uolrps.runtime.localizer import Localizer
from uolrps.runtime.result import LocalizationResult
from uolrps.runtime.sources import Source, Status, log, open_source, parse_source
from uolrps.runtime.stats import RunStats

_END = object()  # sentinel that travels down the queues at the end of the stream


class _Stream:
    """Two worker threads and two bounded queues between a source and the consumer."""

    def __init__(self, source: Source, localizer: Localizer, max_frames: int | None, stats: RunStats,
                 queue_size: int) -> None:
        self.source, self.localizer, self.max_frames, self.stats = source, localizer, max_frames, stats
        depth = 1 if source.live else queue_size  # live: the freshest frame matters more than smoothness
        self.q_pre: queue.Queue = queue.Queue(maxsize=depth)
        self.q_inf: queue.Queue = queue.Queue(maxsize=depth)
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.threads = [threading.Thread(target=self._guard, args=(self._capture,), name="uolrps-capture", daemon=True),
                        threading.Thread(target=self._guard, args=(self._infer,), name="uolrps-infer", daemon=True)]

    # ---- plumbing -------------------------------------------------------------------------------------
    def _guard(self, stage) -> None:
        try:
            stage()
        except BaseException as e:  # noqa: BLE001 - any failure stops the whole pipeline, re-raised later
            if self.error is None:
                self.error = e
            self.stop_event.set()

    def _put(self, q: queue.Queue, item) -> bool:
        while not self.stop_event.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue):
        while True:
            try:
                return q.get(timeout=0.05)
            except queue.Empty:
                if self.stop_event.is_set():
                    return _END

    # ---- stages ---------------------------------------------------------------------------------------
    def _capture(self) -> None:
        n = 0
        try:
            while not self.stop_event.is_set() and (self.max_frames is None or n < self.max_frames):
                r = self.source.read(timeout=0.1)
                if r.status is Status.TIMEOUT:
                    continue
                if r.status is not Status.OK:
                    if r.status is Status.ERROR:
                        log.warning("source ended: %s", r.message)
                        self.stats.source_error = r.message
                    break
                t0 = time.perf_counter()
                x = self.localizer.preprocess(r.frame.image)
                timings = {"capture": r.frame.capture_ms, "pre": (time.perf_counter() - t0) * 1000.0}
                if not self._put(self.q_pre, (r.frame, x, timings)):
                    return
                n += 1
        finally:
            self._put(self.q_pre, _END)

    def _infer(self) -> None:
        try:
            while True:
                item = self._get(self.q_pre)
                if item is _END:
                    return
                frame, x, timings = item
                t0 = time.perf_counter()
                heatmap = self.localizer.infer(x[None])[0]
                timings["infer"] = (time.perf_counter() - t0) * 1000.0
                if not self._put(self.q_inf, (frame, heatmap, timings)):
                    return
        finally:
            self._put(self.q_inf, _END)

    # ---- consumer -------------------------------------------------------------------------------------
    def __iter__(self):
        self.stats.start()
        for t in self.threads:
            t.start()
        while True:
            item = self._get(self.q_inf)
            if item is _END:
                break
            frame, heatmap, timings = item
            result = self.localizer.postprocess(heatmap, frame.image.shape[:2], frame.index, frame.timestamp, timings)
            self.stats.add(result.timings)
            yield frame, result
        if self.error is not None:
            raise self.error

    def shutdown(self) -> None:
        """Stop every stage, drain the queues so no producer stays blocked, join the workers."""
        self.stop_event.set()
        deadline = time.monotonic() + 5.0
        for t in self.threads:
            while t.is_alive() and time.monotonic() < deadline:
                for q in (self.q_pre, self.q_inf):
                    try:
                        while True:
                            q.get_nowait()
                    except queue.Empty:
                        pass
                t.join(timeout=0.05)
        self.stats.stop(self.source)


def localize_stream(source: str | Path | Source, model: str | Path | None = None, *,
                    localizer: Localizer | None = None, threshold: float | None = None, backend: str = "auto",
                    multi: bool = False, smooth: float = 0.0, providers: str | None = None,
                    max_frames: int | None = None, loop: bool = False, capture_factory=None,
                    with_frames: bool = False, stats: RunStats | None = None,
                    queue_size: int = 4) -> Iterator[LocalizationResult]:
    """Localize every frame of ``source`` (one string, see :func:`uolrps.runtime.sources.parse_source`).

    Give ``model`` (a path; the localizer is created and closed here) or a ready ``localizer``. Yields
    :class:`LocalizationResult` in frame order, or ``(frame_bgr, result)`` with ``with_frames``. Files are
    processed losslessly; live sources keep the newest frame (drops are counted in ``stats``). Pass a
    :class:`RunStats` to read the counters and per-stage latencies afterwards.
    """
    if max_frames is not None and max_frames <= 0:
        from uolrps.errors import UserError

        raise UserError(f"--max-frames must be a positive number of frames, but got {max_frames}")
    if localizer is None and model is None:
        raise TypeError("localize_stream needs a model path or a localizer")
    spec = None if isinstance(source, Source) else parse_source(source)  # bad sources fail before the model loads
    own_localizer = localizer is None
    loc = localizer or Localizer(model, threshold=threshold, backend=backend, multi=multi, smooth=smooth,
                                 providers=providers)
    src = None
    stream = None
    try:
        src = source if spec is None else open_source(spec, loop=loop, capture_factory=capture_factory)
        stream = _Stream(src, loc, max_frames, stats if stats is not None else RunStats(), queue_size)
        for frame, result in stream:
            yield (frame.image, result) if with_frames else result
    finally:
        if stream is not None:
            stream.shutdown()
        if src is not None and spec is not None:
            src.close()
        if own_localizer:
            loc.close()
