"""Metric sweeps against a straightforward per-threshold loop written here, plus the degenerate cases."""

from __future__ import annotations

import numpy as np
import pytest

from uolrps.eval import metrics as M
from uolrps.core.boxes import boxes_from_map8, heatmap_to_boxes, map8


def iou_loop(a, b) -> float:
    ix = min(a[2], b[2]) - max(a[0], b[0]) + 1
    iy = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inter = max(ix, 0) * max(iy, 0)
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    return inter / union if union > 0 else 0.0


def best_iou_loop(hm, size, gt, t, multi) -> float:
    """Boxes at one threshold with the runtime's public function, then every box against every GT box. The
    authors' protocol (the largest box) scores it unclipped, wsolevaluation's (every box) clipped."""
    boxes = boxes_from_map8(map8(hm, size)[0], float(t), multi=multi, clip=multi)
    return max((iou_loop(b, g) for b in boxes for g in gt), default=0.0)


def blobs(h, w, rng, k=2):
    """A min-max normalised map with ``k`` Gaussian blobs (several contours at some thresholds)."""
    yy, xx = np.mgrid[0:h, 0:w]
    m = np.zeros((h, w))
    for _ in range(k):
        cy, cx, s = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.6, 2.0)
        m += rng.uniform(0.5, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    m += 0.05 * rng.random((h, w))
    return ((m - m.min()) / (m.max() - m.min())).astype(np.float32)


@pytest.fixture(scope="module")
def cases():
    rng = np.random.default_rng(3)
    out = []
    for i, (H, W) in enumerate([(40, 56), (33, 21), (48, 48), (25, 60), (30, 30)]):
        gt = []
        for _ in range(1 + i % 2):
            x1, y1 = rng.integers(0, W // 2), rng.integers(0, H // 2)
            gt.append([x1, y1, rng.integers(x1, W), rng.integers(y1, H)])
        out.append((blobs(7, 7, rng, k=1 + i % 3), (H, W), np.array(gt, float)))
    for t in (0.3, 0.6):  # ground truth that some thresholds hit exactly
        hm = blobs(7, 7, rng, k=2)
        out.append((hm, (36, 44), heatmap_to_boxes(hm, (36, 44), t)[0].astype(float)))
    out.append((np.zeros((7, 7), np.float32), (30, 40), np.array([[0, 0, 5, 5.0]])))  # constant map: no box
    return out


def test_box_iou_matches_loop():
    rng = np.random.default_rng(0)
    a = np.sort(rng.uniform(0, 50, (7, 4)).reshape(7, 2, 2), axis=1).transpose(0, 2, 1).reshape(7, 4)[:, [0, 2, 1, 3]]
    b = np.vstack([a[:2], [[0, 0, 0, 0], [60, 60, 70, 70]]])
    got = M.box_iou(a, b)
    want = [[iou_loop(x, y) for y in b] for x in a]
    np.testing.assert_allclose(got, want)
    assert got[0, 0] == pytest.approx(1.0) and M.box_iou(a, np.zeros((0, 4))).shape == (7, 0)


@pytest.mark.parametrize("multi, thresholds", [(False, M.AUTHORS_THRESHOLDS),
                                               (True, M.WSOL_THRESHOLDS[::7])])
def test_sweep_matches_per_threshold_loop(cases, multi, thresholds):
    for hm, size, gt in cases:
        got = M.sweep_image(hm, size, gt, thresholds, multi=multi)
        want = [best_iou_loop(hm, size, gt, t, multi) for t in thresholds]
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_constant_heatmap_gives_no_box_at_any_threshold(cases):
    hm, size, gt = cases[-1]
    assert not M.sweep_image(hm, size, gt, M.WSOL_THRESHOLDS, multi=True).any()
    assert not M.sweep_image(hm, size, gt, M.AUTHORS_THRESHOLDS).any()
    res = M.authors_summary(np.zeros((3, len(M.AUTHORS_THRESHOLDS))))
    assert res["MaxBoxAccV2"] == 0.0 and res["threshold"] == M.AUTHORS_THRESHOLDS[0]


def test_sweep_without_ground_truth_is_zero(cases):
    hm, size, _ = cases[0]
    assert not M.sweep_image(hm, size, np.zeros((0, 4)), M.AUTHORS_THRESHOLDS).any()


def test_summaries_match_loop(cases):
    ious_a = np.array([[best_iou_loop(hm, s, g, t, False) for t in M.AUTHORS_THRESHOLDS] for hm, s, g in cases])
    ious_w = np.array([M.sweep_image(hm, s, g, M.WSOL_THRESHOLDS, multi=True) for hm, s, g in cases])
    swept = np.array([M.sweep_image(hm, s, g, M.AUTHORS_THRESHOLDS) for hm, s, g in cases])
    np.testing.assert_allclose(swept, ious_a)
    a = M.authors_summary(swept)
    # authors: one t shared by the three IoUs
    best, best_t = -1.0, None
    for j, t in enumerate(M.AUTHORS_THRESHOLDS):
        accs = [100.0 * sum(ious_a[i, j] >= c for i in range(len(cases))) / len(cases) for c in (0.3, 0.5, 0.7)]
        if sum(accs) / 3 > best + 1e-12:
            best, best_t, best_accs = sum(accs) / 3, t, accs
    assert a["MaxBoxAccV2"] == pytest.approx(best) and a["threshold"] == pytest.approx(best_t)
    assert [a["IoU30"], a["IoU50"], a["IoU70"]] == pytest.approx(best_accs)
    # wsol: a best t per IoU
    w = M.wsol_summary(ious_w)
    per = [max(100.0 * sum(ious_w[i, j] >= c for i in range(len(cases))) / len(cases)
               for j in range(len(M.WSOL_THRESHOLDS))) for c in (0.3, 0.5, 0.7)]
    assert w["MaxBoxAccV2"] == pytest.approx(sum(per) / 3)
    assert [w["IoU30"], w["IoU50"], w["IoU70"]] == pytest.approx(per)
    assert w["threshold"] == w["thresholds"]["IoU50"] and w["threshold_step"] == M.WSOL_STEP


def test_accuracies_empty_and_inclusive_edge():
    assert M.accuracies(np.zeros((0, 5))).shape == (5, 3)
    acc = M.accuracies(np.array([[0.5], [0.49999]]))
    assert acc[0].tolist() == [100.0, 50.0, 0.0]  # IoU >= 0.5 counts


def _pixel_loop(maps, masks, bins=M.PIXEL_BINS):
    """Precision/recall at every threshold k / bins by direct counting, then the step integral."""
    ap_prec, rec, ious = [], [], []
    scores = np.concatenate([m.ravel() for m in maps])
    truth = np.concatenate([m.ravel() for m in masks])
    for k in range(bins):
        pred = scores >= k / bins
        tp, fp = (pred & truth).sum(), (pred & ~truth).sum()
        ap_prec.append(tp / (tp + fp) if tp + fp else 1.0)
        rec.append(tp / truth.sum())
        ious.append(tp / (truth.sum() + fp))
    rec = np.array(rec + [0.0])
    return sum(p * (rec[k] - rec[k + 1]) for k, p in enumerate(ap_prec)) * 100, max(ious) * 100


def test_pxap_and_peak_iou_match_loop():
    rng = np.random.default_rng(1)
    maps = [rng.integers(0, 9, (12, 15)) / 8.0 for _ in range(3)]  # exact binary fractions: no edge ambiguity
    masks = [m + 0.3 * rng.random(m.shape) > 0.7 for m in maps]
    acc = M.PixelAccumulator()
    for m, t in zip(maps, masks):
        acc.add(m, t)
    s = acc.summary()
    ap, peak = _pixel_loop(maps, masks)
    assert s["PxAP"] == pytest.approx(ap) and s["peak_IoU"] == pytest.approx(peak) and s["n_images"] == 3
    perfect = M.PixelAccumulator()
    perfect.add(masks[0].astype(float), masks[0])
    assert perfect.summary()["PxAP"] == pytest.approx(100.0) and perfect.summary()["peak_IoU"] == pytest.approx(100.0)
    ignored = M.PixelAccumulator()
    ignored.add(maps[0], masks[0], ignore=np.ones_like(masks[0]))
    assert ignored.summary()["PxAP"] is None  # nothing left to score


def test_caam_heatmaps_contract():
    rng = np.random.default_rng(0)
    f = np.maximum(rng.normal(size=(3, 5, 4, 6)), 0).astype(np.float32)
    f[2] = 1.0  # constant map -> zeros
    hm = M.caam_heatmaps(f)
    assert hm.shape == (3, 1, 4, 6) and hm.dtype == np.float32
    n = f[0].sum(axis=0)
    np.testing.assert_allclose(hm[0, 0], (n - n.min()) / (n.max() - n.min()), rtol=1e-5, atol=1e-6)
    assert hm[:2].min() == 0 and hm[:2].max() == pytest.approx(1.0) and not hm[2].any()
    with pytest.raises(ValueError, match="N x C x h x w"):
        M.caam_heatmaps(f[0])


def test_feature_norm_heatmaps_are_the_l2_norm():
    rng = np.random.default_rng(1)
    f = np.maximum(rng.normal(size=(2, 7, 3, 5)), 0).astype(np.float32)
    hm = M.feature_norm_heatmaps(f)
    n = np.linalg.norm(f[1], axis=0)
    assert hm.shape == (2, 1, 3, 5)
    np.testing.assert_allclose(hm[1, 0], (n - n.min()) / (n.max() - n.min()), rtol=1e-5, atol=1e-6)
    assert not M.feature_norm_heatmaps(np.ones((1, 4, 2, 2), np.float32)).any()


def test_centre_box_baseline_matches_loop():
    sizes = [(100, 200), (80, 80), (61, 47)]
    gts = [np.array([[50, 25, 149, 74.0]]), np.array([[10, 10, 69, 69.0], [0, 0, 5, 5]]), np.array([[0, 0, 46, 60.0]])]
    res = M.centre_box_baseline(sizes, gts)
    best = -1
    for sw in M.CENTRE_SCALES:
        for sh in M.CENTRE_SCALES:
            ious = []
            for (H, W), gt in zip(sizes, gts):
                bw, bh = max(1, min(W, round(sw * W))), max(1, min(H, round(sh * H)))
                x1, y1 = (W - bw) // 2, (H - bh) // 2
                ious.append(max(iou_loop([x1, y1, x1 + bw - 1, y1 + bh - 1], g) for g in gt))
            score = np.mean([np.mean([i >= c for i in ious]) * 100 for c in (0.3, 0.5, 0.7)])
            best = max(best, score)
    assert res["MaxBoxAccV2"] == pytest.approx(best)
    assert res["MaxBoxAccV2"] > 60  # the first GT is exactly the centred half-size box
    assert 0 < res["width_fraction"] <= 1 and 0 < res["height_fraction"] <= 1


def test_hit_counter_equals_accuracies_of_stacked_rows(cases):
    rows = np.array([M.sweep_image(hm, s, g, M.AUTHORS_THRESHOLDS) for hm, s, g in cases])
    counter = M.HitCounter(len(M.AUTHORS_THRESHOLDS))
    for r in rows:
        counter.add(r)
    np.testing.assert_allclose(counter.acc, M.accuracies(rows))
    assert M.authors_summary(None, acc=counter.acc) == M.authors_summary(rows)
    assert M.wsol_summary(None, M.AUTHORS_THRESHOLDS, acc=counter.acc) == M.wsol_summary(rows, M.AUTHORS_THRESHOLDS)
    assert not M.HitCounter(5).acc.any()
