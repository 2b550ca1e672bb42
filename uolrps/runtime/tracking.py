"""Track ids for the boxes of one stream (``--track``): ByteTrack from Roboflow's ``trackers`` library
(``pip install uolrps[track]``; docs/events.md says why this one), one tracker per stream, fed in frame order
where the stream's results are made (:meth:`uolrps.runtime.stream.Stream.finish`).

The library associates boxes by their overlap with each track's predicted box (a Kalman filter). A scene cut
(the camera was moved or switched; in a clip, the next shot) makes overlap meaningless: the next object often
overlaps the last one's box. :class:`CutDetector` finds cuts from the frame itself (the mean absolute
difference of a 32 x 24 grey thumbnail from the previous frame's), and the tracker starts afresh there, its
new ids continuing above the old ones so an id is never reused within a stream.

Every box gets an id; a box the tracker has not confirmed yet gets -1 (``LocalizationResult.track_ids``).
"""

from __future__ import annotations

import numpy as np

from uolrps.core.errors import UserError

CUT_DIFF = 25.0  # mean absolute grey difference (0-255) of consecutive thumbnails above which a frame is a cut
THUMB = (32, 24)
LOST_S = 1.0  # seconds a track that is not seen is kept, to take its object back after a short miss


class CutDetector:
    """``detector(frame_bgr) -> bool``: True when ``frame`` starts a new scene (not for the first frame).

    ``threshold``: the mean absolute difference of consecutive 32 x 24 grey thumbnails (0-255) above which a
    frame is a cut; 0 turns cuts off. On raccoon_pan, frames of one shot differ by at most 8.7, cuts by 42 or
    more (benchmarks/bench_trackers.py)."""

    def __init__(self, threshold: float = CUT_DIFF) -> None:
        self.threshold = float(threshold)
        self._prev: np.ndarray | None = None

    def __call__(self, frame: np.ndarray) -> bool:
        if self.threshold <= 0:
            return False
        import cv2

        # every few pixels first (nearest: cheap at any size), then grey and the mean of 4 x 4 cells
        small = cv2.resize(frame, (4 * THUMB[0], 4 * THUMB[1]), interpolation=cv2.INTER_NEAREST)
        if small.ndim == 3:
            small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        thumb = cv2.resize(small, THUMB, interpolation=cv2.INTER_AREA).astype(np.float32)
        prev, self._prev = self._prev, thumb
        return prev is not None and float(np.abs(thumb - prev).mean()) > self.threshold


def _library():
    """(supervision, trackers.ByteTrackTracker), imported on first use (the runtime never needs them otherwise)."""
    try:
        import supervision as sv
        from trackers import ByteTrackTracker
    except ImportError as e:
        raise UserError(f"tracks and events need the trackers library ({e}): pip install 'uolrps[track]'") from e
    return sv, ByteTrackTracker


def check_tracking() -> None:
    """A clear error before any work when the tracking library is missing."""
    _library()


class Tracker:
    """The track ids of one stream's boxes, frame after frame: ``tracker(boxes, frame) -> ids`` (int64 K).

    ``fps``: the stream's frame rate (the library scales its lost-track buffer by it); ``cut``: the
    :class:`CutDetector` threshold (0: no cut detection); ``lost_s``: how long an unseen track is kept.
    Not thread-safe: one per stream, called in frame order.
    """

    def __init__(self, fps: float | None = None, cut: float = CUT_DIFF, lost_s: float = LOST_S) -> None:
        self._sv, self._bytetrack = _library()
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.lost_s = float(lost_s)
        self.cuts = CutDetector(cut)
        self.offset = 0  # ids of earlier scenes stay below it
        self.top = -1  # the largest id given so far
        self._tracker = self._new()

    def _new(self):
        # every box passed the heatmap threshold (no confidence given: one IoU matching stage, as SORT), a
        # track is confirmed on its first frame and survives lost_s seconds unseen (the library counts its
        # buffer in frames at 30 FPS and scales it by frame_rate)
        return self._bytetrack(lost_track_buffer=max(1, int(round(self.lost_s * 30))), frame_rate=self.fps,
                               minimum_consecutive_frames=1)

    def reset(self) -> None:
        """Start afresh (a scene cut): earlier tracks end, new ids continue above every id given so far."""
        self.offset = self.top + 1
        self._tracker = self._new()

    def apply(self, result, frame: np.ndarray | None = None):
        """``result`` (a :class:`~uolrps.runtime.result.LocalizationResult`) with its ``track_ids``: for callers
        of the :class:`~uolrps.runtime.localizer.Localizer` frame by frame (one Tracker per stream, in order)::

            tracker = Tracker(fps=30)
            for frame in frames:
                r = tracker.apply(loc(frame), frame)
        """
        import dataclasses

        return dataclasses.replace(result, track_ids=self(result.boxes, frame))

    def __call__(self, boxes: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray:
        if frame is not None and self.cuts(frame):
            self.reset()
        k = len(boxes)
        ids = np.full(k, -1, np.int64)
        sv = self._sv
        det = sv.Detections(xyxy=np.asarray(boxes, np.float32).reshape(-1, 4), data={"i": np.arange(k)})
        out = self._tracker.update(det)
        if len(out):
            got = np.asarray(out.tracker_id, np.int64)
            ids[np.asarray(out.data["i"], int)] = np.where(got >= 0, got + self.offset, -1)
            self.top = max(self.top, int(ids.max()))
        return ids
