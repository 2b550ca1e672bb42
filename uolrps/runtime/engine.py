"""The multi-stream engine: many sources, one model, one inference stage batched across streams.

Each stream is isolated (:class:`uolrps.runtime.stream.Stream`: its own capture and feeder threads, and a
post thread for a live one, so its stalls, reopenings and failure are its own). The inference stage takes
the newest ready input of every stream (files: the next one in order) and runs them as one batch, up to the
model's largest batch; when only some streams are ready it waits at most ``batch_wait_ms`` for the others,
so a stalled camera never holds the rest back. It has ``inflight`` threads, each with one batch in flight,
by default the backend's ``caps.concurrency`` (:class:`uolrps.runtime.backends.base.Capabilities`) (one for a TensorRT
engine, two for ONNX Runtime on the CPU, several for a remote server, whose round trips then overlap); a
stream's results stay in order whichever call returns first. Results come out of
:meth:`StreamEngine.results` as ``(name, frame, result)`` in the order they were produced. The engine
implements :class:`uolrps.runtime.control.StreamControl`, so an HTTP server can watch it and add or remove
streams while it runs.

Every exit path (all streams ended, the consumer stopping, a stage raising, Ctrl-C) goes through
:meth:`StreamEngine.close`, which stops every thread without leaving one blocked; an exception raised in a
worker is re-raised in the consumer's thread after the results produced before it.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from uolrps.core.errors import UserError
from uolrps.core.options import check_at_least, check_batch_wait_ms, check_inflight, check_max_frames
from uolrps.core.redact import redact
from uolrps.runtime.capture import Source, SourceSpec, log
from uolrps.runtime.control import Latest, StreamStatus
from uolrps.runtime.live import DEFAULT_STALL_TIMEOUT
from uolrps.runtime.source_kinds import kind_of
from uolrps.runtime.localizer import Localizer
from uolrps.runtime.sources import open_source, parse_source
from uolrps.runtime.stats import RunStats
from uolrps.runtime.stream import Stream
from uolrps.runtime.viewer_feed import ViewerFeed

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DYNAMIC_BATCH_CAP = 32  # a dynamic ONNX batch axis has no limit of its own


def default_name(spec: SourceSpec, index: int) -> str:
    """``cam<index>`` for live sources, the file's stem (as an identifier) for files."""
    stem = kind_of(spec).stream_name(spec)
    if stem:
        name = re.sub(r"\W", "_", stem)
        if name and not name[0].isdigit():
            return name
    return f"cam{index}"


