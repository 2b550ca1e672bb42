"""COCO annotations (``instances_*.json``): boxes, and masks decoded with pycocotools for PxAP.

- ``bbox`` ``[x, y, width, height]`` becomes the inclusive box ``x, y, x + width - 1, y + height - 1``.
- ``segmentation``: polygons (lists of x, y outlines), uncompressed RLE (``counts`` a list) or compressed RLE
  (``counts`` a string), all decoded by pycocotools as COCO's own tools do; every non-crowd annotation of an
  image makes up its foreground.
- ``iscrowd: 1``: a crowd region is neither a ground-truth box nor background: PxAP ignores its pixels.
Everything left out is listed with the reason: images without annotations, with crowd annotations only,
missing files, annotations without a usable bbox or segmentation (that image then has no PxAP mask).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uolrps.core.errors import OptionError, UserError
from uolrps.eval.coco_masks import INSTALL
from uolrps.eval.detect import _coco_json_in
from uolrps.eval.items import Dataset, Item, finish_dataset, read_json
from uolrps.core.annotations import Problem

def _has_pycocotools() -> bool:
    try:
        import pycocotools.mask  # noqa: F401
    except ImportError:
        return False
    return True


def _valid_segmentation(seg) -> bool:
    if isinstance(seg, list):
        return bool(seg) and all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in seg)
    if isinstance(seg, dict):
        return isinstance(seg.get("counts"), (list, str)) and isinstance(seg.get("size"), list) \
            and len(seg["size"]) == 2
    return False


def _pick_file(path: Path, split: str | None) -> Path:
    if not path.is_dir():
        return path
    files = _coco_json_in(path)
    if split is not None:
        files = [f for f in files if split in f.stem] or files
    if len(files) != 1:
        raise OptionError(f"{path} holds {len(files)} COCO JSON files ({', '.join(f.name for f in files[:4])}): "
                          "pass the JSON file itself (or split to pick by name)", "split")
    return files[0]


def _images_folder(path: Path, first: str, images_root: Path | None) -> Path:
    d, stem = path.parent, path.stem.split("_")[-1]
    cands = [images_root] if images_root else [d, d / "images", d.parent / "images", d.parent / stem,
                                               d.parent / "images" / stem, d / stem]
    found = next((c for c in cands if (c / first).is_file()), None)
    if found is None:
        raise OptionError(f"cannot find image {first} under {', '.join(str(c) for c in cands)}: pass images_root",
                          "images_root")
    return found


def load_coco(path: Path, split: str | None = None, images_root: Path | None = None) -> Dataset:
    path = _pick_file(path, split)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise UserError(f"{path} is not COCO JSON: it needs 'images' and 'annotations' lists")
    if not data["images"]:
        raise UserError(f"{path} lists no images")
    cats = {c.get("id"): str(c.get("name", "")) for c in data.get("categories", []) if isinstance(c, dict)}
    names = {im.get("id"): str(im.get("file_name", "")) for im in data["images"] if isinstance(im, dict)}
    by_image: dict = {}
    crowd: dict = {}
    problems: list[Problem] = []
    n_crowd = 0
    for a in data["annotations"]:
        if not isinstance(a, dict):
            problems.append(Problem("bad annotation", str(path), "an annotation is not a JSON object"))
            continue
        if a.get("iscrowd"):
            n_crowd += 1
            crowd.setdefault(a.get("image_id"), []).append(a)
        else:
            by_image.setdefault(a.get("image_id"), []).append(a)
    for image_id, anns in crowd.items():
        for a in anns:
            problems.append(Problem("crowd region ignored", names.get(image_id, f"image id {image_id}"),
                                    f"annotation {a.get('id')}: iscrowd, so not a ground-truth box; "
                                    "PxAP ignores its pixels"))
    coco_ok = _has_pycocotools()
    if not coco_ok and any(_valid_segmentation(a.get("segmentation")) for a in data["annotations"]
                           if isinstance(a, dict)):
        problems.append(Problem("PxAP off", str(path), f"the segmentations need pycocotools: {INSTALL}"))
    images = _images_folder(path, str(data["images"][0].get("file_name", "")), images_root)
    items = []
    for im in data["images"]:
        name = str(im.get("file_name", ""))
        anns = by_image.get(im.get("id"), [])
        if not anns:
            kind = "crowd annotations only" if im.get("id") in crowd else "no boxes"
            problems.append(Problem(kind, name))
            continue
        img = images / name
        if not img.is_file():
            problems.append(Problem("missing image", str(img)))
            continue
        try:
            b = np.array([[x, y, x + max(w - 1, 0), y + max(h - 1, 0)] for x, y, w, h in
                          (map(float, a["bbox"]) for a in anns)], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            problems.append(Problem("bad annotation", name, "a bbox is not [x, y, width, height]"))
            continue
        segs = tuple(a.get("segmentation") for a in anns)
        bad = [a.get("id") for a, s in zip(anns, segs) if not _valid_segmentation(s)]
        if bad and coco_ok:
            problems.append(Problem("no segmentation", name, f"annotation {', '.join(map(str, bad))} has no usable "
                                    "segmentation: this image has no PxAP mask"))
        with_masks = coco_ok and not bad
        ignore = tuple(a.get("segmentation") for a in crowd.get(im.get("id"), [])
                       if _valid_segmentation(a.get("segmentation"))) if with_masks else ()
        size = (int(im["height"]), int(im["width"])) if im.get("height") and im.get("width") else None
        items.append(Item(img, b, size, cats.get(anns[0].get("category_id"), ""),
                          coco_segments=segs if with_masks else (), coco_ignore=ignore))
    where = f"images in {images}" + (f", {n_crowd} crowd annotations ignored" if n_crowd else "")
    return finish_dataset("coco", path.parent, items, problems, where)
