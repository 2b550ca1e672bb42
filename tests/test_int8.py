"""INT8 twins: what the recipe quantizes (read back from the graph), the Q/DQ form TensorRT needs, the gate,
the metadata, the calibration-image rules and the bad-input lines. Real ONNX Runtime quantization and sessions
on a tiny encoder under the real HeatmapGraph tail (tests/int8model.py)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")

from int8model import scenes, tiny_int8_model, write_scenes  # noqa: E402
from uolrps.core.errors import UserError  # noqa: E402
from uolrps.export import int8 as q8  # noqa: E402
from uolrps.model.meta import ModelMeta  # noqa: E402

COMPUTE = ("Conv", "MatMul", "Gemm")


@pytest.fixture(scope="module")
def fp32():
    return tiny_int8_model()


@pytest.fixture(scope="module")
def qdq(fp32):
    return q8.quantize_qdq(fp32[0], scenes(24))


def _producers(model):
    return {o: n for n in model.graph.node for o in n.output}


def quantized_compute_nodes(model) -> set[str]:
    """Compute nodes whose data input (input 0) comes from a DequantizeLinear: read from the graph itself."""
    prod = _producers(model)
    return {n.name for n in model.graph.node if n.op_type in COMPUTE
            and n.input[0] in prod and prod[n.input[0]].op_type == "DequantizeLinear"}


def test_recipe_quantizes_encoder_conv_and_linear_only(fp32, qdq):
    qmodel, recipe = qdq
    # by construction of the tiny encoder: its conv and its two Linear layers
    expected = {"/net/conv/Conv", "/net/qk/MatMul", "/net/fc/MatMul"}
    assert quantized_compute_nodes(qmodel) == expected == set(recipe.nodes)
    ops = {n.name: n.op_type for n in qmodel.graph.node}
    # the attention products (two activations), the w* projection and the tail stay float
    assert {"/net/MatMul", "/net/MatMul_1", "/proj/Conv"} <= set(ops) - expected
    prod = _producers(qmodel)
    for n in qmodel.graph.node:
        if n.op_type in ("Add", "LayerNormalization", "Softmax", "Erf", "ReduceMin", "ReduceMax", "Sqrt", "Div"):
            assert all(prod.get(i) is None or prod[i].op_type != "DequantizeLinear" for i in n.input), n.name


def test_qdq_is_symmetric_int8_per_channel_weights(qdq):
    qmodel, _ = qdq
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in qmodel.graph.initializer}
    dq = [n for n in qmodel.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert dq
    for n in dq:
        zp = inits[n.input[2]]
        assert zp.dtype == np.int8 and not zp.any(), n.name  # symmetric: zero point 0, as TensorRT needs
    weights = {n.input[1] for n in qmodel.graph.node if n.op_type in COMPUTE}
    per_channel = [n for n in dq if n.output[0] in weights]
    assert len(per_channel) == 3
    for n in per_channel:
        w, scale = inits[n.input[0]], inits[n.input[1]]
        assert w.dtype == np.int8 and scale.ndim == 1 and scale.size > 1  # one scale per output channel
    # activations per tensor, computed from the calibration data: a scalar scale
    assert all(inits[n.input[1]].ndim == 0 for n in dq if n.op_type == "QuantizeLinear")


def test_qdq_twin_agrees_with_fp32_and_tensorrt_imports_it(fp32, qdq):
    from uolrps.export.tensorrt.ops import unsupported_ops
    from uolrps.export.verify import gate_twin

    report = gate_twin(fp32[0].SerializeToString(), qdq[0].SerializeToString(), scenes(32, seed=5),
                       min_iou=0.7, min_share=0.9, label="int8")
    assert report.share >= 0.9
    assert unsupported_ops(qdq[0]) == []


def test_cpu_twin_is_dynamic_on_linear_layers_only(fp32):
    cpu, recipe = q8.quantize_cpu(fp32[0])
    ops = [n.op_type for n in cpu.graph.node]
    assert ops.count("MatMulInteger") == 2 and "Conv" in ops and "QuantizeLinear" not in ops
    assert set(recipe.nodes) == {"/net/qk/MatMul", "/net/fc/MatMul"} and recipe.form == "dynamic"


def test_cnn_gets_no_cpu_twin():
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("heatmap", TensorProto.FLOAT, [1, 4, 8, 8])
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 1, 1], np.ones(12, np.float32))
    g = helper.make_graph([helper.make_node("Conv", ["image", "w"], ["heatmap"], name="/net/c/Conv")], "g", [x], [y], [w])
    assert q8.quantize_cpu(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])) is None


def test_twins_are_gated_written_with_recipe_metadata(fp32, tmp_path):
    model, meta = fp32
    folder = write_scenes(tmp_path / "calib", 48)
    twins = q8.int8_twins(model, meta, tmp_path / "model.onnx", folder, n_images=16, log=lambda m: None)
    assert [t.path.name for t in twins] == ["model.int8.onnx", "model.int8.cpu.onnx"]
    assert not list(tmp_path.glob("*.onnx"))  # nothing written here: export writes the set
    for t in twins:
        assert t.report.share >= 0.9 and t.report.n_images >= 32
        props = {p.key: p.value for p in t.model.metadata_props}
        m = ModelMeta.from_props(props)
        assert m.precision == "int8" and m.input_size == meta.input_size
        assert m.extra["int8"]["form"] == t.recipe.form and m.extra["int8"]["calib_source"] == str(folder)
        assert sorted(m.extra["int8"]["nodes"]) == sorted(t.recipe.nodes)
    assert twins[0].recipe.calib_images == 16  # calibration and gate images are disjoint (48 = 32 + 16)


def test_failed_gate_names_the_costly_layers(fp32, tmp_path, monkeypatch):
    model, meta = fp32
    folder = write_scenes(tmp_path / "calib", 40)
    monkeypatch.setattr(q8, "GATE_MIN_IOU", 1.01)  # no twin can pass: the failure path, as for a bad recipe
    with pytest.raises(UserError) as e:
        q8.int8_twins(model, meta, tmp_path / "model.onnx", folder, n_images=8, log=lambda m: None)
    msg = str(e.value)
    assert "int8 twin (Q/DQ)" in msg and "/net/" in msg and "\n" not in msg


def test_calibration_folder_rules(tmp_path):
    a, b, w = write_scenes(tmp_path / "a", 2), write_scenes(tmp_path / "b", 2), write_scenes(tmp_path / "w", 2)
    assert q8.resolve_calib_folder(a, b, w) == a  # --calib-images first (w* computed in the same command)
    assert q8.resolve_calib_folder(None, b, w) == b  # then --int8-calib
    assert q8.resolve_calib_folder(None, None, str(w)) == w  # then the w* file's folder
    with pytest.raises(UserError, match="pass int8_calib=DIR"):
        q8.resolve_calib_folder(None, None, "ImageNet-1k train, 10 classes")  # a description, not a folder
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no images"):
        q8.resolve_calib_folder(None, empty, None)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match="can be read"):
        q8.resolve_calib_folder(None, broken, None)


def _cli(args, capsys):
    from uolrps.cli.main import main

    code = main(["export", *args])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("extra, words", [
    ([], "--int8 needs calibration images"),
    (["--int8-calib", "NOPE"], "does not exist"),
    (["--int8-images", "0", "--int8-calib", "."], "--int8-images must be at least 1"),
])
def test_cli_bad_input_is_one_line_before_any_work(extra, words, tmp_path, capsys, monkeypatch):
    import uolrps.calib.encoder as enc

    monkeypatch.setattr(enc, "build_encoder", lambda *a, **k: pytest.fail("work started"))
    code, err = _cli(["--backbone", "efflite0", "-o", str(tmp_path / "m.onnx"), "--int8", *extra], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and words in err[0]
    assert not list(tmp_path.iterdir())


def test_int8_options_need_int8(tmp_path, capsys):
    code, err = _cli(["--backbone", "efflite0", "-o", str(tmp_path / "m.onnx"), "--int8-calib", "."], capsys)
    assert code == 2 and "need --int8" in err[-1]


def test_missing_quantizer_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime.quantization", None)
    with pytest.raises(UserError, match=r"pip install 'uolrps\[export\]'"):
        q8.check_quantizer()


def test_fixed_batch_graph_is_calibrated_and_gated_in_its_batch(tmp_path):
    model, meta = tiny_int8_model(dynamic_batch=False, batch=2)
    folder = write_scenes(tmp_path / "calib", 43)  # 11 calibration images: the last batch is padded
    twins = q8.int8_twins(model, meta, tmp_path / "m.onnx", folder, n_images=11, log=lambda m: None)
    assert [t.recipe.form for t in twins] == ["QDQ", "dynamic"] and all(t.report.share >= 0.9 for t in twins)
    dims = [d.dim_value for d in twins[0].model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 64, 64, 3]
