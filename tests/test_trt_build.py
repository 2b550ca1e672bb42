"""`uolrps build`: version dispatch, profile from the ONNX input, checked TensorRT calls, timing cache, DLA,
sidecar, trtexec equivalent, and the clear error where TensorRT is missing (this machine).

TensorRT itself is faked (tests/fake_tensorrt.py, after the real 10.3 and 11.4 bindings: enum values,
constructors that raise TypeError without a GPU, IHostMemory buffers, a parser with its own op support); the
ONNX files, the sidecar and the files written are real.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import sys

import pytest

onnx = pytest.importorskip("onnx")

from fake_tensorrt import PLAN_MAGIC, make_trt  # noqa: E402
from tinymodel import make_tiny_model, tiny_meta  # noqa: E402
from uolrps.core.errors import UserError  # noqa: E402
from uolrps.export.tensorrt.build import build_engine, trt_api  # noqa: E402
from uolrps.export.tensorrt.trtexec import trtexec_argv, trtexec_command  # noqa: E402
from uolrps.export.tensorrt.onnx_info import read_onnx_info  # noqa: E402
from uolrps.export.tensorrt.profile import BuildSettings, batch_profile  # noqa: E402
from uolrps.model.sidecar import read_sidecar
from uolrps.core.digest import sha256_file

GPU = ("Orin", (8, 7))


@pytest.fixture
def tiny(tmp_path):
    return make_tiny_model(tmp_path / "model.fp16.onnx")


@pytest.fixture
def tiny_static(tmp_path):
    return make_tiny_model(tmp_path / "static.onnx", dynamic_batch=False)


def _build(onnx_path, trt=None, **kw):
    lines: list[str] = []
    engine, side = build_engine(onnx_path, trt=trt or make_trt(), gpu=GPU, log=lines.append, **kw)
    return engine, side, lines


# ---- version dispatch --------------------------------------------------------------------------------------
@pytest.mark.parametrize("version, flags", [("10.3.0", 1 << 1), ("10.13.0.35", 1 << 1), ("11.4.1", 0)])
def test_network_flags_by_version(version, flags):
    trt = make_trt(version)
    api = trt_api(trt)
    assert api.major == int(version.split(".")[0])
    assert api.network_flags(trt) == flags  # 10.x: 1 << STRONGLY_TYPED; 11.x: strongly typed by default


@pytest.mark.parametrize("version, words", [("8.6.1", "too old"), ("9.3.0", "too old"), ("banana", "cannot read")])
def test_unsupported_versions(version, words):
    trt = make_trt("10.0.0")
    trt.__version__ = version
    with pytest.raises(UserError, match=words):
        trt_api(trt)


def test_version_compared_as_version_not_string():
    trt = make_trt("10.0.0")
    trt.__version__ = "10.10.0"  # "10.10.0" < "9.x" as strings
    assert trt_api(trt).major == 10


# ---- the profile --------------------------------------------------------------------------------------------
def test_profile_from_the_onnx_input(tiny, tiny_static):
    info = read_onnx_info(tiny)
    assert info.input_name == "image" and info.input_shape == (None, 64, 64, 3)
    assert info.meta == tiny_meta() and info.sha256 == sha256_file(tiny)
    p = batch_profile(info.input_shape, BuildSettings())
    assert (p.min, p.opt, p.max) == (1, 1, 8)
    p = batch_profile(info.input_shape, BuildSettings(min_batch=2, max_batch=16))
    assert (p.min, p.opt, p.max) == (2, 2, 16)
    assert p.shapes(info.input_shape) == ((2, 64, 64, 3), (2, 64, 64, 3), (16, 64, 64, 3))
    assert batch_profile((None, 64, 64, 3), BuildSettings(opt_batch=12)).max == 12
    with pytest.raises(UserError, match="min_batch <= opt_batch <= max_batch"):
        batch_profile(info.input_shape, BuildSettings(min_batch=4, max_batch=2))
    static = read_onnx_info(tiny_static)
    assert static.input_shape == (1, 64, 64, 3)
    assert batch_profile(static.input_shape, BuildSettings()) is None
    assert batch_profile(static.input_shape, BuildSettings(max_batch=1)) is None
    with pytest.raises(UserError, match="fixed batch of 1, so max_batch 4 cannot apply"):
        batch_profile(static.input_shape, BuildSettings(max_batch=4))


def test_only_the_batch_axis_may_be_dynamic():
    with pytest.raises(UserError, match=r"\?x\?x64x3 must be N x H x W x 3 with only N dynamic"):
        batch_profile((None, None, 64, 3), BuildSettings())


@pytest.mark.parametrize("kw, words", [
    ({"workspace_gib": 0}, "workspace_gib must be"), ({"workspace_gib": float("nan")}, "workspace_gib must be"),
    ({"dla_core": -1}, "dla_core must be"), ({"min_batch": 0}, "min_batch must be a positive int"),
])
def test_settings_are_validated(kw, words):
    with pytest.raises(UserError, match=words):
        BuildSettings(**kw)


# ---- the build ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["10.3.0", "11.4.1"])
def test_build_writes_engine_and_sidecar(tiny, version):
    trt = make_trt(version)
    engine, side, lines = _build(tiny, trt, workspace_gib=1.5, max_batch=4)
    assert engine == tiny.with_suffix(".engine") and side.name == "model.fp16.engine.json"
    plan = engine.read_bytes()
    assert plan.startswith(PLAN_MAGIC)
    header = json.loads(plan[len(PLAN_MAGIC):].split(b"\n", 1)[0])
    assert header["workspace"] == int(1.5 * 2**30)
    assert header["profile"] == {"image": [[1, 64, 64, 3], [1, 64, 64, 3], [4, 64, 64, 3]]}
    assert header["flags"] == trt_api(trt).network_flags(trt)
    sc = read_sidecar(engine)
    assert sc.tensorrt_version == version and sc.gpu_name == "Orin" and sc.compute_capability == (8, 7)
    assert sc.meta == tiny_meta() and sc.onnx_sha256 == sha256_file(tiny) and sc.onnx_file == tiny.name
    assert sc.engine_sha256 == sha256_file(engine)
    assert sc.build["profile"] == {"input": "image", "min": 1, "opt": 1, "max": 4}
    assert sc.build["strongly_typed"] is True and sc.build["workspace_gib"] == 1.5
    assert any(line.startswith("equivalent trtexec command: trtexec --onnx=") for line in lines)


def test_static_model_builds_without_profile(tiny_static, tmp_path):
    engine, _, _ = _build(tiny_static, engine_path=tmp_path / "out" / "m.engine")
    header = json.loads(engine.read_bytes()[len(PLAN_MAGIC):].split(b"\n", 1)[0])
    assert header["profile"] == {} and read_sidecar(engine).build["profile"] is None


def test_parser_errors_are_all_printed(tmp_path):
    from onnx import TensorProto, helper

    model = onnx.load(str(make_tiny_model(tmp_path / "t.onnx")))
    model.graph.node.append(helper.make_node("Unique", ["heatmap"], ["u"]))
    model.graph.node.append(helper.make_node("Det", ["u"], ["d"]))
    model.graph.output.append(helper.make_tensor_value_info("d", TensorProto.FLOAT, None))
    bad = tmp_path / "bad.onnx"
    onnx.save(model, str(bad))
    lines: list[str] = []
    with pytest.raises(UserError, match=r"cannot parse bad.onnx \(2 parser errors, first: .*Unique"):
        build_engine(bad, trt=make_trt(), gpu=GPU, log=lines.append)
    assert sum("parser error" in line for line in lines) == 2
    assert not (tmp_path / "bad.engine").exists() and not (tmp_path / "bad.engine.json").exists()


def test_a_build_returning_none_is_an_error_and_writes_nothing(tiny):
    with pytest.raises(UserError, match="could not build model.fp16.engine"):
        _build(tiny, make_trt(fail_build=True))
    assert not tiny.with_suffix(".engine").exists()
    assert sorted(p.name for p in tiny.parent.iterdir()) == [tiny.name]  # no temp or sidecar files


def test_timing_cache_is_loaded_and_saved(tiny, tmp_path):
    cache = tmp_path / "trt.cache"
    trt = make_trt()
    _build(tiny, trt, timing_cache=cache)
    assert cache.is_file() and ("set_timing_cache", 0) in trt.calls  # a new, empty cache
    first = cache.read_bytes()
    trt2 = make_trt()
    _build(tiny, trt2, timing_cache=cache)
    assert ("set_timing_cache", 1) in trt2.calls  # the saved entries came back
    assert cache.read_bytes() != first
    with pytest.raises(UserError, match="made by another TensorRT version or GPU"):
        _build(tiny, make_trt("10.7.0"), timing_cache=cache)


def test_dla_with_gpu_fallback(tiny):
    with pytest.raises(UserError, match="dla_core 0: this device has no DLA"):
        _build(tiny, make_trt(dla_cores=0), dla_core=0)
    with pytest.raises(UserError, match=r"dla_core 2: this device has 2 DLA cores \(0..1\)"):
        _build(tiny, make_trt(dla_cores=2), dla_core=2)
    trt = make_trt(dla_cores=2)
    engine, _, _ = _build(tiny, trt, dla_core=1)
    header = next(h for what, h in trt.calls if what == "build")
    assert header["dla_core"] == 1
    sc = read_sidecar(engine)
    assert sc.build["dla_core"] == 1 and sc.build["gpu_fallback"] is True


@pytest.mark.parametrize("version", ["10.3.0", "11.4.0.106"])
def test_dla_sets_the_real_gpu_fallback_flag(tiny, version):
    trt = make_trt(version, dla_cores=1)
    _build(tiny, trt, dla_core=0)
    header = next(h for what, h in trt.calls if what == "build")
    assert header["builder_flags"] == [3]  # BuilderFlag.GPU_FALLBACK is 3 in 10.3 and 11.4


def test_no_visible_gpu_is_one_line_not_a_traceback(tiny, monkeypatch, capsys):
    # trt.Builder(logger) raises "TypeError: pybind11::init(): factory function returned nullptr", never None
    with pytest.raises(UserError, match="could not create a builder .*nvidia-smi"):
        _build(tiny, make_trt(gpu=False))
    assert not tiny.with_suffix(".engine").exists()
    monkeypatch.setitem(sys.modules, "tensorrt", make_trt(gpu=False))
    from uolrps.cli.main import main

    assert main(["build", str(tiny)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: TensorRT could not create a builder") and err.count("\n") == 1


def test_build_needs_only_what_the_trt_extra_installs(tiny, monkeypatch):
    # [trt] installs TensorRT and pycuda, not onnx, onnxslim, onnxruntime or torch
    for name in ("onnx", "onnxslim", "onnxruntime", "torch"):
        monkeypatch.setitem(sys.modules, name, None)  # `import onnx` now raises ImportError
    engine, side, _ = _build(tiny, workspace_gib=1, max_batch=2)
    assert read_sidecar(engine).meta == tiny_meta()
    assert trtexec_command(tiny).startswith("trtexec --onnx=")


def test_the_parser_decides_not_the_operator_list(tiny):
    # this fake TensorRT refuses ReduceMean, which the operator list accepts: the build must say so
    lines: list[str] = []
    with pytest.raises(UserError, match=r"cannot parse model.fp16.onnx \(1 parser errors, first: .*ReduceMean"):
        build_engine(tiny, trt=make_trt(refuses={"ReduceMean"}), gpu=GPU, log=lines.append)
    assert any("parser error 1/1" in line and "ReduceMean" in line for line in lines)


def test_one_logger_per_process(tiny):
    trt = make_trt()
    for _ in range(3):
        _build(tiny, trt)
    assert trt.Logger.created == 1


# ---- trtexec ------------------------------------------------------------------------------------------------
def test_trtexec_equivalent(tiny, tiny_static, tmp_path):
    info = read_onnx_info(tiny)
    s = BuildSettings(workspace_gib=2, timing_cache=tmp_path / "c.cache", dla_core=0, max_batch=4)
    argv = trtexec_argv(info, tmp_path / "m.engine", s, batch_profile(info.input_shape, s), major=10)
    assert argv == ["trtexec", f"--onnx={tiny}", f"--saveEngine={tmp_path / 'm.engine'}",
                    "--memPoolSize=workspace:2048", "--stronglyTyped",
                    "--minShapes=image:1x64x64x3", "--optShapes=image:1x64x64x3", "--maxShapes=image:4x64x64x3",
                    f"--timingCacheFile={tmp_path / 'c.cache'}", "--useDLACore=0", "--allowGPUFallback"]
    assert "--stronglyTyped" not in trtexec_argv(info, tmp_path / "m.engine", s, None, major=11)
    line = trtexec_command(tiny_static, workspace_gib=0.5, trt_version="11.4.1")
    assert shlex.split(line) == ["trtexec", f"--onnx={tiny_static}", f"--saveEngine={tiny_static.with_suffix('.engine')}",
                                 "--memPoolSize=workspace:512"]


# ---- where TensorRT is missing (this machine) ------------------------------------------------------------
needs_no_tensorrt = pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                                       reason="tests the message shown where TensorRT is not installed")


@needs_no_tensorrt
def test_missing_tensorrt_names_the_extra(tiny):
    lines: list[str] = []
    with pytest.raises(UserError) as e:
        build_engine(tiny, log=lines.append)
    assert "pip install 'uolrps[trt]'" in str(e.value) and "JetPack" in str(e.value)
    assert any("trtexec --onnx=" in line for line in lines)  # the trtexec way still printed


@needs_no_tensorrt
def test_cli_build_without_tensorrt(tiny, capsys):
    from uolrps.cli.main import main

    assert main(["build", str(tiny), "--max-batch", "4"]) == 2
    out, err = capsys.readouterr()
    assert "--maxShapes=image:4x64x64x3" in out
    assert err.startswith("error: ") and "uolrps[trt]" in err and "Traceback" not in err and err.count("\n") == 1


def test_cli_bad_input_is_one_line(tiny_static, capsys):
    from uolrps.cli.main import main

    assert main(["build", str(tiny_static), "--max-batch", "4"]) == 2
    err = capsys.readouterr().err
    assert "fixed batch of 1" in err and err.count("\n") == 1
    assert main(["build", str(tiny_static.with_name("nope.onnx"))]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_dla_help_says_which_tensorrt_and_what_falls_back():
    import re

    from typer.testing import CliRunner

    from uolrps.cli.main import app

    text = re.sub(r"[\s│]+", " ", CliRunner().invoke(app, ["build", "--help"], env={"COLUMNS": "200"}).output)
    for words in ("10.x up to 10.7", "11.4.1 with JetPack 7.2", "fall back to the GPU", "ViT"):
        assert words in text, words
