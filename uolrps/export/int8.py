"""INT8 twins of an exported graph, calibrated on unlabeled images with ONNX Runtime's quantizer.

Two files can come out of one FP32 graph, both verified against it before anything is written:

- ``model.int8.onnx``: explicit QuantizeLinear/DequantizeLinear (Q/DQ) around the quantized layers,
  symmetric INT8 (zero point 0), weights per output channel, activations per tensor, biases in float: the
  form TensorRT 10 and 11 build as a strongly typed network. It also runs in ONNX Runtime.
- ``model.int8.cpu.onnx`` (only for graphs with Linear layers, i.e. ViTs): the same layers quantized
  dynamically (weights INT8 per channel, activations quantized per batch at run time): ONNX Runtime's
  fastest INT8 form on a CPU, which TensorRT cannot build.

What is quantized is data (:class:`Int8Recipe`), stored in the model's metadata: convolutions and the
MatMul/Gemm of Linear layers (a constant weight) inside the encoder (node names under ``/net/``, the
scope :class:`uolrps.export.graph.HeatmapGraph` gives it). Everything else stays float: a ViT's residual
Adds, LayerNorm, Softmax, GELU, the attention MatMuls (no constant weight), and our own tail (L2 norm,
w* projection, clamp, min-max), which lies outside the encoder scope.

The quantizer is ``onnxruntime.quantization`` (already in the ``[export]`` extra). NVIDIA ModelOpt was
weighed and not taken: ``nvidia-modelopt[onnx]`` 0.47 pulls ``onnxruntime-gpu`` 1.24 (same module name as
the CPU ``onnxruntime``), ``cupy-cuda12x`` and an older ``onnx`` (see docs/int8.md).
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from uolrps.core.errors import OptionError, UserError
from uolrps.model.files import twin_path

DEFAULT_IMAGES = 256  # calibration sample
N_GATE = 32  # verification images for the gates
GATE_MIN_IOU = 0.7
GATE_MIN_SHARE = 0.9
SEED = 0


@dataclass(frozen=True)
class Int8Recipe:
    """What is quantized and how: stored as JSON in the model metadata (key ``uolrps.int8``)."""

    ops: tuple[str, ...] = ("Conv", "MatMul", "Gemm")  # ... with a constant weight (input 1 an initializer)
    scope: str = "/net/"  # node-name prefix of the encoder; the tail is outside it
    weights: str = "int8 symmetric, per output channel"
    activations: str = "int8 symmetric, per tensor, calibrated"
    calibration: str = "MinMax"  # onnxruntime.quantization.CalibrationMethod name
    bias: str = "float"
    kept_float: tuple[str, ...] = ("residual Add", "LayerNormalization", "Softmax", "GELU (Erf)",
                                   "attention MatMul", "tail: L2 norm, w* projection, clamp, min-max")
    form: str = "QDQ"  # QDQ (TensorRT) or dynamic (ONNX Runtime CPU)
    nodes: tuple[str, ...] = ()  # the quantized nodes, filled in by quantize_*
    calib_images: int = 0
    calib_source: str = ""

    def to_json(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


# ---- calibration images --------------------------------------------------------------------------------
def resolve_calib_folder(calib_images, int8_calib, wstar_images) -> Path:
    """The folder to calibrate on: ``calib_images``, else ``int8_calib``, else the w* file's image folder.

    Raises :class:`UserError` (an :class:`OptionError` naming the parameter; before any work) when none is given or the one given has no readable image.
    """
    from uolrps.core.images import list_images

    for value, param in ((calib_images, "calib_images"), (int8_calib, "int8_calib")):
        if value is not None:
            folder, flag = Path(value), param
            break
    else:
        if wstar_images and Path(str(wstar_images)).is_dir():
            folder, flag, param = Path(str(wstar_images)), "the w* file's image folder", None
        else:
            raise OptionError("int8 needs calibration images: pass int8_calib=DIR (a folder of a few hundred "
                              "unlabeled images like those the model will see)"
                              + (f"; the w* file's images ({wstar_images}) are not a folder here" if wstar_images
                                 else ""), "int8", "int8_calib")

    def bad(message: str) -> UserError:
        return OptionError(message, param) if param else UserError(message)

    if not folder.exists():
        raise bad(f"{flag}: {folder} does not exist")
    paths = list_images(folder)
    if not paths:
        raise bad(f"{flag}: no images (.jpg, .png, ...) under {folder}")
    if not any(_readable(p) for p in paths):  # stops at the first readable one
        raise bad(f"{flag}: none of the {len(paths)} images under {folder} can be read")
    return folder


def _readable(path) -> bool:
    from uolrps.core.images import read_rgb

    try:
        return read_rgb(path) is not None
    except Exception:  # noqa: BLE001 - a broken file is simply not readable
        return False


def split_images(folder: Path, n_calib: int, size: tuple[int, int], n_gate: int = N_GATE
                 ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(calibration images, gate images): disjoint where the folder has enough, RGB uint8 at ``size``."""
    from uolrps.core.images import list_images, read_rgb, resize

    if n_calib < 1:
        raise OptionError(f"int8_images must be at least 1, but got {n_calib}", "int8_images")
    paths = list_images(folder)
    rng = np.random.default_rng(SEED)
    order = [paths[i] for i in rng.permutation(len(paths))]
    gate_paths = order[:n_gate] if len(order) > n_gate else order
    rest = order[len(gate_paths):] or order
    calib_paths = rest[:n_calib]

    def load(ps):
        out = []
        for p in ps:
            im = read_rgb(p)
            if im is not None:
                out.append(resize(im, size))
        return out

    calib, gate = load(calib_paths), load(gate_paths)
    if not calib:
        raise UserError(f"no readable calibration image under {folder}")
    if len(gate) < n_gate:  # a small folder: verify on what it has, padded with generated scenes
        from uolrps.export.verify import synthetic_images

        gate += synthetic_images(size, n_gate - len(gate), seed=1)
    return calib, gate


