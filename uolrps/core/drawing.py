"""Drawing primitives shared by evaluation cases (``uolrps.eval.vis``) and explanations
(``uolrps.explain.draw``): heatmap overlays, boxes, captions, tiles. One home below both users.

Every function returns a new image (BGR uint8) and never draws on the caller's array.
"""

from __future__ import annotations

import numpy as np

GT_COLOR = (0, 200, 0)  # BGR
PRED_COLOR = (0, 0, 255)
POS_COLOR = (0, 160, 0)
NEG_COLOR = (0, 0, 220)
FONT_SCALE = 0.45


def heat_overlay(bgr: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a JET-coloured heatmap (h x w in [0, 1], upsampled as the protocol does) into a copy of ``bgr``."""
    import cv2

    from uolrps.core.boxes import map8

    colour = cv2.applyColorMap(map8(heatmap, bgr.shape[:2])[0], cv2.COLORMAP_JET)
    return cv2.addWeighted(bgr, 1.0 - alpha, colour, alpha, 0.0)


def draw_boxes(img: np.ndarray, boxes, color, label: str = "", thickness: int = 2) -> np.ndarray:
    """A copy of ``img`` with inclusive-corner boxes (K x 4) outlined, the first one labelled."""
    import cv2

    out = img.copy()
    for k, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)):
        p1, p2 = (int(round(x1)), int(round(y1))), (int(round(x2)), int(round(y2)))
        cv2.rectangle(out, p1, p2, color, thickness, cv2.LINE_AA)
        if label and k == 0:
            (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, FONT_SCALE, 1)
            ty = p1[1] + th + 3 if p1[1] + th + 3 < out.shape[0] else p1[1] - 3
            cv2.rectangle(out, (p1[0], ty - th - 3), (p1[0] + tw + 4, ty + base - 1), color, -1)
            cv2.putText(out, label, (p1[0] + 2, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, FONT_SCALE, (255, 255, 255), 1,
                        cv2.LINE_AA)
    return out


def fit(img: np.ndarray, max_side: int, grow: bool = False) -> tuple[np.ndarray, float]:
    """``img`` scaled so that its longer side is at most ``max_side`` (exactly, with ``grow``); and the scale."""
    import cv2

    s = max_side / max(img.shape[:2])
    if s == 1.0 or (s > 1.0 and not grow):
        return img.copy(), 1.0
    size = (max(1, int(round(img.shape[1] * s))), max(1, int(round(img.shape[0] * s))))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR), s


def caption(img: np.ndarray, lines: list[str], width: int | None = None, color=(0, 0, 0)) -> np.ndarray:
    """``img`` on a white canvas ``width`` wide, with text lines below it."""
    import cv2

    width = max(width or img.shape[1], img.shape[1])
    line_h = 18
    out = np.full((img.shape[0] + line_h * len(lines) + 6, width, 3), 255, np.uint8)
    x0 = (width - img.shape[1]) // 2
    out[:img.shape[0], x0:x0 + img.shape[1]] = img
    for i, text in enumerate(lines):
        cv2.putText(out, text, (4, img.shape[0] + line_h * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, FONT_SCALE, color, 1,
                    cv2.LINE_AA)
    return out


def placeholder(size: int, text: str) -> np.ndarray:
    """A grey square saying why an image is not shown (e.g. a calibration image that moved)."""
    import cv2

    out = np.full((size, size, 3), 200, np.uint8)
    cv2.putText(out, text, (6, size // 2), cv2.FONT_HERSHEY_SIMPLEX, FONT_SCALE, (60, 60, 60), 1, cv2.LINE_AA)
    return out


def row(tiles: list[np.ndarray], gap: int = 6) -> np.ndarray:
    """Tiles side by side on white, top-aligned."""
    if not tiles:
        return np.full((1, 1, 3), 255, np.uint8)
    h = max(t.shape[0] for t in tiles)
    w = sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1)
    out = np.full((h, w, 3), 255, np.uint8)
    x = 0
    for t in tiles:
        out[:t.shape[0], x:x + t.shape[1]] = t
        x += t.shape[1] + gap
    return out


def stack(rows: list[np.ndarray], gap: int = 10) -> np.ndarray:
    """Rows one above the other on white, left-aligned."""
    w = max(r.shape[1] for r in rows)
    h = sum(r.shape[0] for r in rows) + gap * (len(rows) - 1)
    out = np.full((h, w, 3), 255, np.uint8)
    y = 0
    for r in rows:
        out[y:y + r.shape[0], :r.shape[1]] = r
        y += r.shape[0] + gap
    return out


def title(text: str, width: int, color=(0, 0, 0)) -> np.ndarray:
    """A white strip with one line of text."""
    return caption(np.full((0, width, 3), 255, np.uint8), [text], width, color)
