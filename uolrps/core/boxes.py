"""Heatmap to boxes, exactly as the authors' (and wsolevaluation's) protocol defines it; numpy + OpenCV.

1. Place the h x w heatmap on the frame (``placement``, see :data:`PLACEMENTS`): ``authors`` is bilinear
   with aligned corners (the authors' code), as a separable matrix product; the others use OpenCV's
   half-pixel ``cv2.resize`` (bilinear or bicubic), optionally min-max normalised again after upsampling.
2. Quantise to 8 bits (``(map * 255).astype(uint8)``), threshold strictly above ``int(t * max)``.
3. Bounding rectangle of the largest contour (``multi``: of every contour), as corners ``x, y, x + w, y + h``
   clipped to ``W - 1, H - 1`` (``clip=False``: unclipped, as the authors' validation code has them).
   No contour gives no box. The wsolevaluation protocol (eval) keeps every contour, holes included; the
   runtime asks for ``outer_only`` (a hole is not an object). The largest contour is always an outer one,
   so single-box results are the same either way.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from uolrps.core.errors import OptionError

@lru_cache(maxsize=32)
def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) matrix of bilinear weights with aligned corners (PyTorch ``align_corners=True``)."""
    m = np.zeros((n_out, n_in), dtype=np.float32)
    if n_in == 1 or n_out == 1:
        m[:, 0] = 1.0
        return m
    pos = np.arange(n_out, dtype=np.float64) * (n_in - 1) / (n_out - 1)
    lo = np.clip(np.floor(pos).astype(np.int64), 0, n_in - 2)
    frac = (pos - lo).astype(np.float32)
    rows = np.arange(n_out)
    m[rows, lo] = 1.0 - frac
    m[rows, lo + 1] += frac
    m.setflags(write=False)
    return m


def upsample(heatmap: np.ndarray, size: tuple[int, int], scale: float = 1.0) -> np.ndarray:
    """Bilinear upsampling of a 2-D map in [0, 1] (values outside are clipped) to ``size`` = (H, W) with
    aligned corners, times ``scale``; float32. Each output is a convex combination, so it stays in
    [0, scale]. The scale is folded into the small interpolation matrix, so it costs nothing."""
    hm = np.clip(np.asarray(heatmap, dtype=np.float32), 0.0, 1.0)  # clipped small: the result stays in range
    if hm.ndim != 2:
        raise ValueError(f"heatmap must be 2-D (h, w), but got shape {hm.shape}")
    H, W = size
    rows = _interp_matrix(H, hm.shape[0])
    if scale != 1.0:
        rows = rows * np.float32(scale)
    return rows @ hm @ _interp_matrix(W, hm.shape[1]).T


def _cv2_placement(base: str, minmax: bool):
    """A half-pixel placement through ``cv2.resize`` (``base``: bilinear or bicubic); ``minmax``: min-max
    normalised again after upsampling, else the map clipped to [0, 1] first (bicubic's overshoot clipped)."""

    def place(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        import cv2

        hm = np.asarray(heatmap, dtype=np.float32)
        if hm.ndim != 2:
            raise ValueError(f"heatmap must be 2-D (h, w), but got shape {hm.shape}")
        H, W = size
        interp = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}[base]
        if minmax:
            up = cv2.resize(hm, (W, H), interpolation=interp)
            lo, hi = up.min(), up.max()
            if not hi > lo:  # a constant map (or NaN) gives zeros, as wsolevaluation's normalize_scoremap
                return np.zeros((H, W), np.float32)
            up -= lo  # in float32 and in this order, so the maximum is exactly 1 (then 255), as in wsolevaluation
            up /= up.max()
            up *= np.float32(255.0)
            return up
        up = cv2.resize(np.clip(hm, 0.0, 1.0) * np.float32(255.0), (W, H), interpolation=interp)
        return np.clip(up, 0.0, 255.0, out=up) if base == "bicubic" else up

    return place


# How the h x w map is placed on the frame: name -> function (heatmap, (H, W)) -> the placed map times 255,
# float32 in [0, 255]. The model metadata key ``upsample`` records one (uolrps.model.meta); docs/eval.md and
# benchmarks/bench_placement.py compare them. To add a placement: one function and one line here.
#   authors          bilinear, aligned corners (PyTorch align_corners=True), the map as the model gives it
#   bilinear         bilinear, half-pixel centres (cv2.resize INTER_LINEAR, PyTorch's default)
#   bilinear-minmax  the same, min-max normalised again after upsampling
#   bicubic          bicubic, half-pixel (cv2.resize INTER_CUBIC), overshoot clipped to [0, 1]
#   bicubic-minmax   the same, min-max normalised after upsampling instead (wsolevaluation's inference)
PLACEMENTS = {
    "authors": lambda heatmap, size: upsample(heatmap, size, 255.0),
    "bilinear": _cv2_placement("bilinear", minmax=False),
    "bilinear-minmax": _cv2_placement("bilinear", minmax=True),
    "bicubic": _cv2_placement("bicubic", minmax=False),
    "bicubic-minmax": _cv2_placement("bicubic", minmax=True),
}
# a model file without the key was made before it existed and keeps the boxes it always had
LEGACY_PLACEMENT = "authors"


