"""The backend registry and the ONNX Runtime backend, on real sessions of the tiny contract model."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from tinymodel import bright_square_frame, make_tiny_model

from uolrps.core.errors import UserError
from uolrps.model.meta import ModelMeta
from uolrps.runtime.backends import BACKENDS, backend_name, load_backend
from uolrps.runtime.backends.ort import OrtBackend, parse_providers


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {"dynamic": make_tiny_model(d / "dyn.onnx"), "fixed": make_tiny_model(d / "fixed.onnx", dynamic_batch=False)}


def batch_of(n, size=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("path,backend,expected", [
    ("m.onnx", "auto", "ort"), ("M.ONNX", "auto", "ort"), ("m.engine", "auto", "trt"), ("m.plan", "auto", "trt"),
    ("m.engine", "ort", "ort"), ("m.bin", "trt", "trt"), ("m.bin", "auto", UserError), ("m.onnx", "tvm", UserError),
])
def test_backend_is_chosen_by_a_table(path, backend, expected):
    if expected is UserError:
        with pytest.raises(UserError):
            backend_name(path, backend)
    else:
        assert backend_name(path, backend) == expected
    assert {".onnx"} == set(BACKENDS["ort"].suffixes) and {".engine", ".plan"} == set(BACKENDS["trt"].suffixes)


def test_missing_model_and_foreign_option_are_user_errors(models, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_backend(tmp_path / "absent.onnx")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not an engine")
    with pytest.raises(UserError, match="providers does not apply to the trt backend"):
        load_backend(engine, providers="cuda")


def test_threads_option(models, tmp_path):
    with load_backend(models["dynamic"], threads=1) as one, load_backend(models["dynamic"]) as default:
        x = batch_of(3)
        np.testing.assert_allclose(one(x), default(x), atol=1e-6)
    with pytest.raises(UserError, match="threads must be a positive"):
        load_backend(models["dynamic"], threads=0)
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"x")
    with pytest.raises(UserError, match="threads does not apply to the trt backend"):
        load_backend(engine, threads=2)


def test_missing_library_names_the_extra(models, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail as if absent
    with pytest.raises(UserError, match=r"pip install 'uolrps\[ort\]'"):
        load_backend(models["dynamic"])


def test_a_file_that_is_not_onnx_is_refused_clearly(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(UserError, match="cannot load ONNX model"):
        load_backend(bad)


def test_a_model_without_uolrps_metadata_is_refused(tmp_path, models):
    import onnx

    m = onnx.load(str(models["dynamic"]))
    del m.metadata_props[:]
    plain = tmp_path / "plain.onnx"
    onnx.save(m, str(plain))
    with pytest.raises(UserError, match="no uolrps metadata"):
        load_backend(plain)


@pytest.mark.parametrize("text,expected", [
    (None, ["cpu"]), ("cpu", ["cpu"]), ("CUDA, cpu", ["cuda", "cpu"]), ("cpu,tensorrt,cuda", ["tensorrt", "cuda", "cpu"]),
    (["cuda"], ["cuda"]), ("gpu", UserError), ("", UserError), ("cpu,,rocm", UserError),
])
def test_provider_names(text, expected):
    if expected is UserError:
        with pytest.raises(UserError, match="use a comma-separated list of tensorrt, cuda, cpu"):
            parse_providers(text)
    else:
        assert parse_providers(text) == expected


def test_unavailable_provider_is_reported(models):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA; the refusal path needs a CPU-only build")
    with pytest.raises(UserError, match="cuda is not available in this onnxruntime .* use providers=cpu"):
        OrtBackend(models["dynamic"], providers="cuda")


def test_metadata_and_input_spec(models):
    with load_backend(models["dynamic"]) as dyn, load_backend(models["fixed"]) as fixed:
        assert isinstance(dyn.meta, ModelMeta) and dyn.meta.backbone == "tiny"
        assert dyn.input_spec.shape == (None, 64, 64, 3) and dyn.input_spec.dtype == "uint8"
        assert fixed.input_spec.shape == (1, 64, 64, 3)
        assert dyn.caps.providers == ("cpu",)


def test_fixed_batch_runs_any_n_in_chunks_equal_to_dynamic(models):
    x = batch_of(5)
    with load_backend(models["dynamic"]) as dyn, load_backend(models["fixed"]) as fixed:
        a, b = dyn(x), fixed(x)
        assert a.shape == b.shape == (5, 1, 8, 8) and a.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=1e-6)
        singles = np.concatenate([dyn(x[i:i + 1]) for i in range(5)])
        np.testing.assert_allclose(a, singles, atol=1e-6)
        assert fixed(x[:0]).shape == (0, 1, 8, 8)
        # min-max normalised per image, as the contract says
        assert np.allclose(a.reshape(5, -1).max(1), 1.0, atol=1e-4) and np.allclose(a.reshape(5, -1).min(1), 0.0)


def test_heatmap_peaks_on_the_bright_object(models):
    frame = bright_square_frame(64, 64, box=(32, 0, 63, 31))  # top-right quadrant
    with load_backend(models["dynamic"]) as b:
        hm = b(frame[None, :, :, ::-1].copy())[0, 0]
    assert hm[:4, 4:].min() > 0.99 and hm[4:, :4].max() < 0.01


@pytest.mark.parametrize("bad,match", [
    (np.zeros((1, 64, 64, 3), np.float32), "must be uint8"),
    (np.zeros((1, 32, 64, 3), np.uint8), "must have shape"),
    (np.zeros((64, 64, 3), np.uint8), "must have shape"),
])
def test_batches_are_checked_against_the_input_spec(models, bad, match):
    with load_backend(models["dynamic"]) as b:
        with pytest.raises(ValueError, match=match):
            b(bad)


def test_closed_backend_refuses_to_run(models):
    b = load_backend(models["dynamic"])
    b.close()
    b.close()
    with pytest.raises(RuntimeError, match="closed"):
        b(batch_of(1))
