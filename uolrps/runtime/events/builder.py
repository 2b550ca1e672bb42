"""Tracks to events, per stream (``--events``): start / update / end, and zone enter / leave.

A *sighting* is a box with a confirmed track id (not -1) whose area is at least ``min_area`` of the frame and,
when the stream has zones, whose centre is in one of them; any other box is as if not seen. An object:

- **starts** once it has been sighted on ``min_frames`` frames spanning at least ``min_seconds`` of source
  time (debouncing: a flicker of one or two frames makes no event); the start event carries the zones it is
  in, and one ``enter`` event follows per zone;
- gets an **update** every ``update_s`` seconds of source time while sighted (0: none), with the best box so
  far;
- **ends** once it has not been sighted for more than ``max_gap`` seconds (the end time is its last
  sighting), or when its stream ends; ``leave`` events for its zones come first;
- makes ``enter`` / ``leave`` events as its centre moves in and out of zones while it lasts.

Its *best* sighting (the highest box score; its frame is the snapshot) is kept with each event. An object
that never starts is forgotten silently. Times are the source's (``result.timestamp``), so a file gives the
same events however fast it runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from uolrps.core.errors import OptionError
from uolrps.runtime.events.event import Event


@dataclass(frozen=True)
class EventOptions:
    """The debouncing of ``--events`` (see the module docstring); ``snapshots``: events name snapshot files
    (``<stream>/<id>.jpg`` and ``<stream>/<id>-crop.jpg``, relative to the events folder)."""

    min_frames: int = 3
    min_seconds: float = 0.0
    min_area: float = 0.0
    max_gap: float = 1.0
    update_s: float = 10.0
    snapshots: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.min_frames, int) or self.min_frames < 1:
            raise OptionError(f"event_min_frames must be a whole number >= 1, but got {self.min_frames!r}",
                              "event_min_frames")
        for name, value, top in (("event_min_seconds", self.min_seconds, None), ("event_min_area", self.min_area, 1.0),
                                 ("event_max_gap", self.max_gap, None), ("event_update", self.update_s, None)):
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0 or \
                    (top is not None and value > top):
                limit = f"from 0 to {top:g}" if top is not None else ">= 0"
                raise OptionError(f"{name} must be a number {limit}, but got {value!r}", name)


@dataclass
class _Object:
    track: int
    first_frame: int
    start: float
    last: float
    hits: int = 0
    started: bool = False
    id: str = ""
    best_score: float = -1.0
    best: tuple = ()  # (box, score, peak, frame index, image)
    zones: tuple[str, ...] = ()
    next_update: float = 0.0
    extra: dict = field(default_factory=dict)


def box_peak(heatmap: np.ndarray, label: int, box, frame_size) -> float:
    """The largest heatmap value (the model's map on its own grid) under ``box`` (frame pixels)."""
    hm = heatmap[min(int(label), len(heatmap) - 1)]
    gh, gw = hm.shape
    H, W = frame_size
    x1 = int(np.clip(np.floor(box[0] * gw / W), 0, gw - 1))
    x2 = int(np.clip(np.ceil((box[2] + 1) * gw / W), x1 + 1, gw))
    y1 = int(np.clip(np.floor(box[1] * gh / H), 0, gh - 1))
    y2 = int(np.clip(np.ceil((box[3] + 1) * gh / H), y1 + 1, gh))
    return float(hm[y1:y2, x1:x2].max())


class EventBuilder:
    """One stream's objects and events: ``builder.update(result, image) -> [Event, ...]`` per result (in frame
    order), ``builder.close() -> [Event, ...]`` (the end events of what is still there) when the stream ends.

    ``seq``: gives the run-wide event number (a callable); ``zones``: this stream's :class:`Zone` s."""

    def __init__(self, stream: str, options: EventOptions = EventOptions(), zones=(), seq=None,
                 clock=time.time) -> None:
        self.stream, self.options, self.zones = stream, options, tuple(zones)
        self._seq = seq or _counter()
        self.clock = clock
        self.objects: dict[int, _Object] = {}
        self.frame_size: tuple[int, int] = (1, 1)

    @property
    def count(self) -> int:
        """Objects that started and have not ended."""
        return sum(1 for o in self.objects.values() if o.started)

    def _zones_of(self, box) -> tuple[str, ...]:
        H, W = self.frame_size
        cx, cy = (box[0] + box[2] + 1) / 2.0 / W, (box[1] + box[3] + 1) / 2.0 / H
        return tuple(z.name for z in self.zones if z.contains(cx, cy))

    def _event(self, kind: str, o: _Object, zone: str | None = None) -> Event:
        box, score, peak, frame, image = o.best
        snap = crop = None
        if self.options.snapshots:
            snap, crop = f"{self.stream}/{o.id}.jpg", f"{self.stream}/{o.id}-crop.jpg"
        return Event(kind=kind, stream=self.stream, track=o.track, id=o.id, seq=self._seq(), start=o.start,
                     end=o.last, wall=self.clock(), box=tuple(float(v) for v in box), score=score, peak=peak,
                     frame=frame, frame_size=self.frame_size, zones=o.zones, zone=zone, snapshot=snap, crop=crop,
                     image=image)

    def update(self, result, image=None) -> list[Event]:
        self.frame_size = tuple(int(v) for v in result.frame_size)
        H, W = self.frame_size
        t, events, seen = float(result.timestamp), [], set()
        ids = result.track_ids
        if ids is not None:
            opts = self.options
            for k, track in enumerate(ids):
                track = int(track)
                if track < 0 or track in seen:
                    continue
                box = result.boxes[k]
                area = (float(box[2] - box[0]) + 1) * (float(box[3] - box[1]) + 1) / (H * W)
                if area < opts.min_area:
                    continue
                zones = self._zones_of(box) if self.zones else ()
                if self.zones and not zones:
                    continue
                seen.add(track)
                o = self.objects.get(track)
                if o is None:
                    o = self.objects[track] = _Object(track, int(result.frame_index), t, t)
                o.last = t
                o.hits += 1
                score = float(result.scores[k])
                if score > o.best_score:
                    o.best_score = score
                    peak = box_peak(result.heatmap, int(result.labels[k]), box, self.frame_size)
                    o.best = (tuple(float(v) for v in box), score, peak, int(result.frame_index), image)
                if not o.started:
                    if o.hits >= opts.min_frames and t - o.start >= opts.min_seconds:
                        o.started, o.zones = True, zones
                        o.id = f"{self.stream}-{track}-{o.first_frame}"
                        o.next_update = t + opts.update_s
                        events.append(self._event("start", o))
                        events += [self._event("enter", o, z) for z in zones]
                    continue
                if zones != o.zones:
                    left = [z for z in o.zones if z not in zones]
                    entered = [z for z in zones if z not in o.zones]
                    o.zones = zones
                    events += [self._event("leave", o, z) for z in left]
                    events += [self._event("enter", o, z) for z in entered]
                if opts.update_s > 0 and t >= o.next_update:
                    o.next_update = t + opts.update_s
                    events.append(self._event("update", o))
        for track in [k for k, o in self.objects.items() if k not in seen and t - o.last > self.options.max_gap]:
            events += self._end(self.objects.pop(track))
        return events

    def _end(self, o: _Object) -> list[Event]:
        if not o.started:
            return []
        out = [self._event("leave", o, z) for z in o.zones]
        out.append(self._event("end", o))
        return out

    def close(self) -> list[Event]:
        """The stream ended: end events for every object still there."""
        events = []
        for o in self.objects.values():
            events += self._end(o)
        self.objects.clear()
        return events


def _counter():
    n = [0]

    def seq() -> int:
        n[0] += 1
        return n[0]

    return seq