def check_placement(placement: str, what: str = "upsample") -> str:
    if placement not in PLACEMENTS:
        raise OptionError(f"unknown {what} {placement!r}: use one of {', '.join(PLACEMENTS)}", what)
    return placement


def upsample255(heatmap: np.ndarray, size: tuple[int, int], placement: str = LEGACY_PLACEMENT) -> np.ndarray:
    """The map placed on a frame of ``size`` = (H, W) by ``placement`` (:data:`PLACEMENTS`), times 255,
    float32 in [0, 255]."""
    return PLACEMENTS[placement](heatmap, size)


def map8(heatmap: np.ndarray, size: tuple[int, int], placement: str = LEGACY_PLACEMENT) -> tuple[np.ndarray, np.ndarray]:
    """The protocol's 8-bit map on the frame: ``(upsampled map * 255)`` truncated to uint8.

    Returns ``(map8, scoremap255)``, the second being the float map times 255 that was truncated.
    """
    s255 = upsample255(heatmap, size, placement)
    return s255.astype(np.uint8), s255


def boxes_from_map8(map8: np.ndarray, threshold: float, multi: bool = False,
                    min_area: float = 0.0, outer_only: bool = False, clip: bool = True) -> np.ndarray:
    """Boxes (K x 4 float32, inclusive corners, largest contour first) from an 8-bit map at ``threshold``
    (``outer_only``: contours of regions only, not of their holes; ``clip=False``: ``x + w, y + h`` as
    they are, which may be ``W``, ``H``, as the authors' validation code scores them)."""
    import cv2

    H, W = map8.shape
    _, mask = cv2.threshold(map8, int(threshold * float(map8.max())), 255, cv2.THRESH_BINARY)
    mode = cv2.RETR_EXTERNAL if outer_only else cv2.RETR_TREE
    contours, _ = cv2.findContours(mask, mode, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return np.zeros((0, 4), dtype=np.float32)
    areas = [cv2.contourArea(c) for c in contours]
    if multi:
        order = [i for i in np.argsort(areas, kind="stable")[::-1] if areas[i] >= min_area] or [int(np.argmax(areas))]
    else:
        order = [int(np.argmax(areas))]
    out = np.empty((len(order), 4), dtype=np.float32)
    for k, i in enumerate(order):
        x, y, w, h = cv2.boundingRect(contours[i])
        out[k] = (x, y, min(x + w, W - 1), min(y + h, H - 1)) if clip else (x, y, x + w, y + h)
    return out


def heatmap_to_boxes(heatmap: np.ndarray, size: tuple[int, int], threshold: float,
                     multi: bool = False, min_area: float = 0.0,
                     outer_only: bool = False,
                     placement: str = LEGACY_PLACEMENT) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes for one heatmap on a frame of ``size`` = (H, W), the map placed by ``placement``.

    Returns ``(boxes, scores, map8)``: boxes K x 4 in frame pixels (largest first), scores K (mean of the
    upsampled map inside each box, in [0, 1]), and the 8-bit upsampled map (H x W uint8) they came from.
    """
    m8, s255 = map8(heatmap, size, placement)
    boxes = boxes_from_map8(m8, threshold, multi=multi, min_area=min_area, outer_only=outer_only)
    scores = np.array(
        [s255[int(y1):int(y2) + 1, int(x1):int(x2) + 1].mean() / 255.0 for x1, y1, x2, y2 in boxes],
        dtype=np.float32,
    )
    return boxes, scores, m8


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU (n x m) of boxes a (n x 4) and b (m x 4), inclusive pixel corners (areas count ``x2 - x1 + 1``)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(1, -1, 4)
    iw = np.maximum(0.0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    ih = np.maximum(0.0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def first_box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of the first (largest) boxes of two results; two empty results agree (1.0), one empty does not."""
    if len(a) == 0 or len(b) == 0:
        return float(len(a) == len(b))
    return float(box_iou(a[:1], b[:1])[0, 0])
