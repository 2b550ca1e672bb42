"""The published pipelines (wsolevaluation, uolwrps), the authors' unclipped boxes and the map placements:
hand-worked cases first, then the project's ``evaluate`` against the independent references of
tests/reference_protocols.py (which import nothing from uolrps) on the real data sets."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import reference_protocols as R
from conftest import shared
from uolrps.eval import metrics as M
from uolrps.eval import protocols as P
from uolrps.core.boxes import boxes_from_map8, heatmap_to_boxes, map8


# ---- hand-worked cases --------------------------------------------------------------------------------
def test_wsolevaluation_ground_truth_by_hand():
    # 640 x 480 image, S = 224: x * 224 / 640 = 0.35 x, y * 224 / 480 = 0.4667 y, each cut to an int:
    # 100 -> 35, 300 -> 105, 50 -> 23.33 -> 23, 400 -> 186.67 -> 186
    got = P.wsolevaluation_gt(np.array([[100, 50, 300, 400.0]]), (480, 640), (224, 224))
    assert got.tolist() == [[35, 23, 105, 186]]
    assert R.wsolevaluation_gt([(100, 50, 300, 400)], 480, 640, 224) == [(35, 23, 105, 186)]


def test_uolwrps_geometry_and_ground_truth_by_hand():
    assert P.uolwrps_geometry((224, 224)) == ((256, 256), (16, 16))
    # 640 x 480 image to 256 x 256: x * 0.4 - 16, y * 0.5333 - 16, rounded, clipped to [0, 223]:
    # x1 100 -> 24, x2 300 -> 104, y1 50 -> 10.67 -> 11, y2 400 -> 197.33 -> 197
    # the whole image: -16 -> 0, 639 -> 239.6 -> 240 -> 223, 479 -> 239.47 -> 239 -> 223
    got = P.uolwrps_gt(np.array([[100, 50, 300, 400], [0, 0, 639, 479.0]]), (480, 640), (224, 224))
    assert got.tolist() == [[24, 11, 104, 197], [0, 0, 223, 223]]
    # 512 wide: x * 0.5 - 16; x = 81 gives 24.5, which np.round takes to the even 24 (not 25); a box left of
    # the crop (x2 = 10 -> -11) ends at its own clipped x1 = 0
    got = P.uolwrps_gt(np.array([[81, 0, 83, 10], [0, 0, 10, 10.0]]), (512, 512), (224, 224))
    assert got.tolist() == [[24, 0, 26, 0], [0, 0, 0, 0]]
    assert R.uolwrps_gt([(81, 0, 83, 10), (0, 0, 10, 10)], 512, 512) == [(24, 0, 26, 0), (0, 0, 0, 0)]


def test_uolwrps_frame_is_the_centre_crop():
    img = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)  # already R x R: no resize
    np.testing.assert_array_equal(P.uolwrps_frame(img, (224, 224)), img[16:240, 16:240])


def test_authors_box_is_unclipped_by_hand():
    # 2 x 2 map [[0, 0], [0, 1]] on a 3 x 3 frame with aligned corners: 8-bit [[0,0,0],[0,63,127],[0,127,255]].
    # Below t = 0.5 the region above int(t * 255) has the bounding rectangle x = y = 1, w = h = 2: the authors'
    # box is (1, 1, 3, 3), one past the frame; clipped it would be (1, 1, 2, 2). From t = 0.5 only the 255 is left.
    m8 = map8(np.array([[0, 0], [0, 1]], np.float32), (3, 3))[0]
    assert boxes_from_map8(m8, 0.3, clip=False).tolist() == [[1, 1, 3, 3]]
    assert boxes_from_map8(m8, 0.3).tolist() == [[1, 1, 2, 2]]
    assert boxes_from_map8(m8, 0.5, clip=False).tolist() == [[2, 2, 3, 3]]
    # against the ground truth (1, 1, 2, 2): unclipped IoU 4 / 9 below t = 0.5 (IoU30 only), 1 / 7 above;
    # clipped it would have been a perfect 1.0 below 0.5
    gt = np.array([[1, 1, 2, 2.0]])
    ious = M.sweep_map8(m8, gt, M.AUTHORS_THRESHOLDS, multi=False)
    assert ious[0] == pytest.approx(4 / 9) and ious[-1] == pytest.approx(1 / 7)
    assert M.sweep_map8(m8, gt, M.AUTHORS_THRESHOLDS, multi=False, clip=True)[0] == 1.0


def test_uolwrps_pipeline_by_hand():
    # the same map on an input of S = 3 (R = round(3 * 256 / 224) = 3, no crop), an image of 3 x 3 with the
    # ground truth (1, 1, 2, 2): from the case above, t < 0.5 hits IoU 0.3 only, t >= 0.5 nothing:
    # MaxBoxAccV2 = 100 / 3 at t = 0.01, each IoU's own maximum 100, 0, 0
    item = SimpleNamespace(boxes=np.array([[1, 1, 2, 2.0]]))
    hm = np.array([[[0, 0], [0, 1]]], np.float32)
    got = P.run_pipeline("uolwrps", hm, [item], [(3, 3)], (3, 3))
    assert got["MaxBoxAccV2"] == pytest.approx(100 / 3) and got["threshold"] == 0.01
    assert got["IoU_max"] == {"IoU30": 100.0, "IoU50": 0.0, "IoU70": 0.0}
    assert got["placement"] == "authors" and "ICCV 2023" in got["comparable_with"]
    ref = R.uolwrps_pipeline(hm, [(3, 3)], [[(1, 1, 2, 2)]], S=3, R=3)
    assert ref["MaxBoxAccV2"] == pytest.approx(100 / 3) and ref["IoU_max"] == [100.0, 0.0, 0.0]


def test_wsolevaluation_pipeline_constant_map_by_hand():
    # a constant map is all zeros after normalize_scoremap: no contour at any threshold, and wsolevaluation then
    # scores the box (0, 0, 0, 0): a hit for the ground truth (0, 0, 0, 0), IoU 1 / 4 for (0, 0, 1, 1)
    items = [SimpleNamespace(boxes=np.array([[0, 0, 0, 0.0]])), SimpleNamespace(boxes=np.array([[0, 0, 1, 1.0]]))]
    hm = np.full((2, 7, 7), 0.5, np.float32)
    got = P.run_pipeline("wsolevaluation", hm, items, [(224, 224)] * 2, (224, 224))
    assert got["MaxBoxAccV2"] == pytest.approx(50.0) and got["IoU30"] == 50.0
    ref = R.wsolevaluation_pipeline(hm, [(224, 224)] * 2, [[(0, 0, 0, 0)], [(0, 0, 1, 1)]])
    assert ref["MaxBoxAccV2"] == pytest.approx(50.0)


def test_at_threshold_and_per_iou_maxima_by_hand():
    # accuracies at three thresholds (rows) for IoU 0.3 / 0.5 / 0.7: means 33.3, 50, 20 -> MaxBoxAccV2 50 at
    # the second; there the accuracies are 50, 50, 50; each IoU's own maximum is 100, 50, 60
    acc = np.array([[100, 0, 0], [50, 50, 50], [0, 0, 60.0]])
    s = M.authors_summary(None, np.array([0.1, 0.2, 0.3]), acc=acc)
    assert s["MaxBoxAccV2"] == 50 and s["threshold"] == 0.2
    assert s["IoU_at_threshold"] == {"IoU30": 50, "IoU50": 50, "IoU70": 50} == {k: s[k] for k in ("IoU30", "IoU50", "IoU70")}
    assert s["IoU_max"] == {"IoU30": 100, "IoU50": 50, "IoU70": 60}


def test_placements_by_hand():
    # 2 x 2 -> 4 x 4, half-pixel bilinear samples the input at -0.25, 0.25, 0.75, 1.25 (clamped at the edges):
    # weights of the second input 0, 0.25, 0.75, 1 in each direction; the 1 at the bottom right gives their
    # outer product; times 255 and truncated
    hm = np.array([[0, 0], [0, 1]], np.float32)
    w = np.array([0, 0.25, 0.75, 1.0])
    np.testing.assert_array_equal(map8(hm, (4, 4), "bilinear")[0], (np.outer(w, w) * 255).astype(np.uint8))
    # min-max after: the same map already spans 0..1, so nothing changes
    np.testing.assert_array_equal(map8(hm, (4, 4), "bilinear-minmax")[0], map8(hm, (4, 4), "bilinear")[0])
    # bicubic overshoots below 0 next to the step (cubic kernel, a = -0.75): clipped to 0 without min-max
    b = map8(hm, (4, 4), "bicubic")[1]
    assert b.min() == 0.0 and b.max() <= 255.0
    # ... and with min-max after, the lowest value becomes 0 and the highest 255 exactly
    bm = map8(hm, (4, 4), "bicubic-minmax")[0]
    assert bm.min() == 0 and bm.max() == 255
    np.testing.assert_array_equal(bm, (R.wsolevaluation_scoremap(hm, 4) * 255).astype(np.uint8))


def test_unknown_placement_is_refused():
    from uolrps.core.errors import OptionError, UserError
    from uolrps.model.meta import ModelMeta

    with pytest.raises(OptionError, match="upsample"):
        from uolrps.core.boxes import check_placement

        check_placement("nearest")
    with pytest.raises(UserError, match="upsample"):
        ModelMeta(backbone="x", input_size=(224, 224), grid=(7, 7), mean=(0, 0, 0), std=(1, 1, 1), upsample="nearest")
    # a file written before the key existed reads as the authors' placement (the boxes it always had)
    meta = ModelMeta(backbone="x", input_size=(224, 224), grid=(7, 7), mean=(0, 0, 0), std=(1, 1, 1))
    props = meta.to_props()
    del props["uolrps.upsample"]
    assert ModelMeta.from_props(props).upsample == "authors"


# ---- the real data sets -------------------------------------------------------------------------------------
def _reference_inputs(model_path, items):
    """Heatmaps straight from ONNX Runtime for the whole image stretched to the input and for the authors'
    centre crop (RGB, OpenCV's bilinear resize), with each image's size and ground truth."""
    import cv2
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    full, crop, sizes, gts = [], [], [], []
    for path, boxes in items:
        bgr = cv2.imread(str(path))
        H, W = bgr.shape[:2]
        x = cv2.resize(bgr, (224, 224), interpolation=cv2.INTER_LINEAR)
        full.append(sess.run(None, {name: cv2.cvtColor(x, cv2.COLOR_BGR2RGB)[None]})[0][0, 0])
        c = R.uolwrps_crop(bgr)
        crop.append(sess.run(None, {name: cv2.cvtColor(np.ascontiguousarray(c), cv2.COLOR_BGR2RGB)[None]})[0][0, 0])
        sizes.append((H, W))
        gts.append([(min(max(a, 0), W - 1), min(max(b, 0), H - 1), min(max(cc, 0), W - 1), min(max(d, 0), H - 1))
                    for a, b, cc, d in boxes])
    return full, crop, sizes, gts


@pytest.mark.slow
@pytest.mark.parametrize("name", ["imagenet-loc", "raccoon"])
def test_published_pipelines_agree_with_references_on_real_data(efflite0_model, name):
    from test_eval_reference import _gt_imagenet_loc, _gt_voc
    from uolrps.eval.evaluate import evaluate

    root = shared(name)
    reader = _gt_imagenet_loc if name == "imagenet-loc" else _gt_voc
    result = evaluate(root, efflite0_model, protocol="all", upsample="authors", workers=2)
    full, crop, sizes, gts = _reference_inputs(efflite0_model, reader(root))
    assert result["n_images"] == len(full)
    wsolev = R.wsolevaluation_pipeline(full, sizes, gts)
    uolw = R.uolwrps_pipeline(crop, sizes, gts)
    auth = R.authors_maxboxacc([R.map8(h, H, W) for h, (H, W) in zip(full, sizes)], gts)
    got = result["protocols"]
    assert got["wsolevaluation"]["MaxBoxAccV2"] == pytest.approx(wsolev["MaxBoxAccV2"], abs=0.05)
    assert got["uolwrps"]["MaxBoxAccV2"] == pytest.approx(uolw["MaxBoxAccV2"], abs=0.05)
    assert list(got["uolwrps"]["IoU_max"].values()) == pytest.approx(uolw["IoU_max"], abs=0.05)
    assert got["authors"]["MaxBoxAccV2"] == pytest.approx(auth["MaxBoxAccV2"], abs=0.05)
    assert list(got["authors"]["IoU_max"].values()) == pytest.approx(auth["IoU_max"], abs=0.05)


def test_cli_refuses_an_unknown_placement_and_writes_nothing(tmp_path, capsys):
    from tinymodel import make_tiny_model
    from uolrps.cli.main import main

    model = make_tiny_model(tmp_path / "tiny.onnx")
    img = tmp_path / "a.png"
    import cv2

    cv2.imwrite(str(img), np.zeros((20, 30, 3), np.uint8))
    (tmp_path / "b.csv").write_text("image,x1,y1,x2,y2\na.png,1,1,5,5\n")
    out = tmp_path / "r.json"
    assert main(["eval", str(tmp_path / "b.csv"), "--model", str(model), "--upsample", "nearest", "--json", str(out),
                 "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown --upsample 'nearest': use one of authors, bilinear") and not out.exists()
    jsonl = tmp_path / "r.jsonl"
    assert main(["run", "--video", str(img), "--model", str(model), "--upsample", "nearest", "--jsonl", str(jsonl),
                 "-q"]) == 2
    assert "unknown --upsample 'nearest'" in capsys.readouterr().err and not jsonl.exists()


@pytest.mark.slow
@pytest.mark.parametrize("given", [["--upsample", "authors"], []])
def test_run_authors_placement_gives_the_reference_boxes_on_the_clip(efflite0_model, tmp_path, given):
    """run's JSONL boxes with the authors' placement (given, or the model's own: an efflite0 export records
    it) are the boxes of an independent pipeline: aligned-corner upsampling, the largest contour clipped to
    the frame, at the model's stored threshold, as uolrps run has always drawn them."""
    import json

    import cv2
    import onnx
    import onnxruntime as ort

    from uolrps.cli.main import main

    video = shared("video", "raccoon_pan.mp4")
    out = tmp_path / "r.jsonl"
    assert main(["run", "--video", str(video), "--model", str(efflite0_model), *given, "--max-frames", "12",
                 "--jsonl", str(out), "-q"]) == 0
    got = [json.loads(line)["boxes"] for line in out.read_text().splitlines()]
    props = {p.key: p.value for p in onnx.load(str(efflite0_model), load_external_data=False).metadata_props}
    t = float(json.loads(props["uolrps.threshold"]))
    sess = ort.InferenceSession(str(efflite0_model), providers=["CPUExecutionProvider"])
    cap = cv2.VideoCapture(str(video))
    want = []
    for _ in range(len(got)):
        ok, bgr = cap.read()
        assert ok
        H, W = bgr.shape[:2]
        x = cv2.cvtColor(cv2.resize(bgr, (224, 224), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)[None]
        m8 = R.map8(sess.run(None, {sess.get_inputs()[0].name: x})[0][0, 0], H, W)
        mask = cv2.threshold(m8, int(t * int(m8.max())), 255, cv2.THRESH_BINARY)[1]
        contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
        bx, by, bw, bh = cv2.boundingRect(max(contours, key=cv2.contourArea))
        want.append([[bx, by, min(bx + bw, W - 1), min(by + bh, H - 1)]])
    cap.release()
    assert len(got) == 12 and got == want


def test_eval_and_run_read_the_placement_from_the_model(tmp_path):
    """A model whose metadata says bilinear: the Localizer (run) and evaluate place its maps that way unless
    told otherwise; a threshold chosen with another placement is not written into it."""
    import cv2
    import onnx

    from tinymodel import make_tiny_model
    from uolrps.eval.evaluate import evaluate
    from uolrps.runtime import Localizer

    path = make_tiny_model(tmp_path / "tiny.onnx")
    m = onnx.load(str(path))
    for p in m.metadata_props:
        if p.key == "uolrps.upsample":
            p.value = '"bilinear"'
    onnx.save(m, str(path))
    rng = np.random.default_rng(1)
    rows = ["image,x1,y1,x2,y2"]
    for i in range(4):
        img = np.full((48, 80, 3), 20, np.uint8)
        x, y = int(rng.integers(5, 40)), int(rng.integers(5, 20))
        img[y:y + 20, x:x + 30] = 230
        cv2.imwrite(str(tmp_path / f"{i}.png"), img)
        rows.append(f"{i}.png,{x},{y},{x + 29},{y + 19}")
    (tmp_path / "b.csv").write_text("\n".join(rows) + "\n")
    with Localizer(path) as loc:
        assert loc.upsample == "bilinear"
        frame = cv2.imread(str(tmp_path / "0.png"))
        hm = loc.heatmaps([frame])[0, 0]
        want = heatmap_to_boxes(hm, (48, 80), loc.threshold, outer_only=True, placement="bilinear")[0]
        assert len(want)
        np.testing.assert_array_equal(loc(frame).boxes, want)
    with Localizer(path, upsample="authors") as loc:
        assert loc.upsample == "authors"
    res = evaluate(tmp_path / "b.csv", path, protocol="authors")
    assert res["upsample"] == "bilinear"
    assert evaluate(tmp_path / "b.csv", path, protocol="authors", upsample="authors")["upsample"] == "authors"
    with pytest.raises(Exception, match="places them by bilinear"):
        evaluate(tmp_path / "b.csv", path, protocol="authors", upsample="authors", write_threshold=True)
