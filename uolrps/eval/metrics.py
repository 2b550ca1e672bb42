"""Localization metrics swept over thresholds on stored heatmaps (inference is never re-run).

For one image, the heatmap is upsampled and quantised once (``uolrps.core.boxes``); the threshold t
only enters through the integer level ``int(t * max)``, so boxes are extracted once per distinct level
(at most 256) and shared by every t that maps to it. IoUs against all ground-truth boxes are computed at
once; accuracies over images and thresholds are array reductions.

- Authors' protocol: t in 0.01..0.99 (step 0.01), the largest contour, its box unclipped (``x + w, y + h``
  may be ``W``, ``H``, as the authors' validation code scores it), IoU 0.3/0.5/0.7 (inclusive pixels),
  MaxBoxAccV2 = max over t of the mean of the three accuracies (one t shared by the three); the summary
  also has each IoU's own maximum over t (``IoU_max``), which is what the authors' code prints as IOU30 ...
- wsolevaluation protocol: t in 0..0.999 (step ``WSOL_STEP`` = 0.001), every contour, boxes clipped to the
  image, a best t per IoU, MaxBoxAccV2 = mean over IoUs of the best accuracy.
The threshold lists are the published code's own floats (``np.arange(0.01, 1, 0.01)``, ``np.arange(0, 1,
0.001)``): ``int(t * max)`` differs from the rounded t's for a few (t, max) pairs. Reported thresholds are rounded.
An image is correct at an IoU when any predicted box matches any of its ground-truth boxes.
All accuracies are percentages (0..100).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from uolrps.core.maps import minmax
from uolrps.core.boxes import box_iou, boxes_from_map8, map8

IOUS = (0.3, 0.5, 0.7)
AUTHORS_THRESHOLDS = np.arange(0.01, 1, 0.01)  # as the authors' validation.py, floats and all
WSOL_STEP = 0.001
WSOL_THRESHOLDS = np.arange(0, 1, WSOL_STEP)  # as wsolevaluation's cam_threshold_list
PIXEL_BINS = 1000  # PxAP / peak IoU: score thresholds k / PIXEL_BINS


def level_boxes(map8: np.ndarray, thresholds: np.ndarray, multi: bool,
                clip: bool = True) -> tuple[np.ndarray, list[np.ndarray]]:
    """For each threshold the index of its level, and the boxes of each distinct level (K x 4 each)."""
    levels = (np.asarray(thresholds, dtype=np.float64) * float(map8.max())).astype(np.int64)
    uniq, first, inverse = np.unique(levels, return_index=True, return_inverse=True)
    boxes = [boxes_from_map8(map8, float(thresholds[i]), multi=multi, clip=clip) for i in first]
    return inverse.reshape(-1), boxes


def sweep_map8(map8: np.ndarray, gt: np.ndarray, thresholds: np.ndarray, multi: bool = False,
               clip: bool | None = None) -> np.ndarray:
    """Best IoU with any GT box at each threshold (T,) on one quantised map (0 where no box). ``clip``
    (default: ``multi``, i.e. the authors' largest box unclipped, wsolevaluation's boxes clipped)."""
    inverse, boxes = level_boxes(map8, thresholds, multi, multi if clip is None else clip)
    best = np.array([box_iou(b, gt).max() if len(b) and len(gt) else 0.0 for b in boxes])
    return best[inverse]


def sweep_image(heatmap: np.ndarray, size: tuple[int, int], gt: np.ndarray, thresholds: np.ndarray,
                multi: bool = False, placement: str = "authors") -> np.ndarray:
    """Best IoU with any GT box at each threshold (T,), for one h x w heatmap on an (H, W) image."""
    return sweep_map8(map8(heatmap, size, placement)[0], gt, thresholds, multi)


def accuracies(ious: np.ndarray, iou_thresholds=IOUS) -> np.ndarray:
    """Percent of images correct, (T, len(iou_thresholds)), from best IoUs (N images x T thresholds)."""
    ious = np.asarray(ious, dtype=np.float64)
    if ious.shape[0] == 0:
        return np.zeros((ious.shape[1], len(iou_thresholds)))
    hits = ious[:, :, None] >= np.asarray(iou_thresholds)[None, None, :]
    return hits.mean(axis=0) * 100.0


def _key(iou: float) -> str:
    return f"IoU{int(round(iou * 100))}"


class HitCounter:
    """Accuracies accumulated image by image (memory O(thresholds), not O(images x thresholds))."""

    def __init__(self, n_thresholds: int, iou_thresholds=IOUS) -> None:
        self.iou_thresholds = np.asarray(iou_thresholds, dtype=np.float64)
        self.hits = np.zeros((n_thresholds, len(self.iou_thresholds)), dtype=np.int64)
        self.n = 0

    def add(self, best_ious: np.ndarray) -> None:
        """One image's best IoU at every threshold (T,)."""
        self.hits += np.asarray(best_ious)[:, None] >= self.iou_thresholds[None, :]
        self.n += 1

    @property
    def acc(self) -> np.ndarray:
        """Percent correct, (T, len(iou_thresholds)); the same as :func:`accuracies` of the stacked rows."""
        return self.hits * (100.0 / self.n) if self.n else np.zeros(self.hits.shape)


