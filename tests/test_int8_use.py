"""The INT8 twins in use: `uolrps build` builds the Q/DQ file strongly typed on TensorRT 10 and 11 (fake
TensorRT, tests/fake_tensorrt.py, whose parser decides op support by itself), the TensorRT backend runs it,
and the runtime opens both twins like any model (real ONNX Runtime)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")

from fake_seam import FakeCudaTensorRT  # noqa: E402
from fake_tensorrt import PLAN_MAGIC, make_trt  # noqa: E402
from int8model import scenes, write_int8_twins, write_scenes  # noqa: E402
from uolrps.export.tensorrt.build import build_engine, trt_api  # noqa: E402
from uolrps.model.sidecar import read_sidecar  # noqa: E402

GPU = ("Orin", (8, 7))


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    return write_int8_twins(tmp_path_factory.mktemp("int8"))


@pytest.mark.parametrize("version", ["10.3.0", "11.4.1"])
def test_build_int8_strongly_typed(twins, version):
    _, qdq, _ = twins
    trt = make_trt(version)
    engine, side = build_engine(qdq, trt=trt, gpu=GPU, log=lambda m: None, max_batch=4,
                                engine_path=qdq.with_name(f"int8-{version}.engine"))
    header = json.loads(engine.read_bytes()[len(PLAN_MAGIC):].split(b"\n", 1)[0])
    assert header["flags"] == trt_api(trt).network_flags(trt)  # STRONGLY_TYPED on 10.x, 0 on 11.x
    sc = read_sidecar(engine)
    assert sc.build["strongly_typed"] is True
    assert sc.meta.precision == "int8" and sc.meta.extra["int8"]["form"] == "QDQ"


def test_tensorrt_backend_runs_the_int8_engine_like_ort(twins):
    import onnxruntime as ort

    from uolrps.runtime.backends.trt import TensorRTBackend

    _, qdq, _ = twins
    engine, _ = build_engine(qdq, trt=make_trt("10.3.0"), gpu=GPU, log=lambda m: None, max_batch=4)
    x = np.stack(scenes(3, seed=9))
    want = ort.InferenceSession(str(qdq), providers=["CPUExecutionProvider"]).run(["heatmap"], {"image": x})[0]
    with TensorRTBackend(engine, cuda=FakeCudaTensorRT()) as b:
        np.testing.assert_array_equal(b(x), want)


def test_runtime_opens_both_twins_and_finds_the_same_box(twins):
    from uolrps.runtime import Localizer

    ref, qdq, cpu = twins
    frame = scenes(1, seed=3)[0][:, :, ::-1].copy()  # BGR, as the runtime reads frames
    want = Localizer(str(ref))(frame)
    for path in (qdq, cpu):
        loc = Localizer(str(path))
        assert loc.meta.precision == "int8"
        got = loc(frame)
        assert np.isfinite(got.heatmap).all()
        assert got.boxes.shape == want.boxes.shape


def test_cli_run_accepts_the_int8_model(twins, tmp_path):
    _, qdq, _ = twins
    images = write_scenes(tmp_path / "imgs", 3)
    out = tmp_path / "r.jsonl"
    p = subprocess.run([sys.executable, "-m", "uolrps.cli.main", "run", "--video", str(images), "--model", str(qdq),
                        "--jsonl", str(out)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = [json.loads(s) for s in out.read_text().splitlines()]
    assert len(lines) == 3


def test_int8_module_imports_nothing_heavy():
    code = ("import sys, uolrps.export.int8, uolrps.cli.export_cmd; "
            "print([m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_bench_finds_both_int8_twins(twins):
    from uolrps.bench.targets import discover
    from uolrps.model.files import split as base_of

    ref, qdq, cpu = twins
    targets, _ = discover(ref, backends=["ort:cpu"])
    assert {(Path(t.model).name, t.precision) for t in targets} == {
        ("model.onnx", "fp32"), ("model.int8.onnx", "int8"), ("model.int8.cpu.onnx", "int8-cpu")}
    assert base_of(cpu) == (ref.with_suffix(""), "int8-cpu")


@pytest.mark.slow
def test_cli_export_int8_efflite0(calib_subset, tmp_path, capsys):
    """The whole command on the real efflite0 and real images: a CNN gets the Q/DQ twin only."""
    from uolrps.cli.main import main
    from uolrps.model.meta import ModelMeta

    out = tmp_path / "e.onnx"
    code = main(["export", "--backbone", "efflite0", "--dynamic-batch", "-o", str(out), "--int8",
                 "--int8-calib", str(calib_subset), "--int8-images", "48"])
    std = capsys.readouterr()
    assert code == 0, std.err
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == ["e.int8.onnx", "e.onnx"]
    assert "int8 twin (Q/DQ) vs FP32 graph on 32 images" in std.err and "uolrps build" in std.out
    m = onnx.load(str(tmp_path / "e.int8.onnx"))
    meta = ModelMeta.from_props({p.key: p.value for p in m.metadata_props})
    recipe = meta.extra["int8"]
    assert meta.precision == "int8" and recipe["calib_images"] == 48 and len(recipe["nodes"]) == 49
    assert "/proj/Conv" not in recipe["nodes"]  # the w* projection stays float
