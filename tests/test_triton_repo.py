"""`uolrps triton-repo`: the model repository layout and config.pbtxt, parsed with Triton's own protobuf;
URL models in backend selection. No server needed (tests/test_triton_server.py runs one)."""

from __future__ import annotations

import json

import pytest

from tinymodel import make_tiny_model

from uolrps.cli.main import main
from uolrps.core.errors import UserError
from uolrps.export.triton.repo import RepoSettings, write_triton_repo
from uolrps.model.meta import ModelMeta
from uolrps.runtime.backends import backend_name, load_backend
from uolrps.model.sidecar import Sidecar, write_sidecar


def _parse(path):
    pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed: pip install 'uolrps[triton]'")
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def _params(config) -> dict[str, str]:
    return {k: v.string_value for k, v in config.parameters.items()}


@pytest.fixture
def tiny(tmp_path):
    return make_tiny_model(tmp_path / "tiny.onnx", size=(64, 96), grid=(8, 12))


def test_onnx_entry_is_a_valid_model_config_with_the_metadata(tiny, tmp_path, capsys):
    out = tmp_path / "repo"
    assert main(["triton-repo", str(tiny), "-o", str(out), "--max-batch", "16", "--queue-delay-us", "250",
                 "--kind", "cpu", "--count", "2"]) == 0
    assert "tritonserver --model-repository=" in capsys.readouterr().out
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "tiny/1/model.onnx", "tiny/config.pbtxt"]
    assert (out / "tiny" / "1" / "model.onnx").read_bytes() == tiny.read_bytes()
    c = _parse(out / "tiny" / "config.pbtxt")
    assert (c.name, c.platform, c.max_batch_size) == ("tiny", "onnxruntime_onnx", 16)
    from tritonclient.grpc import model_config_pb2 as pb

    (i,), (o,) = c.input, c.output
    assert (i.name, i.data_type, i.format, list(i.dims)) == ("image", pb.TYPE_UINT8, pb.ModelInput.FORMAT_NHWC, [64, 96, 3])
    assert (o.name, o.data_type, list(o.dims)) == ("heatmap", pb.TYPE_FP32, [1, 8, 12])
    assert list(c.dynamic_batching.preferred_batch_size) == [8, 16]
    assert c.dynamic_batching.max_queue_delay_microseconds == 250
    (g,) = c.instance_group
    assert (g.count, g.kind) == (2, g.KIND_CPU)
    # the parameters are exactly the ONNX file's metadata, so a client rebuilds the same ModelMeta
    meta = ModelMeta.from_props(_params(c), source="config")
    import onnx

    props = {p.key: p.value for p in onnx.load(str(tiny)).metadata_props}
    assert _params(c) == props and meta == ModelMeta.from_props(props)


def test_fixed_batch_models_and_python_entries(tmp_path):
    one = make_tiny_model(tmp_path / "one.onnx", dynamic_batch=False, batch=1)
    four = make_tiny_model(tmp_path / "four.onnx", dynamic_batch=False, batch=4)
    out = tmp_path / "repo"
    write_triton_repo(one, out, log=lambda m: None)
    write_triton_repo(four, out, RepoSettings(platform="python"), log=lambda m: None)
    c1, c4 = _parse(out / "one" / "config.pbtxt"), _parse(out / "four" / "config.pbtxt")
    assert c1.max_batch_size == 1 and list(c1.input[0].dims) == [64, 64, 3] and not c1.HasField("dynamic_batching")
    # a fixed batch of 4 cannot be split by Triton: no batching, the 4 is part of the dims
    assert c4.max_batch_size == 0 and list(c4.input[0].dims) == [4, 64, 64, 3] and list(c4.output[0].dims) == [4, 1, 8, 8]
    assert c4.backend == "python" and c4.platform == "" and c4.instance_group[0].kind == c4.instance_group[0].KIND_CPU
    assert (out / "four" / "1" / "model.py").is_file() and (out / "four" / "1" / "model.onnx").is_file()
    compile((out / "four" / "1" / "model.py").read_text(), "model.py", "exec")


def test_an_engine_gets_a_tensorrt_plan_entry_capped_by_its_profile(tiny, tmp_path):
    engine = tmp_path / "tiny.engine"
    engine.write_bytes(b"plan bytes")  # the repository only copies it; the server's TensorRT loads it
    import onnx

    meta = ModelMeta.from_props({m.key: m.value for m in onnx.load(str(tiny)).metadata_props})
    side = Sidecar(tensorrt_version="10.3.0", gpu_name="Orin", compute_capability=(8, 7),
                   meta=meta.replace(precision="fp16"), build={"profile": {"input": "image", "min": [1, 64, 96, 3],
                                                                           "opt": [4, 64, 96, 3], "max": [8, 64, 96, 3]}})
    write_sidecar(engine, side)
    out = tmp_path / "repo"
    other = tmp_path / "other.engine"
    other.write_bytes(b"plan")
    write_sidecar(other, Sidecar(tensorrt_version="10.3.0", gpu_name="Orin", compute_capability=(8, 7),
                                 meta=meta.replace(input_size=(224, 224))))
    with pytest.raises(UserError, match=r"was not built from tiny.onnx: its input_size is \(224, 224\)"):
        write_triton_repo(tiny, out, engine=other, log=lambda m: None)
    with pytest.raises(UserError, match="larger than the engine's optimisation profile allows"):
        write_triton_repo(tiny, out, RepoSettings(max_batch=16), engine=engine, log=lambda m: None)
    assert not (out / "tiny").exists()  # nothing half-written
    entries = write_triton_repo(tiny, out, RepoSettings(max_batch=8), engine=engine, log=lambda m: None)
    assert [e.name for e in entries] == ["tiny", "tiny_trt"]
    c = _parse(out / "tiny_trt" / "config.pbtxt")
    assert (c.platform, c.max_batch_size) == ("tensorrt_plan", 8)
    assert (out / "tiny_trt" / "1" / "model.plan").read_bytes() == b"plan bytes"
    assert json.loads(_params(c)["uolrps.precision"]) == "fp16"


