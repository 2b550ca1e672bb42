"""Both localisation protocols written from their definitions, independently of uolrps (nothing imported from it).

Authors' protocol (UOLwRPS, ICCV 2023): the h x w heatmap is upsampled to the image with bilinear interpolation
with aligned corners, turned into an 8-bit map ``uint8(map * 255)``; at threshold t (0.01 .. 0.99) the
pixels strictly above ``int(t * max(map8))`` form a mask; the bounding rectangle of its largest contour
(OpenCV ``findContours``, largest ``contourArea``) is the box ``x, y, x + w, y + h``, unclipped (validation.py);
no contour is a miss; an image is correct at IoU 0.3 / 0.5 / 0.7 when its box overlaps some ground-truth box that much (inclusive
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
AUTHORS_T = list(np.arange(0.01, 1, 0.01))  # the published code's own floats
WSOL_T = list(np.arange(0, 1, 0.001))


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
    if not all_contours:  # the authors: the largest contour, its box unclipped; none is a miss
        if not contours:
            return []
        x, y, w, h = cv2.boundingRect(max(contours, key=cv2.contourArea))
        return [(x, y, x + w, y + h)]
    if not contours:
        return [(0, 0, 0, 0)]
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
            by_level[level] = max((iou(b, g) for b in boxes_at(m8, t, all_contours) for g in gt), default=0.0)
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
    return {"MaxBoxAccV2": float(means[k]), "threshold": AUTHORS_T[k], "acc": acc[k].tolist(),
            "IoU_max": acc.max(axis=0).tolist()}


def wsol_maxboxacc(maps8: list[np.ndarray], gts: list) -> dict:
    acc = accuracy_table([best_ious(m, g, WSOL_T, True) for m, g in zip(maps8, gts)])
    return {"MaxBoxAccV2": float(acc.max(axis=0).mean()), "acc": acc.max(axis=0).tolist()}


# ---- the published pipelines end to end (their frames, maps and ground truth) ------------------------------
# Written from the behaviour of clovaai/wsolevaluation (inference.py, evaluation.py) and yeonghwansong/UOLwRPS
# (validation.py, datasets/*.py, main.py); one image at a time, one threshold at a time.
AUTHORS_T_PUBLISHED = list(np.arange(0.01, 1, 0.01))  # the authors' act_threshold, floats as they are
WSOL_T_PUBLISHED = list(np.arange(0, 1, 0.001))  # wsolevaluation's cam_threshold_list


def wsolevaluation_scoremap(hm: np.ndarray, S: int) -> np.ndarray:
    """cv2.resize(cam, (S, S), INTER_CUBIC), then normalize_scoremap: minus the min, over the max (a constant
    or NaN map gives zeros), in float32 as the cam is."""
    import cv2

    cam = cv2.resize(np.asarray(hm, dtype=np.float32), (S, S), interpolation=cv2.INTER_CUBIC)
    if np.isnan(cam).any() or cam.min() == cam.max():
        return np.zeros_like(cam)
    cam = cam - cam.min()
    cam = cam / cam.max()
    return cam


def wsolevaluation_boxes(scoremap: np.ndarray, t: float) -> list:
    """compute_bboxes_from_scoremaps with multi_contour_eval: every contour, x1/y1 clipped, (0,0,0,0) if none."""
    import cv2

    h, w = scoremap.shape
    img = (scoremap * 255).astype(np.uint8)
    mask = cv2.threshold(img, int(t * np.max(img)), 255, cv2.THRESH_BINARY)[1]
    contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    if len(contours) == 0:
        return [(0, 0, 0, 0)]
    out = []
    for c in contours:
        x, y, bw, bh = cv2.boundingRect(c)
        out.append((x, y, min(x + bw, w - 1), min(y + bh, h - 1)))
    return out


def wsolevaluation_gt(boxes, H: int, W: int, S: int) -> list:
    """resize_bbox: x * S / W, y * S / H, each cut by int()."""
    return [(int(float(a) * S / W), int(float(b) * S / H), int(float(c) * S / W), int(float(d) * S / H))
            for a, b, c, d in boxes]


def wsolevaluation_pipeline(heatmaps, sizes, gts, S: int = 224) -> dict:
    """MaxBoxAccV2 (mean over IoU 0.3/0.5/0.7 of the best accuracy over thresholds) and the three maxima."""
    rows = []
    for hm, (H, W), gt in zip(heatmaps, sizes, gts):
        sm = wsolevaluation_scoremap(hm, S)
        g = wsolevaluation_gt(gt, H, W, S)
        img = (sm * 255).astype(np.uint8)
        cache: dict[int, float] = {}
        row = []
        for t in WSOL_T_PUBLISHED:
            level = int(t * np.max(img))
            if level not in cache:
                cache[level] = max(iou(b, gg) for b in wsolevaluation_boxes(sm, t) for gg in g)
            row.append(cache[level])
        rows.append(row)
    acc = accuracy_table(rows)
    return {"MaxBoxAccV2": float(acc.max(axis=0).mean()), "acc": acc.max(axis=0).tolist()}


def uolwrps_crop(bgr: np.ndarray, S: int = 224, R: int = 256) -> np.ndarray:
    """Resize((R, R)) then CenterCrop(S) (here with OpenCV's bilinear resize, as the project reads frames)."""
    import cv2

    big = cv2.resize(bgr, (R, R), interpolation=cv2.INTER_LINEAR)
    o = int(round((R - S) / 2.0))
    return big[o:o + S, o:o + S]


def uolwrps_gt(boxes, H: int, W: int, S: int = 224, R: int = 256) -> list:
    """The authors' data sets: scale to R, minus (R - S) * 0.5, np.round, clip to [0, S - 1] ([x1, S - 1])."""
    out = []
    for x1, y1, x2, y2 in boxes:
        xs, ys = R / W, R / H
        a = float(np.clip(np.round(x1 * xs - (R - S) * 0.5), 0, S - 1))
        b = float(np.clip(np.round(y1 * ys - (R - S) * 0.5), 0, S - 1))
        c = float(np.clip(np.round(x2 * xs - (R - S) * 0.5), a, S - 1))
        d = float(np.clip(np.round(y2 * ys - (R - S) * 0.5), b, S - 1))
        out.append((a, b, c, d))
    return out


def uolwrps_pipeline(crop_heatmaps, sizes, gts, S: int = 224, R: int = 256) -> dict:
    """The authors' localization(): map (already clamped and min-max normalised by the model) to S x S with
    aligned corners, uint8(map * 255), largest contour, box [x, y, x + w, y + h] unclipped, no contour counts
    as a miss; MaxBoxAccV2 = max over t of the mean, and each IoU's own max over t."""
    import cv2

    n = len(crop_heatmaps)
    hits = np.zeros((len(AUTHORS_T_PUBLISHED), 3))
    for hm, (H, W), gt in zip(crop_heatmaps, sizes, gts):
        gray = (upsample_aligned(hm, S, S) * 255).astype(np.uint8)
        g = uolwrps_gt(gt, H, W, S, R)
        for k, t in enumerate(AUTHORS_T_PUBLISHED):
            mask = cv2.threshold(gray, int(t * np.max(gray)), 255, cv2.THRESH_BINARY)[1]
            contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
            if len(contours) == 0:
                continue
            x, y, w, h = cv2.boundingRect(max(contours, key=cv2.contourArea))
            best = max(iou(gg, (x, y, x + w, y + h)) for gg in g)
            for j, thr in enumerate(IOUS):
                hits[k, j] += best >= thr
    acc = hits * 100.0 / n
    mean = acc.mean(axis=1)
    return {"MaxBoxAccV2": float(mean.max()), "IoU_max": acc.max(axis=0).tolist(),
            "threshold": float(AUTHORS_T_PUBLISHED[int(mean.argmax())])}

