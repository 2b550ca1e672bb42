"""The TensorRT backend's logic (sidecar checks, I/O validation, dtype mapping, buffer sizing, profile checks,
batching, stream order) with a fake of its CUDA seam that runs the plan in ONNX Runtime; and the real thing
where an NVIDIA GPU with TensorRT and pycuda is present.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import subprocess
import sys
import threading

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from fake_seam import FakeCudaTensorRT  # noqa: E402
from fake_tensorrt import make_trt  # noqa: E402
from tinymodel import bright_square_frame, make_tiny_model  # noqa: E402
from uolrps.core.errors import UserError  # noqa: E402
from uolrps.export.tensorrt.build import build_engine  # noqa: E402
from uolrps.runtime.backends.trt import TensorInfo, TensorRTBackend, numpy_dtype, plan_io  # noqa: E402
from uolrps.runtime.preprocess import preprocess  # noqa: E402
from uolrps.model.sidecar import sidecar_path  # noqa: E402

GPU = ("Orin", (8, 7))


def _engine(tmp_path, dynamic=True, **kw):
    onnx_path = make_tiny_model(tmp_path / "model.fp16.onnx", dynamic_batch=dynamic)
    engine, _ = build_engine(onnx_path, trt=make_trt("10.3.0"), gpu=GPU, log=lambda m: None, **kw)
    return onnx_path, engine


def _frames(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x1, y1 = int(rng.integers(0, 90)), int(rng.integers(0, 50))
        frame = bright_square_frame(box=(x1, y1, x1 + int(rng.integers(10, 60)), y1 + int(rng.integers(10, 60))))
        out.append(frame)
    return out


def _batch(tiny_meta, n, seed=0):
    return np.stack([preprocess(f, tiny_meta) for f in _frames(n, seed)])


def _ort(onnx_path, batch):
    import onnxruntime as ort

    s = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return s.run(["heatmap"], {"image": batch})[0]


@pytest.fixture
def built(tmp_path):
    return _engine(tmp_path, max_batch=4)


def test_matches_onnx_runtime_for_every_batch_size(built):
    onnx_path, engine = built
    fake = FakeCudaTensorRT()
    with TensorRTBackend(engine, cuda=fake) as b:
        assert b.meta.input_size == (64, 64) and b.input_spec.shape == (None, 64, 64, 3)
        assert (b.io.min_batch, b.io.max_batch) == (1, 4) and (b.caps.min_batch, b.caps.max_batch, b.caps.fixed_batch) == (1, 4, False)
        for n in (1, 3, 4, 9):  # 9 > max batch 4: runs as 4 + 4 + 1
            x = _batch(b.meta, n, seed=n)
            y = b(x)
            assert y.shape == (n, 1, 8, 8) and y.dtype == np.float32
            np.testing.assert_array_equal(y, _ort(onnx_path, x))
        assert b(np.zeros((0, 64, 64, 3), np.uint8)).shape == (0, 1, 8, 8)
    # buffers sized once for the largest batch of the profile
    assert [c for c in fake.calls if c[0] == "alloc"] == [("alloc", (4, 64, 64, 3), "uint8"),
                                                           ("alloc", (4, 1, 8, 8), "float32")]
    # the input shape is set only when the batch size changes: 1, 3, 4, (4, 4,) 1
    assert [c[1][0] for c in fake.calls if c[0] == "set_input_shape"] == [1, 3, 4, 1]
    assert fake.closed == 1


def test_results_are_copies_not_views_of_the_pinned_buffer(built):
    _, engine = built
    with TensorRTBackend(engine, cuda=FakeCudaTensorRT()) as b:
        a = b(_batch(b.meta, 2, seed=1))
        keep = a.copy()
        b(_batch(b.meta, 2, seed=2))
        np.testing.assert_array_equal(a, keep)


def test_profile_min_pads_small_batches(tmp_path):
    onnx_path, engine = _engine(tmp_path, min_batch=2, max_batch=4)
    fake = FakeCudaTensorRT()
    with TensorRTBackend(engine, cuda=fake) as b:
        x = _batch(b.meta, 1)
        np.testing.assert_array_equal(b(x), _ort(onnx_path, x))
    assert [c[1][0] for c in fake.calls if c[0] == "execute"] == [2]  # padded to the profile's minimum


def test_fixed_batch_engine(tmp_path):
    onnx_path, engine = _engine(tmp_path, dynamic=False)
    fake = FakeCudaTensorRT()
    with TensorRTBackend(engine, cuda=fake) as b:
        assert b.input_spec.shape == (1, 64, 64, 3) and (b.caps.max_batch, b.caps.fixed_batch) == (1, True)
        x = _batch(b.meta, 3)
        expected = np.concatenate([_ort(onnx_path, x[i:i + 1]) for i in range(3)])  # the graph takes 1 image
        np.testing.assert_array_equal(b(x), expected)
    assert [c[1][0] for c in fake.calls if c[0] == "execute"] == [1, 1, 1]
    assert not [c for c in fake.calls if c[0] == "set_input_shape"]  # nothing to set on a static engine


def test_shape_refused_by_the_profile_is_a_clear_error(built):
    _, engine = built
    with TensorRTBackend(engine, cuda=FakeCudaTensorRT(reject_shapes=True)) as b:
        with pytest.raises(UserError, match=r"batch 2 is outside the engine's optimisation profile 1..4: rebuild "
                                            r"with `uolrps build ... --max-batch 2`"):
            b(_batch(b.meta, 2))


def test_bad_batches_are_refused(built):
    _, engine = built
    with TensorRTBackend(engine, cuda=FakeCudaTensorRT()) as b:
        with pytest.raises(ValueError, match="must be uint8"):
            b(np.zeros((1, 64, 64, 3), np.float32))
        with pytest.raises(ValueError, match=r"shape \(N, 64, 64, 3\)"):
            b(np.zeros((1, 32, 32, 3), np.uint8))


def test_execution_failure_raises_after_the_stream_is_synchronised(built):
    _, engine = built
    fake = FakeCudaTensorRT(fail_execute=True)
    with TensorRTBackend(engine, cuda=fake) as b:
        with pytest.raises(RuntimeError, match="TensorRT execution failed"):
            b(_batch(b.meta, 1))
        assert fake._queue == []


def test_sidecar_mismatch_stops_before_deserialising(built):
    _, engine = built
    fake = FakeCudaTensorRT(trt_version="10.7.0")
    with pytest.raises(UserError, match=r"engine built with TensorRT 10.3.0, running 10.7.0: rebuild with "
                                        r"`uolrps build model.fp16.onnx`"):
        TensorRTBackend(engine, cuda=fake)
    assert ("load",) not in fake.calls and fake.closed == 1
    with pytest.raises(UserError, match="compute capability 8.7"):
        TensorRTBackend(engine, cuda=FakeCudaTensorRT(gpu_name="RTX 4090", compute_capability=(8, 9)))


def test_other_gpu_name_is_a_warning(built, caplog):
    _, engine = built
    with caplog.at_level(logging.WARNING, logger="uolrps.trt"):
        with TensorRTBackend(engine, cuda=FakeCudaTensorRT(gpu_name="Jetson AGX Orin 64GB")) as b:
            assert b(_batch(b.meta, 1)).shape == (1, 1, 8, 8)
    assert "built on Orin, running on Jetson AGX Orin 64GB" in caplog.text


def test_engine_replaced_behind_the_sidecar(built):
    _, engine = built
    engine.write_bytes(engine.read_bytes() + b" ")
    with pytest.raises(UserError, match="not the one this sidecar describes"):
        TensorRTBackend(engine, cuda=FakeCudaTensorRT())


def test_missing_engine_or_sidecar(built, tmp_path):
    _, engine = built
    with pytest.raises(UserError, match="does not exist"):
        TensorRTBackend(tmp_path / "nope.engine", cuda=FakeCudaTensorRT())
    sidecar_path(engine).unlink()
    with pytest.raises(UserError, match="no sidecar model.fp16.engine.json"):
        TensorRTBackend(engine, cuda=FakeCudaTensorRT())


def test_metadata_that_does_not_match_the_engine(built):
    _, engine = built
    side = sidecar_path(engine)
    data = json.loads(side.read_text())
    data["meta"]["uolrps.input_size"] = "[32, 32]"
    side.write_text(json.dumps(data))
    fake = FakeCudaTensorRT()
    with pytest.raises(UserError, match=r"engine input shape \(-1, 64, 64, 3\) is not N x 32 x 32 x 3"):
        TensorRTBackend(engine, cuda=fake)
    assert fake.closed == 1


def _io(inp_name="image", inp_dtype="UINT8", inp_shape=(-1, 64, 64, 3), profile=((1, 64, 64, 3),) * 2 + ((8, 64, 64, 3),),
        out_name="heatmap", out_dtype="FLOAT", out_shape=(-1, 1, 8, 8)):
    return [TensorInfo(inp_name, True, inp_dtype, inp_shape, profile), TensorInfo(out_name, False, out_dtype, out_shape)]


@pytest.mark.parametrize("kw, words", [
    ({"inp_name": "x"}, "the engine's inputs are \\['x'\\]"),
    ({"out_name": "y"}, "no output 'heatmap'"),
    ({"inp_dtype": "FLOAT"}, "takes FLOAT and returns FLOAT"),
    ({"out_dtype": "HALF"}, "takes UINT8 and returns HALF"),
    ({"inp_shape": (-1, 3, 64, 64)}, "is not N x 64 x 64 x 3"),
    ({"out_shape": (-1, 1, 4, 4)}, "is not N x K x 8 x 8"),
    ({"profile": None}, "no optimisation profile"),
    ({"inp_dtype": "BF16"}, "BF16 has no host type"),
])
def test_plan_io_refuses_mismatches(kw, words):
    from tinymodel import tiny_meta

    with pytest.raises(UserError, match=words):
        plan_io(_io(**kw), tiny_meta(), "m.engine")


def test_plan_io_batch_range():
    from tinymodel import tiny_meta

    io = plan_io(_io(), tiny_meta(), "m.engine")
    assert (io.min_batch, io.max_batch, io.dynamic) == (1, 8, True)
    io = plan_io(_io(inp_shape=(2, 64, 64, 3), out_shape=(2, 1, 8, 8), profile=None), tiny_meta(), "m.engine")
    assert (io.min_batch, io.max_batch, io.dynamic) == (2, 2, False)


@pytest.mark.parametrize("name, dtype", [("FLOAT", np.float32), ("DataType.HALF", np.float16), ("UINT8", np.uint8),
                                         ("INT32", np.int32), ("INT64", np.int64), ("BOOL", np.bool_), ("INT8", np.int8)])
def test_dtype_mapping(name, dtype):
    assert numpy_dtype(name) == np.dtype(dtype)


def test_concurrent_calls_are_serialised(built):
    onnx_path, engine = built
    with TensorRTBackend(engine, cuda=FakeCudaTensorRT()) as b:
        inputs = [_batch(b.meta, n, seed=n) for n in (1, 2, 3, 4, 2, 1)]
        results: dict = {}

        def work(i):
            results[i] = b(inputs[i])
        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, x in enumerate(inputs):
            np.testing.assert_array_equal(results[i], _ort(onnx_path, x))


def test_close_is_idempotent_and_final(built):
    _, engine = built
    fake = FakeCudaTensorRT()
    b = TensorRTBackend(engine, cuda=fake)
    b.close()
    b.close()
    assert fake.closed == 1
    with pytest.raises(RuntimeError, match="closed"):
        b(np.zeros((1, 64, 64, 3), np.uint8))


def test_runtime_import_stays_light():
    code = ("import sys, uolrps.runtime.backends.trt, uolrps.model.sidecar, uolrps.runtime.backends as r; "
            "bad = [m for m in ('tensorrt', 'pycuda', 'onnx', 'torch', 'onnxruntime') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


needs_no_trt = pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                                  reason="tests the message shown where TensorRT is not installed")


@needs_no_trt
def test_registry_loads_this_backend_and_names_the_extra(built):
    from uolrps.runtime.backends import load_backend

    _, engine = built
    with pytest.raises(UserError, match=r"pip install 'uolrps\[trt\]'"):
        load_backend(engine)  # .engine -> trt by suffix


# ---- the real thing ---------------------------------------------------------------------------------------
def _has_gpu_trt() -> bool:
    if importlib.util.find_spec("tensorrt") is None or importlib.util.find_spec("pycuda") is None:
        return False
    try:
        import pycuda.driver as cuda

        cuda.init()
        return cuda.Device.count() > 0
    except Exception:
        return False


@pytest.mark.gpu
@pytest.mark.skipif(not _has_gpu_trt(), reason="needs an NVIDIA GPU with TensorRT and pycuda")
def test_real_engine_matches_onnx_runtime(tmp_path):
    onnx_path = make_tiny_model(tmp_path / "model.onnx")
    engine, _ = build_engine(onnx_path, max_batch=4, log=lambda m: None)
    with TensorRTBackend(engine) as b:
        for n in (1, 4, 6):
            x = _batch(b.meta, n, seed=n)
            np.testing.assert_allclose(b(x), _ort(onnx_path, x), atol=1e-4)
