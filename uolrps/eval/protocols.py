"""The two published evaluation pipelines end to end, each named after the code it reproduces.

Besides the thresholds and contours (``uolrps.eval.metrics``), a paper's number depends on the frame the
boxes are scored in. These two pipelines put the model's map and the ground truth where the published code
puts them (written from that code's behaviour; see docs/eval.md for a picture of each):

- ``wsolevaluation`` (Choe et al., CVPR 2020, clovaai/wsolevaluation): the image is stretched to the model's
  input (S x S), the map is resized to S x S with ``cv2.resize(INTER_CUBIC)`` and min-max normalised
  after that (a constant map gives zeros); boxes are scored in that S x S frame: all contours, boxes clipped
  to ``S - 1``, thresholds ``arange(0, 1, 0.001)``, a best threshold per IoU; a map without any contour
  (all zeros) is scored with the box (0, 0, 0, 0), as that code does. Ground truth is scaled to the
  S x S frame and cut to whole pixels (``int(x * S / W)``).
- ``uolwrps`` (Song et al., ICCV 2023, yeonghwansong/UOLwRPS): the image is stretched to R x R (R = 256 for
  S = 224, ``round(S * 256 / 224)`` otherwise), its centre S x S crop is the model input; the map goes to
  the crop with aligned-corner bilinear interpolation; the largest contour's box unclipped, thresholds
  ``arange(0.01, 1, 0.01)``, one threshold for the three IoUs (and each IoU's own maximum). Ground truth is
  scaled to R x R, shifted by ``(R - S) / 2``, rounded half to even (``np.round``) and clipped into the crop
  (``x2`` no less than ``x1``).

The project resizes frames with OpenCV's bilinear ``INTER_LINEAR`` everywhere; the published code reads
images with PIL and resizes with torchvision (bilinear, antialiased on downscaling), so heatmaps of images
larger than the input differ slightly from theirs (see docs/eval.md).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from uolrps.eval import metrics as M
from uolrps.eval.inference import workers_or_default
from uolrps.core.progress import progress as progress_bar
from uolrps.core.boxes import box_iou, map8

# which paper's table each protocol's MaxBoxAccV2 can be put beside (docs/eval.md has the longer story)
COMPARABLE = {
    "authors": "no paper: the authors' scoring arithmetic on the full-resolution image",
    "wsol": "no paper: wsolevaluation's scoring arithmetic on the full-resolution image",
    "wsolevaluation": "Choe et al., CVPR 2020 (wsolevaluation) and papers that use its code, e.g. its MaxBoxAccV2 tables",
    "uolwrps": "Song et al., ICCV 2023 (UOLwRPS), its MaxBoxAccV2 / IoU tables",
}
RESIZE_RATIO = 256 / 224  # the authors' --image_size / --crop_size


# ---- geometry ---------------------------------------------------------------------------------------------
def wsolevaluation_gt(boxes: np.ndarray, size: tuple[int, int], input_size: tuple[int, int]) -> np.ndarray:
    """Ground truth (N x 4, source pixels) on the S x S input frame, cut to whole pixels as wsolevaluation's
    ``resize_bbox`` does: ``int(x * S_w / W)``, ``int(y * S_h / H)``."""
    H, W = size
    Sh, Sw = input_size
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.empty_like(b)
    out[:, 0::2] = np.trunc(b[:, 0::2] * Sw / W)
    out[:, 1::2] = np.trunc(b[:, 1::2] * Sh / H)
    return out


def uolwrps_geometry(input_size: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((R_h, R_w), (top, left))``: the size the image is stretched to and where the input-size crop starts
    (torchvision's CenterCrop: ``int(round((R - S) / 2))``)."""
    Sh, Sw = input_size
    Rh, Rw = int(round(Sh * RESIZE_RATIO)), int(round(Sw * RESIZE_RATIO))
    return (Rh, Rw), (int(round((Rh - Sh) / 2.0)), int(round((Rw - Sw) / 2.0)))


