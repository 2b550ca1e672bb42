"""Run statistics: frame counters and per-stage latency percentiles, and the one-line summary."""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from uolrps.runtime.result import STAGES


class RunStats:
    """Filled by the pipeline: ``frames`` processed, ``dropped`` (live sources keep only the newest frame),
    ``skipped`` (unreadable frames), ``reopened`` (live source reconnections), and the latency of each stage
    over the last ``window`` frames."""

    def __init__(self, window: int = 100_000) -> None:
        self.frames = 0
        self.dropped = 0
        self.skipped = 0
        self.reopened = 0
        self.source_error = ""
        self.interrupted = False
        self._lat: dict[str, deque] = {s: deque(maxlen=window) for s in STAGES}
        self._t0: float | None = None
        self._t_last: float | None = None

    def start(self) -> None:
        if self._t0 is None:
            self._t0 = time.perf_counter()

    def add(self, timings: dict[str, float]) -> None:
        self.frames += 1
        self._t_last = time.perf_counter()
        for stage in STAGES:
            if stage in timings:
                self._lat[stage].append(float(timings[stage]))

    def stop(self, source=None) -> None:
        if source is not None:
            self.dropped, self.skipped, self.reopened = source.dropped, source.skipped, source.reopened

    @property
    def wall_s(self) -> float:
        if self._t0 is None or self._t_last is None:
            return 0.0
        return self._t_last - self._t0

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def percentiles(self, stage: str) -> tuple[float, float]:
        """(p50, p95) in milliseconds for ``stage`` (NaN when no frame was timed)."""
        values = self._lat[stage]
        if not values:
            return float("nan"), float("nan")
        p50, p95 = np.percentile(np.fromiter(values, dtype=np.float64, count=len(values)), [50, 95])
        return float(p50), float(p95)

    def summary(self) -> dict:
        """Everything as a JSON-ready dict."""
        out = {"frames": self.frames, "dropped": self.dropped, "skipped": self.skipped, "reopened": self.reopened,
               "fps": round(self.fps, 2), "wall_s": round(self.wall_s, 3), "interrupted": self.interrupted,
               "ms": {}}
        for stage in STAGES:
            p50, p95 = self.percentiles(stage)
            out["ms"][stage] = {"p50": round(p50, 3), "p95": round(p95, 3)}
        if self.source_error:
            out["source_error"] = self.source_error
        return out

    def line(self) -> str:
        """``frames 900 | dropped 0 | skipped 0 | 41.3 FPS | capture p50 1.20 / p95 2.10 ms | ...``"""
        parts = [f"frames {self.frames}", f"dropped {self.dropped}", f"skipped {self.skipped}"]
        if self.reopened:
            parts.append(f"reopened {self.reopened}")
        parts.append(f"{self.fps:.1f} FPS")
        for stage in STAGES:
            p50, p95 = self.percentiles(stage)
            parts.append(f"{stage} p50 {p50:.2f} / p95 {p95:.2f} ms")
        if self.interrupted:
            parts.append("interrupted")
        return " | ".join(parts)
