"""The TensorRT backend's real seam (CudaTensorRT) driven through fakes of tensorrt and pycuda.driver that follow
the real APIs: constructors that raise TypeError without a GPU, pycuda's own RuntimeError from init(), per-thread
context stacks where detach() pushes and releases without popping, DLA engines needing runtime.DLA_core; and
engines from other builders opened with --meta."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from fake_pycuda import make_pycuda  # noqa: E402
from fake_tensorrt import make_trt  # noqa: E402
from tinymodel import make_tiny_model  # noqa: E402
from uolrps.core.errors import UserError  # noqa: E402
from uolrps.export.tensorrt.build import build_engine  # noqa: E402
from uolrps.runtime.backends.trt import CudaTensorRT, TensorRTBackend  # noqa: E402
from uolrps.model.sidecar import sidecar_path  # noqa: E402

GPU = ("Orin", (8, 7))


def _engine(tmp_path, trt, name="model.fp16.onnx", **kw):
    onnx_path = make_tiny_model(tmp_path / name)
    engine, _ = build_engine(onnx_path, trt=trt, gpu=GPU, log=lambda m: None, **kw)
    return onnx_path, engine


def _ort(onnx_path, x):
    import onnxruntime as ort

    return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]


def _open(engine, trt, cuda, **kw):
    return TensorRTBackend(engine, cuda=CudaTensorRT(trt=trt, cuda=cuda), **kw)


def test_open_close_reopen_two_engines_leaves_the_context_stack_as_it_was(tmp_path):
    trt, cuda = make_trt(), make_pycuda()
    a_onnx, a = _engine(tmp_path, trt, "a.onnx", max_batch=4)
    _, b = _engine(tmp_path, trt, "b.onnx", max_batch=2)
    x = np.random.default_rng(0).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    for _ in range(2):  # eval then run, in one process
        with _open(a, trt, cuda) as ea, _open(b, trt, cuda) as eb:
            np.testing.assert_array_equal(ea(x), _ort(a_onnx, x))
            eb(x)
            assert cuda.stack() == []  # nothing left pushed between calls
    assert cuda.stack() == [] and cuda.retained == {0: 0}
    pushes = sum(e[0] in ("push", "detach") for e in cuda.events)
    assert pushes == sum(e[0] == "pop" for e in cuda.events) > 0
    assert trt.Logger.created == 1  # one TensorRT logger per process


def test_close_from_another_thread_leaves_both_stacks_alone(tmp_path):
    trt, cuda = make_trt(), make_pycuda()
    _, engine = _engine(tmp_path, trt)
    backend = _open(engine, trt, cuda)
    seen = {}

    def close():
        backend.close()
        seen["other"] = cuda.stack()
    t = threading.Thread(target=close)
    t.start()
    t.join()
    assert seen["other"] == [] and cuda.stack() == []


def test_no_device_from_pycuda_is_one_line():
    with pytest.raises(UserError, match=r"CUDA could not start \(cuInit failed: no CUDA-capable device is detected\)"):
        CudaTensorRT(trt=make_trt(), cuda=make_pycuda(driver_without_device=True))
    with pytest.raises(UserError, match="no CUDA GPU 0 on this machine"):
        CudaTensorRT(trt=make_trt(), cuda=make_pycuda(devices=()))


def test_runtime_that_cannot_be_created_is_one_line_and_releases_the_context(tmp_path):
    _, engine = _engine(tmp_path, make_trt())
    cuda = make_pycuda()
    with pytest.raises(UserError, match="TensorRT could not create a runtime"):
        _open(engine, make_trt(gpu=False), cuda)
    assert cuda.stack() == [] and cuda.retained == {0: 0}


def test_dla_engine_is_deserialised_on_its_core(tmp_path):
    trt = make_trt(dla_cores=2)
    onnx_path, engine = _engine(tmp_path, trt, dla_core=1)
    x = np.zeros((2, 64, 64, 3), np.uint8)
    x[:, 10:30, 20:40] = 255
    with _open(engine, trt, make_pycuda()) as b:
        np.testing.assert_array_equal(b(x), _ort(onnx_path, x))
    assert ("deserialize", 1) in trt.calls
    with pytest.raises(UserError, match="built for DLA core 1, but this device has no DLA"):
        _open(engine, make_trt(dla_cores=0), make_pycuda())


def test_engine_from_another_builder_needs_meta(tmp_path, caplog):
    trt, cuda = make_trt(), make_pycuda()
    onnx_path, engine = _engine(tmp_path, trt, max_batch=2)
    sidecar_path(engine).unlink()  # what trtexec or Polygraphy leave: the engine alone
    with pytest.raises(UserError, match="pass meta=MODEL.onnx"):
        _open(engine, trt, cuda)
    x = np.random.default_rng(1).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    with caplog.at_level(logging.WARNING, logger="uolrps.trt"):
        with _open(engine, trt, cuda, meta=onnx_path) as b:
            assert b.sidecar is None and b.meta.input_size == (64, 64)
            np.testing.assert_array_equal(b(x), _ort(onnx_path, x))
    assert "has no sidecar" in caplog.text and "cannot be checked" in caplog.text
    other = make_tiny_model(tmp_path / "other.onnx", size=(96, 96), grid=(12, 12))
    with pytest.raises(UserError, match="is not N x 96 x 96 x 3 as the metadata says"):
        _open(engine, trt, cuda, meta=other)
    assert cuda.stack() == []


def test_meta_beside_a_sidecar_is_checked_against_it(tmp_path, caplog):
    trt = make_trt()
    _, engine = _engine(tmp_path, trt)
    other = make_tiny_model(tmp_path / "other.onnx", threshold=0.3)
    with caplog.at_level(logging.WARNING, logger="uolrps.trt"):
        with _open(engine, trt, make_pycuda(), meta=other) as b:
            assert b.meta.threshold == 0.5  # the sidecar's
    assert "is not the ONNX file this engine was built from" in caplog.text


def test_registry_passes_meta_to_the_trt_backend(tmp_path):
    from uolrps.runtime.backends import load_backend

    with pytest.raises(UserError, match="meta does not apply to the ort backend"):
        load_backend(make_tiny_model(tmp_path / "m.onnx"), meta=tmp_path / "m.onnx")


def _engine_without_sidecar(tmp_path, monkeypatch):
    """The fake TensorRT and pycuda installed as the real modules, and an engine as trtexec leaves it."""
    import sys
    import types

    trt, cuda = make_trt(), make_pycuda()
    pkg = types.ModuleType("pycuda")
    pkg.driver = cuda
    for name, mod in (("tensorrt", trt), ("pycuda", pkg), ("pycuda.driver", cuda)):
        monkeypatch.setitem(sys.modules, name, mod)
    onnx_path, engine = _engine(tmp_path, trt, max_batch=2)
    sidecar_path(engine).unlink()
    return trt, cuda, onnx_path, engine


def test_cli_run_with_an_engine_from_another_builder(tmp_path, monkeypatch, capsys):
    import cv2

    from uolrps.cli.main import main

    trt, cuda, onnx_path, engine = _engine_without_sidecar(tmp_path, monkeypatch)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        img = np.full((48, 64, 3), 15, np.uint8)
        img[10 + i:30, 20:40] = 240
        cv2.imwrite(str(frames / f"f{i}.png"), img)
    argv = ["run", "--video", str(frames), "--model", str(engine), "--quiet"]
    assert main(argv) == 2
    assert "--meta MODEL.onnx" in capsys.readouterr().err
    assert main(argv + ["--meta", str(onnx_path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("frames 3 |") and "from model metadata of model.fp16.onnx" in captured.err
    assert cuda.stack() == []


def test_cli_eval_with_an_engine_from_another_builder(tmp_path, monkeypatch, capsys):
    """eval takes --meta like run: the same boxes as the ONNX file it was built from in ONNX Runtime."""
    import json

    from evaldata import make_scenes, write_csv

    from uolrps.cli.main import main

    trt, cuda, onnx_path, engine = _engine_without_sidecar(tmp_path, monkeypatch)
    data = write_csv(tmp_path / "data", make_scenes(4))
    argv = ["eval", str(data), "--model", str(engine), "--quiet", "--protocol", "authors"]
    assert main(argv) == 2
    assert "--meta MODEL.onnx" in capsys.readouterr().err
    assert main(argv + ["--meta", str(onnx_path), "--json", str(tmp_path / "e.json")]) == 0
    assert main(["eval", str(data), "--model", str(onnx_path), "--quiet", "--protocol", "authors",
                 "--json", str(tmp_path / "o.json")]) == 0
    got, want = (json.loads((tmp_path / f).read_text()) for f in ("e.json", "o.json"))
    assert got["protocols"]["authors"]["MaxBoxAccV2"] == want["protocols"]["authors"]["MaxBoxAccV2"]
    assert main(argv + ["--meta", str(onnx_path), "--write-threshold"]) == 2
    assert "--write-threshold cannot write into an engine without a sidecar" in capsys.readouterr().err
    assert cuda.stack() == []


def test_a_logger_is_never_handed_to_another_module_that_reuses_an_id(monkeypatch):
    """CPython reuses the id of a dead object: a fake tensorrt module made later may get the id of one made
    earlier; it must get a logger of its own (the full suite failed on this, depending on test order)."""
    from uolrps.core import gpu

    gone, new = make_trt(), make_trt()
    stale = gone.Logger(gone.Logger.WARNING)
    monkeypatch.setitem(gpu._loggers, id(new), (gone, stale))  # as if `gone` had lived at new's address
    logger = gpu.trt_logger(new)
    assert logger is not stale and isinstance(logger, new.Logger) and new.Logger.created == 1
    assert gpu.trt_logger(new) is logger and new.Logger.created == 1  # still one per module
