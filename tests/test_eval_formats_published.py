"""Loaders on files written as the data sets publish them (text copied in their layout by hand here, not
written with the loaders' own conventions), and COCO with polygon, RLE and crowd annotations end to end."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from tinymodel import make_tiny_model
from uolrps.eval.datasets import load_dataset
from uolrps.eval.items import load_mask
from uolrps.eval.evaluate import evaluate


def _jpg(path, H, W, box=None):
    """A dark H x W JPEG, with a bright inclusive box (x1, y1, x2, y2) if given."""
    img = np.full((H, W, 3), 15, np.uint8)
    if box is not None:
        x1, y1, x2, y2 = box
        img[y1:y2 + 1, x1:x2 + 1] = 235
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


# ---- PASCAL VOC: the devkit's layout and XML (VOC2012 style, with a person's parts) --------------------
VOC_XML = """<annotation>
\t<folder>VOC2012</folder>
\t<filename>2007_000129.jpg</filename>
\t<source>
\t\t<database>The VOC2007 Database</database>
\t\t<annotation>PASCAL VOC2007</annotation>
\t\t<image>flickr</image>
\t</source>
\t<size>
\t\t<width>334</width>
\t\t<height>500</height>
\t\t<depth>3</depth>
\t</size>
\t<segmented>1</segmented>
\t<object>
\t\t<name>bicycle</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>0</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox>
\t\t\t<xmin>70</xmin>
\t\t\t<ymin>202</ymin>
\t\t\t<xmax>255</xmax>
\t\t\t<ymax>500</ymax>
\t\t</bndbox>
\t</object>
\t<object>
\t\t<name>person</name>
\t\t<pose>Frontal</pose>
\t\t<truncated>1</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox>
\t\t\t<xmin>1</xmin>
\t\t\t<ymin>1</ymin>
\t\t\t<xmax>66</xmax>
\t\t\t<ymax>370</ymax>
\t\t</bndbox>
\t\t<part>
\t\t\t<name>head</name>
\t\t\t<bndbox>
\t\t\t\t<xmin>10</xmin>
\t\t\t\t<ymin>20</ymin>
\t\t\t\t<xmax>40</xmax>
\t\t\t\t<ymax>60</ymax>
\t\t\t</bndbox>
\t\t</part>
\t</object>
</annotation>
"""


def test_voc_devkit_layout_and_xml(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2012"
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "2007_000129.xml").write_text(VOC_XML)
    (root / "Annotations" / "2007_000032.xml").write_text(VOC_XML.replace("2007_000129", "2007_000032"))
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "val.txt").write_text("2007_000129\n")
    _jpg(root / "JPEGImages" / "2007_000129.jpg", 500, 334)
    _jpg(root / "JPEGImages" / "2007_000032.jpg", 500, 334)
    ds = load_dataset(root, split="val")
    assert ds.format == "voc" and [it.path.name for it in ds.items] == ["2007_000129.jpg"]
    # the devkit counts pixels from 1: (70, 202, 255, 500) is 0-based (69, 201, 254, 499); the head part is
    # not an object of its own
    np.testing.assert_array_equal(ds.items[0].boxes, [[69, 201, 254, 499], [0, 0, 65, 369]])
    assert ds.items[0].size == (500, 334)


# ---- CUB-200-2011: its text files -------------------------------------------------------------------------
def test_cub_text_files(tmp_path):
    cub = tmp_path / "CUB_200_2011"
    rels = ["001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg",
            "001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg"]
    cub.mkdir()
    (cub / "images.txt").write_text(f"1 {rels[0]}\n2 {rels[1]}\n")
    (cub / "bounding_boxes.txt").write_text("1 60.0 27.0 325.0 304.0\n2 139.0 30.0 153.0 264.0\n")
    (cub / "train_test_split.txt").write_text("1 0\n2 1\n")  # 1 = training image
    (cub / "image_class_labels.txt").write_text("1 1\n2 1\n")
    (cub / "classes.txt").write_text("1 001.Black_footed_Albatross\n")
    _jpg(cub / "images" / rels[0], 347, 500)
    _jpg(cub / "images" / rels[1], 500, 334)
    test = load_dataset(tmp_path)  # the test split by default
    assert test.format == "cub" and [it.path.name for it in test.items] == ["Black_Footed_Albatross_0046_18.jpg"]
    np.testing.assert_array_equal(test.items[0].boxes, [[60, 27, 384, 330]])  # x + width - 1, y + height - 1
    train = load_dataset(tmp_path, split="train")
    np.testing.assert_array_equal(train.items[0].boxes, [[139, 30, 291, 293]])


# ---- wsolevaluation: metadata/<set>/<split>/*.txt and dataset/<set>/ ---------------------------------------
def test_wsolevaluation_metadata_boxes_and_masks(tmp_path):
    meta = tmp_path / "metadata" / "CUB" / "test"
    meta.mkdir(parents=True)
    iid = "001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg"
    (meta / "image_ids.txt").write_text(iid + "\n")
    (meta / "class_labels.txt").write_text(f"{iid},0\n")
    (meta / "image_sizes.txt").write_text(f"{iid},500,347\n")
    (meta / "localization.txt").write_text(f"{iid},60,27,385,331\n")  # taken as they are
    _jpg(tmp_path / "dataset" / "CUB" / iid, 347, 500)
    ds = load_dataset(tmp_path / "metadata" / "CUB")
    assert ds.format == "wsol" and ds.items[0].size == (347, 500) and ds.items[0].label == "0"
    np.testing.assert_array_equal(ds.items[0].boxes, [[60, 27, 385, 331]])
    # OpenImages30k: masks (and ignore masks) instead of boxes
    om = tmp_path / "metadata" / "OpenImages" / "test"
    om.mkdir(parents=True)
    oid = "test/01b3e5f1a0ae8e4e.jpg"
    (om / "image_ids.txt").write_text(oid + "\n")
    (om / "class_labels.txt").write_text(f"{oid},5\n")
    (om / "image_sizes.txt").write_text(f"{oid},40,30\n")
    (om / "localization.txt").write_text(f"{oid},test/masks/01b3e5f1a0ae8e4e_m0.png,test/ignore/01b3e5f1a0ae8e4e.png\n")
    data = tmp_path / "dataset" / "OpenImages"
    _jpg(data / oid, 30, 40)
    m, ig = np.zeros((30, 40), np.uint8), np.zeros((30, 40), np.uint8)
    m[5:15, 10:30] = 255
    ig[20:25, 0:5] = 255
    for p, arr in ((data / "test/masks/01b3e5f1a0ae8e4e_m0.png", m), (data / "test/ignore/01b3e5f1a0ae8e4e.png", ig)):
        p.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(p), arr)
    ods = load_dataset(tmp_path / "metadata" / "OpenImages")
    np.testing.assert_array_equal(ods.items[0].boxes, [[10, 5, 29, 14]])  # the mask's extent
    fg, ignore = load_mask(ods.items[0], (30, 40))
    assert (fg == (m > 0)).all() and (ignore == (ig > 0)).all()


# ---- COCO: instances_val2017.json layout with polygons, compressed and uncompressed RLE, crowd ------------
def _uncompressed_rle(mask):
    """COCO's uncompressed RLE written from its definition: run lengths over column-major pixels, zeros first."""
    flat = mask.flatten(order="F").astype(int)
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return runs if flat[0] == 0 else [0] + runs


