"""The records that publishers receive: :class:`Event` (something happened to one tracked object) and
:class:`State` (what one stream sees now). Plain data; ``to_record()`` is the JSON every publisher sends."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EVENT_KINDS = ("start", "update", "end", "enter", "leave")


@dataclass(frozen=True, eq=False)
class Event:
    """One event of one tracked object.

    - ``kind``: one of :data:`EVENT_KINDS` (``enter`` / ``leave``: the object entered or left ``zone``).
    - ``stream``, ``track``: the stream's name and the object's track id in it; ``id``: the object's id, shared
      by all its events (``<stream>-<track>-<start frame>``: unique in a run even if a tracker reuses ids).
    - ``seq``: run-wide, grows by one per event (what ``GET /api/events?since=`` compares).
    - ``start`` / ``end``: source time in seconds of the first and the latest sighting; ``wall``: Unix time
      when the event was made.
    - ``box``: the best box so far ``[x1, y1, x2, y2]`` in frame pixels; ``score``: its heatmap mean;
      ``peak``: the heatmap's peak inside it; ``frame``: the frame index of the best box; ``frame_size``:
      (H, W).
    - ``zones``: the zones the object is in now; ``zone``: the zone entered or left (enter / leave only).
    - ``snapshot`` / ``crop``: where the best annotated frame and the crop are (relative to the events folder;
      None when snapshots are not written). ``image``: the best frame itself (BGR, read-only) for the
      snapshot writer; never sent.
    """

    kind: str
    stream: str
    track: int
    id: str
    seq: int
    start: float
    end: float
    wall: float
    box: tuple[float, float, float, float]
    score: float
    peak: float
    frame: int
    frame_size: tuple[int, int]
    zones: tuple[str, ...] = ()
    zone: str | None = None
    snapshot: str | None = None
    crop: str | None = None
    image: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"event kind must be one of {', '.join(EVENT_KINDS)}, but got {self.kind!r}")

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    def to_record(self) -> dict:
        rec = {"type": self.kind, "stream": self.stream, "track": int(self.track), "id": self.id,
               "seq": int(self.seq), "start": round(float(self.start), 3), "end": round(float(self.end), 3),
               "duration": round(self.duration, 3), "wall": round(float(self.wall), 3),
               "box": [round(float(v), 1) for v in self.box], "score": round(float(self.score), 4),
               "peak": round(float(self.peak), 4), "frame": int(self.frame),
               "frame_size": [int(v) for v in self.frame_size], "zones": list(self.zones)}
        if self.zone is not None:
            rec["zone"] = self.zone
        rec["snapshot"] = self.snapshot
        rec["crop"] = self.crop
        return rec


@dataclass(frozen=True)
class State:
    """What stream ``stream`` sees now: ``present`` (any confirmed object), ``count`` (confirmed objects),
    ``fps`` (results per second, recent), ``wall`` (Unix time)."""

    stream: str
    present: bool
    count: int
    fps: float
    wall: float

    def __post_init__(self) -> None:
        if not isinstance(self.fps, (int, float)) or self.fps != self.fps or self.fps < 0:
            raise ValueError(f"fps must be a number >= 0 (0 before a rate is measured), but got {self.fps!r}")

    def to_record(self) -> dict:
        return {"stream": self.stream, "present": bool(self.present), "count": int(self.count),
                "fps": round(float(self.fps), 2), "wall": round(float(self.wall), 3)}
