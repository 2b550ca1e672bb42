"""The OpenVINO backend on the real OpenVINO runtime (CPU): agreement with ONNX Runtime, device, threads and the
explicit precision hint, calls in flight from several threads, the precision gate and its record, and every bad
input as one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

ov = pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")

from conftest import shared  # noqa: E402
from tinymodel import make_tiny_model  # noqa: E402
from uolrps.core.errors import OptionError, UserError  # noqa: E402
from uolrps.runtime.backends import ModelOptions, auto_cpu_engine, choose_engine, load_backend  # noqa: E402
from uolrps.runtime.backends.openvino import OpenVinoBackend  # noqa: E402
from uolrps.model.gates import find_gate, gates_path  # noqa: E402


def _cpu_has(capability: str) -> bool:
    return capability in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _uolrps(*args, env=None):
    return subprocess.run([sys.executable, "-m", "uolrps.cli.main", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env)


def _public_images(size, n=32):
    from uolrps.core.images import list_images, read_rgb, resize

    paths = list_images(shared("imagenet-loc", "images"))
    picks = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, n)]
    return np.stack([resize(read_rgb(p), size) for p in picks])


@pytest.fixture
def tiny(tmp_path):
    return make_tiny_model(tmp_path / "m.onnx")


def test_tiny_heatmaps_equal_onnx_runtime_and_any_batch(tiny, tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    with load_backend(tiny, "ort") as ref, load_backend(tiny, "openvino") as b:
        assert b.caps.precision == "f32" and b.caps.device == "CPU"
        np.testing.assert_allclose(b(x), ref(x), atol=1e-4)
        assert b(x[:0]).shape == (0, 1, 8, 8)
        with pytest.raises(ValueError, match="must be uint8"):
            b(x.astype(np.float32))
    fixed = make_tiny_model(tmp_path / "f.onnx", dynamic_batch=False, batch=2)  # chunks of 2, the last padded
    with load_backend(fixed, "ort") as ref, load_backend(fixed, "openvino") as b:
        assert b.caps.max_batch == 2 and b.caps.fixed_batch
        np.testing.assert_allclose(b(x), ref(x), atol=1e-4)


@pytest.mark.slow
def test_efflite0_f32_heatmaps_equal_onnx_runtime_on_public_images(efflite0_model):
    x = _public_images((224, 224))
    with load_backend(efflite0_model, "ort") as ref, load_backend(efflite0_model, "openvino", device="cpu") as b:
        want, got = ref(x), np.concatenate([b(x[i:i + 8]) for i in range(0, len(x), 8)])
    assert got.shape == want.shape == (32, 1, 7, 7)
    assert float(np.abs(got - want).max()) <= 1e-4


def test_precision_hint_is_always_set_and_threads_reach_openvino(tiny, monkeypatch):
    seen = []
    real = ov.Core.compile_model

    def spy(core, model, device, config=None):
        seen.append((device, dict(config or {})))
        return real(core, model, device, config)

    monkeypatch.setattr(ov.Core, "compile_model", spy)
    with OpenVinoBackend(tiny) as b:
        assert b.caps.concurrency >= 1
    with OpenVinoBackend(tiny, threads=1) as b:
        assert b.caps.concurrency == 1
        assert int(b._compiled.get_property("INFERENCE_NUM_THREADS")) == 1
        assert b._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"
    assert [d for d, _ in seen] == ["CPU", "CPU"]
    assert all(c["INFERENCE_PRECISION_HINT"] == "f32" for _, c in seen)  # never OpenVINO's own bf16 default
    assert seen[1][1]["INFERENCE_NUM_THREADS"] == 1 and seen[0][1]["PERFORMANCE_HINT"] == "THROUGHPUT"


def test_calls_in_flight_from_several_threads_use_their_own_requests(tiny):
    rng = np.random.default_rng(1)
    batches = [rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8) for _ in range(24)]
    with load_backend(tiny, "ort") as ref:
        want = [ref(b) for b in batches]
    got: dict[int, np.ndarray] = {}
    with OpenVinoBackend(tiny) as b:
        start = threading.Barrier(4)

        def work(k):
            start.wait()
            for i in range(k, len(batches), 4):
                got[i] = b(batches[i])

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        made = b._requests.qsize()
    for i, w in enumerate(want):
        np.testing.assert_allclose(got[i], w, atol=1e-4)
    assert 2 <= made <= 4  # more than one request was in flight at once, never more than the callers


def test_stream_engine_keeps_the_backends_calls_in_flight(tiny, tmp_path):
    import cv2

    from uolrps.runtime.runner import RunConfig, run

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(12):
        cv2.imwrite(str(frames / f"{i:02d}.png"), np.full((64, 64, 3), 20 * i, np.uint8))
    said: list[str] = []
    stats = run(RunConfig(source=str(frames), model=tiny, backend="openvino", progress=False, inflight=2),
                say=said.append)
    assert stats.frames == 12
    assert any("OpenVINO" in s and "at f32 precision" in s for s in said)


def test_auto_runs_onnx_runtime_unless_only_openvino_takes_the_options(tiny, tmp_path, capsys):
    import cv2

    from uolrps.cli.main import main

    name, why = auto_cpu_engine(ModelOptions())
    assert name == "ort" and "OpenVINO is installed too: --backend openvino runs it" in why
    assert auto_cpu_engine(ModelOptions(providers="cpu")) == ("ort", "auto: providers only ONNX Runtime takes")
    assert auto_cpu_engine(ModelOptions(extra={"precision": "f32"})) == ("openvino", "auto: precision only OpenVINO takes")
    assert auto_cpu_engine(ModelOptions(threads=1))[0] == name  # both engines take threads
    # `run` chooses only for an ONNX file with backend auto; the library's own auto stays by suffix
    assert choose_engine(tiny, ModelOptions(backend="ort")) == (ModelOptions(backend="ort"), None)
    assert choose_engine(tiny.with_suffix(".engine"), ModelOptions())[1] is None
    assert choose_engine(tiny, ModelOptions())[0].backend == name
    assert isinstance(load_backend(tiny), __import__("uolrps.runtime.backends.ort", fromlist=["x"]).OrtBackend)
    frames = tmp_path / "f"
    frames.mkdir()
    cv2.imwrite(str(frames / "a.png"), np.full((48, 64, 3), 100, np.uint8))
    assert main(["run", "--video", str(frames), "--model", str(tiny), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "backend ort (auto: ONNX Runtime (OpenVINO is installed too" in err and "runs m.onnx on CPU" not in err
    assert main(["run", "--video", str(frames), "--model", str(tiny), "--precision", "f32", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "backend openvino (auto: precision only OpenVINO takes)" in err
    assert "runs m.onnx on CPU" in err and "at f32 precision" in err


def test_bad_inputs_are_one_line(tiny, tmp_path):
    with pytest.raises(OptionError, match="unknown OpenVINO device 'tpu'"):
        OpenVinoBackend(tiny, device="tpu")
    if "NPU" not in ov.Core().available_devices:
        with pytest.raises(OptionError, match="device NPU is not available here"):
            OpenVinoBackend(tiny, device="npu")
    with pytest.raises(OptionError, match="unknown inference precision"):
        OpenVinoBackend(tiny, precision="int4")
    with pytest.raises(UserError, match="has not passed the bf16 gate"):
        OpenVinoBackend(tiny, precision="bf16")
    # an IR without our metadata
    import onnx
    from onnx import TensorProto, helper

    bare = helper.make_model(helper.make_graph([helper.make_node("Cast", ["image"], ["heatmap"], to=TensorProto.FLOAT)],
                                              "bare", [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 4])],
                                              [helper.make_tensor_value_info("heatmap", TensorProto.FLOAT, [1, 4])]),
                             opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    ov.save_model(ov.Core().read_model(str(tmp_path / "bare.onnx")), str(tmp_path / "bare.xml"))
    with pytest.raises(UserError, match="bare.xml has no uolrps metadata.*uolrps export --openvino"):
        load_backend(tmp_path / "bare.xml")
    import cv2

    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "a.png"), np.zeros((64, 64, 3), np.uint8))
    for args in (["run", "--video", frames, "--model", tmp_path / "bare.xml"],
                 ["run", "--video", frames, "--model", tiny, "--backend", "openvino", "--device", "tpu"],
                 ["run", "--video", frames, "--model", tiny, "--backend", "openvino", "--precision", "bf16"]):
        out = _uolrps(*args)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr


def test_missing_extra_is_one_line(tiny, tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((64, 64, 3), np.uint8))
    code = ("import sys; sys.modules['openvino'] = None\n"
            "from uolrps.cli.main import main\n"
            f"sys.exit(main(['run', '--video', {str(tmp_path)!r}, '--model', {str(tiny)!r}, '--backend', 'openvino']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "the openvino backend needs openvino" in out.stderr and "pip install 'uolrps[openvino]'" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_gate_records_a_pass_and_a_refused_gate_writes_nothing(tiny, tmp_path):
    images = tmp_path / "imgs"
    from int8model import write_scenes

    write_scenes(images, 34)
    out = _uolrps("gate", tiny, "--precision", "f32", "--images", images)
    assert out.returncode == 0, out.stderr
    entry = find_gate(tiny, "openvino", "CPU", "f32")
    assert entry is not None and "box IoU >= 0.9 on 100%" in entry.summary
    # a twin whose heatmaps are not those of its FP32 graph: the gate refuses it and writes nothing
    inverted = tmp_path / "m.fp16.onnx"
    import onnx
    from onnx import helper

    model = onnx.load(str(tiny))
    model.graph.node.append(helper.make_node("Neg", ["heatmap"], ["neg"]))
    model.graph.node.append(helper.make_node("Add", ["neg", "one"], ["inv"]))
    model.graph.initializer.append(helper.make_tensor("one", onnx.TensorProto.FLOAT, [], [1.0]))
    model.graph.output[0].name = "inv"
    meta = {p.key: p.value for p in model.metadata_props}
    meta["uolrps.output_name"] = '"inv"'
    del model.metadata_props[:]
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(inverted))
    out = _uolrps("gate", inverted, "--precision", "f32", "--images", images)
    assert out.returncode == 2 and "gate failed: box IoU >= 0.9" in out.stderr and "Traceback" not in out.stderr
    assert not gates_path(inverted).exists()
    # too few images, unknown device: one line, nothing written
    few = tmp_path / "few"
    few.mkdir()
    for p in sorted(images.iterdir())[:5]:
        shutil.copy(p, few / p.name)
    for args in (["--images", few], ["--images", images, "--device", "tpu"]):
        out = _uolrps("gate", inverted, "--precision", "f32", *args)
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not gates_path(inverted).exists()
    # a changed file no longer counts as gated
    tiny.write_bytes(tiny.read_bytes() + b"")
    assert find_gate(tiny, "openvino", "CPU", "f32") is not None
    make_tiny_model(tiny, threshold=0.4)
    assert find_gate(tiny, "openvino", "CPU", "f32") is None


@pytest.mark.slow
def test_int8_twin_passes_its_own_gate_on_openvino(tmp_path):
    pytest.importorskip("onnxruntime.quantization")
    from int8model import write_int8_twins, write_scenes
    from uolrps.eval.precision_gate import gate_precision

    twin = write_int8_twins(tmp_path)[1]  # model.int8.onnx (Q/DQ)
    result = gate_precision(twin, precision="f32", images=write_scenes(tmp_path / "gate", 32, seed=5),
                            log=lambda m: None)
    assert result.report.min_iou == 0.7 and result.report.min_share == 0.9  # the INT8 twin's own thresholds
    with OpenVinoBackend(twin) as b:
        assert b.gate is not None and "INT8 twin, gated on OpenVINO CPU" in b.caps.summary


@pytest.mark.slow
def test_bf16_gate_on_imagenet_loc(efflite0_model):
    if not _cpu_has("BF16"):
        pytest.skip("needs a CPU with bf16 (AVX-512 BF16 or AMX); OpenVINO here reports "
                    f"{ov.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES')}")
    from uolrps.eval.precision_gate import gate_precision

    result = gate_precision(efflite0_model, precision="bf16", images=shared("imagenet-loc", "images"),
                            n_images=64, log=lambda m: None)
    assert result.report.share >= 0.95
    with OpenVinoBackend(efflite0_model, precision="bf16") as b:
        assert b.caps.precision == "bf16"


def test_export_ir_carries_our_metadata_and_triton_openvino_entry(tiny, tmp_path):
    from uolrps.export.openvino_ir import write_ir
    from uolrps.export.triton.repo import RepoSettings, validate_config, write_triton_repo
    from uolrps.model.ir_meta import RT_SECTION

    xml = write_ir(tiny, log=lambda m: None)
    assert xml == tmp_path / "m.xml" and xml.with_suffix(".bin").is_file()
    assert ov.Core().read_model(str(xml)).has_rt_info([RT_SECTION, "uolrps.format"])
    x = np.random.default_rng(2).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    with load_backend(xml) as ir, load_backend(tiny, "ort") as ref:
        assert isinstance(ir, OpenVinoBackend) and ir.meta == ref.meta
        np.testing.assert_allclose(ir(x), ref(x), atol=1e-4)
    out = tmp_path / "repo"
    write_triton_repo(tiny, out, RepoSettings(platform="openvino", name="tiny_ov"), log=lambda m: None)
    text = (out / "tiny_ov" / "config.pbtxt").read_text()
    config = validate_config(text)
    if config is None:
        pytest.skip("tritonclient (Triton's ModelConfig protobuf) is not installed: pip install 'uolrps[triton]'")
    assert config.backend == "openvino" and config.platform == ""
    assert config.instance_group[0].kind == config.instance_group[0].KIND_CPU
    # Triton's OpenVINO backend refuses parameters it does not know: only its own keys, the metadata is in the IR
    assert set(config.parameters) <= {"PERFORMANCE_HINT", "ENABLE_BATCH_PADDING"}
    files = sorted(p.name for p in (out / "tiny_ov" / "1").iterdir())
    assert files == ["model.bin", "model.xml"]
    with load_backend(out / "tiny_ov" / "1" / "model.xml") as served:
        assert served.meta == ref.meta


def test_doctor_lists_openvino_and_its_devices():
    from uolrps.bench import doctor

    check = doctor.check_openvino()
    assert check.ok is True and check.detail.startswith(f"OpenVINO {ov.__version__.split('-')[0]} on ")
    for device in ov.Core().available_devices:
        assert f"{device} (" in check.detail
    assert "FP32" in check.detail


def test_export_model_checks_the_ir_before_any_work(tmp_path):
    """export_model(..., openvino=True) (what `uolrps export --openvino` calls): a missing extra and an IR path
    that cannot be written are refused before the encoder loads, and nothing is written."""
    out = tmp_path / "m.onnx"
    code = ("import sys; sys.modules['openvino'] = None\n"
            "from uolrps.core.errors import UserError\n"
            "from uolrps.export.onnx_export import export_model\n"
            "try:\n"
            f"    export_model('efflite0', {str(out)!r}, openvino=True, progress=False, log=print)\n"
            "except UserError as e:\n"
            "    print('refused:', e)\n")
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "refused: writing an OpenVINO IR needs OpenVINO" in got.stdout, got.stdout + got.stderr
    from uolrps.export.onnx_export import export_model

    (tmp_path / "m.xml").mkdir()  # the IR's path is taken by a folder
    with pytest.raises(UserError, match="OpenVINO IR"):
        export_model("efflite0", out, openvino=True, progress=False, log=lambda m: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.xml"]