def _coco(tmp_path):
    from pycocotools import mask as coco_mask

    H, W = 60, 80
    boxes = {1: (10, 10, 39, 29), 2: (40, 20, 69, 49), 3: (5, 30, 34, 54), 4: (0, 0, 20, 20)}
    for i, b in boxes.items():
        _jpg(tmp_path / "val2017" / f"{i:012d}.jpg", H, W, b)
    img3 = cv2.imread(str(tmp_path / "val2017" / "000000000003.jpg"))
    img3[0:10, 60:80] = 235  # the crowd is visible: the model fires there too
    assert cv2.imwrite(str(tmp_path / "val2017" / "000000000003.jpg"), img3)
    rect = np.zeros((H, W), np.uint8)
    rect[20:50, 40:70] = 1  # image 2's object, as a compressed RLE (COCO's string form)
    compressed = coco_mask.encode(np.asfortranarray(rect))
    crowd = np.zeros((H, W), bool)
    crowd[0:10, 60:80] = True  # image 3: a crowd region in the top right
    crowd4 = np.zeros((H, W), bool)
    crowd4[0:21, 0:21] = True
    anns = [
        {"segmentation": [[10.0, 10.0, 40.0, 10.0, 40.0, 30.0, 10.0, 30.0]], "area": 600.0, "iscrowd": 0,
         "image_id": 1, "bbox": [10.0, 10.0, 30.0, 20.0], "category_id": 18, "id": 101},
        {"segmentation": {"size": [H, W], "counts": compressed["counts"].decode("ascii")}, "area": 900.0,
         "iscrowd": 0, "image_id": 2, "bbox": [40.0, 20.0, 30.0, 30.0], "category_id": 18, "id": 102},
        {"segmentation": [[5.0, 30.0, 35.0, 30.0, 35.0, 55.0, 5.0, 55.0]], "area": 750.0, "iscrowd": 0,
         "image_id": 3, "bbox": [5.0, 30.0, 30.0, 25.0], "category_id": 1, "id": 103},
        {"segmentation": {"counts": _uncompressed_rle(crowd), "size": [H, W]}, "area": 200.0, "iscrowd": 1,
         "image_id": 3, "bbox": [60.0, 0.0, 20.0, 10.0], "category_id": 1, "id": 104},
        {"segmentation": {"counts": _uncompressed_rle(crowd4), "size": [H, W]}, "area": 441.0, "iscrowd": 1,
         "image_id": 4, "bbox": [0.0, 0.0, 21.0, 21.0], "category_id": 1, "id": 105},
    ]
    data = {
        "info": {"description": "COCO 2017 Dataset", "url": "http://cocodataset.org", "version": "1.0",
                 "year": 2017, "contributor": "COCO Consortium", "date_created": "2017/09/01"},
        "licenses": [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1,
                      "name": "Attribution-NonCommercial-ShareAlike License"}],
        "images": [{"license": 1, "file_name": f"{i:012d}.jpg", "coco_url": "", "height": H, "width": W,
                    "date_captured": "2013-11-14 17:02:52", "flickr_url": "", "id": i} for i in boxes],
        "annotations": anns,
        "categories": [{"supercategory": "person", "id": 1, "name": "person"},
                       {"supercategory": "animal", "id": 18, "name": "dog"}],
    }
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    return tmp_path, rect.astype(bool), crowd