def authors_summary(ious: np.ndarray | None, thresholds=AUTHORS_THRESHOLDS, acc: np.ndarray | None = None) -> dict:
    """One threshold shared by IoU 0.3/0.5/0.7 (the lowest among ties): MaxBoxAccV2 and the accuracies there
    (``IoU30`` ... and again under ``IoU_at_threshold``), and each IoU's own maximum over thresholds
    (``IoU_max``, what the authors' code prints as IOU30 ...). Give best IoUs (N x T) or the accuracies
    ``acc`` (T x 3) directly."""
    acc = accuracies(ious) if acc is None else np.asarray(acc)
    mean = acc.mean(axis=1)
    i = int(np.argmax(mean))
    out = {"MaxBoxAccV2": float(mean[i])}
    out.update({_key(t): float(acc[i, j]) for j, t in enumerate(IOUS)})
    out["IoU_at_threshold"] = {_key(t): float(acc[i, j]) for j, t in enumerate(IOUS)}
    out["IoU_max"] = {_key(t): float(acc[:, j].max()) for j, t in enumerate(IOUS)}
    out["threshold"] = float(np.round(thresholds[i], 6))
    out["contours"] = "largest"
    out["threshold_step"] = float(np.round(thresholds[1] - thresholds[0], 6)) if len(thresholds) > 1 else 0.0
    return out


def wsol_summary(ious: np.ndarray | None, thresholds=WSOL_THRESHOLDS, acc: np.ndarray | None = None) -> dict:
    """A best threshold per IoU (wsolevaluation): MaxBoxAccV2 = mean of the per-IoU maxima."""
    acc = accuracies(ious) if acc is None else np.asarray(acc)
    best = acc.argmax(axis=0)
    out = {"MaxBoxAccV2": float(acc.max(axis=0).mean())}
    out.update({_key(t): float(acc[best[j], j]) for j, t in enumerate(IOUS)})
    out["threshold"] = float(np.round(thresholds[best[IOUS.index(0.5)]], 6))
    out["thresholds"] = {_key(t): float(np.round(thresholds[best[j]], 6)) for j, t in enumerate(IOUS)}
    out["contours"] = "all"
    out["threshold_step"] = float(np.round(thresholds[1] - thresholds[0], 6)) if len(thresholds) > 1 else 0.0
    return out