class StreamEngine:
    def __init__(self, localizer: Localizer, *, batch_wait_ms: float = 5.0, max_batch: int | None = None,
                 queue_size: int = 4, loop: bool = False, max_frames: int | None = None,
                 stall_timeout: float = DEFAULT_STALL_TIMEOUT, reopen_limit: int | None = None,
                 backoff: tuple[float, float] = (0.5, 8.0), capture_factory: Callable | None = None,
                 stats: RunStats | None = None, labels: bool = False, keep_running: bool = False,
                 capture_options=None, inflight: int | None = None, api_policy=None, track: bool = False) -> None:
        check_batch_wait_ms(batch_wait_ms)
        check_max_frames(max_frames)
        check_at_least(queue_size, 1, "queue_size")
        self.inflight = check_inflight(inflight) or localizer.backend.caps.concurrency
        self.localizer = localizer
        self.queue_size = int(queue_size)
        self.batch_wait = batch_wait_ms / 1000.0
        cap = localizer.max_batch or DYNAMIC_BATCH_CAP  # the backend pads a batch below its smallest
        self.max_batch = max(min(cap, max_batch) if max_batch else cap, 1)
        self.loop, self.max_frames = loop, max_frames
        self.stall_timeout, self.reopen_limit, self.backoff = stall_timeout, reopen_limit, backoff
        self.capture_factory = capture_factory
        self.capture_options = capture_options
        self.api_policy = api_policy  # a SourcePolicy: what add_stream (the API) may open; None: anything
        self.stats = stats if stats is not None else RunStats()
        self.labels = labels
        self.track = bool(track)  # a tracker per stream: every result gets track_ids (uolrps.runtime.tracking)
        if self.track:
            from uolrps.runtime.tracking import check_tracking

            check_tracking()
        self.keep_running = keep_running
        self.on_add: Callable | None = None  # called with each new Stream before it starts (the run's outputs)
        self.event_ring = None  # the run's uolrps.runtime.events.ring.EventRing when it serves its events
        self.on_remove: Callable | None = None  # called with a removed stream's name (the run's outputs)
        # the post-stage sinks (written by each stream as a result is made) and among them what viewers see
        # (StreamControl.latest); a bare engine keeps a feed of its own, a run sets its own sinks (use_post_sinks)
        self.feed: ViewerFeed | None = ViewerFeed(labels, localizer.upsample)
        self.post_sinks: list = [self.feed]
        self._streams: dict[str, Stream] = {}
        self._removed: set[str] = set()
        self._draining: list[Stream] = []  # removed streams whose produced results the consumer has not taken yet
        self._lock = threading.RLock()
        self._work = threading.Condition()
        self._out = threading.Condition()
        self._stats_lock = threading.Lock()
        self._seq = itertools.count()
        self._stop = threading.Event()
        self._close_lock = threading.Lock()
        self._closed = False
        self._error: BaseException | None = None
        self._added = 0
        self._infer_threads: list[threading.Thread] = []
        self._in_flight = 0
        self.max_in_flight = 0  # the most batches that were in flight at once (tests, benchmarks)
        self.batches: list[int] = []  # batch sizes, for tests and benchmarks (bounded)

    # ---- streams -----------------------------------------------------------------------------------------
    def _unique(self, name: str | None, spec: SourceSpec) -> str:
        if name is not None:
            if not NAME.fullmatch(name):
                raise UserError(f"stream name {name!r} must be a bare identifier (letters, digits, _; not "
                                "starting with a digit)")
            if name in self._streams:
                raise UserError(f"a stream named {name!r} already exists: choose another name")
            return name
        base = default_name(spec, self._added)
        name, k = base, 2
        while name in self._streams:
            name, k = f"{base}_{k}", k + 1
        return name

    def add_source(self, source: str | Path | Source | SourceSpec, name: str | None = None,
                   open_now: bool = False, options=None) -> str:
        """Start a stream on ``source`` (a source string, a parsed spec, or an open :class:`Source`, which
        stays the caller's to close). ``open_now``: a live source that does not open is an immediate
        :class:`UserError` (else it is retried like one that went down later). Returns the stream's name."""
        own = not isinstance(source, Source)
        if own:
            spec = source if isinstance(source, SourceSpec) else parse_source(source, options or self.capture_options)
        else:
            spec = source.spec
        with self._lock:
            if self._stop.is_set():
                raise UserError("the run is ending: no stream can be added")
            name = self._unique(name, spec)
            src = open_source(spec, loop=self.loop, capture_factory=self.capture_factory, backoff=self.backoff,
                              reopen_limit=self.reopen_limit, stall_timeout=self.stall_timeout,
                              open_now=open_now) if own else source
            stream = Stream(name, spec, src, self, self.max_frames, own_source=own)
            if self.on_add is not None:
                try:
                    self.on_add(stream)  # outputs of the stream (checked before it starts); may raise UserError
                except BaseException:
                    if own:
                        src.close()
                    raise
            self._streams[name] = stream
            self._added += 1
            self.stats.start()
            stream.start()
            self._ensure_inference()
        log.info("stream %s: %s", name, redact(spec.text))
        return name

    def add_stream(self, source: str, name: str | None = None) -> str:
        """StreamControl: start a stream while the run goes on, if ``api_policy`` lets a remote caller open it
        (:mod:`uolrps.runtime.source_policy`; NotAllowedError if not)."""
        if self.api_policy is not None:
            return self.add_source(self.api_policy.admit(source, self.capture_options), name)
        return self.add_source(source, name)

    def remove_stream(self, name: str) -> None:
        """StreamControl: stop stream ``name`` and forget it (its counters stay in the run's summary)."""
        with self._lock:
            stream = self._streams.pop(name)  # KeyError: unknown stream
            self._removed.add(name)
            self._draining.append(stream)
        stream._end("ended", "removed")
        stream.close()  # its outbox keeps the results already made: the consumer still writes them
        if self.on_remove is not None:
            self.on_remove(name)
        self.notify_out()
        self.notify_work()

    def streams(self) -> list[Stream]:
        with self._lock:
            return list(self._streams.values())

    def _get(self, name: str) -> Stream:
        with self._lock:
            return self._streams[name]  # KeyError: unknown stream

    def statuses(self) -> list[StreamStatus]:
        return [s.status() for s in self.streams()]

    def latest(self, name: str) -> Latest | None:
        self._get(name)  # KeyError: unknown stream
        return None if self.feed is None else self.feed.latest(name)

    def wait_latest(self, name: str, after_seq: int, timeout: float) -> Latest | None:
        stream = self._get(name)
        if self.feed is None:  # nobody serves this run: no result is kept for viewers
            return None
        return self.feed.wait_latest(name, after_seq, timeout, ended=lambda: not stream.posting)

    def use_post_sinks(self, sinks: list) -> None:
        """The run's post-stage sinks (:class:`uolrps.runtime.sink.Sink` ``stage == "post"``), replacing the
        engine's own feed: viewers see the run's :class:`ViewerFeed`, if it has one."""
        self.post_sinks = list(sinks)
        self.feed = next((s for s in self.post_sinks if isinstance(s, ViewerFeed)), None)

    def publish(self, name: str, image, result) -> None:
        """A stream's new result, to the post-stage sinks (from its post step, before the consumer)."""
        for sink in self.post_sinks:
            sink.write(name, image, result, float("nan"))

    # ---- EventControl: the events the server shows (from the run's EventRing) ----------------------------
    def events(self, stream: str | None = None, since: int | None = None, limit: int = 100) -> list[dict] | None:
        ring = self.event_ring
        return None if ring is None else ring.events(stream, since, limit)

    def event_image(self, event_id: str, kind: str) -> bytes | None:
        ring = self.event_ring
        return None if ring is None else ring.image(event_id, kind)

    def event_metrics(self) -> dict:
        counters = self.stats.event_counters
        ring = self.event_ring
        return {"publishers": counters() if counters is not None else {},
                "events": ring.counts() if ring is not None else {}}

    # ---- plumbing used by the streams --------------------------------------------------------------------
    def notify_work(self) -> None:
        with self._work:
            self._work.notify_all()

    def notify_out(self) -> None:
        with self._out:
            self._out.notify_all()

    def next_seq(self) -> int:
        return next(self._seq)

    def record(self, stream: Stream, result) -> None:
        with self._stats_lock:
            stream.stats.add(result.latency_ms)
            self.stats.add(result.timings)

    def fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._stop.set()
        for s in self.streams():
            s.stop.set()
        self.notify_work()
        self.notify_out()

    # ---- the inference stage -----------------------------------------------------------------------------
    def _ensure_inference(self) -> None:
        if not self._infer_threads:
            self._infer_threads = [threading.Thread(target=self._infer_guard, name=f"uolrps-infer-{i}", daemon=True)
                                   for i in range(self.inflight)]
            for t in self._infer_threads:
                t.start()

    def _infer_guard(self) -> None:
        try:
            self._infer_loop()
        except BaseException as e:  # noqa: BLE001
            self.fail(e)

    def _gather(self, rr: int) -> list[Stream]:
        """The streams to batch now: wait for one ready input, then at most ``batch_wait`` for the others."""
        deadline = None
        with self._work:
            while not self._stop.is_set():
                streams = self.streams()
                ready = [s for s in streams if s.ready()]
                if ready:
                    want = min(self.max_batch, len([s for s in streams if s.ready() or s.expecting()]))
                    now = time.perf_counter()
                    if deadline is None:
                        deadline = now + self.batch_wait
                    if len(ready) >= want or now >= deadline:
                        break
                    self._work.wait(deadline - now)
                else:
                    self._work.wait(0.05)
            else:
                return []
        k = rr % len(ready)
        return (ready[k:] + ready[:k])[:self.max_batch]

    def _infer_loop(self) -> None:
        rr = 0
        while not self._stop.is_set():
            chosen = self._gather(rr)
            rr += 1
            items = [(s, taken) for s in chosen if (taken := s.take_input()) is not None]
            if not items:
                continue
            batch = np.stack([x for _, (_, (_, x, _)) in items])
            with self._stats_lock:
                self._in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self._in_flight)
            t0 = time.perf_counter()
            try:
                heatmaps = self.localizer.infer(batch)
            finally:
                with self._stats_lock:
                    self._in_flight -= 1
            ms = (time.perf_counter() - t0) * 1000.0
            if len(self.batches) < 100_000:
                self.batches.append(len(items))
            for (s, (ticket, (frame, _, timings))), hm in zip(items, heatmaps):
                timings["infer"] = ms
                s.deliver(ticket, frame, hm, timings)

    # ---- the consumer ------------------------------------------------------------------------------------
    def _pick(self):
        best = None
        with self._lock:
            self._draining = [s for s in self._draining if len(s.results_box)]
            candidates = list(self._streams.values()) + self._draining
        for s in candidates:
            head = s.results_box.peek()
            if head is not None and (best is None or head[0] < best[1][0]):
                best = (s, head)
        if best is None:
            return None
        item = best[0].next_result()
        if item is None:
            return self._pick()
        # counted when the consumer takes it: a result made after the last one asked for (--max-frames) is
        # discarded, and a live result a slow consumer missed is an output drop, neither a frame
        self.record(best[0], item[3])
        return item

    def _all_done(self) -> bool:
        streams = self.streams()
        return all(s.finished for s in streams)

    def results(self) -> Iterator[tuple[str, np.ndarray, object]]:
        """``(stream name, frame, result)`` as they are produced, until every stream has ended (or forever
        with ``keep_running``, until :meth:`close`)."""
        while True:
            item = self._pick()
            if item is None:
                with self._out:
                    if self._error is not None or (self._stop.is_set() and not self._error):
                        break
                    if self._all_done() and not self.keep_running:
                        break
                    self._out.wait(0.05)
                continue
            _, name, frame, result = item
            yield name, frame.image, result
        if self._error is not None:
            for _, name, frame, result in self._drain():
                yield name, frame.image, result
            raise self._error

    def _drain(self):
        while True:
            item = self._pick()
            if item is None:
                return
            yield item

    def close(self) -> None:
        """Stop every stage and stream, release the sources, join the threads. Safe to call from any thread
        and more than once (a second caller waits until the first has finished)."""
        self._stop.set()
        self.notify_work()
        self.notify_out()
        with self._close_lock:
            if self._closed:
                return
            for s in self.streams():
                s.close()
            deadline = time.monotonic() + 5.0  # one bound for all: several calls may be waiting on a server
            for t in self._infer_threads:
                if t is not threading.current_thread():
                    t.join(max(0.0, deadline - time.monotonic()))
            self.stats.stop()
            self._closed = True

    def __enter__(self) -> "StreamEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
