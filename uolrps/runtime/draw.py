"""Overlays: boxes, scores, an optional heatmap and the frame rate, drawn on a COPY of the frame."""

from __future__ import annotations

import numpy as np

from uolrps.runtime.result import LocalizationResult

PALETTE = ((0, 255, 0), (0, 165, 255), (255, 0, 255), (255, 255, 0), (0, 0, 255), (255, 128, 0))  # BGR


class Annotator:
    """Style in the constructor, drawing in :meth:`annotate` (which never touches the caller's frame)."""

    def __init__(self, heatmap: bool = False, alpha: float = 0.45, thickness: int = 2, font_scale: float = 0.5,
                 classes: tuple[str, ...] | None = None) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], but got {alpha}")
        self.heatmap = heatmap
        self.alpha = alpha
        self.thickness = max(1, int(thickness))
        self.font_scale = font_scale
        self.classes = classes

    def annotate(self, frame: np.ndarray, result: LocalizationResult, fps: float | None = None) -> np.ndarray:
        import cv2

        H, W = frame.shape[:2]
        if (H, W) != tuple(result.frame_size):
            raise ValueError(f"frame is {H} x {W} but the result is for {result.frame_size[0]} x {result.frame_size[1]}")
        if self.heatmap:
            out = self._overlay(frame, result)
        else:
            out = frame.copy()
        font = cv2.FONT_HERSHEY_SIMPLEX
        for box, score, label in zip(result.boxes, result.scores, result.labels):
            x1, y1, x2, y2 = (int(round(float(v))) for v in box)
            color = PALETTE[int(label) % len(PALETTE)]
            cv2.rectangle(out, (x1, y1), (x2, y2), color, self.thickness, cv2.LINE_AA)
            name = self.classes[int(label)] + " " if self.classes and len(self.classes) > 1 else ""
            text = f"{name}{float(score):.2f}"
            (tw, th), base = cv2.getTextSize(text, font, self.font_scale, 1)
            ty = y1 - 4 if y1 - th - 6 >= 0 else min(y1 + th + 4, H - 2)
            cv2.rectangle(out, (x1, ty - th - 2), (x1 + tw + 4, ty + base - 1), color, -1)
            cv2.putText(out, text, (x1 + 2, ty - 1), font, self.font_scale, (0, 0, 0), 1, cv2.LINE_AA)
        if fps is not None:
            text = f"{fps:5.1f} FPS"
            (tw, th), base = cv2.getTextSize(text, font, self.font_scale, 1)
            cv2.rectangle(out, (0, 0), (tw + 8, th + base + 6), (0, 0, 0), -1)
            cv2.putText(out, text, (4, th + 3), font, self.font_scale, (255, 255, 255), 1, cv2.LINE_AA)
        return out

    def _overlay(self, frame: np.ndarray, result: LocalizationResult) -> np.ndarray:
        """Blend a colour-mapped heatmap (the maximum over channels) into a new image; it is upsampled exactly
        as the map the boxes come from (:func:`uolrps.core.boxes.map8`), so the overlay and the boxes agree."""
        import cv2

        from uolrps.core.boxes import map8

        hm = result.heatmap.max(axis=0) if result.heatmap.shape[0] > 1 else result.heatmap[0]
        H, W = frame.shape[:2]
        colour = cv2.applyColorMap(map8(hm, (H, W))[0], cv2.COLORMAP_JET)
        return cv2.addWeighted(frame, 1.0 - self.alpha, colour, self.alpha, 0.0)
