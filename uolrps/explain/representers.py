"""Representer explanations: which calibration images made the model call this region foreground.

With raw features f_ip of calibration image i at position p, ``w* = sum_i r_i`` where
``r_i = sum_p alpha_ip normalize(f_ip)`` (stored by ``uolrps calib --keep-representers``). For a test
image with features f(x), the mean normalised feature over the foreground positions is
``m = mean_{p in box} normalize(f_p(x))``; its projection score ``<m, w*>`` is exactly the sum of the
representer values ``<m, r_i>`` of the calibration images, which :func:`explain` checks (1e-4).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from uolrps.core.digest import sha256_wstar
from uolrps.core.errors import OptionError, UserError
from uolrps.core.maps import minmax
from uolrps.core.options import check_at_least

EPS = 1e-12
IDENTITY_TOL = 1e-4
REP_KEYS = ("rep_paths", "rep_r", "rep_top_pos", "rep_top_alpha")


@dataclass(frozen=True, eq=False)
class Representers:
    """The representer data of a calibration file: one row per calibration image."""

    paths: np.ndarray  # (N,) str
    r: np.ndarray  # (N, C) float32, sums to w
    top_pos: np.ndarray  # (N, k, 2) int32 (row, col) on the feature grid
    top_alpha: np.ndarray  # (N, k) float32
    w: np.ndarray  # (C,) float32
    meta: dict = field(default_factory=dict)
    source: Path = Path()

    @property
    def grid(self) -> tuple[int, int] | None:
        g = self.meta.get("grid")
        return (int(g[0]), int(g[1])) if g else None


def load_representers(path: str | Path) -> Representers:
    """Read a calibration .npz (no pickle) that was written with ``--keep-representers``; check shapes."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"calibration file {path} does not exist: make one with "
                        f"`uolrps calib IMAGES --keep-representers -o {path.name}`")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        meta = json.loads(str(data["meta"])) if "meta" in data else {}
    except Exception as e:
        raise UserError(f"{path} is not a uolrps calibration file ({type(e).__name__}: {e})") from None
    missing = [k for k in ("w",) + REP_KEYS if k not in data]
    if missing:
        raise UserError(f"{path} has no representer data ({', '.join(missing)} missing): rerun "
                        f"`uolrps calib IMAGES --keep-representers -o {path.name}`")
    w = np.asarray(data["w"], dtype=np.float32)
    if w.ndim == 2 and w.shape[0] == 1:
        w = w[0]
    if w.ndim != 1:
        raise UserError(f"{path} holds {w.shape[0]} class-wise w* rows: explain needs a single w* "
                        "(calibrate without --classwise)")
    r = np.asarray(data["rep_r"], dtype=np.float32)
    n = len(data["rep_paths"])
    pos, alpha = np.asarray(data["rep_top_pos"]), np.asarray(data["rep_top_alpha"])
    if r.shape != (n, w.shape[0]) or pos.ndim != 3 or pos.shape[0] != n or pos.shape[2] != 2 \
            or alpha.shape != pos.shape[:2]:
        raise UserError(f"{path}: representer arrays disagree (rep_r {r.shape}, rep_paths ({n},), rep_top_pos "
                        f"{pos.shape}, rep_top_alpha {alpha.shape}, w {w.shape}): recompute it with uolrps calib")
    return Representers(np.asarray(data["rep_paths"]).astype(str), r, pos.astype(np.int64), alpha, w, meta, path)


