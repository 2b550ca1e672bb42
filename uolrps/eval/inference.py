"""Inference over a data set: every image decoded once and run through the runtime's :class:`Localizer`."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from uolrps.eval.items import Dataset
from uolrps.core.annotations import Problem, check_boxes
from uolrps.core.images import read_bgr
from uolrps.core.progress import progress as progress_bar


def workers_or_default(workers: int | None) -> int:
    return max(1, int(workers if workers else min(2, os.cpu_count() or 1)))


def _read(path: Path) -> np.ndarray | None:
    try:
        return read_bgr(path)
    except OSError:  # vanished or unreadable since the data set was listed
        return None


def run_heatmaps(ds: Dataset, localizer, channel: int = 0, chunk: int = 16, progress: bool = False,
                 workers: int | None = None, transform=None) -> tuple[list, np.ndarray, list[tuple[int, int]]]:
    """Decode every image once and run the model on it: ``(items kept, heatmaps N x h x w, sizes (H, W))``.

    Unreadable images, annotation sizes that disagree with the image and boxes outside their image are
    added to ``ds.problems`` (and left out). ``transform``: what the model sees instead of the decoded
    frame (e.g. a published pipeline's crop); sizes stay those of the images.
    """
    fixed = localizer.backend.input_spec.shape[0]
    step = max(fixed, (chunk // fixed) * fixed) if fixed else max(1, chunk)
    kept, maps, sizes = [], [], []
    with ThreadPoolExecutor(workers_or_default(workers)) as pool, \
            progress_bar(len(ds.items), "inference", unit="images", enabled=progress) as bar:
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
                frames.append(fr if transform is None else transform(fr))
            if frames:
                hm = localizer.heatmaps(frames)
                maps.append(np.asarray(hm[:, channel], dtype=np.float32))
            bar.advance(len(batch))
    grid = localizer.meta.grid
    return kept, (np.concatenate(maps) if maps else np.zeros((0, *grid), np.float32)), sizes
