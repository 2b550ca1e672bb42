"""``--save-vis DIR``: overlays of the worst and best images (ground truth, prediction, heatmap).

Cases are ranked by the best IoU of the predicted box (largest contour at the reported threshold, what
``uolrps run`` would draw) with any ground-truth box.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from uolrps.core.errors import OptionError
from uolrps.core.paths import write_image
from uolrps.core.boxes import box_iou
from uolrps.core import drawing as draw
from uolrps.core.images import read_bgr
from uolrps.core.boxes import heatmap_to_boxes

MAX_SIDE = 640
MIN_SIDE = 320  # small images are enlarged for legibility


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80]


def case_image(bgr: np.ndarray, heatmap: np.ndarray, gt: np.ndarray, pred: np.ndarray, iou: float,
               threshold: float, name: str) -> np.ndarray:
    """One overlay: heatmap blended in, ground truth in green, the prediction in red, a caption below."""
    img = draw.heat_overlay(bgr, heatmap)
    img, s = draw.fit(img, MAX_SIDE) if max(img.shape[:2]) >= MIN_SIDE else draw.fit(img, MIN_SIDE, grow=True)
    img = draw.draw_boxes(img, np.asarray(gt) * s, draw.GT_COLOR, "GT")
    if len(pred):
        img = draw.draw_boxes(img, np.asarray(pred) * s, draw.PRED_COLOR, "pred")
    return draw.caption(img, [name, f"IoU {iou:.3f} at t={threshold:.3f}" + ("" if len(pred) else " (no box)")],
                        width=max(img.shape[1], 260))


def save_cases(out_dir: str | Path, items: list, heatmaps: np.ndarray, sizes: list, threshold: float,
               n: int = 8, placement: str = "authors") -> dict:
    """Write ``worst_XX_<name>.png`` and ``best_XX_<name>.png`` (n each) into ``out_dir``; returns their list."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OptionError(f"cannot create save_vis folder {out} ({e})", "save_vis") from None
    preds, ious = [], np.zeros(len(items))
    for i, it in enumerate(items):
        boxes, _, _ = heatmap_to_boxes(heatmaps[i], sizes[i], threshold, placement=placement)
        preds.append(boxes[:1])
        ious[i] = box_iou(boxes[:1], it.boxes).max() if len(boxes) else 0.0
    order = np.argsort(ious, kind="stable")
    k = min(n, len(items))
    listing: dict = {"threshold": threshold, "worst": [], "best": []}
    for kind, idx in (("worst", order[:k]), ("best", order[::-1][:k])):
        for rank, i in enumerate(idx, start=1):
            bgr = read_bgr(items[i].path)
            if bgr is None:
                continue
            img = case_image(bgr, heatmaps[i], items[i].boxes, preds[i], float(ious[i]), threshold,
                             items[i].path.name)
            file = out / f"{kind}_{rank:02d}_{_safe(items[i].path.stem)}.png"
            write_image(file, img, "save_vis")  # checked: no device or FIFO written into, no cut image, one line
            listing[kind].append({"file": str(file), "image": str(items[i].path), "iou": float(ious[i])})
    return listing