def box_positions(box, frame_size: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
    """Feature-grid positions (P x 2, row/col) whose cell centres fall inside ``box`` (inclusive corners on an
    (H, W) frame), using the aligned-corner placement of the heatmap upsampling; the nearest position to the
    box centre when none does."""
    H, W = frame_size
    h, w = grid
    ys = np.arange(h) * ((H - 1) / (h - 1) if h > 1 else 0.0)
    xs = np.arange(w) * ((W - 1) / (w - 1) if w > 1 else 0.0)
    x1, y1, x2, y2 = (float(v) for v in box)
    rows = np.nonzero((ys >= y1) & (ys <= y2))[0]
    cols = np.nonzero((xs >= x1) & (xs <= x2))[0]
    if len(rows) == 0:
        rows = np.array([int(np.argmin(np.abs(ys - (y1 + y2) / 2)))])
    if len(cols) == 0:
        cols = np.array([int(np.argmin(np.abs(xs - (x1 + x2) / 2)))])
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return np.stack([rr.ravel(), cc.ravel()], axis=1)


def foreground_feature(features: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """m = mean over ``positions`` of the L2-normalised feature vectors (features C x h x w) -> (C,) float64."""
    f = np.asarray(features, dtype=np.float64)[:, positions[:, 0], positions[:, 1]]  # C x P
    n = f / np.maximum(np.linalg.norm(f, axis=0, keepdims=True), EPS)
    return n.mean(axis=1)


def projection_map(features: np.ndarray, w: np.ndarray) -> np.ndarray:
    """<normalize(f_p), w*> at every position (h x w), min-max normalised like the model's heatmap."""
    f = np.asarray(features, dtype=np.float64)
    s = np.tensordot(w.astype(np.float64), f / np.maximum(np.linalg.norm(f, axis=0, keepdims=True), EPS), axes=1)
    return minmax(s).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Explanation:
    image: Path
    frame_size: tuple[int, int]
    box: np.ndarray  # (4,) inclusive corners in frame pixels
    box_source: str  # "model at t=..." or "--box"
    positions: np.ndarray  # P x 2 feature-grid positions averaged
    values: np.ndarray  # (N,) float64 representer values, one per calibration image
    score: float  # <m, w*>
    heatmap: np.ndarray  # h x w, the explained projection map, min-max normalised
    reps: Representers
    positive: np.ndarray  # indices, largest value first
    negative: np.ndarray  # indices, most negative first
    model_matches_calibration: bool

    @property
    def identity_error(self) -> float:
        return abs(float(self.values.sum()) - self.score)

    def case(self, i: int, rank: int) -> dict:
        return {"rank": rank, "index": int(i), "path": str(self.reps.paths[i]), "value": float(self.values[i]),
                "patches": self.reps.top_pos[i].tolist(), "patch_alpha": [float(a) for a in self.reps.top_alpha[i]]}

    def to_json(self) -> dict:
        return {
            "image": str(self.image), "frame_size": list(self.frame_size),
            "box": [float(v) for v in self.box], "box_source": self.box_source,
            "positions": self.positions.tolist(), "score": self.score, "sum_of_values": float(self.values.sum()),
            "identity_error": self.identity_error, "identity_ok": self.identity_error <= IDENTITY_TOL,
            "n_calibration_images": int(len(self.values)), "calibration": str(self.reps.source),
            "model_matches_calibration": self.model_matches_calibration,
            "positive": [self.case(i, r) for r, i in enumerate(self.positive, 1)],
            "negative": [self.case(i, r) for r, i in enumerate(self.negative, 1)],
        }


def rank(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest positive values and the k most negative ones (indices; ties keep file order)."""
    order = np.argsort(-values, kind="stable")
    pos = order[values[order] > 0][:k]
    neg = np.argsort(values, kind="stable")
    return pos, neg[values[neg] < 0][:k]


def _encoder_features(meta: dict, weights) -> Callable[[list], np.ndarray]:
    def run(images_rgb: list) -> np.ndarray:
        try:
            from uolrps.calib.encoder import build_encoder, features
        except ImportError as e:
            raise UserError(f"explain needs PyTorch for the test image's features ({e}): "
                            "pip install 'uolrps[export]'") from None
        enc = build_encoder(meta["backbone"], weights or meta.get("weights"), tuple(meta["input_size"]),
                            dilated=bool(meta.get("dilated", False)), progress=False)
        return features(enc, images_rgb=images_rgb)
    return run


def explain(image: str | Path, model: str | Path, calib_npz: str | Path, box=None, k: int = 8, weights=None,
            features_fn: Callable[[list], np.ndarray] | None = None, options=None) -> Explanation:
    """Representer values of every calibration image for the foreground of ``image``.

    The foreground is the model's box (largest contour at its threshold) or ``box`` = (x1, y1, x2, y2).
    ``features_fn(images_rgb) -> N x C x h x w`` gives raw features; by default the calibration file's
    backbone and weights through ``uolrps.calib.features`` (``weights`` overrides the recorded path).
    ``options`` (:class:`uolrps.runtime.backends.ModelOptions`): how to open the model (backend, providers, ...).
    """
    from uolrps.core.annotations import check_boxes
    from uolrps.core.images import read_bgr
    from uolrps.runtime import Localizer
    from uolrps.core.boxes import heatmap_to_boxes

    check_at_least(k, 1, "k")
    reps = load_representers(calib_npz)
    bgr = read_bgr(image) if Path(image).is_file() else None
    if bgr is None:
        raise UserError(f"cannot read image {image} (missing, or not a JPEG/PNG/BMP/WebP image)")
    H, W = bgr.shape[:2]
    with Localizer(model, options=options) as loc:
        meta = loc.meta
        if reps.meta.get("backbone") and reps.meta["backbone"] != meta.backbone:
            raise UserError(f"the model uses backbone {meta.backbone} but {Path(calib_npz).name} was calibrated "
                            f"with {reps.meta['backbone']}: pass the calibration file of this model")
        if box is None:
            boxes, _, _ = heatmap_to_boxes(loc.heatmaps([bgr])[0, 0], (H, W), loc.threshold, placement=loc.upsample)
            if not len(boxes):
                raise OptionError(f"the model finds no object in {Path(image).name} at threshold {loc.threshold:g}: "
                                  "pass a region with box x1,y1,x2,y2", "box")
            box, source = boxes[0].astype(np.float64), f"model at t={loc.threshold:g}"
        else:
            box_arr, bad = check_boxes(np.asarray(box, dtype=np.float64).reshape(1, 4), (H, W), str(image))
            if bad:
                raise OptionError(f"box: {bad.detail}", "box")
            box, source = box_arr[0], "--box"
    feats = np.asarray((features_fn or _encoder_features(reps.meta, weights))([bgr[:, :, ::-1].copy()]))
    if feats.ndim != 4 or feats.shape[0] != 1 or feats.shape[1] != reps.r.shape[1]:
        raise UserError(f"the features have shape {feats.shape}, but the calibration file has "
                        f"{reps.r.shape[1]} channels: use the backbone and weights it was made with")
    f = feats[0]
    if reps.grid and tuple(f.shape[1:]) != reps.grid:
        raise UserError(f"the feature grid is {f.shape[1]}x{f.shape[2]} but calibration used {reps.grid[0]}x"
                        f"{reps.grid[1]}: use the input size it was made with")
    positions = box_positions(box, (H, W), f.shape[1:])
    m = foreground_feature(f, positions)
    values = reps.r.astype(np.float64) @ m
    score = float(reps.w.astype(np.float64) @ m)
    digest = sha256_wstar(reps.w)
    pos, neg = rank(values, k)
    return Explanation(Path(image), (H, W), box, source, positions, values, score, projection_map(f, reps.w), reps,
                       pos, neg, not meta.wstar_sha256 or meta.wstar_sha256 == digest)
