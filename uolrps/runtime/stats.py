"""Run statistics: per-stream counters, drops per stage and capture-to-result latency; per-stage latency
percentiles over the whole run; the summary lines and JSON."""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from uolrps.core.redact import redact, redact_optional
from uolrps.runtime.result import STAGES

DROP_STAGES = ("capture", "infer", "post", "output")  # where a live stream drops its oldest frame
FPS_WINDOW_S = 5.0


def _p50_p95(values) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    p50, p95 = np.percentile(np.fromiter(values, dtype=np.float64, count=len(values)), [50, 95])
    return float(p50), float(p95)


def _ms(v: float) -> float | None:
    return None if v != v else round(v, 3)  # NaN -> None (JSON has no NaN)


class StreamStats:
    """One stream's counters: ``frames`` (results), ``drops`` per stage, ``skipped``, ``reopened``,
    ``state`` / ``reason``, capture-to-result latency and a recent results-per-second rate."""

    def __init__(self, name: str, source: str, window: int = 100_000) -> None:
        self.name, self.source = name, redact(source)  # what the summary and the API show: no credentials
        self.frames = 0
        self.drops = {s: 0 for s in DROP_STAGES}
        self.skipped = 0
        self.skipped_files: list[str] = []
        self.reopened = 0
        self.state = "opening"
        self.reason: str | None = None
        self._lat: deque = deque(maxlen=window)
        self._recent: deque = deque(maxlen=1000)
        self._lock = threading.Lock()  # the run appends while a server thread reads (fps, latency): snapshots
        self.t_start = time.monotonic()
        self.t_end: float | None = None

    def add(self, latency_ms: float | None) -> None:
        with self._lock:
            self.frames += 1
            self._recent.append(time.monotonic())
            if latency_ms is not None:
                self._lat.append(float(latency_ms))

    @property
    def dropped(self) -> int:
        return sum(self.drops.values())

    @property
    def fps(self) -> float:
        """Results per second of wall time over the last few seconds."""
        now = self.t_end or time.monotonic()
        span = min(FPS_WINDOW_S, now - self.t_start)
        if span <= 0:
            return 0.0
        with self._lock:
            recent = list(self._recent)
        n = sum(1 for t in recent if t >= now - span)
        return n / span

    @property
    def wall_s(self) -> float:
        return (self.t_end or time.monotonic()) - self.t_start

    def latency(self) -> tuple[float, float]:
        """(p50, p95) capture-to-result latency in ms (NaN before any result)."""
        with self._lock:
            values = list(self._lat)
        return _p50_p95(values)

    def summary(self) -> dict:
        p50, p95 = self.latency()
        out = {"source": self.source, "state": self.state, "frames": self.frames, "dropped": self.dropped,
               "drops": dict(self.drops), "skipped": self.skipped, "reopened": self.reopened,
               "fps": round(self.frames / self.wall_s, 2) if self.wall_s > 0 else 0.0,
               "latency_ms": {"p50": _ms(p50), "p95": _ms(p95)}}
        if self.skipped_files:
            out["skipped_files"] = list(self.skipped_files)
        if self.reason:
            out["reason"] = redact(self.reason)
        return out

    def line(self) -> str:
        s = self.summary()
        parts = [f"{self.name}: frames {self.frames}", f"dropped {self.dropped}" + (
            " (" + ", ".join(f"{k} {v}" for k, v in self.drops.items() if v) + ")" if self.dropped else ""),
                 f"skipped {self.skipped}"]
        if self.reopened:
            parts.append(f"reopened {self.reopened}")
        parts.append(f"{s['fps']:.1f} FPS")
        p50, p95 = self.latency()
        parts.append(f"latency p50 {p50:.1f} / p95 {p95:.1f} ms" if p50 == p50 else "no frame")
        parts.append(self.state + (f": {redact(self.reason)}" if self.reason else ""))
        return " | ".join(parts)


