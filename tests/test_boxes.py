"""Heatmap to boxes against PyTorch's aligned-corner upsampling and a plain wsolevaluation-style loop."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from uolrps.core.boxes import boxes_from_map8, heatmap_to_boxes, map8, upsample


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


def test_runtime_multi_boxes_come_from_outer_contours_eval_keeps_every_contour():
    """A ring: the region has a hole. The runtime gives one box (holes are not objects); the wsolevaluation
    protocol (eval) keeps the hole's contour too, as that protocol defines."""
    from uolrps.core.boxes import boxes_from_map8

    m = np.zeros((60, 80), np.uint8)
    m[10:50, 10:70] = 250
    m[20:40, 25:55] = 0  # the hole: 30 x 20 pixels, over 1% of the frame
    runtime = boxes_from_map8(m, 0.5, multi=True, outer_only=True)
    protocol = boxes_from_map8(m, 0.5, multi=True)
    np.testing.assert_array_equal(runtime, [[10, 10, 70, 50]])  # the protocol's x2 = x + w
    assert len(protocol) == 2 and [10, 10, 70, 50] in protocol.tolist()
    hm = np.zeros((6, 8), np.float32)
    hm[1:5, 1:7] = 1.0
    hm[2:4, 3:5] = 0.0
    b, _, _ = heatmap_to_boxes(hm, (60, 80), 0.5, multi=True, outer_only=True)
    assert len(b) == 1


def test_one_batching_helper_pads_fixed_batches_and_chunks():
    from uolrps.core.batching import pad_batch, run_batched

    calls = []

    def fn(x):  # a "model" with a fixed batch of 4: doubles its input
        calls.append(len(x))
        assert len(x) == 4
        return x * 2

    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    np.testing.assert_array_equal(run_batched(fn, x, 4, fixed=True), x * 2)
    assert calls == [4, 4, 4]  # 4 + 4 + (2 padded to 4)
    np.testing.assert_array_equal(pad_batch(x[:1], 3), [[0], [0], [0]])
    seen = []
    run_batched(lambda b: seen.append(len(b)) or b, x, 4)  # any size up to 4: no padding
    assert seen == [4, 4, 2]
    assert run_batched(lambda b: b + 1, x, None).shape == (10, 1)
