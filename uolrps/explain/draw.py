"""Drawing of explanations: the test image with its heatmap and box, then the most positive and negative
calibration images with their strongest patches (primitives from ``uolrps.core.drawing``).

Every function returns a new image (BGR uint8) and never draws on the caller's array.
"""

from __future__ import annotations

import numpy as np

from uolrps.core.drawing import (NEG_COLOR, POS_COLOR, PRED_COLOR, caption, draw_boxes, fit, heat_overlay,
                                 placeholder, row, stack, title)

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
