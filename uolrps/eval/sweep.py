"""The threshold sweep on stored heatmaps (both protocols, PxAP) and its summaries; see ``uolrps.eval.metrics``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from uolrps.eval import metrics as M
from uolrps.eval.inference import workers_or_default
from uolrps.eval.items import load_mask
from uolrps.core.annotations import Problem
from uolrps.core.progress import progress as progress_bar
from uolrps.core.boxes import map8


def sweep(items: list, heatmaps: np.ndarray, sizes: list, authors: bool = True, wsol: bool = True,
          extra_thresholds=(), pixels: bool = False, progress: bool = False, workers: int | None = None,
          placement: str = "authors") -> dict:
    """Accuracies over thresholds, accumulated image by image: ``authors`` (99 + len(extra_thresholds)) x 3
    (largest contour, unclipped), ``wsol`` 1000 x 3 (all contours), in percent at IoU 0.3/0.5/0.7; ``pixel``
    the PxAP summary; ``mask_problems`` a list of Problems. ``placement``: how each map is put on its image
    (``uolrps.core.boxes.PLACEMENTS``)."""
    t_extra = np.asarray(extra_thresholds, dtype=np.float64)
    t_auth = np.concatenate([M.AUTHORS_THRESHOLDS, t_extra])
    count_a, count_w = M.HitCounter(len(t_auth)), M.HitCounter(len(M.WSOL_THRESHOLDS))
    acc = M.PixelAccumulator()

    def one(i: int):
        m8, s255 = map8(heatmaps[i], sizes[i], placement)  # the runtime's 8-bit map, exactly
        a = None
        if authors:  # the authors' boxes unclipped; at the extra thresholds (CorLoc) the box run draws, clipped
            a = np.concatenate([M.sweep_map8(m8, items[i].boxes, M.AUTHORS_THRESHOLDS, multi=False),
                                M.sweep_map8(m8, items[i].boxes, t_extra, multi=False, clip=True)])
        w = M.sweep_map8(m8, items[i].boxes, M.WSOL_THRESHOLDS, multi=True) if wsol else None
        hist = err = None
        if pixels and items[i].has_mask:
            try:
                hist = acc.histograms(s255 / 255.0, *load_mask(items[i], sizes[i]))
            except ValueError as e:
                err = Problem("bad mask", str(items[i].path), str(e))
        return a, w, hist, err

    problems = []
    with ThreadPoolExecutor(workers_or_default(workers)) as pool, \
            progress_bar(len(items), "sweep", unit="images", enabled=progress) as bar:
        for a, w, hist, err in pool.map(one, range(len(items))):
            if a is not None:
                count_a.add(a)
            if w is not None:
                count_w.add(w)
            if hist is not None:
                acc.merge(*hist)
            if err is not None:
                problems.append(err)
            bar.advance(1)
    return {
        "authors": count_a.acc if authors else None,
        "wsol": count_w.acc if wsol else None,
        "pixel": acc.summary() if pixels else None,
        "mask_problems": problems,
    }


def summarise_sweep(accs: dict, model_threshold: float | None = None) -> dict:
    """Protocol summaries (and GT-known Loc, CorLoc at ``model_threshold``) from :func:`sweep`'s accuracies."""
    out: dict = {"protocols": {}}
    a = accs.get("authors")
    if a is not None:
        n_auth = len(M.AUTHORS_THRESHOLDS)
        i50 = M.IOUS.index(0.5)
        out["protocols"]["authors"] = M.authors_summary(None, acc=a[:n_auth])
        out["gt_known_loc"] = float(a[:n_auth, i50].max())
        out["gt_known_loc_threshold"] = float(np.round(M.AUTHORS_THRESHOLDS[int(a[:n_auth, i50].argmax())], 6))
        if model_threshold is not None and a.shape[0] > n_auth:
            out["corloc"] = float(a[n_auth, i50])
            out["corloc_threshold"] = float(model_threshold)
    if accs.get("wsol") is not None:
        out["protocols"]["wsol"] = M.wsol_summary(None, acc=accs["wsol"])
    return out
