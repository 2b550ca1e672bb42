"""`uolrps bench`: the twins beside MODEL on every backend that runs here, timings, agreement with the FP32 ONNX
Runtime result computed independently here, what is not measured and why; an engine beside MODEL measured through
the TensorRT and pycuda fakes (what a GPU machine adds)."""

from __future__ import annotations

import importlib.util

import json
import sys
import types

import cv2
import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from fake_pycuda import make_pycuda  # noqa: E402
from fake_tensorrt import make_trt  # noqa: E402
from test_export_gates import _inverted  # noqa: E402
from tinymodel import make_tiny_model  # noqa: E402
from uolrps.bench import parse_batches, run_bench  # noqa: E402
from uolrps.bench.measure import Timing  # noqa: E402
from uolrps.core.errors import UserError  # noqa: E402


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6):
        img = np.full((120, 160, 3), 20, np.uint8)
        x, y = int(rng.integers(0, 100)), int(rng.integers(0, 60))
        img[y:y + 50, x:x + 50] = 230
        cv2.imwrite(str(folder / f"p{i}.png"), img)
    return folder


def _ort_heatmaps(path, folder):
    """The reference by hand: BGR file -> RGB resize 64x64 -> ONNX Runtime, one image at a time."""
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = []
    for p in sorted(folder.iterdir()):
        rgb = cv2.resize(cv2.imread(str(p)), (64, 64), interpolation=cv2.INTER_AREA)[:, :, ::-1]
        out.append(s.run(None, {"image": np.ascontiguousarray(rgb)[None]})[0][0])
    return np.stack(out)


def test_twins_timings_agreement_and_what_is_missing(tmp_path, photos):
    ref = make_tiny_model(tmp_path / "model.onnx")
    _inverted(ref, tmp_path / "model.fp16.onnx")  # a twin that disagrees
    lines: list[str] = []
    r = run_bench(ref, "1,3", photos, warmup=1, iters=3, progress=lines.append)
    ov_rows = [row for row in r.rows if "openvino" in row.label]  # OpenVINO's rows, where it is installed
    r.rows = [row for row in r.rows if row not in ov_rows]
    assert [(row.label, row.batch) for row in r.rows] == [("model.onnx ort:cpu", 1), ("model.onnx ort:cpu", 3),
                                                          ("model.fp16.onnx ort:cpu", 1), ("model.fp16.onnx ort:cpu", 3)]
    assert len(lines) == 4 + len(ov_rows) and r.reference == "model.onnx on ONNX Runtime CPU"
    assert r.images == f"6 images from {photos}"
    if importlib.util.find_spec("openvino") is not None:
        assert [(row.label, row.batch) for row in ov_rows] == [("model.onnx openvino:f32", 1), ("model.onnx openvino:f32", 3),
                                                               ("model.fp16.onnx openvino:f32", 1),
                                                               ("model.fp16.onnx openvino:f32", 3)]
        assert ov_rows[0].max_abs_diff <= 1e-4 and ov_rows[0].box_agreement == 1.0
    same, other = r.rows[0], r.rows[2]
    assert same.max_abs_diff == 0.0 and same.box_agreement == 1.0 and same.provider == "cpu"
    want = np.abs(_ort_heatmaps(tmp_path / "model.fp16.onnx", photos) - _ort_heatmaps(ref, photos)).max()
    assert other.max_abs_diff == pytest.approx(want, abs=0.02) and other.box_agreement < 1.0
    for row in r.rows:
        t = row.infer
        assert 0 < t.p50_ms <= t.p95_ms <= t.p99_ms and t.images_per_s > 0 and row.full.p50_ms > 0
    missing = {s.label: s.reason for s in r.skipped}
    assert "uolrps build model.fp16.onnx" in missing["model.fp16.engine trt"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert "uolrps[ort-gpu]" in missing["model.onnx ort:cuda"]


def test_cli_table_and_json(tmp_path, photos, capsys):
    from uolrps.cli.main import main

    model = make_tiny_model(tmp_path / "m.onnx")
    out = tmp_path / "bench.json"
    assert main(["bench", str(model), "--images", str(photos), "--iters", "2", "--warmup", "0", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "infer p50/p95/p99 ms" in text and "m.onnx ort:cpu" in text and "not measured here:" in text
    data = json.loads(out.read_text())
    assert data["rows"][0]["batch"] == 1 and set(data["rows"][0]["infer"]) == {"p50_ms", "p95_ms", "p99_ms", "images_per_s"}
    assert main(["bench", str(model), "--batch", "0"]) == 2
    assert main(["bench", str(model), "--images", str(tmp_path / "none")]) == 2
    assert main(["bench", str(model), "--backends", "trt"]) == 2
    assert "matches none of" in capsys.readouterr().err


def test_engine_beside_the_model_on_a_gpu_machine(tmp_path, photos, monkeypatch):
    from uolrps.export.tensorrt.build import build_engine

    trt, cuda = make_trt(), make_pycuda()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    pkg = types.ModuleType("pycuda")
    pkg.driver = cuda
    monkeypatch.setitem(sys.modules, "pycuda", pkg)
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
    ref = make_tiny_model(tmp_path / "model.onnx")
    fp16 = make_tiny_model(tmp_path / "model.fp16.onnx")
    build_engine(fp16, trt=trt, gpu=("Orin", (8, 7)), log=lambda m: None, max_batch=4)
    r = run_bench(ref, "1,4", photos, warmup=1, iters=2, progress=lambda m: None)
    engine_rows = [row for row in r.rows if row.label == "model.fp16.engine trt"]
    assert [row.batch for row in engine_rows] == [1, 4] and engine_rows[0].provider == "trt"
    assert engine_rows[0].max_abs_diff == 0.0 and engine_rows[0].box_agreement == 1.0
    assert "model.fp16.engine trt" not in {s.label for s in r.skipped} and cuda.stack() == []


def test_timing_and_batches():
    t = Timing.of([0.001, 0.002, 0.003, 0.004], batch=2)
    assert t.p50_ms == pytest.approx(2.5) and t.images_per_s == pytest.approx(2 / 0.0025)
    assert parse_batches("1, 4,8") == [1, 4, 8]
    for bad in ("", "0", "a,2", "-1"):
        with pytest.raises(UserError, match="^batches must be a comma-separated list"):
            parse_batches(bad)