# ---- node selection -------------------------------------------------------------------------------------
def select_nodes(model, recipe: Int8Recipe) -> list[str]:
    """Names of the nodes ``recipe`` quantizes: its ops inside its scope whose weight is a constant."""
    inits = {i.name for i in model.graph.initializer}
    consts = {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    out = []
    for n in model.graph.node:
        if n.op_type in recipe.ops and n.name.startswith(recipe.scope) and len(n.input) > 1 \
                and (n.input[1] in inits or n.input[1] in consts):
            out.append(n.name)
    return out


def _named(model):
    """``model`` with every node named (the quantizer selects by name); a copy."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    for i, n in enumerate(m.graph.node):
        if not n.name:
            n.name = f"{n.op_type}_{i}"
    return m


class _QuietAdvice:
    """Drops ONNX Runtime's quantizer advice to run its pre-processing (it logs on the root logger; our graphs
    are already shape-inferred and simplified by onnxslim), for the duration of a ``with``."""

    def filter(self, record) -> bool:
        return not str(record.msg).startswith("Please consider")

    def __enter__(self):
        import logging

        logging.getLogger().addFilter(self)
        return self

    def __exit__(self, *exc):
        import logging

        logging.getLogger().removeFilter(self)


class _Reader:
    """onnxruntime CalibrationDataReader over RGB uint8 images, in the graph's batch size."""

    def __init__(self, images: list[np.ndarray], batch: int | None):
        x = np.stack(images).astype(np.uint8)
        step = batch or 8
        self._chunks = []
        for i in range(0, len(x), step):
            c = x[i:i + step]
            if batch and len(c) < batch:
                c = np.concatenate([c, np.repeat(c[-1:], batch - len(c), 0)])
            self._chunks.append(c)
        self._it = iter(self._chunks)

    def get_next(self):
        c = next(self._it, None)
        return None if c is None else {"image": c}

    def rewind(self):
        self._it = iter(self._chunks)


def _fixed_batch(model) -> int | None:
    d = model.graph.input[0].type.tensor_type.shape.dim[0]
    return d.dim_value if d.HasField("dim_value") else None


