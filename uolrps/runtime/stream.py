"""One stream of a multi-stream run: its source, a feeder thread (read and preprocess), post-processing (heatmap
to result, with its own smoothing state) and the hand-overs between the stages. The shared inference stage
lives in :mod:`uolrps.runtime.engine`; a stream never waits for another one.

Stages and hand-overs: source -> feeder -> ``inbox`` -> inference (shared) -> ``postbox`` -> post ->
``outbox`` -> the consumer. Live streams drop their oldest item at every hand-over (counted per stage:
``capture``, ``infer``, ``post``, ``output``) and post-process in a thread of their own, so a slow consumer
never delays their freshest result. Files are lossless and in order, and the consumer post-processes them
itself (:meth:`Stream.finish`), one thread and one hand-over fewer per frame: nothing is dropped, so there is
nothing to gain from a separate post stage.

Several inference calls may be in flight at once (ONNX Runtime on the CPU, a Triton server): each input taken gets a ticket
(:meth:`Stream.take_input`) and results are handed on in ticket order (:meth:`Stream.deliver`), so a stream's
frames stay in order whichever call finishes first.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Protocol

from uolrps.core.redact import redact, redact_optional
from uolrps.runtime.capture import Source, SourceSpec, Status, log
from uolrps.runtime.control import StreamStatus
from uolrps.runtime.handoff import Handoff
from uolrps.runtime.stats import StreamStats



class StreamHost(Protocol):
    """What a stream uses of the engine that runs it (:class:`uolrps.runtime.engine.StreamEngine`), named here
    so that this module does not import the engine, which imports it."""

    localizer: object
    stats: object
    queue_size: int
    labels: bool
    track: bool  # a track id per box (--track): one tracker per stream, see uolrps.runtime.tracking

    def notify_work(self) -> None: ...
    def notify_out(self) -> None: ...
    def publish(self, name: str, image, result) -> None: ...
    def fail(self, error: BaseException) -> None: ...
    def next_seq(self) -> int: ...


class Stream:
    def __init__(self, name: str, spec: SourceSpec, source: Source, engine: StreamHost,
                 max_frames: int | None = None, own_source: bool = True) -> None:
        self.name, self.spec, self.source, self.engine = name, spec, source, engine
        self.own_source = own_source
        self.lossless = not source.live
        self.inline = self.lossless  # post-processed by the consumer (see the module docstring)
        self.max_frames = max_frames
        self.stats: StreamStats = engine.stats.stream(name, spec.text)
        self.stats.state = source.state
        self.post = engine.localizer.postprocessor()
        self.tracker = None
        if engine.track:  # this stream's own tracker: streams batched together never share track state
            from uolrps.runtime.tracking import Tracker

            self.tracker = Tracker(source.fps)
        self.stop = threading.Event()  # stop everything of this stream
        self.feed_stop = threading.Event()  # stop reading (max_frames reached)
        q = engine.queue_size
        self.inbox = Handoff(self.lossless, q, lambda: self._drop("infer"), engine.notify_work)
        # a file's heatmaps wait for the consumer, which must hear of each one (a live stream's post thread waits
        # on the hand-over itself)
        self.postbox = Handoff(self.lossless, q, lambda: self._drop("post"), engine.notify_out if self.inline else None,
                               on_get=engine.notify_work)
        self.outbox = Handoff(self.lossless, q, lambda: self._drop("output"), engine.notify_out)
        self.pending = 0  # items taken by the inference stage and not yet in the postbox
        self._tickets = threading.Lock()  # pending, and the order in which inputs were taken
        self._taken = 0  # tickets given out
        self._released = 0  # tickets handed on to the postbox
        self._done: dict[int, tuple] = {}  # results that finished before an earlier ticket
        self._release = threading.Lock()  # one thread hands results on at a time, in ticket order
        self.feeding = True
        self.posting = True
        self.delivered = 0  # results the consumer took (a live stream drops results a slow consumer missed)
        self._final: tuple[str, str | None] | None = None
        self._finalize_lock = threading.Lock()
        self.threads = [threading.Thread(target=self._guard, args=(self._feed,), name=f"uolrps-feed-{name}", daemon=True)]
        if not self.inline:
            self.threads.append(threading.Thread(target=self._guard, args=(self._post_loop,), name=f"uolrps-post-{name}",
                                                 daemon=True))

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def _drop(self, stage: str) -> None:
        self.stats.drops[stage] += 1

    def _guard(self, stage) -> None:
        try:
            stage()
        except BaseException as e:  # noqa: BLE001 - a stage that raises stops the run; re-raised to the consumer
            self.engine.fail(e)

    def _sync(self) -> None:
        src, st = self.source, self.stats
        st.drops["capture"], st.skipped, st.reopened = src.dropped, src.skipped, src.reopened
        st.skipped_files = list(src.skipped_files)
        if st.state not in ("ended", "failed") and src.state not in ("ended", "failed"):
            st.state = src.state  # the end is recorded by the post thread, once the last result is out

    def _end(self, state: str, reason: str | None) -> None:
        """How the stream ends; it shows in the status once its last result is out (see :meth:`_post_loop`)."""
        if self._final is None:
            self._final = (state, reason)

    # ---- feeder: read and preprocess -------------------------------------------------------------------
    def _feed(self) -> None:
        n = 0
        loc = self.engine.localizer
        try:
            while not (self.stop.is_set() or self.feed_stop.is_set()):
                if self.lossless and self.max_frames is not None and n >= self.max_frames:
                    self._end("ended", f"the frame limit ({self.max_frames}) was reached")
                    break
                r = self.source.read(timeout=0.1)
                self._sync()
                if r.status is Status.TIMEOUT:
                    continue
                if r.status is Status.END:
                    self._end("ended", "end of the source")
                    break
                if r.status is Status.ERROR:
                    self._end("failed", r.message or "the source failed")
                    break
                t0 = time.perf_counter()
                x = loc.preprocess(r.frame.image)
                timings = {"capture": r.frame.capture_ms, "pre": (time.perf_counter() - t0) * 1000.0}
                r.frame.image.setflags(write=False)  # shared read-only from here on (outputs, viewers)
                if not self.inbox.put((r.frame, x, timings), self.stop):
                    break
                n += 1
        finally:
            self._sync()
            self.feeding = False
            self.engine.notify_work()

    def ready(self) -> bool:
        """An input is waiting and its result has somewhere to go (files never overwrite a result)."""
        return len(self.inbox) > 0 and self.postbox.has_room() and not self.stop.is_set()

    def expecting(self) -> bool:
        """Frames are coming soon (worth waiting a moment for, to fill a batch)."""
        return self.feeding and self.stats.state == "running" and not self.stop.is_set()

    # ---- the inference stage's side: tickets keep a stream's results in order ---------------------------
    def take_input(self):
        """``(ticket, (frame, input, timings))``: the next input for the inference stage, or None."""
        with self._tickets:
            self.pending += 1  # before the get: the stream must never look drained in between
            item = self.inbox.get()
            if item is None:
                self.pending -= 1
                return None
            ticket = self._taken
            self._taken += 1
        return ticket, item

    def deliver(self, ticket: int, frame, heatmap, timings: dict) -> None:
        """Hand on the result of input ``ticket`` once every earlier ticket has been handed on."""
        with self._release:
            self._done[ticket] = (frame, heatmap, timings)
            while self._released in self._done:
                frame, heatmap, timings = self._done.pop(self._released)
                self._released += 1
                self.postbox.put((self.engine.next_seq(), frame, heatmap, timings), self.stop)
                with self._tickets:
                    self.pending -= 1

    # ---- post: heatmap to result ------------------------------------------------------------------------
    def _drained(self) -> bool:
        return not self.feeding and len(self.inbox) == 0 and self.pending == 0 and len(self.postbox) == 0

    def finish(self, frame, heatmap, timings: dict):
        """Heatmap to result (this stream's smoothing state), with its latency; published to viewers."""
        r = self.post(heatmap, frame.image.shape[:2], frame.index, frame.timestamp, timings, stream=self.name,
                      path=frame.path)
        latency = (time.monotonic() - frame.captured) * 1000.0 if frame.captured else None
        ids = None if self.tracker is None else self.tracker(r.boxes, frame.image)  # in frame order, here only
        r = dataclasses.replace(r, latency_ms=latency, track_ids=ids)
        self._publish(frame, r)
        return r

    def _post_loop(self) -> None:
        """A live stream's post stage: the newest heatmap to the newest result."""
        try:
            while not self.stop.is_set():
                item = self.postbox.get(timeout=0.05)
                if item is None:
                    if self._drained():
                        break
                    continue
                if self.max_frames is not None and self.delivered >= self.max_frames:
                    continue  # a live stream's frames after the last one asked for
                _, frame, hm, timings = item
                r = self.finish(frame, hm, timings)
                if not self.outbox.put((self.engine.next_seq(), self.name, frame, r), self.stop):
                    break
        finally:
            self._finalize()

    def _finalize(self) -> None:
        """Record how the stream ended, once, when its last result is out."""
        with self._finalize_lock:
            if not self.posting:
                return
            self._end("ended", "stopped")
            self.stats.state, self.stats.reason = self._final
            self.stats.t_end = time.monotonic()
            self.posting = False
        self.engine.notify_out()

    @property
    def results_box(self) -> Handoff:
        """Where the consumer takes this stream's items from: heatmaps to finish (files) or results (live)."""
        return self.postbox if self.inline else self.outbox

    def next_result(self):
        """For the consumer: ``(seq, name, frame, result)`` of the oldest item of this stream, or None; the
        frames after the last one asked for (``max_frames``) are taken and dropped (None)."""
        item = self.results_box.get()
        if item is None or not self.take():
            return None
        if not self.inline:
            return item
        seq, frame, hm, timings = item
        out = seq, self.name, frame, self.finish(frame, hm, timings)
        self._finalize_if_done()
        return out

    def _finalize_if_done(self) -> None:
        """A consumer-finished stream ends when its last result is out (or it was stopped with none left)."""
        if self.inline and self.posting and (self._drained() or (self.stop.is_set() and not len(self.postbox))):
            self._finalize()

    def take(self) -> bool:
        """The consumer takes one result; False if it comes after the last one asked for (``max_frames``)."""
        if self.max_frames is not None and self.delivered >= self.max_frames:
            return False
        self.delivered += 1
        if self.max_frames is not None and self.delivered >= self.max_frames:
            self._end("ended", f"the frame limit ({self.max_frames}) was reached")
            self.feed_stop.set()
            self.results_box.clear()  # (a file's heatmaps after the last one asked for are not made into results)
        return True

    # ---- what viewers see -------------------------------------------------------------------------------
    def _publish(self, frame, result) -> None:
        """The new result to the run's post-stage sinks (the server's viewer feed): from here, not from the
        consumer, so a slow consumer sink never delays what viewers see (uolrps.runtime.viewer_feed)."""
        self.engine.publish(self.name, frame.image, result)

    def status(self) -> StreamStatus:
        self._finalize_if_done()
        st = self.stats
        p50, p95 = st.latency()
        return StreamStatus(name=self.name, source=redact(self.spec.text), state=st.state, reason=redact_optional(st.reason),
                            frames=st.frames, drops=dict(st.drops), reopens=st.reopened, fps=round(st.fps, 2),
                            latency_p50_ms=None if p50 != p50 else round(p50, 2),
                            latency_p95_ms=None if p95 != p95 else round(p95, 2))

    @property
    def finished(self) -> bool:
        self._finalize_if_done()
        return not self.posting and len(self.results_box) == 0

    def close(self, timeout: float = 5.0) -> None:
        """Stop the stream's threads and release its source (the outbox keeps what was already produced)."""
        self.stop.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:  # first: a file's capture must not be released while the feeder reads it
            if t.is_alive() and t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))
        if self.inline:
            self._finalize()  # what is already in its postbox is still the consumer's to finish
        if self.own_source:
            if self.threads[0].is_alive():
                log.warning("stream %s: the feeder is blocked in a read; leaving its source open", self.name)
            else:
                self.source.close()
