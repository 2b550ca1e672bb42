"""The hand-over between two stages of one stream.

Live streams keep only the newest item (the one overwritten is counted as a drop of the receiving stage),
so a result is never more than about one inference behind the camera; files use a bounded queue in order,
where the producer waits for room (lossless).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable


class Handoff:
    def __init__(self, lossless: bool, capacity: int = 4, on_drop: Callable[[], None] | None = None,
                 on_put: Callable[[], None] | None = None, on_get: Callable[[], None] | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, but got {capacity}")
        self.lossless = lossless
        self.capacity = capacity if lossless else 1
        self._items: deque = deque()
        self._cond = threading.Condition()
        self._on_drop = on_drop
        self._on_put = on_put
        self._on_get = on_get

    def put(self, item, stop: threading.Event) -> bool:
        """Hand ``item`` over; False (not handed over) when ``stop`` was set while waiting for room."""
        with self._cond:
            if self.lossless:
                while len(self._items) >= self.capacity:
                    if stop.is_set():
                        return False
                    self._cond.wait(0.05)
            elif len(self._items) >= self.capacity:
                self._items.popleft()
                if self._on_drop is not None:
                    self._on_drop()
            self._items.append(item)
            self._cond.notify_all()
        if self._on_put is not None:
            self._on_put()
        return True

    def get(self, timeout: float = 0.0):
        """The oldest item, or None when there is none within ``timeout`` seconds."""
        with self._cond:
            if not self._items and timeout > 0:
                self._cond.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
        if self._on_get is not None:
            self._on_get()
        return item

    def peek(self):
        with self._cond:
            return self._items[0] if self._items else None

    def has_room(self) -> bool:
        return not self.lossless or len(self._items) < self.capacity

    def clear(self) -> int:
        with self._cond:
            n = len(self._items)
            self._items.clear()
            self._cond.notify_all()
            return n

    def __len__(self) -> int:
        return len(self._items)
