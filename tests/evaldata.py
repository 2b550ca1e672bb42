"""Small generated evaluation data sets: real JPEGs (OpenCV) of bright rectangles on dark backgrounds,
written in every annotation format that ``uolrps eval`` reads, all describing the same boxes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def make_scenes(n: int = 6, seed: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, BGR image, boxes K x 4)`` with 0-based inclusive boxes; sizes and aspect ratios vary, and
    every third image holds two objects."""
    rng = np.random.default_rng(seed)
    sizes = [(120, 160), (96, 72), (150, 200), (64, 64), (130, 90), (80, 140)]
    out = []
    for i in range(n):
        H, W = sizes[i % len(sizes)]
        img = np.full((H, W, 3), 12, np.uint8)
        img += rng.integers(0, 8, size=img.shape, dtype=np.uint8)
        boxes = []
        for _ in range(2 if i % 3 == 2 else 1):
            bw, bh = int(rng.integers(W // 4, W // 2)), int(rng.integers(H // 4, H // 2))
            x1, y1 = int(rng.integers(0, W - bw)), int(rng.integers(0, H - bh))
            img[y1:y1 + bh, x1:x1 + bw] = 240
            boxes.append([x1, y1, x1 + bw - 1, y1 + bh - 1])
        out.append((f"img{i:02d}", img, np.array(boxes, dtype=np.float64)))
    return out


def _jpg(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 95])


def write_csv(root: Path, scenes, extra_column: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows = ["image,class_id,x1,y1,x2,y2" if extra_column else "image,x1,y1,x2,y2"]
    for name, img, boxes in scenes:
        _jpg(root / "images" / f"{name}.jpg", img)
        for b in boxes:
            rows.append(",".join([f"{name}.jpg"] + (["7"] if extra_column else []) + [f"{v:g}" for v in b]))
    (root / "boxes.csv").write_text("\n".join(rows) + "\n")
    return root


def voc_xml(filename: str, size: tuple[int, int], boxes) -> str:
    H, W = size
    objs = "".join(
        f"<object><name>thing</name><difficult>0</difficult><bndbox><xmin>{x1 + 1:g}</xmin><ymin>{y1 + 1:g}</ymin>"
        f"<xmax>{x2 + 1:g}</xmax><ymax>{y2 + 1:g}</ymax></bndbox></object>" for x1, y1, x2, y2 in boxes)
    return (f"<annotation><filename>{filename}</filename><size><width>{W}</width><height>{H}</height>"
            f"<depth>3</depth></size>{objs}</annotation>")


def write_voc(root: Path, scenes, images="images", annotations="annotations") -> Path:
    for name, img, boxes in scenes:
        _jpg(root / images / f"{name}.jpg", img)
        (root / annotations).mkdir(parents=True, exist_ok=True)
        (root / annotations / f"{name}.xml").write_text(voc_xml(f"{name}.jpg", img.shape[:2], boxes))
    return root


def write_cub(root: Path, scenes) -> Path:
    """CUB-200-2011 allows one box per image: the first box of each scene; odd ids are the test split."""
    cub = root / "CUB_200_2011"
    lines_i, lines_b, lines_s = [], [], []
    for i, (name, img, boxes) in enumerate(scenes, start=1):
        rel = f"001.Thing/{name}.jpg"
        _jpg(cub / "images" / rel, img)
        x1, y1, x2, y2 = boxes[0]
        lines_i.append(f"{i} {rel}")
        lines_b.append(f"{i} {x1:.1f} {y1:.1f} {x2 - x1 + 1:.1f} {y2 - y1 + 1:.1f}")
        lines_s.append(f"{i} {0 if i % 2 else 1}")
    (cub / "images.txt").write_text("\n".join(lines_i) + "\n")
    (cub / "bounding_boxes.txt").write_text("\n".join(lines_b) + "\n")
    (cub / "train_test_split.txt").write_text("\n".join(lines_s) + "\n")
    return root


def write_wsol(root: Path, scenes, split: str = "test", masks: bool = False) -> Path:
    """wsolevaluation: metadata/TOY/<split>/*.txt, images in dataset/TOY/<split>/; with ``masks`` the
    OpenImages style (localization.txt lists mask files)."""
    meta = root / "metadata" / "TOY" / split
    data = root / "dataset" / "TOY"
    meta.mkdir(parents=True, exist_ok=True)
    ids, loc, sizes, labels = [], [], [], []
    for name, img, boxes in scenes:
        iid = f"{split}/{name}.jpg"
        _jpg(data / iid, img)
        ids.append(iid)
        sizes.append(f"{iid},{img.shape[1]},{img.shape[0]}")
        labels.append(f"{iid},3")
        if masks:
            m = np.zeros(img.shape[:2], np.uint8)
            for x1, y1, x2, y2 in boxes.astype(int):
                m[y1:y2 + 1, x1:x2 + 1] = 255
            mrel = f"{split}/masks/{name}.png"
            (data / mrel).parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(data / mrel), m)
            loc.append(f"{iid},{mrel},")
        else:
            loc += [f"{iid},{x1:g},{y1:g},{x2:g},{y2:g}" for x1, y1, x2, y2 in boxes]
    for fname, lines in (("image_ids.txt", ids), ("localization.txt", loc), ("image_sizes.txt", sizes),
                         ("class_labels.txt", labels)):
        (meta / fname).write_text("\n".join(lines) + "\n")
    return root / "metadata" / "TOY"


def rle_counts(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE of a bool mask: run lengths of the column-major pixels, zeros first."""
    flat = np.asarray(mask, bool).flatten(order="F")
    counts, current, run = [], False, 0
    for v in flat:
        if v != current:
            counts.append(run)
            current, run = v, 0
        run += 1
    counts.append(run)
    return counts


def write_coco(root: Path, scenes) -> Path:
    """COCO JSON with rectangle polygons as segmentations (so PxAP applies) and one crowd annotation (an
    uncompressed RLE over the top-left 5 x 5 pixels of the first image). Polygons are outlines in COCO's
    continuous coordinates: the inclusive box x1..x2 is the outline x1 .. x2 + 1."""
    images, anns = [], []
    for i, (name, img, boxes) in enumerate(scenes, start=1):
        _jpg(root / "images" / f"{name}.jpg", img)
        images.append({"id": i, "file_name": f"{name}.jpg", "height": img.shape[0], "width": img.shape[1]})
        for x1, y1, x2, y2 in boxes:
            poly = [x1, y1, x2 + 1, y1, x2 + 1, y2 + 1, x1, y2 + 1]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                         "bbox": [x1, y1, x2 - x1 + 1, y2 - y1 + 1], "segmentation": [poly]})
    H, W = scenes[0][1].shape[:2]
    crowd = np.zeros((H, W), bool)
    crowd[:5, :5] = True
    anns.append({"id": len(anns) + 1, "image_id": 1, "category_id": 1, "iscrowd": 1, "bbox": [0, 0, 5, 5],
                 "segmentation": {"counts": rle_counts(crowd), "size": [H, W]}})
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    data = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "thing"}]}
    path = root / "annotations" / "instances_val.json"
    path.write_text(json.dumps(data))
    return path
