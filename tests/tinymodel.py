"""A tiny but real uolrps model file, built with onnx.helper, for runtime and evaluation tests.

The graph follows the export contract (uint8 N x H x W x 3 in, float32 N x 1 x h x w min-max heatmap out,
uolrps metadata): its "encoder" is the pixel brightness averaged over each grid cell, so a bright object
on a dark background gives a heatmap that peaks on the object, which makes box outcomes predictable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uolrps.model.meta import ModelMeta


def tiny_meta(size=(64, 64), grid=(8, 8), dynamic_batch=True, threshold=0.5, batch=1) -> ModelMeta:
    return ModelMeta(
        backbone="tiny", input_size=tuple(size), grid=tuple(grid), mean=(0.0, 0.0, 0.0), std=(255.0,) * 3,
        threshold=threshold, dynamic_batch=dynamic_batch, batch=batch, version="test",
    )


def make_tiny_model(path: str | Path, size=(64, 64), grid=(8, 8), dynamic_batch=True,
                    threshold=0.5, batch=1) -> Path:
    import onnx
    from onnx import TensorProto, helper

    H, W = size
    gh, gw = grid
    assert H % gh == 0 and W % gw == 0
    n = "N" if dynamic_batch else batch
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["f"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("ReduceMean", ["nchw"], ["gray"], axes=[1], keepdims=1),
        helper.make_node("AveragePool", ["gray"], ["pooled"], kernel_shape=[H // gh, W // gw],
                         strides=[H // gh, W // gw]),
        helper.make_node("ReduceMin", ["pooled"], ["mn"], axes=[2, 3], keepdims=1),
        helper.make_node("ReduceMax", ["pooled"], ["mx"], axes=[2, 3], keepdims=1),
        helper.make_node("Sub", ["pooled", "mn"], ["num"]),
        helper.make_node("Sub", ["mx", "mn"], ["rng"]),
        helper.make_node("Add", ["rng", "eps"], ["den"]),
        helper.make_node("Div", ["num", "den"], ["heatmap"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, [n, H, W, 3])],
        [helper.make_tensor_value_info("heatmap", TensorProto.FLOAT, [n, 1, gh, gw])],
        initializer=[helper.make_tensor("eps", TensorProto.FLOAT, [], [1e-6])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = tiny_meta(size, grid, dynamic_batch, threshold, batch)
    for k, v in meta.to_props().items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path


def bright_square_frame(h=120, w=160, box=(40, 30, 100, 90), value=255) -> np.ndarray:
    """A dark BGR frame with one bright rectangle at ``box`` = (x1, y1, x2, y2) (inclusive)."""
    frame = np.full((h, w, 3), 10, dtype=np.uint8)
    x1, y1, x2, y2 = box
    frame[y1:y2 + 1, x1:x2 + 1] = value
    return frame
