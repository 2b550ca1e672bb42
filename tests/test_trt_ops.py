"""The TensorRT 10 operator list and the graph check built on it."""

from __future__ import annotations

import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from tinymodel import make_tiny_model  # noqa: E402
from uolrps.core.errors import UserError  # noqa: E402
from uolrps.export.tensorrt.ops import TRT10_LATE_OPS, TRT10_OPS, check_tensorrt_ops, unsupported_ops  # noqa: E402


def _model(nodes, inputs=None, outputs=None, functions=(), opset=17):
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])]
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], functions=list(functions))
    model.ir_version = 8
    return model


def test_tiny_model_passes(tmp_path):
    path = make_tiny_model(tmp_path / "tiny.onnx")
    assert unsupported_ops(path) == []
    check_tensorrt_ops(path)  # no exception


def test_the_ops_of_our_encoders_are_listed():
    # ViT (LayerNormalization at opset 17, Erf-form GELU), ResNet and EfficientNet-Lite building blocks
    ours = {"Cast", "Transpose", "Conv", "Relu", "Clip", "Add", "Mul", "Sub", "Div", "MatMul", "Softmax",
            "LayerNormalization", "Erf", "Reshape", "Concat", "Gather", "ReduceSum", "ReduceMax", "ReduceMin",
            "Sqrt", "Max", "MaxPool", "GlobalAveragePool", "Slice", "Flatten", "Unsqueeze", "Squeeze"}
    assert ours <= TRT10_OPS
    assert not TRT10_OPS & TRT10_LATE_OPS


@pytest.mark.parametrize("node, expected", [
    (helper.make_node("Unique", ["x"], ["y"]), "Unique"),
    (helper.make_node("Det", ["x"], ["y"]), "Det"),
    (helper.make_node("FusedConv", ["x"], ["y"], domain="com.microsoft"), "com.microsoft::FusedConv"),
    (helper.make_node("Resize", ["x", "", "s"], ["y"], mode="cubic"), "Resize (mode='cubic'"),
    (helper.make_node("Resize", ["x", "", "s"], ["y"], mode="linear",
                      coordinate_transformation_mode="tf_crop_and_resize"), "coordinate_transformation_mode"),
    (helper.make_node("MaxPool", ["x"], ["y", "idx"], kernel_shape=[2, 2]), "Indices output"),
    (helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2]), "1-D pooling"),
    (helper.make_node("LayerNormalization", ["x", "s"], ["y", "mean"]), "only the first output"),
    (helper.make_node("Gelu", ["x"], ["y"]), "Gelu (only in the newest"),
])
def test_unsupported_node_is_reported(node, expected):
    found = unsupported_ops(_model([node]))
    assert len(found) == 1 and expected in found[0], found


def test_supported_variants_are_not_reported():
    nodes = [helper.make_node("Resize", ["x", "", "s"], ["r"], mode="linear", coordinate_transformation_mode="align_corners"),
             helper.make_node("MaxPool", ["r"], ["m"], kernel_shape=[2, 2]),
             helper.make_node("LayerNormalization", ["m", "s"], ["y"], axis=-1)]
    assert unsupported_ops(_model(nodes)) == []
    assert unsupported_ops(_model([helper.make_node("Gelu", ["x"], ["y"])], opset=20), include_late=True) == []


def test_subgraphs_and_local_functions_are_searched():
    then_g = helper.make_graph([helper.make_node("Unique", ["x"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    else_g = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    cond = helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)
    assert unsupported_ops(_model([cond])) == ["Unique"]

    fn = helper.make_function("local", "MyBlock", ["a"], ["b"], [helper.make_node("NonZeroish", ["a"], ["b"])],
                              [helper.make_opsetid("", 17)])
    call = helper.make_node("MyBlock", ["x"], ["y"], domain="local")
    model = _model([call], functions=[fn])
    model.opset_import.append(helper.make_opsetid("local", 1))
    assert unsupported_ops(model) == ["NonZeroish"]  # the function body, not "local::MyBlock"


def test_check_raises_one_line_naming_every_problem(tmp_path):
    model = _model([helper.make_node("Unique", ["x"], ["u"]), helper.make_node("Det", ["u"], ["y"])])
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    with pytest.raises(UserError) as e:
        check_tensorrt_ops(path)
    msg = str(e.value)
    assert "Unique" in msg and "Det" in msg and "\n" not in msg and str(path) in msg


def test_missing_and_unreadable_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        unsupported_ops(tmp_path / "nope.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff\x00 not a protobuf at all" * 10)
    with pytest.raises(UserError, match="not a readable ONNX file"):
        unsupported_ops(junk)


# ---- the parser decides wherever a TensorRT builder can be created; the list is the fallback ---------------
def test_parser_answer_wins_over_the_list_both_ways():
    from fake_tensorrt import make_trt
    from uolrps.export.tensorrt.support import op_check

    ln = _model([helper.make_node("LayerNormalization", ["x", "s"], ["y"], axis=-1)])
    assert unsupported_ops(ln) == []  # the list accepts it ...
    check = op_check(ln, trt=make_trt("10.3.0", refuses={"LayerNormalization"}))  # ... this TensorRT does not
    assert check.checker == "the ONNX parser of TensorRT 10.3.0"
    assert len(check.problems) == 1 and check.problems[0].startswith("LayerNormalization (node")
    unique = _model([helper.make_node("Unique", ["x"], ["y"])])
    assert unsupported_ops(unique) == ["Unique"]  # the list refuses it ...
    assert op_check(unique, trt=make_trt("11.4.0.106", refuses=())).problems == []  # ... this TensorRT imports it


def test_without_a_gpu_the_list_answers_and_says_so():
    from fake_tensorrt import make_trt
    from uolrps.export.tensorrt.support import LIST_CHECKER, check_tensorrt_support, op_check

    unique = _model([helper.make_node("Unique", ["x"], ["y"])])
    check = op_check(unique, trt=make_trt(gpu=False, refuses=()))  # Builder raises the nullptr TypeError
    assert check.checker == LIST_CHECKER and check.problems == ["Unique"]
    with pytest.raises(UserError, match=r"checked by the TensorRT 10 operator list .*: Unique"):
        check_tensorrt_support(unique, trt=make_trt(gpu=False))


def test_parser_subgraphs_name_nodes_when_it_gives_no_errors():
    from fake_tensorrt import make_trt
    from uolrps.export.tensorrt.support import parser_problems

    trt = make_trt(refuses={"Det"})
    real = trt.OnnxParser

    class Silent(real):  # a parser that refuses without an error message: the subgraph query still answers
        def supports_model_v2(self, model, path=None):
            ok = super().supports_model_v2(model, path)
            self.clear_errors()
            return ok
    trt.OnnxParser = Silent
    model = _model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Det", ["r"], ["y"])])
    assert parser_problems(trt, model) == ["nodes [1] (refused by the parser, no message)"]
