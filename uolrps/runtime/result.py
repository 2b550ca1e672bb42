"""The result of localizing one frame: a small validated dataclass that carries its own timings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

STAGES = ("capture", "pre", "infer", "post")  # the per-frame stages, in pipeline order


def _fail(name: str, expected: str, value) -> None:
    got = f"shape {value.shape} {value.dtype}" if isinstance(value, np.ndarray) else repr(type(value).__name__)
    raise ValueError(f"{name} must be {expected}, but got {got}")


@dataclass(frozen=True, eq=False)
class LocalizationResult:
    """Boxes and scores for one frame.

    - ``boxes``: float32 K x 4, inclusive corners ``x1, y1, x2, y2`` in frame pixels, largest first
      (per heatmap channel when the model has several).
    - ``scores``: float32 K, the mean of the upsampled heatmap inside each box.
    - ``labels``: int32 K, the heatmap channel (class index into ``meta.classes``) of each box.
    - ``heatmap``: float32 C x h x w, the model's map on its feature grid (after ``smooth``, if any).
    - ``frame_index``: 0-based index of the frame in its source; ``timestamp``: source time in seconds.
    - ``frame_size``: (H, W) of the frame; ``timings``: milliseconds per stage (see ``STAGES``).
    - ``stream``: the stream's name (multi-stream runs), ``path``: the file of a file-based source,
      ``latency_ms``: capture-to-result latency (streaming runs); None where not applicable.
    - ``track_ids``: int64 K, the track id of each box in its stream (``--track``), or None when not tracked;
      a box the tracker has not confirmed yet has id -1.
    """

    boxes: np.ndarray
    scores: np.ndarray
    heatmap: np.ndarray
    frame_size: tuple[int, int]
    frame_index: int = 0
    timestamp: float = 0.0
    labels: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    stream: str | None = None
    path: str | None = None
    latency_ms: float | None = None
    track_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        b, s = self.boxes, self.scores
        if not isinstance(b, np.ndarray) or b.dtype != np.float32 or b.ndim != 2 or b.shape[1] != 4:
            _fail("boxes", "a float32 np.ndarray with shape (_, 4)", b)
        if not isinstance(s, np.ndarray) or s.dtype != np.float32 or s.shape != (len(b),):
            _fail("scores", f"a float32 np.ndarray with shape ({len(b)},)", s)
        if self.labels is None:
            object.__setattr__(self, "labels", np.zeros(len(b), dtype=np.int32))
        elif not isinstance(self.labels, np.ndarray) or self.labels.shape != (len(b),):
            _fail("labels", f"an int np.ndarray with shape ({len(b)},)", self.labels)
        hm = self.heatmap
        if not isinstance(hm, np.ndarray) or hm.ndim != 3:
            _fail("heatmap", "an np.ndarray with shape (C, h, w)", hm)
        if len(self.frame_size) != 2 or min(self.frame_size) <= 0:
            raise ValueError(f"frame_size must be (H, W) with positive ints, but got {self.frame_size}")
        H, W = self.frame_size
        if len(b) and (b.min() < 0 or (b[:, 2] > W - 1).any() or (b[:, 3] > H - 1).any()
                       or (b[:, 2] < b[:, 0]).any() or (b[:, 3] < b[:, 1]).any()):
            raise ValueError(f"boxes must be x1 <= x2 <= {W - 1}, y1 <= y2 <= {H - 1}, but got {b.tolist()}")
        if self.track_ids is not None and (not isinstance(self.track_ids, np.ndarray)
                                           or self.track_ids.shape != (len(b),) or self.track_ids.dtype.kind != "i"):
            _fail("track_ids", f"an int np.ndarray with shape ({len(b)},)", self.track_ids)
        if self.frame_index < 0:
            raise ValueError(f"frame_index must be >= 0, but got {self.frame_index}")
        if not math.isfinite(self.timestamp):
            raise ValueError(f"timestamp must be a finite number of seconds, but got {self.timestamp}")

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def box(self) -> np.ndarray | None:
        """The first (largest) box, or None when the heatmap gave none."""
        return self.boxes[0] if len(self.boxes) else None

    def to_record(self, labels: bool = False) -> dict:
        """The JSONL record: (stream,) frame, (path,) t, boxes, scores, (labels,) (ids,) ms, (latency_ms): labels
        when asked (multi-class models), the others when set (``ids``: the track ids, with ``--track``)."""
        rec = {} if self.stream is None else {"stream": self.stream}
        rec.update({
            "frame": int(self.frame_index),
            "t": round(float(self.timestamp), 4),
            "boxes": [[round(float(v), 2) for v in box] for box in self.boxes],
            "scores": [round(float(v), 4) for v in self.scores],
        })
        if self.path is not None:
            rec["path"] = self.path
        if labels:
            rec["labels"] = [int(v) for v in self.labels]
        if self.track_ids is not None:
            rec["ids"] = [int(v) for v in self.track_ids]
        rec["ms"] = {k: round(float(self.timings.get(k, 0.0)), 3) for k in STAGES}
        if self.latency_ms is not None:
            rec["latency_ms"] = round(float(self.latency_ms), 2)
        return rec
