"""The project's MaxBoxAccV2 against both protocols written from their definitions (tests/reference_protocols.py,
which imports nothing from uolrps): first on hand-worked cases, then on the real data sets."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import reference_protocols as R
from conftest import shared
from uolrps.eval import metrics as M
from uolrps.core.boxes import map8 as project_map8


# ---- hand-worked cases --------------------------------------------------------------------------------
def test_upsampling_and_8bit_map_by_hand():
    # 2 x 2 -> 3 x 3 with aligned corners samples the input at 0, 0.5, 1 in each direction:
    # centre 0.25 (a quarter of the 1), edge midpoints 0.5, the corner 1; times 255, truncated: 63, 127, 255.
    hm = np.array([[0, 0], [0, 1]], dtype=np.float32)
    want_up = [[0, 0, 0], [0, 0.25, 0.5], [0, 0.5, 1.0]]
    want8 = [[0, 0, 0], [0, 63, 127], [0, 127, 255]]
    np.testing.assert_allclose(R.upsample_aligned(hm, 3, 3), want_up)
    np.testing.assert_array_equal(R.map8(hm, 3, 3), want8)
    np.testing.assert_array_equal(project_map8(hm, (3, 3))[0], want8)


def _two_blobs() -> np.ndarray:
    """5 x 6 map: a 3 wide x 2 tall block of 200 at x 1..3, y 1..2 and one pixel of 250 at x 5, y 4."""
    m = np.zeros((5, 6), np.uint8)
    m[1:3, 1:4] = 200
    m[4, 5] = 250
    return m


def test_boxes_by_hand():
    m = _two_blobs()
    # t = 0.5: level int(0.5 * 250) = 125, both regions are above it; the block's contour (a 2 x 1 rectangle
    # through the pixel centres) has area 2, the single pixel's 0, so the block is the largest. The protocol's
    # box is x, y, x + w, y + h of the bounding rectangle (one past the region, as wsolevaluation writes it),
    # clipped to W - 1, H - 1: the block (x 1..3, y 1..2) gives (1, 1, 4, 3), the pixel (5, 4, 6, 5) -> (5, 4, 5, 4).
    assert R.boxes_at(m, 0.5, all_contours=False) == [(1, 1, 4, 3)]
    assert sorted(R.boxes_at(m, 0.5, all_contours=True)) == [(1, 1, 4, 3), (5, 4, 5, 4)]
    # t = 0.8: level 200, the block is not strictly above it: only the pixel is left; the authors' largest
    # box is not clipped (validation.py scores x + w, y + h as they are): (5, 4, 6, 5), one past the map
    assert R.boxes_at(m, 0.8, all_contours=False) == [(5, 4, 6, 5)]
    assert R.boxes_at(m, 0.8, all_contours=True) == [(5, 4, 5, 4)]
    assert R.boxes_at(np.zeros((4, 4), np.uint8), 0.5, all_contours=True) == [(0, 0, 0, 0)]  # no contour
    # inclusive IoU: (1,1,4,3) has 4 x 3 = 12 pixels, (1,0,4,4) 4 x 5 = 20, they share 12
    assert R.iou((1, 1, 4, 3), (1, 0, 4, 4)) == pytest.approx(12 / 20)
    assert R.iou((5, 4, 5, 4), (5, 4, 5, 4)) == 1.0


# Three images with the two-blob map. Below t = 0.8 the largest box is the block, the pixel is a second box;
# from t = 0.8 only the pixel's box is left.
#   image 1, GT = (1,1,4,3):          largest: IoU 1 then 0;       all contours: 1 then 0
#   image 2, GT = pixel (5,4,5,4):    largest: IoU 0 then 1/4;     all contours: 1 then 1
#     (the authors' largest box at t >= 0.8 is (5,4,6,5), unclipped: 1 of its 4 pixels is the GT)
#   image 3, GT = (1,0,4,4):          largest: IoU 0.6 then 0;     all contours: 0.6 then 0
# Authors (one t for the three IoUs): t < 0.8 gives 2/3, 2/3, 1/3 correct -> mean 55.56; t >= 0.8 gives
# no hit at any IoU (image 2's IoU is 1/4) -> 0; MaxBoxAccV2 = 55.56 at the first threshold, 0.01.
# wsolevaluation (a t per IoU): t < 0.8 gives 3/3, 3/3, 2/3 -> best per IoU 100, 100, 66.67 -> 88.89.
HAND_GTS = [[(1, 1, 4, 3)], [(5, 4, 5, 4)], [(1, 0, 4, 4)]]


def test_both_protocols_by_hand_reference_and_project():
    maps = [_two_blobs()] * 3
    auth = R.authors_maxboxacc(maps, HAND_GTS)
    wsol = R.wsol_maxboxacc(maps, HAND_GTS)
    assert auth["MaxBoxAccV2"] == pytest.approx(500 / 9) and auth["threshold"] == 0.01
    assert wsol["MaxBoxAccV2"] == pytest.approx(800 / 9) and wsol["acc"] == pytest.approx([100, 100, 200 / 3])
    a = np.array([M.sweep_map8(m, np.array(g, float), M.AUTHORS_THRESHOLDS, multi=False) for m, g in zip(maps, HAND_GTS)])
    w = np.array([M.sweep_map8(m, np.array(g, float), M.WSOL_THRESHOLDS, multi=True) for m, g in zip(maps, HAND_GTS)])
    assert M.authors_summary(a)["MaxBoxAccV2"] == pytest.approx(500 / 9)
    assert M.authors_summary(a)["threshold"] == 0.01
    assert M.wsol_summary(w)["MaxBoxAccV2"] == pytest.approx(800 / 9)


# ---- the real data sets: the project's `evaluate` against the references --------------------------------
def _gt_imagenet_loc(root):
    gts: dict[str, list] = {}
    with open(root / "boxes.csv", newline="") as f:
        for row in csv.DictReader(f):
            gts.setdefault(row["image"], []).append(tuple(float(row[k]) for k in ("x1", "y1", "x2", "y2")))
    return [(root / "images" / name, boxes) for name, boxes in sorted(gts.items())]


def _gt_voc(root):
    out = []
    for xml in sorted((root / "annotations").glob("*.xml")):
        tree = ET.parse(xml).getroot()
        boxes = [tuple(float(o.find("bndbox").find(k).text) - 1 for k in ("xmin", "ymin", "xmax", "ymax"))
                 for o in tree.iter("object")]  # the VOC devkit counts pixels from 1
        out.append((root / "images" / tree.find("filename").text, boxes))
    return out


def _reference_maps(model_path, items):
    """Heatmaps straight from ONNX Runtime (RGB, stretched to the input with OpenCV's bilinear resize), the
    8-bit maps on each image and its ground truth clipped to the image."""
    import cv2
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    shape = sess.get_inputs()[0].shape
    size = (int(shape[2]), int(shape[1]))
    maps8, gts = [], []
    for path, boxes in items:
        bgr = cv2.imread(str(path))
        H, W = bgr.shape[:2]
        x = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size, interpolation=cv2.INTER_LINEAR)[None]
        hm = sess.run(None, {sess.get_inputs()[0].name: x})[0][0, 0]
        maps8.append(R.map8(hm, H, W))
        gts.append([(min(max(a, 0), W - 1), min(max(b, 0), H - 1), min(max(c, 0), W - 1), min(max(d, 0), H - 1))
                    for a, b, c, d in boxes])
    return maps8, gts


@pytest.mark.slow
@pytest.mark.parametrize("name, reader", [("imagenet-loc", _gt_imagenet_loc), ("raccoon", _gt_voc)])
def test_project_agrees_with_references_on_real_data(efflite0_model, name, reader):
    from uolrps.eval.evaluate import evaluate

    root = shared(name)
    result = evaluate(root, efflite0_model, protocol="both")
    maps8, gts = _reference_maps(efflite0_model, reader(root))
    assert result["n_images"] == len(maps8)
    auth, wsol = R.authors_maxboxacc(maps8, gts), R.wsol_maxboxacc(maps8, gts)
    assert result["protocols"]["authors"]["MaxBoxAccV2"] == pytest.approx(auth["MaxBoxAccV2"], abs=0.01)
    assert result["protocols"]["wsol"]["MaxBoxAccV2"] == pytest.approx(wsol["MaxBoxAccV2"], abs=0.01)
