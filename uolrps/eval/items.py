"""What an evaluation data set is: its items (image, boxes, masks), the problems met while reading it, and the
readers every loader shares (JSON, masks).

Every loader (``uolrps.eval.loaders``) yields :class:`Item` s: an image path and its ground-truth boxes,
N x 4 float64, inclusive corners ``x1, y1, x2, y2`` in source-image pixels (0-based, the wsolevaluation
convention). Nothing bad is dropped silently: a missing image, an empty or broken annotation, a box outside
its image each become a :class:`Problem` that names the file, and the caller lists them (``summarise``).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from uolrps.core.annotations import Problem, check_boxes
from uolrps.core.errors import UserError


@dataclass(frozen=True, eq=False)
class Item:
    """One evaluation image: ``boxes`` N x 4 float64 (inclusive, source pixels); ``size`` (H, W) if the
    annotation states it; ``masks`` foreground mask files and ``polygons`` (COCO, each K x 2 x/y) for PxAP;
    ``ignore`` a mask of pixels to leave out of PxAP; ``coco_segments`` / ``coco_ignore`` COCO segmentations
    (polygons or RLE, decoded by pycocotools) of the foreground and of crowd regions to leave out."""

    path: Path
    boxes: np.ndarray
    size: tuple[int, int] | None = None
    label: str = ""
    masks: tuple[Path, ...] = ()
    polygons: tuple = ()
    ignore: Path | None = None
    coco_segments: tuple = ()
    coco_ignore: tuple = ()

    @property
    def has_mask(self) -> bool:
        return bool(self.masks or self.polygons or self.coco_segments)


@dataclass
class Dataset:
    format: str
    root: Path
    items: list[Item]
    problems: list[Problem] = field(default_factory=list)
    description: str = ""

    @property
    def n_boxes(self) -> int:
        return int(sum(len(it.boxes) for it in self.items))

    @property
    def has_masks(self) -> bool:
        return bool(self.items) and all(it.has_mask for it in self.items)


def finish_dataset(fmt: str, root: Path, items: list[Item], problems: list[Problem], where: str) -> Dataset:
    """The dataset of ``items`` whose boxes fit the sizes their annotations state (items without a stated
    size are checked once decoded); an item with a bad box is left out and its problem added."""
    kept = []
    for it in items:
        if it.size is None:
            kept.append(it)
            continue
        boxes, bad = check_boxes(it.boxes, it.size, str(it.path))
        if bad:
            problems.append(bad)
        else:
            kept.append(replace(it, boxes=boxes))
    n_boxes = sum(len(it.boxes) for it in kept)
    return Dataset(fmt, root, kept, problems, f"{len(kept)} images, {n_boxes} boxes, {where}")


def summarise(problems: list[Problem], limit: int = 3) -> str:
    """One line: counts per kind with the first few file names, e.g. ``2 missing image (a.jpg, b.jpg)``."""
    if not problems:
        return "none"
    counts = Counter(p.kind for p in problems)
    parts = []
    for kind, n in counts.most_common():
        names = [Path(p.file).name for p in problems if p.kind == kind][:limit]
        more = ", ..." if n > limit else ""
        parts.append(f"{n} {kind} ({', '.join(names)}{more})")
    return "; ".join(parts)


def read_json(path: Path) -> object:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read {path} as JSON ({e})") from None


def load_mask(item: Item, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """Foreground (H x W bool: any mask file > 127 or inside any polygon) and ignore mask of an item;
    a mask that cannot be read or has another size raises ValueError with the reason."""
    import cv2

    H, W = size

    def read(p: Path) -> np.ndarray:
        m = cv2.imdecode(np.fromfile(str(p), dtype=np.uint8), cv2.IMREAD_GRAYSCALE) if p.is_file() else None
        if m is None:
            raise ValueError(f"cannot read mask {p}")
        if m.shape != (H, W):
            raise ValueError(f"mask {p.name} is {m.shape[1]}x{m.shape[0]}, the image is {W}x{H}")
        return m > 127

    mask = np.zeros((H, W), dtype=bool)
    for p in item.masks:
        mask |= read(p)
    if item.polygons:
        canvas = np.zeros((H, W), dtype=np.uint8)
        cv2.fillPoly(canvas, [np.round(p).astype(np.int32) for p in item.polygons], 1)
        mask |= canvas > 0
    ignore = read(item.ignore) if item.ignore is not None else None
    if item.coco_segments or item.coco_ignore:
        from uolrps.eval.coco_masks import decode_segmentations

        mask |= decode_segmentations(item.coco_segments, size)
        if item.coco_ignore:
            crowd = decode_segmentations(item.coco_ignore, size)
            ignore = crowd if ignore is None else ignore | crowd
    return mask, ignore
