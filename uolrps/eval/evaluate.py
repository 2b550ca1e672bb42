"""``evaluate``: run the shipped model over a data set once, then sweep thresholds on the stored heatmaps.

Inference goes through :class:`uolrps.runtime.Localizer` (the runtime's preprocessing and backend, any
model file it opens), boxes through ``uolrps.runtime.boxes``, compared with the ground truth in source
pixels. See ``uolrps.eval.metrics`` for the protocols and docs/eval.md for the output.
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from uolrps.errors import UserError
from uolrps.eval import metrics as M
from uolrps.eval.datasets import Dataset, Problem, check_boxes, load_dataset, load_mask, summarise
from uolrps.images import read_bgr, read_rgb
from uolrps.runtime.boxes import map8

PROTOCOLS = ("both", "authors", "wsol")


@contextmanager
def _bar(total: int, label: str, enabled: bool):
    """A one-line progress bar on stderr (count, rate, time left), or a no-op; yields ``update(n)``."""
    if not enabled or total == 0:
        yield lambda n: None
        return
    state = {"done": 0, "shown": 0.0}
    t0 = time.monotonic()

    def show(final: bool = False) -> None:
        done, el = state["done"], time.monotonic() - t0
        filled = int(30 * done / total)
        rate = done / el if el > 0 else 0.0
        eta = f", {(total - done) / rate:.0f} s left" if rate > 0 and not final else ""
        print(f"\r{label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} {rate:.1f}/s{eta}   ",
              end="\n" if final else "", file=sys.stderr, flush=True)

    def update(n: int) -> None:
        state["done"] = min(total, state["done"] + n)
        now = time.monotonic()
        if now - state["shown"] >= 0.2:
            state["shown"] = now
            show()

    try:
        yield update
    finally:
        show(final=True)


def _workers(workers: int | None) -> int:
    return max(1, int(workers if workers else min(2, os.cpu_count() or 1)))


def _read(path: Path) -> np.ndarray | None:
    try:
        return read_bgr(path)
    except OSError:  # vanished or unreadable since the data set was listed
        return None


def run_heatmaps(ds: Dataset, localizer, channel: int = 0, chunk: int = 16, progress: bool = False,
                 workers: int | None = None) -> tuple[list, np.ndarray, list[tuple[int, int]]]:
    """Decode every image once and run the model on it: ``(items kept, heatmaps N x h x w, sizes (H, W))``.

    Unreadable images, annotation sizes that disagree with the image and boxes outside their image are
    added to ``ds.problems`` (and left out).
    """
    fixed = localizer.backend.input_spec.shape[0]
    step = max(fixed, (chunk // fixed) * fixed) if fixed else max(1, chunk)
    kept, maps, sizes = [], [], []
    with ThreadPoolExecutor(_workers(workers)) as pool, _bar(len(ds.items), "inference", progress) as update:
        for start in range(0, len(ds.items), step):
            batch = ds.items[start:start + step]
            frames = []
            for it, fr in zip(batch, pool.map(lambda it: _read(it.path), batch)):
                if fr is None:
                    ds.problems.append(Problem("unreadable image", str(it.path)))
                    continue
                H, W = fr.shape[:2]
                if it.size is not None and tuple(it.size) != (H, W):
                    ds.problems.append(Problem("size mismatch", str(it.path),
                                               f"the annotation says {it.size[1]}x{it.size[0]}, the image is {W}x{H}"))
                    continue
                boxes, bad = check_boxes(it.boxes, (H, W), str(it.path))
                if bad:
                    ds.problems.append(bad)
                    continue
                kept.append(replace(it, boxes=boxes, size=(H, W)))
                sizes.append((H, W))
                frames.append(fr)
            if frames:
                hm = localizer.heatmaps(frames)
                maps.append(np.asarray(hm[:, channel], dtype=np.float32))
            update(len(batch))
    grid = localizer.meta.grid
    return kept, (np.concatenate(maps) if maps else np.zeros((0, *grid), np.float32)), sizes


def sweep(items: list, heatmaps: np.ndarray, sizes: list, authors: bool = True, wsol: bool = True,
          extra_thresholds=(), pixels: bool = False, progress: bool = False, workers: int | None = None) -> dict:
    """Accuracies over thresholds, accumulated image by image: ``authors`` (99 + len(extra_thresholds)) x 3
    (largest contour), ``wsol`` 1000 x 3 (all contours), in percent at IoU 0.3/0.5/0.7; ``pixel`` the PxAP
    summary; ``mask_problems`` a list of Problems."""
    t_auth = np.concatenate([M.AUTHORS_THRESHOLDS, np.asarray(extra_thresholds, dtype=np.float64)])
    count_a, count_w = M.HitCounter(len(t_auth)), M.HitCounter(len(M.WSOL_THRESHOLDS))
    acc = M.PixelAccumulator()

    def one(i: int):
        m8, s255 = map8(heatmaps[i], sizes[i])  # the runtime's 8-bit map, exactly
        a = M.sweep_map8(m8, items[i].boxes, t_auth, multi=False) if authors else None
        w = M.sweep_map8(m8, items[i].boxes, M.WSOL_THRESHOLDS, multi=True) if wsol else None
        hist = err = None
        if pixels and items[i].has_mask:
            try:
                hist = acc.histograms(s255 / 255.0, *load_mask(items[i], sizes[i]))
            except ValueError as e:
                err = Problem("bad mask", str(items[i].path), str(e))
        return a, w, hist, err

    problems = []
    with ThreadPoolExecutor(_workers(workers)) as pool, _bar(len(items), "sweep    ", progress) as update:
        for a, w, hist, err in pool.map(one, range(len(items))):
            if a is not None:
                count_a.add(a)
            if w is not None:
                count_w.add(w)
            if hist is not None:
                acc.merge(*hist)
            if err is not None:
                problems.append(err)
            update(1)
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
        out["gt_known_loc_threshold"] = float(M.AUTHORS_THRESHOLDS[int(a[:n_auth, i50].argmax())])
        if model_threshold is not None and a.shape[0] > n_auth:
            out["corloc"] = float(a[n_auth, i50])
            out["corloc_threshold"] = float(model_threshold)
    if accs.get("wsol") is not None:
        out["protocols"]["wsol"] = M.wsol_summary(None, acc=accs["wsol"])
    return out


def evaluate(dataset_path: str | Path, model_path: str | Path, fmt: str = "auto", protocol: str = "both",
             split: str | None = None, images_root: str | Path | None = None, write_threshold: bool = False,
             json_path: str | Path | None = None, save_vis: str | Path | None = None, n_vis: int = 8,
             channel: int = 0, caam_backbone: str | None = None, caam_weights: str | Path | None = None,
             backend: str = "auto", progress: bool = False, workers: int | None = None) -> dict:
    """Evaluate a model file on a data set; returns the result dict (see docs/eval.md).

    ``protocol``: ``both`` (default), ``authors`` or ``wsol`` (the one whose threshold is reported first and
    written by ``write_threshold``; ``both`` writes the authors' one). ``caam_backbone`` adds the CAAM
    baseline (channel sum of that backbone's features, needs torch). The best fixed centre box is always reported.
    """
    from uolrps.runtime import Localizer

    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
    if n_vis < 1:
        raise UserError(f"the number of visualised cases must be at least 1, but got {n_vis}")
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be at least 1, but got {workers}")
    _check_outputs(model_path, json_path, save_vis, write_threshold)  # before any work, so a bad path costs nothing
    t_start = time.perf_counter()
    ds = load_dataset(dataset_path, fmt, split, images_root)
    with Localizer(model_path, backend=backend) as loc:
        meta = loc.meta
        if not 0 <= channel < len(meta.classes):
            raise UserError(f"channel {channel} does not exist: the model has {len(meta.classes)} heatmap channels "
                            f"({', '.join(meta.classes)})")
        t0 = time.perf_counter()
        items, heatmaps, sizes = run_heatmaps(ds, loc, channel, progress=progress, workers=workers)
        t_infer = time.perf_counter() - t0
    if not items:
        raise UserError(f"no usable images in {dataset_path}: {summarise(ds.problems)}")
    t0 = time.perf_counter()
    # the authors' sweep always runs: GT-known Loc and CorLoc (at the model's threshold) come from it
    swept = sweep(items, heatmaps, sizes, authors=True, wsol=protocol != "authors",
                 extra_thresholds=(meta.threshold,), pixels=ds.has_masks, progress=progress, workers=workers)
    t_sweep = time.perf_counter() - t0
    result = {
        "dataset": str(dataset_path), "format": ds.format, "found": ds.description, "model": str(model_path),
        "backbone": meta.backbone, "input_size": list(meta.input_size), "channel": channel,
        "n_images": len(items), "n_boxes": int(sum(len(it.boxes) for it in items)), "primary": protocol,
    }
    result.update(summarise_sweep(swept, meta.threshold))
    if protocol == "wsol":
        del result["protocols"]["authors"]
    if swept["pixel"] is not None:
        result["pixel"] = swept["pixel"]
    result["baselines"] = {"centre_box": M.centre_box_baseline(sizes, [it.boxes for it in items])}
    t_caam = 0.0
    if caam_backbone:
        t0 = time.perf_counter()
        result["baselines"].update(_caam(items, sizes, caam_backbone, caam_weights, meta.input_size, protocol,
                                         progress, workers))
        t_caam = time.perf_counter() - t0
    ds.problems += swept["mask_problems"]
    result["skipped"] = [p.to_dict() for p in ds.problems]
    chosen = result["protocols"]["wsol" if protocol == "wsol" else "authors"]
    result["threshold"] = chosen["threshold"]
    if save_vis is not None:
        from uolrps.eval.vis import save_cases

        result["vis"] = save_cases(save_vis, items, heatmaps, sizes, chosen["threshold"], n_vis)
    if write_threshold:  # last but the JSON (whose path was checked first): a failure above changes no model
        from uolrps.eval.threshold import write_threshold as _write

        source = f"eval:{'wsol' if protocol == 'wsol' else 'authors'}:{Path(dataset_path).resolve().name}:{len(items)}"
        done = _write(model_path, chosen["threshold"], source)
        result["threshold_written"] = {"threshold": chosen["threshold"], "source": source,
                                       "files": [str(p) for p in done.written],
                                       "left": [{"file": str(p), "why": why} for p, why in done.left]}
    result["timings_s"] = {"inference": round(t_infer, 3), "sweep": round(t_sweep, 3), "caam": round(t_caam, 3),
                           "total": round(time.perf_counter() - t_start, 3)}
    if json_path is not None:
        _write_json(Path(json_path), result)
    return result


def _check_outputs(model_path, json_path, save_vis, write_threshold=False) -> None:
    from uolrps.eval.threshold import threshold_targets
    from uolrps.paths import check_distinct_outputs, check_output_path


    if json_path is not None:
        check_output_path(json_path, "--json", (".json",), inputs=(model_path,))
    if save_vis is not None:
        if Path(save_vis).exists() and not Path(save_vis).is_dir():
            raise UserError(f"--save-vis {str(save_vis)!r} is a file: give a folder")
        check_output_path(Path(save_vis) / "case.png", "--save-vis")
    check_distinct_outputs({"--json": json_path, "--save-vis": save_vis} |
                           (threshold_targets(model_path) if write_threshold else {}))


def _caam(items, sizes, backbone, weights, size, protocol, progress, workers) -> dict:
    """Baselines from ``backbone``'s features, through the same sweep: ``caam`` (channel sum) and
    ``feature_norm`` (L2 norm per position)."""
    try:
        from uolrps.calib.encoder import build_encoder, features
    except ImportError as e:
        raise UserError(f"the CAAM baseline needs PyTorch ({e}): pip install 'uolrps[export]'") from None
    enc = build_encoder(backbone, weights, tuple(size), progress=progress)
    caam, norm = [], []
    with _bar(len(items), "caam     ", progress) as update:
        for i in range(0, len(items), 32):
            rgb = [read_rgb(it.path) for it in items[i:i + 32]]
            f = features(enc, images_rgb=rgb)
            caam.append(M.caam_heatmaps(f)[:, 0])
            norm.append(M.feature_norm_heatmaps(f)[:, 0])
            update(len(rgb))
    out = {}
    for key, maps in (("caam", caam), ("feature_norm", norm)):
        swept = sweep(items, np.concatenate(maps), sizes, authors=protocol != "wsol", wsol=protocol != "authors",
                      workers=workers)
        out[key] = summarise_sweep(swept)
        out[key]["backbone"] = backbone
    return out


def _write_json(path: Path, result: dict) -> None:
    from uolrps.paths import write_atomic

    text = json.dumps(result, indent=2) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), "--json")