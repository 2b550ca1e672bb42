"""The precision gate of an engine's own reduced precision: ``uolrps gate MODEL --backend openvino --precision bf16``.

OpenVINO runs a model at the INFERENCE_PRECISION_HINT it is compiled with (bf16 on CPUs with AVX-512 BF16 or
AMX, f16 on Intel GPUs), and runs the INT8 twin's Q/DQ graph with its own INT8 kernels. Either is used only
for a model file that passed the twin gate on that device and precision: the same verdict as the FP16 twin's
(:func:`uolrps.export.verify.judge_twin`: finite, box IoU >= 0.9 on >= 95% of >= 32 calibration images), the
INT8 twin keeping its own thresholds (IoU >= 0.7 on >= 90%, docs/int8.md), against the FP32 ONNX graph in
ONNX Runtime on the CPU. A pass is recorded beside the model (:mod:`uolrps.model.gates`); a refusal writes
nothing and says why.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uolrps.core.errors import OptionError, UserError
from uolrps.export.verify import MIN_GATE_IMAGES, TWIN_MIN_IOU, TWIN_MIN_SHARE, TwinReport, gate_inputs, judge_twin, \
    run_onnx
from uolrps.model.files import ModelFiles
from uolrps.model.gates import GateEntry, gates_path, model_digest, record_gate

GATED_BACKENDS = ("openvino",)


@dataclass(frozen=True)
class GateResult:
    model: Path
    entry: GateEntry
    report: TwinReport
    record: Path


def reference_for(model: Path) -> Path:
    """The FP32 ONNX file a model is gated against: itself for an FP32 ``.onnx``, ``model.onnx`` for a twin
    (``model.fp16.onnx``, ``model.int8.onnx``, ``model.int8.cpu.onnx``) or an IR ``model.xml``."""
    ref = ModelFiles.of(model).path("fp32")  # the family names its twins (uolrps.model.files)
    if not ref.is_file():
        raise UserError(f"the gate compares {model.name} with its FP32 ONNX graph {ref.name}, which is not beside it: "
                        "keep the exported model.onnx next to its twins and IR files")
    return ref


def calibration_images(folder, meta, size: tuple[int, int], n: int = MIN_GATE_IMAGES) -> tuple[np.ndarray, str]:
    """``n`` real RGB images at ``size``, spread over ``folder`` (default: the folder w* was calibrated on, as the
    model's metadata records it); fewer than ``n`` readable images is a UserError (no generated stand-ins)."""
    from uolrps.core.images import list_images, read_rgb, resize

    if folder is None:
        folder = (meta.extra.get("wstar_calibration") or {}).get("images")
        if not folder or not Path(str(folder)).is_dir():
            raise OptionError("no gate images: give a folder of at least 32 typical images (images=FOLDER; the "
                              "model's metadata names no calibration folder that exists here)", "images")
    folder = Path(str(folder))
    paths = list_images(folder) if folder.exists() else []
    picks = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, min(n, len(paths)))] if paths else []
    imgs = [resize(im, size) for im in (read_rgb(p) for p in picks) if im is not None]
    if len(imgs) < n:
        raise OptionError(f"images {str(folder)!r}: {len(imgs)} readable images, but the gate needs at least {n}",
                          "images")
    return np.stack(imgs), str(folder)


def gate_precision(model: str | Path, backend: str = "openvino", device: str | None = None,
                   precision: str | None = None, images=None, n_images: int = MIN_GATE_IMAGES,
                   log=print) -> GateResult:
    """Run ``model`` on ``backend``/``device`` at ``precision`` against its FP32 graph in ONNX Runtime; record a
    pass beside the model. Raises UserError (nothing written) on a failed gate or bad input."""
    model = Path(model)
    if backend not in GATED_BACKENDS:
        raise OptionError(f"backend {backend!r} has no precision of its own to gate (use one of "
                          f"{', '.join(GATED_BACKENDS)}; ONNX twins are gated by `uolrps export`)", "backend")
    if not model.is_file():
        raise UserError(f"model file {str(model)!r} does not exist: pass a .onnx from `uolrps export` or an .xml "
                        "from `uolrps export --openvino`")
    if n_images < MIN_GATE_IMAGES:
        raise OptionError(f"n_images must be at least {MIN_GATE_IMAGES}, but got {n_images}", "n_images")
    from uolrps.export.int8 import GATE_MIN_IOU, GATE_MIN_SHARE
    from uolrps.core.lazy import importable
    from uolrps.runtime.backends.openvino import OpenVinoBackend, check_device, check_precision

    device, precision = check_device(device), check_precision(precision)
    if device.split(".")[0] == "AUTO":
        raise OptionError("the gate holds for one device: name it (CPU, GPU or NPU), not AUTO", "device")
    if not importable("openvino"):
        raise UserError("the openvino backend needs openvino (not installed): pip install 'uolrps[openvino]'")
    reference = reference_for(model)
    with OpenVinoBackend(model, device=device, precision=precision, require_gate=False) as engine:
        meta = engine.meta
        x, where = calibration_images(images, meta, tuple(meta.input_size), n_images)
        x = gate_inputs(list(x), tuple(meta.input_size), f"{precision} on OpenVINO {device}")
        got = np.concatenate([engine(x[i:i + 8]) for i in range(0, len(x), 8)])
        ran_device, name, version = engine.caps.device.split(".")[0], engine.device_name, engine.version
    ref = run_onnx(reference, x)
    int8 = meta.precision == "int8"
    min_iou, min_share = (GATE_MIN_IOU, GATE_MIN_SHARE) if int8 else (TWIN_MIN_IOU, TWIN_MIN_SHARE)
    label = f"{model.name} at {precision} on OpenVINO {ran_device}"
    report = judge_twin(ref, got, tuple(meta.input_size), float(meta.threshold), min_iou=min_iou, min_share=min_share,
                        label=label)
    log(f"{report.summary()} ({len(x)} images from {where})")
    entry = GateEntry("openvino", ran_device, precision, model_digest(model), report.summary(), device_name=name,
                      library=f"openvino {version.split('-')[0]}",
                      date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    path = record_gate(model, entry)
    log(f"recorded in {gates_path(model).name}: {model.name} may run at {precision} on OpenVINO {ran_device}")
    return GateResult(model, entry, report, path)
