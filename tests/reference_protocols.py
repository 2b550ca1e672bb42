"""Both localisation protocols written from their definitions, independently of uolrps (nothing imported from it).

Authors' protocol (UOLwRPS, ICCV 2023): the h x w heatmap is upsampled to the image with bilinear interpolation
with aligned corners, turned into an 8-bit map ``uint8(map * 255)``; at threshold t (0.01 .. 0.99) the
pixels strictly above ``int(t * max(map8))`` form a mask; the bounding rectangle of its largest contour
(OpenCV ``findContours``, largest ``contourArea``) is the box ``x, y, min(x + w, W - 1), min(y + h, H - 1)``;
an image is correct at IoU 0.3 / 0.5 / 0.7 when its box overlaps some ground-truth box that much (inclusive
pixel IoU, areas ``(x2 - x1 + 1)(y2 - y1 + 1)``). MaxBoxAccV2 = max over t of the mean of the three
accuracies.

wsolevaluation protocol (Choe et al., CVPR 2020): thresholds ``arange(0, 1, 0.001)``, every contour gives a
box, the best IoU over all (box, ground truth) pairs counts; no contour gives the box (0, 0, 0, 0);
MaxBoxAccV2 = the mean over the three IoUs of the best accuracy over t (a threshold per IoU).

Slow on purpose: one pixel at a time for the upsampling weights, one threshold at a time for the boxes
(thresholds that give the same integer level share one mask, which is what the definition says).
"""

from __future__ import annotations

import math

import numpy as np

IOUS = (0.3, 0.5, 0.7)
AUTHORS_T = [round(0.01 * k, 2) for k in range(1, 100)]
WSOL_T = [k * 0.001 for k in range(1000)]


def upsample_aligned(hm: np.ndarray, H: int, W: int) -> np.ndarray:
    """Bilinear, aligned corners: output pixel (i, j) samples the input at (i (h-1)/(H-1), j (w-1)/(W-1))."""
    hm = np.clip(np.asarray(hm, dtype=np.float64), 0.0, 1.0)
    h, w = hm.shape

    def weights(n_out, n_in):
        lo, hi, f = [], [], []
        for i in range(n_out):
            p = 0.0 if n_out == 1 or n_in == 1 else i * (n_in - 1) / (n_out - 1)
            a = min(int(math.floor(p)), max(n_in - 2, 0))
            lo.append(a)
            hi.append(min(a + 1, n_in - 1))
            f.append(p - a)
        return np.array(lo), np.array(hi), np.array(f)

    ry0, ry1, fy = weights(H, h)
    cx0, cx1, fx = weights(W, w)
    top = hm[ry0][:, cx0] * (1 - fx) + hm[ry0][:, cx1] * fx
    bottom = hm[ry1][:, cx0] * (1 - fx) + hm[ry1][:, cx1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


def map8(hm: np.ndarray, H: int, W: int) -> np.ndarray:
    return (upsample_aligned(hm, H, W) * 255).astype(np.uint8)


def boxes_at(m8: np.ndarray, t: float, all_contours: bool) -> list[tuple[int, int, int, int]]:
    import cv2

    H, W = m8.shape
    mask = (m8 > int(t * int(m8.max()))).astype(np.uint8) * 255
    contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    if not contours:
        return [(0, 0, 0, 0)]
    if not all_contours:
        contours = [max(contours, key=cv2.contourArea)]
    out = []
    for c in contours:
        x, y, w, h = cv2.boundingRect(c)
        out.append((x, y, min(x + w, W - 1), min(y + h, H - 1)))
    return out


def iou(a, b) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inter = max(iw, 0) * max(ih, 0)
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    return inter / union


def best_ious(m8: np.ndarray, gt, thresholds, all_contours: bool) -> list[float]:
    """For each threshold the best IoU of a predicted box with any ground-truth box."""
    by_level: dict[int, float] = {}
    out = []
    top = int(m8.max())
    for t in thresholds:
        level = int(t * top)
        if level not in by_level:
            by_level[level] = max(iou(b, g) for b in boxes_at(m8, t, all_contours) for g in gt)
        out.append(by_level[level])
    return out


def accuracy_table(per_image: list[list[float]]) -> np.ndarray:
    """(T, 3) percent of images whose best IoU reaches 0.3 / 0.5 / 0.7."""
    n = len(per_image)
    T = len(per_image[0])
    acc = np.zeros((T, len(IOUS)))
    for k in range(T):
        for j, thr in enumerate(IOUS):
            acc[k, j] = 100.0 * sum(1 for row in per_image if row[k] >= thr) / n
    return acc


def authors_maxboxacc(maps8: list[np.ndarray], gts: list) -> dict:
    acc = accuracy_table([best_ious(m, g, AUTHORS_T, False) for m, g in zip(maps8, gts)])
    means = acc.mean(axis=1)
    k = int(np.argmax(means))
    return {"MaxBoxAccV2": float(means[k]), "threshold": AUTHORS_T[k], "acc": acc[k].tolist()}


def wsol_maxboxacc(maps8: list[np.ndarray], gts: list) -> dict:
    acc = accuracy_table([best_ious(m, g, WSOL_T, True) for m, g in zip(maps8, gts)])
    return {"MaxBoxAccV2": float(acc.max(axis=0).mean()), "acc": acc.max(axis=0).tolist()}
