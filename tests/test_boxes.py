"""Heatmap to boxes against PyTorch's aligned-corner upsampling and a plain wsolevaluation-style loop."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from uolrps.runtime.boxes import boxes_from_map8, heatmap_to_boxes, map8, upsample


def reference(hm: np.ndarray, size, t: float, multi: bool = False) -> np.ndarray:
    H, W = size
    up = F.interpolate(torch.from_numpy(hm)[None, None], size=size, mode="bilinear", align_corners=True)[0, 0].numpy()
    m8 = (up * 255).astype(np.uint8)
    _, mask = cv2.threshold(m8, int(t * m8.max()), 255, cv2.THRESH_BINARY)
    contours, _ = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return np.zeros((0, 4))
    if not multi:
        contours = [max(contours, key=cv2.contourArea)]
    out = []
    for c in contours:
        x, y, w, h = cv2.boundingRect(c)
        out.append([x, y, min(x + w, W - 1), min(y + h, H - 1)])
    return np.array(out, dtype=float)


@pytest.mark.parametrize("grid, size", [((7, 7), (480, 640)), ((14, 20), (224, 320)), ((1, 1), (5, 9)), ((7, 9), (7, 9))])
def test_upsample_equals_torch_aligned_corners(grid, size):
    hm = np.random.default_rng(0).random(grid).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(hm)[None, None], size=size, mode="bilinear", align_corners=True)[0, 0].numpy()
    np.testing.assert_allclose(upsample(hm, size), ref, atol=2e-6)
    m8, s255 = map8(hm, size)
    assert m8.dtype == np.uint8 and np.abs(s255 / 255.0 - ref).max() < 2e-6


def test_boxes_equal_reference_on_random_maps():
    rng = np.random.default_rng(1)
    same = 0
    for i in range(200):
        hm = cv2.GaussianBlur(rng.random((7, 7)).astype(np.float32), (3, 3), 0)
        hm = (hm - hm.min()) / (hm.max() - hm.min())
        t = float(rng.choice([0.2, 0.35, 0.5, 0.7]))
        got = heatmap_to_boxes(hm, (224, 224), t)[0]
        same += np.array_equal(got, reference(hm, (224, 224), t))
    assert same >= 198  # float rounding may move an 8-bit level at a pixel or two


@pytest.mark.parametrize("hm, expected", [
    (np.zeros((7, 7), np.float32), 0),  # nothing above the threshold: no box
    (np.ones((7, 7), np.float32), 1),  # everything: one box, the whole frame
])
def test_empty_and_full_maps(hm, expected):
    boxes, scores, m8 = heatmap_to_boxes(hm, (48, 64), 0.5)
    assert len(boxes) == len(scores) == expected and m8.shape == (48, 64)
    if expected:
        assert boxes[0].tolist() == [0, 0, 63, 47] and scores[0] == pytest.approx(1.0)


def test_multi_returns_every_region_largest_first():
    m8 = np.zeros((50, 80), np.uint8)
    m8[5:10, 5:10] = 200  # small
    m8[20:45, 30:75] = 255  # large
    boxes = boxes_from_map8(m8, 0.5, multi=True)
    assert boxes.tolist() == [[30, 20, 75, 45], [5, 5, 10, 10]]
    assert boxes_from_map8(m8, 0.5).tolist() == [[30, 20, 75, 45]]
    assert boxes_from_map8(m8, 0.5, multi=True, min_area=100).tolist() == [[30, 20, 75, 45]]
