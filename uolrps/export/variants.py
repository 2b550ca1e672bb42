"""The export's plan of variants: each precision variant ``uolrps export`` can write, with its file, how it is
made and its gate, in one table (``PLAN``). ``export_model`` walks the plan: every variant the export asks
for is made and gated in plan order (FP32 first: it is the reference of the others) before anything is
written, then all are written together by the one fileset writer (:func:`uolrps.export.fileset.write_set`):
all of them or none.

=========  ======================  ======================================  =============================================
variant    file (model/files.py)   made by                                 gate (nothing is written when it fails)
=========  ======================  ======================================  =============================================
fp32       ``model.onnx``          the PyTorch graph exported (opset 17)   vs PyTorch: finite, max abs diff <= 1e-3
fp16       ``model.fp16.onnx``     the graph in half precision (``fp16``)  vs fp32: finite, box IoU >= 0.9 on >= 95%
int8       ``model.int8.onnx``     Q/DQ calibrated on images (``int8``)    vs fp32 as written: box IoU >= 0.7 on >= 90%
int8-cpu   ``model.int8.cpu.onnx`` dynamic INT8, graphs with Linear only   vs fp32 in ONNX Runtime: the same
=========  ======================  ======================================  =============================================

To add a variant: a :class:`uolrps.model.files.Variant` (its file name) and a :class:`Twin` (how it is made
and gated), registered with :func:`register`; ``export_model(..., variants=("name",))`` asks for it
(tests/test_extensions.py does this from a test).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from uolrps.model.files import Variant, register_variant, unregister_variant

TOLERANCE = 1e-3  # the fp32 gate: max abs heatmap difference, ONNX Runtime against PyTorch


@dataclass
class Build:
    """What the variants are made from, shared along the plan: the export's encoder and w* rows, its metadata
    (no precision yet), options, verification images, and what earlier variants made (``made["fp32"]``)."""

    encoder: object
    rows: object
    meta: object  # uolrps.model.meta.ModelMeta of the export
    output: Path
    batch: int
    dynamic_batch: bool
    images: list  # RGB uint8 verification images
    to_onnx: Callable = None  # (graph, size, batch, dynamic_batch, log=) -> ModelProto: the export's tracer
    log: Callable = print
    options: dict = field(default_factory=dict)  # the export's own options a variant reads (int8_folder...)
    made: dict = field(default_factory=dict)  # variant name -> ModelProto, with its metadata
    verdicts: dict = field(default_factory=dict)  # variant name -> its gate's report
    recipes: dict = field(default_factory=dict)  # variant name -> uolrps.export.int8.Int8Recipe (INT8 twins)
    shared: dict = field(default_factory=dict)  # work variants share (the INT8 calibration split)


@dataclass(frozen=True)
class Twin:
    """One variant: ``name`` its file (a model/files.py Variant), ``label`` how checks name it
    (``output (FP16 twin)``), ``option`` the export_model flag that asks for it (None: always for fp32, else
    only through ``variants=``), ``make(build)`` the ModelProto with its metadata (None: the variant does not
    apply to this graph, nothing is written for it), ``gate(build, model)`` its verdict (a report with a
    ``summary()``, logged) or a UserError that stops the export before anything is written."""

    name: str
    label: str
    option: str | None
    make: Callable[[Build], object]
    gate: Callable[[Build, object], object]


# ---- the built-in variants ----------------------------------------------------------------------------------
def _fp32(b: Build):
    from uolrps.export.graph import HeatmapGraph
    from uolrps.export.tensorrt.support import check_tensorrt_support
    from uolrps.model.onnx_meta import set_meta

    b.shared["reference"] = HeatmapGraph(b.encoder, b.rows)  # the FP32 PyTorch graph
    model = b.to_onnx(b.shared["reference"], b.encoder.info.input_size, b.batch, b.dynamic_batch, log=b.log)
    check_tensorrt_support(model, source="the exported fp32 graph")
    set_meta(model, b.meta.replace(precision="fp32"))
    return model


def _gate_fp32(b: Build, model):
    import numpy as np

    from uolrps.core.errors import UserError
    from uolrps.export.verify import verify

    report = verify(model, b.shared["reference"], b.images, b.meta.threshold, b.batch, b.dynamic_batch)
    if report.nonfinite:
        raise UserError(f"verification failed: the ONNX graph or PyTorch gives non-finite heatmaps (NaN or "
                        f"infinity) on {report.nonfinite} of {len(b.images)} images; nothing was written")
    b.log(f"fp32 graph vs PyTorch on {len(b.images)} images: max abs heatmap diff {report.max_abs_diff:.2e}, "
          f"box IoU min {min(report.ious):.3f} mean {np.mean(report.ious):.3f}")
    if not report.within(TOLERANCE):
        raise UserError(f"verification failed: ONNX Runtime and PyTorch heatmaps differ by "
                        f"{report.max_abs_diff:.2e} > {TOLERANCE}; nothing was written")
    return report


def _fp16(b: Build):
    from uolrps.export.graph import HeatmapGraph
    from uolrps.export.tensorrt.support import check_tensorrt_support
    from uolrps.model.onnx_meta import set_meta

    half = b.to_onnx(HeatmapGraph(b.encoder, b.rows, half=True), b.encoder.info.input_size, b.batch,
                         b.dynamic_batch, log=b.log)
    check_tensorrt_support(half, source="the exported fp16 graph")
    set_meta(half, b.meta.replace(precision="fp16"))
    return half


def _gate_fp16(b: Build, model):
    from uolrps.export.verify import gate_twin

    return gate_twin(b.made["fp32"].SerializeToString(), model.SerializeToString(), b.images, label="fp16 twin")


def _int8_split(b: Build):
    """The calibration and gate images of the INT8 twins, drawn once for both."""
    if "int8_split" not in b.shared:
        from uolrps.export.int8 import split_images

        folder, n = b.options["int8_folder"], b.options["int8_images"]
        b.shared["int8_split"] = split_images(folder, n, tuple(b.meta.input_size))
        calib, gate = b.shared["int8_split"]
        b.log(f"int8: calibrating on {len(calib)} images from {folder}, gating on {len(gate)} others")
    return b.shared["int8_split"]


def _int8_qdq(b: Build):
    from uolrps.export.int8 import make_qdq

    q, b.recipes["int8"] = make_qdq(b.made["fp32"], b.meta.replace(precision="fp32"), _int8_split(b)[0],
                                    b.options["int8_folder"])
    return q


def _int8_cpu(b: Build):
    from uolrps.export.int8 import make_cpu

    made = make_cpu(b.made["fp32"], b.meta.replace(precision="fp32"), b.options["int8_folder"])
    if made is None:
        return None
    b.recipes["int8-cpu"] = made[1]
    return made[0]


def _int8_gate(name: str, label: str):
    def gate(b: Build, model):
        from uolrps.export.int8 import gate_int8

        return gate_int8(b.made["fp32"], model, b.recipes[name], _int8_split(b)[1], label)

    return gate


PLAN: list[Twin] = [
    Twin("fp32", "output", None, _fp32, _gate_fp32),
    Twin("fp16", "output (FP16 twin)", "fp16", _fp16, _gate_fp16),
    Twin("int8", "output (INT8 twin)", "int8", _int8_qdq, _int8_gate("int8", "int8 twin (Q/DQ)")),
    Twin("int8-cpu", "output (INT8 CPU twin)", "int8", _int8_cpu, _int8_gate("int8-cpu", "int8 CPU twin (dynamic)")),
]


def wanted(options: dict, extra=()) -> list[Twin]:
    """The plan's variants an export asks for, in plan order: fp32, those whose flag is set in ``options``
    (``{"fp16": True}``), and those named in ``extra``. An unknown name in ``extra`` is an OptionError."""
    from uolrps.core.errors import OptionError

    known = {t.name for t in PLAN}
    unknown = [n for n in extra if n not in known]
    if unknown:
        raise OptionError(f"variants: no variant {', '.join(map(repr, unknown))} (known: {', '.join(sorted(known))})",
                          "variants")
    return [t for t in PLAN if t.option is None and t.name == "fp32" or (t.option and options.get(t.option))
            or t.name in extra]


def register(twin: Twin, file: Variant) -> Twin:
    """Add a variant: its file name (``file``) and how it is made and gated (``twin``), after the built-ins."""
    register_variant(file)
    PLAN.append(twin)
    return twin


def unregister(name: str) -> None:
    PLAN[:] = [t for t in PLAN if t.name != name]
    unregister_variant(name)
