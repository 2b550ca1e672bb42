"""Heatmap to result for one stream: threshold, boxes, scores and its own smoothing state.

:class:`PostProcessor` holds what post-processing needs (threshold, ``multi``, ``min_area``, ``smooth``, the
map ``placement``)
and the moving average of one stream; a multi-stream run gives every stream its own, so one stream's
smoothing never leaks into another's. ``--multi`` boxes come from outer contours only (a hole in a region
is not an object).
"""

from __future__ import annotations

import time

import numpy as np

from uolrps.core.boxes import LEGACY_PLACEMENT, check_placement, heatmap_to_boxes
from uolrps.runtime.result import LocalizationResult


class PostProcessor:
    def __init__(self, threshold: float, multi: bool = False, smooth: float = 0.0, min_area: float = 0.01,
                 placement: str = LEGACY_PLACEMENT) -> None:
        self.threshold = float(threshold)
        self.placement = check_placement(placement)
        self.multi = bool(multi)
        self.smooth = float(smooth)
        self.min_area = float(min_area)
        self._ema: np.ndarray | None = None

    def copy(self) -> "PostProcessor":
        """Same settings, a fresh smoothing state."""
        return PostProcessor(self.threshold, self.multi, self.smooth, self.min_area, self.placement)

    def reset(self) -> None:
        self._ema = None

    def __call__(self, heatmap: np.ndarray, frame_size: tuple[int, int], frame_index: int = 0,
                 timestamp: float = 0.0, timings: dict[str, float] | None = None, **extra) -> LocalizationResult:
        """K x h x w heatmap of one frame -> boxes on the (H, W) frame; applies ``smooth`` (in call order).
        ``extra``: optional result fields (``stream``, ``path``, ``latency_ms``)."""
        t0 = time.perf_counter()
        hm = np.asarray(heatmap, dtype=np.float32)
        if self.smooth > 0.0:
            if self._ema is None or self._ema.shape != hm.shape:
                self._ema = hm.copy()
            else:
                self._ema *= self.smooth
                self._ema += (1.0 - self.smooth) * hm
            hm = self._ema.copy()
        H, W = int(frame_size[0]), int(frame_size[1])
        min_area = self.min_area * H * W
        boxes, scores, labels = [], [], []
        for k in range(hm.shape[0]):
            b, s, _ = heatmap_to_boxes(hm[k], (H, W), self.threshold, multi=self.multi, min_area=min_area,
                                       outer_only=True, placement=self.placement)
            boxes.append(b)
            scores.append(s)
            labels.append(np.full(len(b), k, dtype=np.int32))
        if len(boxes) == 1:
            boxes_a, scores_a, labels_a = boxes[0], scores[0], labels[0]
        else:
            boxes_a, scores_a, labels_a = np.concatenate(boxes), np.concatenate(scores), np.concatenate(labels)
        timings = dict(timings or {})
        timings["post"] = (time.perf_counter() - t0) * 1000.0
        return LocalizationResult(boxes=boxes_a, scores=scores_a, heatmap=hm, frame_size=(H, W),
                                  frame_index=int(frame_index), timestamp=float(timestamp), labels=labels_a,
                                  timings=timings, **extra)
