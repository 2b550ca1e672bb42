"""Evaluation data sets: what an item is, which format a folder holds, and how bad inputs are reported.

Every loader (``uolrps.eval.loaders``) yields :class:`Item` s: an image path and its ground-truth boxes,
N x 4 float64, inclusive corners ``x1, y1, x2, y2`` in source-image pixels (0-based, the wsolevaluation
convention). Nothing bad is dropped silently: a missing image, an empty or broken annotation, a box outside
its image each become a :class:`Problem` that names the file, and the caller lists them (``summarise``).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from uolrps.errors import UserError

FORMATS = ("csv", "voc", "cub", "wsol", "coco")
BOX_TOLERANCE = 1.0  # pixels a box may overhang its image (rounding in rescaled annotations); it is clipped


@dataclass(frozen=True, eq=False)
class Item:
    """One evaluation image: ``boxes`` N x 4 float64 (inclusive, source pixels); ``size`` (H, W) if the
    annotation states it; ``masks`` foreground mask files and ``polygons`` (COCO, each K x 2 x/y) for PxAP;
    ``ignore`` a mask of pixels to leave out of PxAP."""

    path: Path
    boxes: np.ndarray
    size: tuple[int, int] | None = None
    label: str = ""
    masks: tuple[Path, ...] = ()
    polygons: tuple = ()
    ignore: Path | None = None

    @property
    def has_mask(self) -> bool:
        return bool(self.masks or self.polygons)


@dataclass(frozen=True)
class Problem:
    """Why a file was left out: ``kind`` is a short category, ``file`` the file at fault."""

    kind: str
    file: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.file}: {self.kind}" + (f" ({self.detail})" if self.detail else "")

    def to_dict(self) -> dict:
        return {"file": self.file, "kind": self.kind, "detail": self.detail}


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


def check_boxes(boxes: np.ndarray, size: tuple[int, int], file: str) -> tuple[np.ndarray, Problem | None]:
    """Clip boxes that overhang ``size`` = (H, W) by at most BOX_TOLERANCE px; anything worse is a Problem."""
    H, W = size
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not np.isfinite(b).all():
        return b, Problem("bad box", file, "coordinates are not finite numbers")
    inverted = (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
    if inverted.any():
        i = int(np.argmax(inverted))
        return b, Problem("bad box", file, f"box {i + 1} {_fmt(b[i])} has x2 < x1 or y2 < y1")
    t = BOX_TOLERANCE
    outside = (b[:, 0] < -t) | (b[:, 1] < -t) | (b[:, 2] > W - 1 + t) | (b[:, 3] > H - 1 + t)
    if outside.any():
        i = int(np.argmax(outside))
        return b, Problem("box outside image", file, f"box {i + 1} {_fmt(b[i])} is outside the {W}x{H} image")
    out = b.copy()
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, W - 1)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, H - 1)
    return out, None


def _fmt(box) -> str:
    return "(" + ", ".join(f"{v:g}" for v in box) + ")"


# ---- format detection ---------------------------------------------------------------------------------
def _csv_in(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.csv"))


def _coco_json_in(folder: Path) -> list[Path]:
    out = []
    for p in sorted(list(folder.glob("*.json")) + list((folder / "annotations").glob("*.json"))):
        try:
            with open(p, "rb") as f:
                head = f.read(1 << 16)
        except OSError:
            continue
        if b'"images"' in head or b'"annotations"' in head or p.parent.name == "annotations":
            out.append(p)
    return out


def _wsol_splits(folder: Path) -> list[str]:
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and (d / "image_ids.txt").is_file())


def _annotation_dir(folder: Path) -> Path | None:
    for name in ("annotations", "Annotations"):
        d = folder / name
        if d.is_dir() and any(d.glob("*.xml")):
            return d
    return None


def detect_format(path: str | Path) -> tuple[str, str]:
    """``(format, what was found)`` for a data set file or folder; an unknown layout is a UserError."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"data set {p} does not exist")
    if p.is_file():
        if p.suffix.lower() == ".csv":
            return "csv", f"CSV file {p.name}"
        if p.suffix.lower() == ".json":
            return "coco", f"COCO JSON file {p.name}"
        raise UserError(f"{p} is neither a folder nor a .csv/.json annotation file: pass a data set folder")
    if (p / "image_ids.txt").is_file() and (p / "localization.txt").is_file():
        return "wsol", f"wsolevaluation metadata (image_ids.txt, localization.txt) in {p.name}/"
    splits = _wsol_splits(p)
    if splits:
        return "wsol", f"wsolevaluation metadata with split folders {', '.join(splits)} in {p.name}/"
    for cub in (p, p / "CUB_200_2011"):
        if (cub / "images.txt").is_file() and (cub / "bounding_boxes.txt").is_file():
            return "cub", f"CUB-200-2011 layout (images.txt, bounding_boxes.txt) in {cub.name}/"
    ann = _annotation_dir(p)
    if ann is not None:
        return "voc", f"PASCAL VOC layout: {sum(1 for _ in ann.glob('*.xml'))} XML files in {ann.name}/"
    csvs = _csv_in(p)
    if len(csvs) == 1:
        return "csv", f"CSV file {csvs[0].name} in {p.name}/"
    if len(csvs) > 1:
        raise UserError(f"{p} holds {len(csvs)} CSV files ({', '.join(c.name for c in csvs[:4])}): "
                        "pass the one to use instead of the folder")
    jsons = _coco_json_in(p)
    if jsons:
        return "coco", f"COCO JSON {', '.join(j.relative_to(p).as_posix() for j in jsons[:3])} in {p.name}/"
    raise UserError(
        f"cannot tell the format of {p}: expected one of a CSV with image,x1,y1,x2,y2 columns, "
        "annotations/*.xml (PASCAL VOC), images.txt + bounding_boxes.txt (CUB-200-2011), image_ids.txt + "
        "localization.txt (wsolevaluation), or a COCO .json; pass --format to say which"
    )


def load_dataset(path: str | Path, fmt: str = "auto", split: str | None = None,
                 images_root: str | Path | None = None) -> Dataset:
    """Load a data set in ``fmt`` (``auto`` detects it); refuses one with no usable image."""
    from uolrps.eval import loaders

    path = Path(path)
    found = ""
    if fmt == "auto":
        fmt, found = detect_format(path)
    elif fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}: use one of auto, {', '.join(FORMATS)}")
    elif not path.exists():
        raise UserError(f"data set {path} does not exist")
    loader = getattr(loaders, f"load_{fmt}")
    ds: Dataset = loader(path, split=split, images_root=None if images_root is None else Path(images_root))
    if found:
        ds.description = f"{found}; {ds.description}" if ds.description else found
    if not ds.items:
        raise UserError(f"no usable images in {path} ({fmt}): {summarise(ds.problems)}")
    return ds


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
    return mask, (read(item.ignore) if item.ignore is not None else None)
