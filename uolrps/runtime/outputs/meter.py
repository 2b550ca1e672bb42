"""A frames-per-second meter over the last frames (monotonic clock)."""

from __future__ import annotations

import time
from collections import deque


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