def uolwrps_frame(bgr: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """The model input of the authors' test transform: stretch to R x R, the centre S x S crop."""
    from uolrps.core.images import resize

    (Rh, Rw), (top, left) = uolwrps_geometry(input_size)
    big = resize(bgr, (Rh, Rw))
    return np.ascontiguousarray(big[top:top + input_size[0], left:left + input_size[1]])


def uolwrps_gt(boxes: np.ndarray, size: tuple[int, int], input_size: tuple[int, int]) -> np.ndarray:
    """Ground truth (N x 4, source pixels) in the crop, as the authors' data sets compute it: scaled to
    R x R, shifted by ``(R - S) * 0.5``, ``np.round`` (half to even), clipped to ``[0, S - 1]`` (the far
    corner to ``[near corner, S - 1]``)."""
    H, W = size
    Sh, Sw = input_size
    (Rh, Rw), _ = uolwrps_geometry(input_size)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    sx, sy = Rw / W, Rh / H
    x1 = np.clip(np.round(b[:, 0] * sx - (Rw - Sw) * 0.5), 0, Sw - 1)
    y1 = np.clip(np.round(b[:, 1] * sy - (Rh - Sh) * 0.5), 0, Sh - 1)
    x2 = np.clip(np.round(b[:, 2] * sx - (Rw - Sw) * 0.5), x1, Sw - 1)
    y2 = np.clip(np.round(b[:, 3] * sy - (Rh - Sh) * 0.5), y1, Sh - 1)
    return np.stack([x1, y1, x2, y2], axis=1)


# ---- the pipelines ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pipeline:
    """How one protocol turns images into accuracies: what the model sees (``frame(bgr, input_size)``, None:
    the whole image, as every other protocol), where the ground truth goes (``gt(boxes, (H, W), input_size)``,
    in the S x S frame the boxes are scored in), map placement, thresholds, contours, box clipping."""

    name: str
    placement: str
    thresholds: np.ndarray
    multi: bool
    clip: bool
    gt: Callable[[np.ndarray, tuple[int, int], tuple[int, int]], np.ndarray]
    frame: Callable[[np.ndarray, tuple[int, int]], np.ndarray] | None = None

    def summary(self, acc: np.ndarray) -> dict:
        if self.multi:
            out = M.wsol_summary(None, self.thresholds, acc=acc)
        else:
            out = M.authors_summary(None, self.thresholds, acc=acc)
        out["placement"] = self.placement
        out["comparable_with"] = COMPARABLE[self.name]
        return out


# the published pipelines, by name (a new one: its geometry above and one line here)
PIPELINES = {
    "wsolevaluation": Pipeline("wsolevaluation", "bicubic-minmax", M.WSOL_THRESHOLDS, multi=True, clip=True,
                               gt=wsolevaluation_gt),
    "uolwrps": Pipeline("uolwrps", "authors", M.AUTHORS_THRESHOLDS, multi=False, clip=False, gt=uolwrps_gt,
                        frame=uolwrps_frame),
}
PUBLISHED = tuple(PIPELINES)


def pipeline_gts(name: str, items: list, sizes: list, input_size: tuple[int, int]) -> list[np.ndarray]:
    """Each item's ground truth in the frame where ``name``'s boxes are scored."""
    convert = PIPELINES[name].gt
    return [convert(it.boxes, s, input_size) for it, s in zip(items, sizes)]


# ---- the sweep --------------------------------------------------------------------------------------------
def sweep_maps(heatmaps: np.ndarray, sizes: list, gts: list, placement: str, thresholds: np.ndarray,
               multi: bool, clip: bool, progress: bool = False, workers: int | None = None,
               label: str = "sweep") -> np.ndarray:
    """Accuracies (T x 3, percent at IoU 0.3/0.5/0.7) of heatmaps placed on frames of ``sizes`` against
    ``gts`` (one N x 4 array per map, in that frame)."""
    count = M.HitCounter(len(thresholds))

    def one(i: int) -> np.ndarray:
        m8 = map8(heatmaps[i], tuple(sizes[i]), placement)[0]
        if multi and not m8.any() and len(gts[i]):  # no contour at any threshold: wsolevaluation scores the box
            return np.full(len(thresholds), box_iou(np.zeros((1, 4)), gts[i]).max())  # (0, 0, 0, 0) all the same
        return M.sweep_map8(m8, gts[i], thresholds, multi=multi, clip=clip)

    with ThreadPoolExecutor(workers_or_default(workers)) as pool, \
            progress_bar(len(gts), label, unit="images", enabled=progress) as bar:
        for row in pool.map(one, range(len(gts))):
            count.add(row)
            bar.advance(1)
    return count.acc


def run_pipeline(name: str, heatmaps: np.ndarray, items: list, sizes: list, input_size: tuple[int, int],
                 progress: bool = False, workers: int | None = None) -> dict:
    """One published pipeline's summary. ``heatmaps``: the model's maps of the pipeline's input (its
    ``frame`` of each image: the centre crop of ``uolwrps_frame`` for ``uolwrps``; the whole image stretched
    for ``wsolevaluation``)."""
    p = PIPELINES[name]
    S = tuple(int(v) for v in input_size)
    acc = sweep_maps(heatmaps, [S] * len(items), pipeline_gts(name, items, sizes, S), p.placement, p.thresholds,
                     p.multi, p.clip, progress, workers, label=name)
    return p.summary(acc)
