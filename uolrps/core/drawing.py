"""The one drawing layer: primitives (heatmap overlays, boxes, captions, tiles), the run's frame annotations
(:class:`Annotator`: boxes, scores, an optional heatmap and the frame rate), evaluation cases
(``uolrps.eval.vis``) and explanations (:func:`explain_grid`). One home below all users.

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


# ---- the run's frame annotations ---------------------------------------------------------------------
PALETTE = ((0, 255, 0), (0, 165, 255), (255, 0, 255), (255, 255, 0), (0, 0, 255), (255, 128, 0))  # BGR


class Annotator:
    """Style in the constructor, drawing in :meth:`annotate` (which never touches the caller's frame); a
    result is a :class:`uolrps.runtime.result.LocalizationResult`. A tracked result's boxes are labelled with
    their track id (``#7 0.83``; a box not confirmed yet, id -1, without)."""

    def __init__(self, heatmap: bool = False, alpha: float = 0.45, thickness: int = 2, font_scale: float = 0.5,
                 classes: tuple[str, ...] | None = None, placement: str | None = None) -> None:
        """``placement``: how the heatmap overlay is placed on the frame (:data:`uolrps.core.boxes.PLACEMENTS`;
        the run passes its model's, the one its boxes come from; None: the authors' placement)."""
        from uolrps.core.boxes import LEGACY_PLACEMENT, check_placement

        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], but got {alpha}")
        self.placement = check_placement(placement) if placement is not None else LEGACY_PLACEMENT
        self.heatmap = heatmap
        self.alpha = alpha
        self.thickness = max(1, int(thickness))
        self.font_scale = font_scale
        self.classes = classes

    def annotate(self, frame: np.ndarray, result, fps: float | None = None) -> np.ndarray:
        import cv2

        H, W = frame.shape[:2]
        if (H, W) != tuple(result.frame_size):
            raise ValueError(f"frame is {H} x {W} but the result is for {result.frame_size[0]} x {result.frame_size[1]}")
        if self.heatmap:
            out = self._overlay(frame, result)
        else:
            out = frame.copy()
        font = cv2.FONT_HERSHEY_SIMPLEX
        ids = getattr(result, "track_ids", None)
        for k, (box, score, label) in enumerate(zip(result.boxes, result.scores, result.labels)):
            x1, y1, x2, y2 = (int(round(float(v))) for v in box)
            color = PALETTE[int(label) % len(PALETTE)]
            cv2.rectangle(out, (x1, y1), (x2, y2), color, self.thickness, cv2.LINE_AA)
            name = self.classes[int(label)] + " " if self.classes and len(self.classes) > 1 else ""
            track = f"#{int(ids[k])} " if ids is not None and int(ids[k]) >= 0 else ""  # -1: not confirmed yet
            text = f"{track}{name}{float(score):.2f}"
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

    def _overlay(self, frame: np.ndarray, result) -> np.ndarray:
        """Blend a colour-mapped heatmap (the maximum over channels) into a new image; it is placed exactly as
        the map the boxes come from (:func:`uolrps.core.boxes.map8` with the model's placement), so the overlay
        and the boxes agree."""
        import cv2

        from uolrps.core.boxes import map8

        hm = result.heatmap.max(axis=0) if result.heatmap.shape[0] > 1 else result.heatmap[0]
        H, W = frame.shape[:2]
        colour = cv2.applyColorMap(map8(hm, (H, W), self.placement)[0], cv2.COLORMAP_JET)
        return cv2.addWeighted(frame, 1.0 - self.alpha, colour, self.alpha, 0.0)


# ---- explanations: the test image, then the most positive and negative calibration images --------------
PATCH_COLOR = (0, 255, 255)


def patch_marks(img: np.ndarray, positions, grid: tuple[int, int], color=PATCH_COLOR) -> np.ndarray:
    """A copy of ``img`` (already stretched like the model input) with feature-grid cells (row, col) outlined."""
    import cv2

    out = img.copy()
    H, W = out.shape[:2]
    gh, gw = grid
    for r, c in np.asarray(positions, dtype=np.int64).reshape(-1, 2):
        y1, y2 = int(r * H / gh), int((r + 1) * H / gh) - 1
        x1, x2 = int(c * W / gw), int((c + 1) * W / gw) - 1
        cv2.rectangle(out, (x1, y1), (x2, y2), color, 2)
    return out


def _calibration_tile(path: str, calib_dir, value: float, patches, grid, input_size, size: int) -> np.ndarray:
    from pathlib import Path

    from uolrps.core.images import read_bgr, resize

    p = Path(path)
    if not p.is_file() and calib_dir is not None and (Path(calib_dir) / p).is_file():
        p = Path(calib_dir) / p
    img = read_bgr(p) if p.is_file() else None
    if img is None:
        body = placeholder(size, "image missing")
    else:
        img = resize(img, tuple(input_size)) if input_size else img  # as calibration saw it
        if grid:
            img = patch_marks(img, patches, grid)
        body, _ = fit(img, size, grow=True)
    color = POS_COLOR if value > 0 else NEG_COLOR
    return caption(body, [f"{value:+.3e}", p.name[:24]], width=size, color=color)


def explain_grid(exp, bgr: np.ndarray, tile: int = 150) -> np.ndarray:
    """The explanation as one image: the test image with the explained heatmap and the foreground box, then
    the most positive and the most negative calibration images, each with its representer value and its
    strongest patches (the positions with the largest alpha) outlined."""
    reps = exp.reps
    grid, size = reps.grid, reps.meta.get("input_size")
    test = draw_boxes(heat_overlay(bgr, exp.heatmap), exp.box[None], PRED_COLOR, "foreground")
    test, _ = fit(test, 2 * tile, grow=True)
    lines = [exp.image.name[:40], f"box: {exp.box_source}",
             f"projection score <m, w*> = {exp.score:+.5f}",
             f"sum of {len(exp.values)} representer values = {exp.values.sum():+.5f}"]
    if not exp.model_matches_calibration:
        lines.append("note: the model was exported with another w*")
    width = max(len(exp.positive), len(exp.negative), 2) * (tile + 6)
    rows = [caption(test, lines, width=max(test.shape[1], 360))]
    for title_text, idx, color in (("most positive: these calibration images support the foreground", exp.positive,
                                    POS_COLOR),
                                   ("most negative: these calibration images oppose it", exp.negative, NEG_COLOR)):
        rows.append(title(title_text if len(idx) else title_text.split(":")[0] + ": none", width, color))
        if len(idx):
            rows.append(row([_calibration_tile(reps.paths[i], reps.source.parent, float(exp.values[i]),
                                               reps.top_pos[i], grid, size, tile) for i in idx]))
    return stack(rows)