def test_coco_polygons_rle_and_crowd_decode_as_drawn(tmp_path):
    root, rect, crowd = _coco(tmp_path)
    ds = load_dataset(root)
    assert ds.format == "coco" and ds.has_masks
    by = {it.path.name: it for it in ds.items}
    assert sorted(by) == ["000000000001.jpg", "000000000002.jpg", "000000000003.jpg"]
    fg1, ig1 = load_mask(by["000000000001.jpg"], (60, 80))
    want1 = np.zeros((60, 80), bool)
    want1[10:30, 10:40] = True  # the outline 10..40 x 10..30 covers pixels 10..39 x 10..29
    assert (fg1 == want1).all() and ig1 is None
    fg2, _ = load_mask(by["000000000002.jpg"], (60, 80))
    assert (fg2 == rect).all()
    fg3, ig3 = load_mask(by["000000000003.jpg"], (60, 80))
    assert fg3.sum() == 30 * 25 and (ig3 == crowd).all()
    np.testing.assert_array_equal(by["000000000003.jpg"].boxes, [[5, 30, 34, 54]])  # the crowd box is not GT
    listed = {(p.kind, p.file) for p in ds.problems}
    assert listed == {("crowd region ignored", "000000000003.jpg"), ("crowd region ignored", "000000000004.jpg"),
                      ("crowd annotations only", "000000000004.jpg")}


def test_coco_evaluates_with_pxap_and_crowd_ignored(tmp_path):
    from uolrps.eval import metrics as M
    from uolrps.runtime import Localizer
    from uolrps.core.boxes import map8

    root, _, _ = _coco(tmp_path / "d")
    model = make_tiny_model(tmp_path / "m.onnx")
    res = evaluate(root, model, protocol="authors")
    assert res["n_images"] == 3 and res["pixel"]["n_images"] == 3 and res["pixel"]["PxAP"] is not None
    kinds = sorted(s["kind"] for s in res["skipped"])
    assert kinds == ["crowd annotations only", "crowd region ignored", "crowd region ignored"]
    # PxAP from the masks as drawn here, the crowd pixels of image 3 left out
    acc = M.PixelAccumulator()
    ds = load_dataset(root)
    with Localizer(model) as loc:
        for it in ds.items:
            bgr = cv2.imread(str(it.path))
            _, s255 = map8(loc.heatmaps([bgr])[0, 0], bgr.shape[:2])
            fg, ig = load_mask(it, bgr.shape[:2])
            acc.add(s255 / 255.0, fg, ig)
    assert res["pixel"]["PxAP"] == pytest.approx(acc.summary()["PxAP"])
    crowd_as_background = M.PixelAccumulator()
    with Localizer(model) as loc:
        for it in ds.items:
            bgr = cv2.imread(str(it.path))
            _, s255 = map8(loc.heatmaps([bgr])[0, 0], bgr.shape[:2])
            crowd_as_background.add(s255 / 255.0, load_mask(it, bgr.shape[:2])[0])
    assert crowd_as_background.summary()["PxAP"] != pytest.approx(res["pixel"]["PxAP"])
