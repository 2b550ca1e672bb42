"""Which ONNX operators TensorRT 10 imports: the list, and a check of a graph against it.

Source: the operator support matrix of the ONNX-TensorRT parser (``docs/operators.md`` in onnx/onnx-tensorrt),
read in two editions: the one for TensorRT 9.2 (opsets up to 19), the last before 10.0, and the one for
TensorRT 10.15 (opsets 9 to 24). :data:`TRT10_OPS` holds the operators marked supported in both, so every
TensorRT 10.x release imports them, JetPack 6's TensorRT 10.3 included. :data:`TRT10_LATE_OPS` holds those
marked supported only in the 10.15 edition: they may be missing from older 10.x releases.

Besides the operator names, a few documented restrictions that concern our graphs are checked (Resize
modes, pooling rank, extra outputs TensorRT does not produce). Operators of other domains than the default
ONNX domain (``com.microsoft`` and so on) need plugins and are reported too. Model-local functions are
expanded, as the parser does.
"""

from __future__ import annotations

from pathlib import Path

from uolrps.core.errors import UserError

TRT10_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast CastLike Ceil
Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div
Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gemm
GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization GRU
HardSigmoid HardSwish Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization
LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean
MeanVarianceNormalization Min Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow
PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1
ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu
Reshape Resize ReverseSequence RNN RoiAlign Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape
Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan
Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())

TRT10_LATE_OPS = frozenset("""
Attention BlackmanWindow DeformConv Gelu HammingWindow HannWindow Mish RMSNormalization RotaryEmbedding STFT
TensorScatter
""".split())

DEFAULT_DOMAINS = ("", "ai.onnx")
RESIZE_MODES = ("nearest", "linear")
RESIZE_COORDINATES = ("half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners")


def _load(model_or_path):
    if isinstance(model_or_path, (str, Path)):
        import onnx

        path = Path(model_or_path)
        if not path.is_file():
            raise UserError(f"ONNX file {str(path)!r} does not exist")
        try:
            return onnx.load(str(path), load_external_data=False)
        except Exception as e:  # onnx raises DecodeError and friends
            raise UserError(f"{path} is not a readable ONNX file ({type(e).__name__}: {e})") from None
    return model_or_path


def _attr(node, name, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            value = helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _restriction(node) -> str | None:
    """The documented TensorRT restriction ``node`` breaks, or None."""
    op = node.op_type
    if op == "Resize":
        mode = _attr(node, "mode", "nearest")
        coord = _attr(node, "coordinate_transformation_mode", "half_pixel")
        if mode not in RESIZE_MODES:
            return f"Resize (mode={mode!r}: TensorRT resizes with {' or '.join(RESIZE_MODES)} only)"
        if coord not in RESIZE_COORDINATES:
            return f"Resize (coordinate_transformation_mode={coord!r} is not supported)"
        if _attr(node, "antialias", 0):
            return "Resize (antialias=1 is not supported)"
    if op in ("AveragePool", "MaxPool", "LpPool"):
        kernel = _attr(node, "kernel_shape", [])
        if len(kernel) not in (2, 3):
            return f"{op} ({len(kernel)}-D pooling: TensorRT pools in 2-D or 3-D only)"
        if any(d != 1 for d in _attr(node, "dilations", []) or []):
            return f"{op} (dilations other than 1 are not supported)"
    if op == "MaxPool" and len(node.output) > 1 and node.output[1]:
        return "MaxPool (the Indices output is not supported)"
    if op == "LayerNormalization" and any(node.output[1:]):
        return "LayerNormalization (only the first output Y is supported)"
    if op == "TopK" and _attr(node, "sorted", 1) != 1:
        return "TopK (sorted=0 is not supported)"
    return None


def unsupported_ops(model_or_path, include_late: bool = False) -> list[str]:
    """What TensorRT 10's ONNX parser would refuse in a model: one line per problem, in graph order.

    ``model_or_path`` is an ``onnx.ModelProto`` or a path. Each entry is an operator name (``"NonZero"``,
    ``"com.microsoft::FusedConv"``) or an operator with the restriction it breaks (``"Resize (mode='cubic':
    ...)"``). Operators only the newest 10.x releases import (:data:`TRT10_LATE_OPS`) are reported unless
    ``include_late``. Subgraphs (If, Loop, Scan) and model-local functions are searched too.
    """
    model = _load(model_or_path)
    functions = {(f.domain, f.name): f for f in getattr(model, "functions", [])}
    supported = TRT10_OPS | (TRT10_LATE_OPS if include_late else frozenset())
    found: list[str] = []
    seen_functions: set = set()

    def add(item: str) -> None:
        if item not in found:
            found.append(item)

    def visit(nodes) -> None:
        for node in nodes:
            key = (node.domain, node.op_type)
            if key in functions:
                if key not in seen_functions:
                    seen_functions.add(key)
                    visit(functions[key].node)
                continue
            if node.domain not in DEFAULT_DOMAINS:
                add(f"{node.domain}::{node.op_type}")
            elif node.op_type not in supported:
                late = node.op_type in TRT10_LATE_OPS
                add(f"{node.op_type} (only in the newest TensorRT 10.x, not in JetPack 6's 10.3)" if late
                    else node.op_type)
            else:
                problem = _restriction(node)
                if problem:
                    add(problem)
            for a in node.attribute:
                if a.HasField("g"):
                    visit(a.g.node)
                for g in a.graphs:
                    visit(g.node)

    visit(model.graph.node)
    return found


def check_tensorrt_ops(model_or_path, include_late: bool = False, source: str | None = None) -> None:
    """Raise :class:`UserError` naming every operator TensorRT 10 would refuse (for a graph made elsewhere; `uolrps export` and `uolrps build` report through uolrps.export.tensorrt.support)."""
    problems = unsupported_ops(model_or_path, include_late=include_late)
    if problems:
        where = source or (str(model_or_path) if isinstance(model_or_path, (str, Path)) else "the graph")
        raise UserError(f"{where} uses operators TensorRT 10 cannot import: {'; '.join(problems)}. "
                        "Change the export so these do not appear (see docs/tensorrt.md)")