def quantize_qdq(model, images: list[np.ndarray], recipe: Int8Recipe = Int8Recipe()):
    """The Q/DQ twin of the FP32 ModelProto ``model``, calibrated on ``images``: (ModelProto, recipe)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    model = _named(model)
    nodes = select_nodes(model, recipe)
    if not nodes:
        raise UserError("INT8: the graph has no convolution or Linear layer to quantize")
    with tempfile.TemporaryDirectory(prefix="uolrps-int8-") as tmp:
        out = Path(tmp) / "int8.onnx"
        with _QuietAdvice():
            quantize_static(
                model, out, _Reader(images, _fixed_batch(model)), quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(recipe.ops), nodes_to_quantize=nodes, per_channel=True,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                calibrate_method=getattr(CalibrationMethod, recipe.calibration),
                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
                               "MatMulConstBOnly": True,  # attention products (two activations) stay float
                               "OpTypesToExcludeOutputQuantization": list(recipe.ops),  # Q/DQ on inputs only
                               "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1}},
            )
        q = onnx.load(str(out))
    return q, _with(recipe, nodes, len(images), form="QDQ")


def quantize_cpu(model, recipe: Int8Recipe = Int8Recipe()):
    """The dynamic-quantization twin (Linear layers only) for ONNX Runtime on a CPU: (ModelProto, recipe),
    or None when the graph has no Linear layer (a CNN: dynamic convolutions are slower than FP32 there)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = _named(model)
    ops = {n.name: n.op_type for n in model.graph.node}
    nodes = [n for n in select_nodes(model, recipe) if ops[n] in ("MatMul", "Gemm")]
    if not nodes:
        return None
    with tempfile.TemporaryDirectory(prefix="uolrps-int8-") as tmp:
        out = Path(tmp) / "int8.cpu.onnx"
        with _QuietAdvice():
            quantize_dynamic(model, out, op_types_to_quantize=["MatMul", "Gemm"], nodes_to_quantize=nodes,
                             per_channel=True, weight_type=QuantType.QInt8, extra_options={"MatMulConstBOnly": True})
        q = onnx.load(str(out))
    r = Int8Recipe(ops=("MatMul", "Gemm"), scope=recipe.scope, activations="uint8, per tensor, quantized at run time",
                   calibration="none (dynamic)", kept_float=recipe.kept_float + ("Conv",))
    return q, _with(r, nodes, 0, form="dynamic")


def _with(recipe: Int8Recipe, nodes, n_images: int, form: str) -> Int8Recipe:
    from dataclasses import replace

    return replace(recipe, nodes=tuple(nodes), calib_images=n_images, form=form)


# ---- where accuracy is lost -----------------------------------------------------------------------------
def sensitivity(model, qmodel, images: list[np.ndarray], nodes: list[str] | tuple[str, ...],
                top: int | None = None) -> list[tuple[str, float]]:
    """Each quantized node's own cost: the mean absolute heatmap difference from the FP32 graph when only
    that node runs quantized (all others fed their float inputs), worst first.

    ``model`` is the FP32 ModelProto, ``qmodel`` its Q/DQ twin (node names kept by the quantizer).
    """
    import onnx

    from uolrps.export.verify import run_onnx

    fmodel = _named(model)
    float_inputs = {n.name: list(n.input) for n in fmodel.graph.node}
    floats = {i.name: i for i in fmodel.graph.initializer}
    x = np.stack(images).astype(np.uint8)

    def run(m) -> np.ndarray:  # as the gate runs a Q/DQ twin: as written
        return run_onnx(m, x, exact_qdq=True)

    ref = run(fmodel)
    scores = []
    for keep in nodes:
        m = onnx.ModelProto()
        m.CopyFrom(qmodel)
        for n in m.graph.node:
            if n.name in float_inputs and n.name != keep and n.name in nodes:
                del n.input[:]
                n.input.extend(float_inputs[n.name])
        have = {i.name for i in m.graph.initializer}
        m.graph.initializer.extend(floats[i] for n in nodes if n != keep for i in float_inputs[n]
                                   if i in floats and i not in have)
        scores.append((keep, float(np.abs(run(m) - ref).mean())))
    scores.sort(key=lambda s: -s[1])
    return scores[:top] if top else scores


# ---- the twins, gated -----------------------------------------------------------------------------------
@dataclass
class Int8Twin:
    path: Path
    model: object  # onnx.ModelProto with metadata
    recipe: Int8Recipe
    report: object  # uolrps.export.verify.TwinReport


