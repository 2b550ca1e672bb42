"""The publisher seam: where events and states go (files, MQTT, a webhook, the API's ring).

A :class:`Publisher` is asked, in order:

- ``check(config)`` (a classmethod), before the model loads: refuse a bad option (a bad URL, a broker that
  cannot be reached at start) with one :class:`~uolrps.core.errors.OptionError`;
- ``create(config)`` (a classmethod): the publisher for this run, or None when the run does not ask for it;
- ``start()`` once, before the first event;
- ``stream_added(name)`` / ``stream_removed(name)`` as streams come and go;
- ``publish(event)`` and ``state(state)``: must return at once (never block the run);
- ``counters()``: ``{"sent", "dropped", "queued", "failed"}`` for the summary and ``/metrics``;
- ``close(timeout)``: send what is queued for at most ``timeout`` seconds, then stop; on every exit path.

:class:`QueuedPublisher` does the queueing for publishers that send over a network: a bounded queue (when
full, the oldest item is dropped and counted: ``dropped`` is exact), one sending thread, and on a failure
the item stays at the head and is retried after a growing pause (``backoff``), reconnecting first. A
subclass implements ``connect()``, ``send(item)`` (returns once the item is delivered, raises ``OSError``
or :class:`SendError` when it is not) and ``disconnect()``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

log = logging.getLogger("uolrps")


class SendError(Exception):
    """An item could not be delivered now (it is retried)."""


class Publisher:
    name = "publisher"

    @classmethod
    def check(cls, config) -> None:
        pass

    @classmethod
    def create(cls, config) -> "Publisher | None":
        return None

    def start(self) -> None:
        pass

    def stream_added(self, name: str) -> None:
        pass

    def stream_removed(self, name: str) -> None:
        pass

    def publish(self, event) -> None:
        pass

    def state(self, state) -> None:
        pass

    def counters(self) -> dict:
        return {"sent": 0, "dropped": 0, "queued": 0, "failed": 0}

    def close(self, timeout: float = 5.0) -> None:
        pass


class QueuedPublisher(Publisher):
    """A publisher with a bounded queue and one sending thread (see the module docstring).

    ``limit``: items kept while the other end is down; ``backoff``: (first, largest) pause in seconds between
    tries, doubling after each failure and reset by a success.
    """

    def __init__(self, limit: int = 1000, backoff: tuple[float, float] = (0.5, 30.0)) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, but got {limit}")
        self.limit = int(limit)
        self.backoff = backoff
        self._queue: deque = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = False
        self._inflight = None  # the item being sent (a full queue drops the one after it instead)
        self.sent = 0
        self.dropped = 0
        self.failed = 0  # failed tries (each retried)
        self.last_error: str | None = None

    # ---- for subclasses ----------------------------------------------------------------------------------
    def connect(self) -> None:
        pass

    def send(self, item) -> None:
        raise NotImplementedError

    def disconnect(self) -> None:
        pass

    # ---- the publisher -----------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"uolrps-{self.name}", daemon=True)
            self._thread.start()

    def put(self, item) -> None:
        """Queue ``item`` (never blocks); when the queue is full the oldest item is dropped and counted."""
        with self._cond:
            if len(self._queue) >= self.limit:
                self.dropped += 1
                if self._queue[0] is not self._inflight:
                    self._queue.popleft()
                elif len(self._queue) > 1:
                    del self._queue[1]  # the head is being sent: the oldest one waiting goes
                else:
                    return  # a queue of one, being sent: the new item is the one that cannot be kept
            self._queue.append(item)
            self._cond.notify()

    def publish(self, event) -> None:
        self.put(event)

    def counters(self) -> dict:
        with self._cond:
            return {"sent": self.sent, "dropped": self.dropped, "queued": len(self._queue), "failed": self.failed}

    def _loop(self) -> None:
        pause = self.backoff[0]
        while True:
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait(0.5)
                if not self._queue:
                    return  # stopped with nothing left
                item = self._inflight = self._queue[0]
            try:
                if not self._connected:
                    self.connect()
                    self._connected = True
                self.send(item)
            except Exception as e:  # noqa: BLE001 - any failure of the other end: retry later
                self.failed += 1
                if self.last_error != str(e):
                    log.warning("%s: %s (retrying, %d queued)", self.name, e, len(self._queue))
                self.last_error = str(e)
                self._drop_connection()
                if self._stop.wait(pause):
                    return
                pause = min(pause * 2, self.backoff[1])
                continue
            pause = self.backoff[0]
            with self._cond:
                if self._queue and self._queue[0] is item:
                    self._queue.popleft()
                self._inflight = None
                self.sent += 1

    def _drop_connection(self) -> None:
        if self._connected:
            self._connected = False
            try:
                self.disconnect()
            except Exception:  # noqa: BLE001
                pass

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued for at most ``timeout`` seconds; what is left is counted as dropped."""
        deadline = time.monotonic() + timeout
        if self._thread is not None:
            with self._cond:
                while self._queue and time.monotonic() < deadline and self._thread.is_alive():
                    self._cond.wait(0.05)
            self._stop.set()
            with self._cond:
                self._cond.notify_all()
            self._thread.join(max(0.1, deadline - time.monotonic()))
        with self._cond:
            if self._queue:
                log.warning("%s: %d item(s) not sent at exit", self.name, len(self._queue))
                self.dropped += len(self._queue)
                self._queue.clear()
        self._drop_connection()
