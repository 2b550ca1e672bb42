"""One loader per annotation format; each returns a :class:`uolrps.eval.items.Dataset`.

Conventions (all boxes become 0-based inclusive corners in source pixels):
- CSV ``image,x1,y1,x2,y2`` (+ any columns): taken as they are (already 0-based inclusive).
- PASCAL VOC ``xmin..ymax``: 1-based inclusive (the devkit's), so 1 is subtracted.
- CUB-200-2011 ``x y width height`` and COCO ``[x, y, width, height]``: ``x2 = x + width - 1``.
- wsolevaluation ``localization.txt``: taken as they are (its IoU counts pixels inclusively).
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from uolrps.core.errors import OptionError, UserError
from uolrps.eval.detect import _csv_in, _wsol_splits
from uolrps.eval.items import Dataset, Item, finish_dataset
from uolrps.core.annotations import Problem
from uolrps.core.images import IMAGE_SUFFIXES

CSV_COLUMNS = ("image", "x1", "y1", "x2", "y2")


def _number(value: str, file: Path, line: int, column: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = float("nan")
    if not np.isfinite(x):
        raise UserError(f"{file}:{line}: column {column} must be a finite number, but got {value!r}")
    return x


def _first_dir(*candidates: Path) -> Path | None:
    return next((c for c in candidates if c is not None and c.is_dir()), None)


# ---- CSV ------------------------------------------------------------------------------------------------
def load_csv(path: Path, split: str | None = None, images_root: Path | None = None) -> Dataset:
    if path.is_dir():
        files = _csv_in(path)
        if len(files) != 1:
            raise UserError(f"{path} holds {len(files)} CSV files: pass the CSV file itself")
        path = files[0]
    images = images_root or _first_dir(path.parent / "images") or path.parent
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise UserError(f"{path}: the header must name {','.join(CSV_COLUMNS)} (missing {', '.join(missing)}; "
                            f"found {','.join(header) or 'nothing'})")
        if split is not None and "split" not in header:
            raise OptionError(f"{path} has no 'split' column, so split {split} cannot be applied: leave it out", "split")
        reader.fieldnames = header
        groups: dict[str, list] = {}
        sizes: dict[str, tuple[int, int]] = {}
        n_rows = 0
        for line, row in enumerate(reader, start=2):
            n_rows += 1
            if split is not None and (row.get("split") or "").strip() != split:
                continue
            name = (row["image"] or "").strip()
            if not name:
                raise UserError(f"{path}:{line}: empty image name")
            box = [_number(row[c], path, line, c) for c in CSV_COLUMNS[1:]]
            groups.setdefault(name, []).append(box)
            if row.get("width") and row.get("height"):
                sizes[name] = (int(_number(row["height"], path, line, "height")),
                               int(_number(row["width"], path, line, "width")))
    if n_rows == 0:
        raise UserError(f"{path} has a header but no rows: add one row per box (image,x1,y1,x2,y2)")
    items, problems = [], []
    for name, boxes in groups.items():
        # images/<name>, else <name> relative to the CSV's folder (or absolute)
        tried = [images / name] + ([path.parent / name] if images != path.parent else [])
        img = next((p for p in tried if p.is_file()), None)
        if img is None:
            problems.append(Problem("missing image", " or ".join(str(p) for p in tried)))
            continue
        items.append(Item(img, np.array(boxes, dtype=np.float64), sizes.get(name)))
    return finish_dataset("csv", path.parent, items, problems, f"images in {images}")


# ---- PASCAL VOC -----------------------------------------------------------------------------------------
def _voc_image(images: Path, filename: str, stem: str) -> Path | None:
    if filename and (images / filename).is_file():
        return images / filename
    for base in dict.fromkeys([Path(filename).stem if filename else stem, stem]):
        for suffix in IMAGE_SUFFIXES + tuple(s.upper() for s in IMAGE_SUFFIXES):
            if (images / (base + suffix)).is_file():
                return images / (base + suffix)
    return None


def _voc_parse(xml: Path) -> tuple[str, np.ndarray, tuple[int, int] | None, str]:
    """``(filename, boxes, size, first label)``; raises ValueError with a reason on a bad file."""
    if xml.stat().st_size == 0:
        raise ValueError("empty annotation")
    root = ET.parse(xml).getroot()
    boxes, label = [], ""
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        if bb is None:
            continue
        vals = [bb.findtext(k) for k in ("xmin", "ymin", "xmax", "ymax")]
        if any(v is None for v in vals):
            raise ValueError("a bndbox lacks xmin, ymin, xmax or ymax")
        boxes.append([float(v) - 1.0 for v in vals])  # devkit: 1-based
        label = label or (obj.findtext("name") or "").strip()
    w, h = root.findtext("size/width"), root.findtext("size/height")
    size = (int(float(h)), int(float(w))) if w and h and float(w) > 0 and float(h) > 0 else None
    return (root.findtext("filename") or "").strip(), np.array(boxes, dtype=np.float64).reshape(-1, 4), size, label


def load_voc(path: Path, split: str | None = None, images_root: Path | None = None) -> Dataset:
    ann = _first_dir(path / "annotations", path / "Annotations")
    if ann is None:
        raise UserError(f"{path} has no annotations/ or Annotations/ folder of VOC .xml files")
    images = images_root or _first_dir(path / "images", path / "JPEGImages")
    if images is None:
        raise OptionError(f"{path} has no images/ or JPEGImages/ folder: pass images_root", "images_root")
    problems: list[Problem] = []
    if split is not None:
        listing = path / "ImageSets" / "Main" / f"{split}.txt"
        if not listing.is_file():
            raise OptionError(f"split {split}: {listing} does not exist (VOC splits are listed in ImageSets/Main/)", "split")
        ids = [ln.split()[0] for ln in listing.read_text().splitlines() if ln.strip()]
        xmls = [ann / f"{i}.xml" for i in ids if (ann / f"{i}.xml").is_file()]
        problems += [Problem("missing annotation", str(ann / f"{i}.xml")) for i in ids
                     if not (ann / f"{i}.xml").is_file()]
    else:
        xmls = sorted(ann.glob("*.xml"))
    if not xmls and not problems:
        raise UserError(f"{ann} holds no .xml annotation files")
    items = []
    for xml in xmls:
        try:
            filename, boxes, size, label = _voc_parse(xml)
        except (ValueError, ET.ParseError) as e:
            kind = "empty annotation" if str(e) == "empty annotation" else "bad annotation"
            problems.append(Problem(kind, str(xml), "" if kind == "empty annotation" else str(e)))
            continue
        if len(boxes) == 0:
            problems.append(Problem("no boxes", str(xml)))
            continue
        img = _voc_image(images, filename, xml.stem)
        if img is None:
            problems.append(Problem("missing image", str(images / (filename or xml.stem))))
            continue
        items.append(Item(img, boxes, size, label))
    return finish_dataset("voc", path, items, problems, f"images in {images}")


# ---- CUB-200-2011 ---------------------------------------------------------------------------------------
def _table(file: Path, n_fields: int) -> dict[str, list[str]]:
    out = {}
    for line, text in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        parts = text.split()
        if not parts:
            continue
        if len(parts) != n_fields:
            raise UserError(f"{file}:{line}: expected {n_fields} fields, but got {len(parts)}")
        out[parts[0]] = parts[1:]
    if not out:
        raise UserError(f"{file} is empty")
    return out


def load_cub(path: Path, split: str | None = None, images_root: Path | None = None) -> Dataset:
    root = path if (path / "images.txt").is_file() else path / "CUB_200_2011"
    names = _table(root / "images.txt", 2)
    bbs = _table(root / "bounding_boxes.txt", 5)
    split_file = root / "train_test_split.txt"
    if split in ("val", "validation"):
        raise OptionError("CUB-200-2011 has train and test splits only: use split test (or train)", "split")
    if split not in (None, "train", "test"):
        raise UserError(f"unknown split {split!r} for CUB-200-2011: use test or train")
    chosen = split or ("test" if split_file.is_file() else None)
    flags = _table(split_file, 2) if chosen else {}
    images = images_root or root / "images"
    seg = _first_dir(root / "segmentations", root.parent / "segmentations")
    items, problems = [], []
    for i, (rel,) in names.items():
        if chosen and flags.get(i, ["?"])[0] != ("1" if chosen == "train" else "0"):
            continue
        if i not in bbs:
            problems.append(Problem("no boxes", rel, f"image id {i} has no line in bounding_boxes.txt"))
            continue
        x, y, w, h = (_number(v, root / "bounding_boxes.txt", 0, "box") for v in bbs[i])
        img = images / rel
        if not img.is_file():
            problems.append(Problem("missing image", str(img)))
            continue
        mask = seg / Path(rel).with_suffix(".png") if seg else None
        box = np.array([[x, y, x + max(w - 1, 0), y + max(h - 1, 0)]])
        items.append(Item(img, box, None, rel.split("/")[0], (mask,) if mask and mask.is_file() else ()))
    where = f"split {chosen}, images in {images}" if chosen else f"all images in {images}"
    return finish_dataset("cub", root, items, problems, where)


# ---- wsolevaluation metadata ----------------------------------------------------------------------------
def _lines(file: Path) -> list[list[str]]:
    if not file.is_file():
        return []
    return [[p.strip() for p in ln.split(",")] for ln in file.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _wsol_roots(meta: Path) -> list[Path]:
    cands = [meta]
    for anc in list(meta.parents)[:4]:
        cands.append(anc)
        if anc.name == "metadata":
            sub = meta.relative_to(anc).parts
            if sub:
                cands.append(anc.parent / "dataset" / sub[0])
    return cands


def load_wsol(path: Path, split: str | None = None, images_root: Path | None = None) -> Dataset:
    meta = path
    if not (path / "image_ids.txt").is_file():
        splits = _wsol_splits(path)
        if split is None:
            split = "test" if "test" in splits else splits[0] if len(splits) == 1 else None
            if split is None:
                raise OptionError(f"{path} has splits {', '.join(splits)}: choose one with split", "split")
        if split not in splits:
            raise OptionError(f"split {split}: {path} has only {', '.join(splits) or 'no'} split folders", "split")
        meta = path / split
    ids = [r[0] for r in _lines(meta / "image_ids.txt")]
    if not ids:
        raise UserError(f"{meta / 'image_ids.txt'} is empty")
    loc = _lines(meta / "localization.txt")
    if not loc:
        raise UserError(f"{meta / 'localization.txt'} is missing or empty")
    sizes = {r[0]: (int(float(r[2])), int(float(r[1]))) for r in _lines(meta / "image_sizes.txt") if len(r) >= 3}
    labels = {r[0]: r[1] for r in _lines(meta / "class_labels.txt") if len(r) >= 2}
    roots = [images_root] if images_root else _wsol_roots(meta)
    root = next((r for r in roots if (r / ids[0]).is_file()), None)
    if root is None:
        raise OptionError(f"cannot find image {ids[0]} under {', '.join(str(r) for r in roots)}: pass images_root",
                          "images_root")
    boxes: dict[str, list] = {}
    masks: dict[str, list] = {}
    ignores: dict[str, Path] = {}
    for line, r in enumerate(loc, start=1):
        if len(r) == 5:
            boxes.setdefault(r[0], []).append([_number(v, meta / "localization.txt", line, "box") for v in r[1:]])
        elif len(r) in (2, 3):
            masks.setdefault(r[0], []).append(root / r[1])
            if len(r) == 3 and r[2]:
                ignores[r[0]] = root / r[2]
        else:
            raise UserError(f"{meta / 'localization.txt'}:{line}: expected image_id,x0,y0,x1,y1 or "
                            f"image_id,mask_path[,ignore_path], but got {len(r)} fields")
    items, problems = [], []
    for i in ids:
        img = root / i
        if not img.is_file():
            problems.append(Problem("missing image", str(img)))
            continue
        b = np.array(boxes.get(i, []), dtype=np.float64).reshape(-1, 4)
        m = tuple(masks.get(i, []))
        if m and not all(p.is_file() for p in m):
            problems.append(Problem("missing mask", str(next(p for p in m if not p.is_file()))))
            continue
        if len(b) == 0 and m:  # mask-only data (OpenImages): the boxes are the masks' extents
            b = _mask_boxes(m)
        if len(b) == 0:
            problems.append(Problem("no boxes", i, "no line in localization.txt"))
            continue
        items.append(Item(img, b, sizes.get(i), labels.get(i, ""), m, (), ignores.get(i)))
    return finish_dataset("wsol", meta, items, problems, f"split {meta.name}, images under {root}")


def _mask_boxes(masks: tuple[Path, ...]) -> np.ndarray:
    from uolrps.core.images import read_bgr

    out = []
    for p in masks:
        m = read_bgr(p)
        if m is None:
            continue
        ys, xs = np.nonzero(m[:, :, 0] > 127)
        if len(xs):
            out.append([xs.min(), ys.min(), xs.max(), ys.max()])
    return np.array(out, dtype=np.float64).reshape(-1, 4)
