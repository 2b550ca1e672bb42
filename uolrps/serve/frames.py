"""Annotated JPEGs for viewers: each new result encoded at most once per stream and heatmap flag.

One :class:`FrameHub` per (stream, heatmap) key, alive while someone watches it. Its own thread asks the
run for the newest result (:meth:`StreamControl.wait_latest`), draws the boxes with
:class:`uolrps.core.drawing.Annotator` on a copy, encodes one JPEG and hands it to the server's event loop,
where every viewer picks up the newest one when it is ready for another. Nothing here runs on the inference
thread, and the hub encodes only when a viewer wants a newer frame than the last one, so frames nobody will
see are never encoded: a slow viewer costs encodes at its own pace, and skips the frames it was too slow for.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass

from uolrps.runtime.control import StreamControl

log = logging.getLogger(__name__)

WAIT_S = 0.5  # how long the hub thread blocks in wait_latest before it looks at its viewers again
LINGER_S = 3.0  # a hub with no viewers keeps its thread this long (a page reload, a snapshot poll)


@dataclass(frozen=True)
class Encoded:
    """One encoded frame: ``n`` counts the hub's frames (what viewers compare: it never goes back), ``seq``
    of the result it shows, its frame index and the JPEG bytes."""

    n: int
    seq: int
    frame_index: int
    jpeg: bytes


class FrameHub:
    """The newest encoded frame of one stream (with or without the heatmap overlay), shared by its viewers.

    Viewers run on the server's event loop: :meth:`next_after` returns the newest frame newer than the one
    they hold (by ``Encoded.n``). The encoding thread only ever touches the loop through ``call_soon_threadsafe``.
    """

    def __init__(self, control: StreamControl, name: str, heatmap: bool, loop: asyncio.AbstractEventLoop,
                 registry: "Hubs", quality: int = 80) -> None:
        self.control = control
        self.name = name
        self.heatmap = heatmap
        self.quality = int(quality)
        self.encoded = 0  # frames this hub has encoded (read by /metrics)
        self.viewers = 0  # guarded by the registry's lock
        self.idle_since = time.monotonic()
        self.gone = False  # the stream was removed: viewers end their responses
        self._loop = loop
        self._retire = registry.retire_if_idle
        self._on_exit = registry.finished
        self._current: Encoded | None = None
        self._changed = asyncio.Event()
        self._wanted = threading.Event()
        self._wanted.set()  # the first frame is wanted as soon as someone subscribes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"uolrps-serve-{name}{'-heat' if heatmap else ''}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, gone: bool = False) -> None:
        """End the thread and wake every viewer waiting on this hub (they see it stopped and end)."""
        self._stop.set()
        self._wanted.set()
        self._publish(None, gone=gone)

    def join(self, timeout: float) -> None:
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def current(self) -> Encoded | None:
        return self._current

    async def next_after(self, n: int, timeout: float) -> Encoded | None:
        """The newest frame with ``Encoded.n`` above ``n``, waiting up to ``timeout`` s; None if none came."""
        deadline = self._loop.time() + timeout
        while True:
            cur = self._current
            if cur is not None and cur.n > n:
                return cur
            if self.gone or self._stop.is_set():
                return None
            self._wanted.set()
            left = deadline - self._loop.time()
            if left <= 0:
                return None
            event = self._changed
            try:
                await asyncio.wait_for(event.wait(), left)
            except asyncio.TimeoutError:
                return None

    # -- the encoding thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        import cv2

        from uolrps.core.drawing import Annotator

        annotators: dict = {}  # per placement: the overlay is placed as the run's boxes are (Latest.placement)
        params = [int(cv2.IMWRITE_JPEG_QUALITY), self.quality]
        seq = -1
        try:
            while not self._stop.is_set():
                if not self._wanted.wait(WAIT_S):
                    if self._should_retire():
                        return
                    continue
                if self._stop.is_set():
                    return
                try:
                    latest = self.control.wait_latest(self.name, seq, WAIT_S)
                    if latest is None:
                        newest = self.control.latest(self.name)
                        if newest is not None and newest.seq < seq:  # removed and added again: seq restarted
                            seq = -1
                            self._publish(None, forget=True)  # the old stream's picture is not this one's
                except KeyError:
                    self._publish(None, gone=True)
                    return
                if latest is None:
                    if self._should_retire():
                        return
                    continue
                annotator = annotators.get(latest.placement)
                if annotator is None:
                    annotator = annotators[latest.placement] = Annotator(heatmap=self.heatmap,
                                                                         placement=latest.placement)
                image = annotator.annotate(latest.frame, latest.result)
                ok, buf = cv2.imencode(".jpg", image, params)
                if not ok:  # pragma: no cover - OpenCV encodes any uint8 BGR image
                    log.warning("could not encode a frame of stream %s as JPEG", self.name)
                    continue
                seq = latest.seq
                self.encoded += 1
                self._wanted.clear()
                self._publish(Encoded(self.encoded, seq, int(latest.result.frame_index), buf.tobytes()))
        except Exception:  # a drawing bug must not pass silently, nor take the server down
            log.exception("the view of stream %s stopped", self.name)
            self._publish(None, gone=True)
        finally:
            self._on_exit(self)

    def _should_retire(self) -> bool:
        return self._retire(self)

    def _publish(self, frame: Encoded | None, gone: bool = False, forget: bool = False) -> None:
        def apply() -> None:
            if frame is not None or forget:
                self._current = frame
            if gone:
                self.gone = True
            event, self._changed = self._changed, asyncio.Event()
            event.set()

        try:
            self._loop.call_soon_threadsafe(apply)
        except RuntimeError:  # the server's loop is closed: nobody is watching any more
            self._stop.set()


class Hubs:
    """The registry of live hubs, keyed by (stream, heatmap); a hub retires itself when nobody watches."""

    def __init__(self, control: StreamControl, quality: int = 80) -> None:
        self.control = control
        self.quality = quality
        self._lock = threading.Lock()
        self._hubs: dict[tuple[str, bool], FrameHub] = {}
        self._encoded: dict[tuple[str, bool], int] = {}  # totals of retired hubs, so the counter never falls
        self._closed = False

    def subscribe(self, name: str, heatmap: bool) -> FrameHub:
        """The hub for this key (started if needed), with one more viewer counted; pair with unsubscribe."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closed:
                raise RuntimeError("the server is shutting down")
            hub = self._hubs.get((name, heatmap))
            if hub is None:
                hub = FrameHub(self.control, name, heatmap, loop, self, self.quality)
                self._hubs[(name, heatmap)] = hub
                hub.start()
            hub.viewers += 1
            return hub

    def unsubscribe(self, hub: FrameHub) -> None:
        with self._lock:
            hub.viewers -= 1
            if hub.viewers == 0:
                hub.idle_since = time.monotonic()

    def encoded(self) -> dict[tuple[str, bool], int]:
        """Frames encoded so far per (stream, heatmap), retired hubs included."""
        with self._lock:
            out = dict(self._encoded)
            for key, hub in self._hubs.items():
                out[key] = out.get(key, 0) + hub.encoded
            return out

    def forget(self, name: str) -> None:
        """Stream ``name`` was removed: its hubs stop and their viewers' responses end; a stream added again
        under that name gets new hubs (never the old stream's picture)."""
        with self._lock:
            hubs = [self._hubs[key] for key in list(self._hubs) if key[0] == name]
            for hub in hubs:
                self._drop(hub)
        for hub in hubs:
            hub.stop(gone=True)

    def close(self, timeout: float = 2.0) -> None:
        with self._lock:
            self._closed = True
            hubs = list(self._hubs.values())
        for hub in hubs:
            hub.stop()
        for hub in hubs:
            hub.join(timeout)

    def retire_if_idle(self, hub: FrameHub) -> bool:
        """Called by a hub's thread: True (and the hub is out of the registry) when nobody watched it lately."""
        with self._lock:
            if hub.viewers > 0 or time.monotonic() - hub.idle_since <= LINGER_S:
                return False
            self._drop(hub)
            return True

    def finished(self, hub: FrameHub) -> None:
        """Called by a hub's thread as it ends, whatever the reason."""
        with self._lock:
            self._drop(hub)

    def _drop(self, hub: FrameHub) -> None:
        key = (hub.name, hub.heatmap)
        if self._hubs.get(key) is hub:
            del self._hubs[key]
            self._encoded[key] = self._encoded.get(key, 0) + hub.encoded