# ---- pixel metrics (data sets with masks) ---------------------------------------------------------------
@dataclass
class PixelAccumulator:
    """Histograms of scoremap values over ground-truth foreground and background pixels of every image."""

    bins: int = PIXEL_BINS

    def __post_init__(self) -> None:
        self.fg = np.zeros(self.bins, dtype=np.int64)
        self.bg = np.zeros(self.bins, dtype=np.int64)
        self.n_images = 0

    def histograms(self, scoremap: np.ndarray, mask: np.ndarray,
                   ignore: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Foreground and background histograms of one image (``scoremap`` H x W in [0, 1], ``mask`` H x W
        bool foreground, ``ignore`` H x W bool pixels to leave out); pure, so images can run in threads."""
        idx = np.minimum((np.clip(scoremap, 0.0, 1.0) * self.bins).astype(np.int64), self.bins - 1)
        keep = np.ones(mask.shape, bool) if ignore is None else ~ignore
        return (np.bincount(idx[mask & keep], minlength=self.bins),
                np.bincount(idx[~mask & keep], minlength=self.bins))

    def merge(self, fg: np.ndarray, bg: np.ndarray) -> None:
        self.fg += fg
        self.bg += bg
        self.n_images += 1

    def add(self, scoremap: np.ndarray, mask: np.ndarray, ignore: np.ndarray | None = None) -> None:
        self.merge(*self.histograms(scoremap, mask, ignore))

    def summary(self) -> dict:
        """PxAP (area under precision-recall over thresholds k / bins) and the peak pixel IoU, in percent."""
        tp = self.fg[::-1].cumsum()[::-1].astype(np.float64)  # pixels with score >= k / bins, k = 0..bins-1
        fp = self.bg[::-1].cumsum()[::-1].astype(np.float64)
        pos = float(self.fg.sum())
        if pos == 0 or self.n_images == 0:
            return {"PxAP": None, "peak_IoU": None, "peak_threshold": None, "n_images": self.n_images}
        recall = tp / pos
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(tp + fp > 0, tp / (tp + fp), 1.0)
            iou = tp / (pos + fp)
        d_recall = recall - np.append(recall[1:], 0.0)
        k = int(np.argmax(iou))
        return {"PxAP": float((precision * d_recall).sum() * 100), "peak_IoU": float(iou[k] * 100),
                "peak_threshold": k / self.bins, "n_images": self.n_images}


# ---- baselines ------------------------------------------------------------------------------------------
def _minmax_maps(n: np.ndarray) -> np.ndarray:
    """N x h x w scores -> clamped at 0, min-max normalised per image (constant -> zeros), N x 1 x h x w."""
    return minmax(n, axes=(1, 2), clamp=True)[:, None].astype(np.float32)


def _check_features(features: np.ndarray) -> np.ndarray:
    f = np.asarray(features, dtype=np.float32)
    if f.ndim != 4:
        raise ValueError(f"features must be N x C x h x w, but got shape {f.shape}")
    return f.astype(np.float64)


def caam_heatmaps(features: np.ndarray) -> np.ndarray:
    """CAAM baseline (class-agnostic activation map): the sum of the raw, ReLU'd features N x C x h x w over
    channels (their L1 norm), as in the authors' evaluation code, clamped at 0 and min-max normalised per
    image (a constant map gives zeros) -> N x 1 x h x w float32, the model's output contract."""
    return _minmax_maps(_check_features(features).sum(axis=1))


def feature_norm_heatmaps(features: np.ndarray) -> np.ndarray:
    """Feature-norm baseline: the L2 norm |f_p| of each position's feature (what the representer weights
    alpha_p depend on), min-max normalised per image -> N x 1 x h x w float32."""
    return _minmax_maps(np.sqrt((_check_features(features) ** 2).sum(axis=1)))


CENTRE_SCALES = np.round(np.arange(1, 21) * 0.05, 2)  # box side as a fraction of the image side


def centre_boxes(sizes: np.ndarray, sw: np.ndarray, sh: np.ndarray) -> np.ndarray:
    """Centred boxes (..., 4) of ``round(sw * W)`` x ``round(sh * H)`` pixels (at least 1) on (H, W) images."""
    H, W = sizes[..., 0].astype(np.float64), sizes[..., 1].astype(np.float64)
    bw = np.clip(np.round(sw * W), 1, W)
    bh = np.clip(np.round(sh * H), 1, H)
    x1 = np.floor((W - bw) / 2)
    y1 = np.floor((H - bh) / 2)
    return np.stack([x1, y1, x1 + bw - 1, y1 + bh - 1], axis=-1)


def centre_box_baseline(sizes: list[tuple[int, int]], gts: list[np.ndarray], scales=CENTRE_SCALES) -> dict:
    """The best fixed centred box (one width and height fraction for every image), chosen like the
    authors' protocol: the (sw, sh) pair with the largest mean of the accuracies at IoU 0.3/0.5/0.7."""
    s = np.asarray(scales, dtype=np.float64)
    sw, sh = np.meshgrid(s, s, indexing="ij")
    sw, sh = sw.ravel(), sh.ravel()  # P pairs
    ious = np.zeros((len(gts), len(sw)))
    for i, ((H, W), gt) in enumerate(zip(sizes, gts)):
        boxes = centre_boxes(np.array([[H, W]] * len(sw)), sw, sh)
        ious[i] = box_iou(boxes, gt).max(axis=1) if len(gt) else 0.0
    out = authors_summary(ious, thresholds=np.zeros(len(sw)))
    i = int(np.argmax(accuracies(ious).mean(axis=1)))
    out.pop("threshold")
    out.pop("threshold_step")
    out.update(contours="none", width_fraction=float(sw[i]), height_fraction=float(sh[i]))
    return out