class RunStats:
    """Filled by the pipeline: ``frames`` processed, ``dropped`` (live sources keep only the newest frame),
    ``skipped`` (unreadable frames), ``reopened`` (live source reconnections), the latency of each stage
    over the last ``window`` frames, and one :class:`StreamStats` per stream in ``streams``. FPS is
    frames per second of wall time, from the start of the run to its end."""

    def __init__(self, window: int = 100_000) -> None:
        self.frames = 0
        self.interrupted = False
        self.output_error: str | None = None  # an output could not be completely written (the run stopped there)
        # the event publishers' counters ({name: {"sent", "dropped", "queued", "failed"}}), set by the event sink
        self.event_counters = None  # a callable returning that dict, or None when the run makes no events
        self.streams: dict[str, StreamStats] = {}
        self._counts = {"dropped": 0, "skipped": 0, "reopened": 0}  # when there is no per-stream record
        self._source_error = ""
        self._window = window
        self._lat: dict[str, deque] = {s: deque(maxlen=window) for s in STAGES}
        self._t0: float | None = None
        self._t_last: float | None = None
        self._t_end: float | None = None

    def stream(self, name: str, source: str) -> StreamStats:
        """The record of stream ``name`` (created on first use)."""
        if name not in self.streams:
            self.streams[name] = StreamStats(name, source, self._window)
        return self.streams[name]

    def _sum(self, key: str) -> int:
        if self.streams:
            return sum(getattr(s, key) for s in self.streams.values())
        return self._counts[key]

    dropped = property(lambda self: self._sum("dropped"), lambda self, v: self._counts.__setitem__("dropped", v))
    skipped = property(lambda self: self._sum("skipped"), lambda self, v: self._counts.__setitem__("skipped", v))
    reopened = property(lambda self: self._sum("reopened"), lambda self, v: self._counts.__setitem__("reopened", v))

    @property
    def failed(self) -> list[StreamStats]:
        """The streams that ended in failure."""
        return [s for s in self.streams.values() if s.state == "failed"]

    @property
    def source_error(self) -> str:
        if self._source_error:
            return self._source_error
        return "; ".join(redact_optional(s.reason) or "" for s in self.failed)

    @source_error.setter
    def source_error(self, value: str) -> None:
        self._source_error = value

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
        """The run ended (its wall time ends here)."""
        if self._t0 is not None and self._t_end is None:
            self._t_end = time.perf_counter()
        if source is not None:
            self._counts.update(dropped=source.dropped, skipped=source.skipped, reopened=source.reopened)

    @property
    def wall_s(self) -> float:
        end = self._t_end if self._t_end is not None else self._t_last
        if self._t0 is None or end is None:
            return 0.0
        return end - self._t0

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def percentiles(self, stage: str) -> tuple[float, float]:
        """(p50, p95) in milliseconds for ``stage`` (NaN when no frame was timed)."""
        return _p50_p95(self._lat[stage])

    def summary(self) -> dict:
        """Everything as a JSON-ready dict."""
        out = {"frames": self.frames, "dropped": self.dropped, "skipped": self.skipped, "reopened": self.reopened,
               "fps": round(self.fps, 2), "wall_s": round(self.wall_s, 3), "interrupted": self.interrupted,
               "ms": {}}
        for stage in STAGES:
            p50, p95 = self.percentiles(stage)
            out["ms"][stage] = {"p50": round(p50, 3), "p95": round(p95, 3)}
        if self.streams:
            out["streams"] = {name: s.summary() for name, s in self.streams.items()}
            out["failed"] = [s.name for s in self.failed]
        if self.source_error:
            out["source_error"] = self.source_error
        if self.output_error:
            out["output_error"] = self.output_error
        if self.event_counters is not None:
            out["events"] = self.event_counters()
        return out

    def line(self) -> str:
        """``frames 900 | dropped 0 | skipped 0 | 41.3 FPS | capture p50 1.20 / p95 2.10 ms | ...``, and with
        several streams one more line per stream."""
        parts = [f"frames {self.frames}", f"dropped {self.dropped}", f"skipped {self.skipped}"]
        if self.reopened:
            parts.append(f"reopened {self.reopened}")
        parts.append(f"{self.fps:.1f} FPS")
        for stage in STAGES:
            p50, p95 = self.percentiles(stage)
            parts.append(f"{stage} p50 {p50:.2f} / p95 {p95:.2f} ms")
        if len(self.streams) == 1:
            p50, p95 = next(iter(self.streams.values())).latency()
            if p50 == p50:  # NaN: no frame, nothing to say
                parts.append(f"latency p50 {p50:.1f} / p95 {p95:.1f} ms")
        if self.interrupted:
            parts.append("interrupted")
        lines = [" | ".join(parts)]
        if len(self.streams) > 1:
            lines += [s.line() for s in self.streams.values()]
        return "\n".join(lines)