@pytest.mark.parametrize("argv, message", [
    (["--kind", "tpu"], "--kind must be gpu or cpu"),
    (["--max-batch", "0"], "--max-batch must be at least 1"),
    (["--preferred-batch", "4,x"], "--preferred-batch must be comma-separated"),
    (["--preferred-batch", "32"], "larger than max_batch_size 8"),
    (["--platform", "tensorflow"], "--platform must be onnxruntime or python or openvino"),
    (["--name", "a/b"], "a Triton model name may use"),
    (["--engine", "absent.engine"], "does not exist"),
])
def test_bad_options_are_one_line_errors(tiny, tmp_path, capsys, argv, message):
    assert main(["triton-repo", str(tiny), "-o", str(tmp_path / "repo"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "repo" / "tiny").exists()


def test_existing_entries_are_kept_unless_forced(tiny, tmp_path, capsys):
    out = tmp_path / "repo"
    assert main(["triton-repo", str(tiny), "-o", str(out)]) == 0
    (out / "tiny" / "config.pbtxt").write_text("mine")
    assert main(["triton-repo", str(tiny), "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "tiny" / "config.pbtxt").read_text() == "mine"
    assert main(["triton-repo", str(tiny), "-o", str(out), "--force"]) == 0
    assert (out / "tiny" / "config.pbtxt").read_text().startswith('name: "tiny"')
    assert [p.name for p in out.iterdir()] == ["tiny"]  # no staging folder left behind


def test_a_file_that_is_not_a_uolrps_model_is_refused(tmp_path, capsys):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"not onnx")
    assert main(["triton-repo", str(bad), "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "is not a readable ONNX" in err


# ---- URL models in backend selection ---------------------------------------------------------------------
@pytest.mark.parametrize("model, backend, expected", [
    ("grpc://h:8001/m", "auto", "triton"),
    ("http://h:8000/m", "triton", "triton"),
    ("grpc://h:8001/m", "ort", UserError("is a server URL, which only backend triton takes")),
    ("model.onnx", "triton", UserError("backend triton takes a server URL as model")),
])
def test_url_models_choose_the_triton_backend(model, backend, expected):
    if isinstance(expected, Exception):
        with pytest.raises(UserError, match=str(expected).replace(".", r"\.")):
            backend_name(model, backend)
    else:
        assert backend_name(model, backend) == expected


@pytest.mark.parametrize("url", ["grpc://host", "ftp://h/m", "grpc://h:8001/", "grpc://h:x/m", "grpc://h/a b"])
def test_malformed_urls_are_refused(url):
    pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed")
    with pytest.raises(UserError, match="is not a Triton model URL"):
        load_backend(url, "triton")


# ---- uolrps export --triton-repo -----------------------------------------------------------------------------
def test_export_refuses_a_taken_repository_entry_before_exporting(tmp_path, capsys):
    (tmp_path / "repo" / "m").mkdir(parents=True)
    assert main(["export", "-b", "efflite0", "-o", str(tmp_path / "m.onnx"), "--triton-repo", str(tmp_path / "repo")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
def test_export_writes_the_model_and_its_repository_entry(tmp_path):
    out, repo = tmp_path / "eff.onnx", tmp_path / "repo"
    assert main(["export", "-b", "efflite0", "-o", str(out), "--dynamic-batch", "--triton-repo", str(repo)]) == 0
    c = _parse(repo / "eff" / "config.pbtxt")
    assert (c.platform, c.max_batch_size, list(c.input[0].dims)) == ("onnxruntime_onnx", 8, [224, 224, 3])
    assert (repo / "eff" / "1" / "model.onnx").read_bytes() == out.read_bytes()
    assert json.loads(_params(c)["uolrps.backbone"]) == "efflite0"


def test_doctor_says_whether_the_triton_client_is_there():
    pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed")
    from importlib.metadata import version

    from uolrps.bench.doctor import diagnose

    (line,) = [c for c in diagnose() if c.name.endswith("grpc://HOST:8001/NAME")]
    assert line.ok is True and f"tritonclient {version('tritonclient')} (grpc, http)" == line.detail


def test_onnx_runtime_options_do_not_apply_to_a_served_model(capsys):
    with pytest.raises(UserError, match=r"threads does not apply to the triton backend"):
        load_backend("grpc://127.0.0.1:1/m", threads=2)
    from conftest import shared

    video = str(shared("video", "raccoon_pan.mp4"))
    assert main(["run", "--video", video, "--model", "grpc://127.0.0.1:1/m", "--providers", "cuda"]) == 2
    assert "--providers does not apply to the triton backend" in capsys.readouterr().err