def check_quantizer() -> None:
    """UserError naming the extra when ONNX Runtime's quantization tools are missing."""
    try:
        import onnxruntime.quantization  # noqa: F401
    except ImportError as e:
        raise OptionError(f"int8 needs ONNX Runtime's quantization tools ({e}): pip install 'uolrps[export]'",
                          "int8") from None


def make_qdq(model, meta, calib: list[np.ndarray], folder: Path):
    """The Q/DQ twin of the FP32 ModelProto ``model``, calibrated on ``calib``, with its metadata: (twin, recipe)."""
    from uolrps.export.tensorrt.support import check_tensorrt_support

    q, recipe = quantize_qdq(model, calib)
    recipe = replace_source(recipe, folder)
    check_tensorrt_support(q, source="the int8 Q/DQ graph")
    _set_int8_meta(q, meta, recipe)
    return q, recipe


def make_cpu(model, meta, folder: Path):
    """The dynamic CPU twin with its metadata, (twin, recipe); None for a graph without Linear layers."""
    made = quantize_cpu(model)
    if made is None:
        return None
    recipe = replace_source(made[1], folder)
    _set_int8_meta(made[0], meta, recipe)
    return made[0], recipe


def _set_int8_meta(qmodel, meta, recipe: Int8Recipe) -> None:
    from uolrps.model.onnx_meta import set_meta

    set_meta(qmodel, meta.replace(precision="int8", extra={**meta.extra, "int8": recipe.to_json()}))


def gate_int8(model, qmodel, recipe: Int8Recipe, gate: list[np.ndarray], label: str):
    """The INT8 gate (finite heatmaps, box IoU >= 0.7 on >= 90% of ``gate``) of ``qmodel`` against the FP32
    ``model``; a twin that fails raises :class:`OptionError` naming the layers whose quantization costs most."""
    from uolrps.export.verify import gate_twin

    try:
        return gate_twin(model.SerializeToString(), qmodel.SerializeToString(), gate, min_iou=GATE_MIN_IOU,
                         min_share=GATE_MIN_SHARE, label=label, exact_qdq=recipe.form == "QDQ")
    except UserError as e:
        worst = sensitivity(model, qmodel, gate[:8], recipe.nodes, top=3) if recipe.form == "QDQ" else []
        where = "; ".join(f"{n} ({s:.3f})" for n, s in worst)
        raise OptionError(f"{e}" + (f"; the layers whose quantization alone moves the heatmap most (mean abs "
                                    f"difference): {where}" if where else "")
                          + "; try more or more typical int8_calib images, or export without int8",
                          "int8_calib", "int8") from None


QDQ_LABEL, CPU_LABEL = "int8 twin (Q/DQ)", "int8 CPU twin (dynamic)"


def int8_twins(model, meta, output: Path, folder: Path, n_images: int = DEFAULT_IMAGES,
               cpu: bool = True, log=print) -> list[Int8Twin]:
    """The gated INT8 twins of the FP32 ModelProto ``model`` (metadata ``meta``), calibrated on ``folder``.

    Returns the Q/DQ twin (``<stem>.int8.onnx``) and, for graphs with Linear layers and ``cpu``, the dynamic
    CPU twin (``<stem>.int8.cpu.onnx``); nothing is written here. Each is gated against ``model`` in ONNX
    Runtime (finite heatmaps, box IoU >= 0.7 on >= 90% of 32 images not used for calibration); a twin that
    fails raises :class:`UserError` naming the layers whose quantization costs the most. (``uolrps export``
    makes the same twins through its plan of variants, :mod:`uolrps.export.variants`.)
    """
    calib, gate = split_images(folder, n_images, tuple(meta.input_size))
    log(f"int8: calibrating on {len(calib)} images from {folder}, gating on {len(gate)} others")
    jobs = [(twin_path(output, "int8"), *make_qdq(model, meta, calib, folder), QDQ_LABEL)]
    if cpu and (made := make_cpu(model, meta, folder)) is not None:
        jobs.append((twin_path(output, "int8-cpu"), *made, CPU_LABEL))
    out = []
    for path, qm, r, label in jobs:
        report = gate_int8(model, qm, r, gate, label)
        log(report.summary())
        out.append(Int8Twin(path, qm, r, report))
    return out


def replace_source(recipe: Int8Recipe, folder: Path) -> Int8Recipe:
    from dataclasses import replace

    return replace(recipe, calib_source=str(folder))
