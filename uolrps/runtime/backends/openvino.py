"""OpenVINO backend: our ONNX files (FP32, FP16 twin, INT8 twin) or an OpenVINO IR from ``uolrps export --openvino``,
on an OpenVINO device (CPU, GPU, NPU or AUTO), behind :class:`Backend`.

``openvino`` is imported inside the constructor, never at module import. The backend-specific part is three
pieces: :func:`open_model` (read the file, check device and precision, compile), :meth:`OpenVinoBackend._infer`
(one inference request for one call) and the capabilities the constructor sets (``device``, ``precision``,
``concurrency``, ``max_batch``).

Precision is explicit: OpenVINO would pick bf16 by itself on a CPU with bf16 support (AVX-512 BF16 or AMX),
so the ``INFERENCE_PRECISION_HINT`` is always set: f32 unless ``precision`` says otherwise, and bf16 or f16
only for a model file that passed the twin gate on that device and precision (:mod:`uolrps.runtime.gates`).
"""

from __future__ import annotations

import logging
import os
import queue
from pathlib import Path

import numpy as np

from uolrps.errors import OptionError, UserError
from uolrps.meta import PREFIX, ModelMeta
from uolrps.runtime.backends.base import Backend, InputSpec
from uolrps.runtime.batching import run_batched

log = logging.getLogger("uolrps.openvino")
DEVICES = ("CPU", "GPU", "NPU", "AUTO")
PRECISIONS = ("f32", "bf16", "f16")  # INFERENCE_PRECISION_HINT values we set
CAPABILITY = {"bf16": "BF16", "f16": "FP16"}  # the device's OPTIMIZATION_CAPABILITIES entry each one needs
RT_SECTION = "uolrps"  # where `uolrps export --openvino` puts our metadata in an IR's rt_info
SUFFIXES = (".onnx", ".xml")


def check_device(device: str | None) -> str:
    """``cpu``, ``GPU.1``, ``auto`` ... -> the OpenVINO spelling (upper case); default CPU."""
    if device is None:
        return "CPU"
    name = str(device).strip().upper()
    if name.split(".")[0] not in DEVICES or not name:
        raise OptionError(f"unknown OpenVINO device {device!r}: use one of {', '.join(DEVICES)} "
                          "(a GPU or NPU may carry its index, GPU.1)", "device")
    return name


def check_precision(precision: str | None) -> str:
    if precision is None:
        return "f32"
    name = str(precision).strip().lower()
    if name not in PRECISIONS:
        raise OptionError(f"unknown inference precision {precision!r}: use one of {', '.join(PRECISIONS)}",
                          "precision")
    return name


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def meta_from_rt_info(model, source: str) -> ModelMeta:
    """Our metadata from an OpenVINO model: the IR's ``uolrps`` rt_info section (``export --openvino``), else
    the ONNX file's metadata_props (OpenVINO's ONNX reader keeps them in rt_info ``framework``)."""
    props: dict[str, str] = {}
    for section in (RT_SECTION, "framework"):
        if model.has_rt_info([section]):
            items = model.get_rt_info()[section]
            try:
                props = {str(k): v.astype(str) for k, v in items.items()}
            except AttributeError:  # a plain value, not a section
                props = {}
            if PREFIX + "format" in props:
                break
    if PREFIX + "format" not in props:
        hint = ("export it with `uolrps export --openvino`" if source.lower().endswith(".xml")
                else "export it with `uolrps export`")
        raise UserError(f"{source} has no uolrps metadata (the model's rt_info has no {PREFIX}format): {hint}")
    return ModelMeta.from_props(props, source=source)


def open_model(path: Path, device: str, precision: str, threads: int | None):
    """Read and compile ``path``; returns (openvino module, Core, compiled model, metadata). Raises UserError."""
    import openvino as ov

    core = ov.Core()
    available = list(core.available_devices)
    base = device.split(".")[0]
    if base != "AUTO" and device not in available and not (device == base and any(d.split(".")[0] == base for d in available)):
        raise OptionError(f"OpenVINO device {device} is not available here (available: {', '.join(available) or 'none'}"
                          f"; OpenVINO {ov.__version__}): install the device's driver, or use device=CPU", "device")
    try:
        model = core.read_model(str(path))
    except Exception as e:  # OpenVINO raises its own RuntimeError subclasses
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot read model {str(path)!r} with OpenVINO {ov.__version__}: {first[:300]}") from None
    meta = meta_from_rt_info(model, str(path))
    if precision in CAPABILITY and base != "AUTO":
        caps = list(core.get_property(device, "OPTIMIZATION_CAPABILITIES"))
        if CAPABILITY[precision] not in caps:
            name = core.get_property(device, "FULL_DEVICE_NAME")
            raise UserError(f"OpenVINO {device} ({name}) does not run {precision} (its capabilities: {', '.join(caps)}): "
                            f"use precision f32{' (bf16 needs AVX-512 BF16 or AMX)' if precision == 'bf16' else ''}")
    config: dict = {"INFERENCE_PRECISION_HINT": precision}
    if threads is not None:
        if int(threads) <= 0:
            raise OptionError(f"threads must be a positive number of CPU threads, but got {threads}", "threads")
        if base != "CPU":
            raise OptionError(f"threads applies to OpenVINO's CPU device, not {device}", "threads")
        config.update({"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": int(threads), "NUM_STREAMS": 1})
    else:
        config["PERFORMANCE_HINT"] = "THROUGHPUT"
    try:
        compiled = core.compile_model(model, device, config)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"OpenVINO cannot compile {path.name} for {device} at {precision}: {first[:300]}") from None
    return ov, core, compiled, meta


class OpenVinoBackend(Backend):
    """An OpenVINO compiled model on a uolrps model file (``.onnx`` or an ``.xml`` IR with our metadata).

    - ``device``: CPU (default), GPU, NPU or AUTO (OpenVINO picks; ``device`` then says which ran).
    - ``threads``: CPU inference threads with one stream (the latency setting; ``concurrency`` 1); without it,
      OpenVINO's throughput setting: streams as OpenVINO chooses for this machine, and ``concurrency`` = its
      optimal number of infer requests, so the engine keeps that many calls in flight.
    - ``precision``: the INFERENCE_PRECISION_HINT, always set: f32 (default), bf16 or f16 (gated, see the
      module docstring). ``precision`` afterwards says what the compiled model reports it runs.

    Each call takes one infer request from a pool (created as needed), starts it and waits for it: OpenVINO
    releases the GIL while it runs, so calls from several threads overlap.
    """

    def __init__(self, path: str | Path, device: str | None = None, threads: int | None = None,
                 precision: str | None = None, require_gate: bool = True) -> None:
        self.path = Path(path)
        device, precision = check_device(device), check_precision(precision)
        if precision != "f32" and require_gate:
            _require_gate(self.path, device, precision)
        ov, core, compiled, self.meta = open_model(self.path, device, precision, threads)
        self._compiled = compiled
        self._spec, self._output = self._io_spec()
        self.version = ov.__version__
        self.requested_device = device
        try:
            self.device = ", ".join(compiled.get_property("EXECUTION_DEVICES"))
        except Exception:  # not every plugin reports it
            self.device = device
        self.device_name = core.get_property(self.device.split(",")[0].strip(), "FULL_DEVICE_NAME") \
            if self.device.split(".")[0] in ("CPU", "GPU", "NPU") else self.device
        ran = compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = ran.get_type_name() if hasattr(ran, "get_type_name") else str(ran)  # "f32", "bf16", "f16"
        if self.precision != precision:
            raise UserError(f"OpenVINO compiled {self.path.name} at {self.precision} on {self.device}, not the "
                            f"{precision} asked for: use precision {self.precision}")
        optimal = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self.concurrency = 1 if threads is not None else max(1, min(optimal, _cores()))
        self.gate = None if precision == "f32" and self.meta.precision != "int8" else \
            _gate_of(self.path, self.device.split(".")[0], precision)
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        log.info("%s", self.describe())

    # ---- the backend-specific part: one inference call -------------------------------------------------------
    def _infer(self, batch: np.ndarray) -> np.ndarray:
        try:
            request = self._requests.get_nowait()
        except queue.Empty:
            request = self._compiled.create_infer_request()
        try:
            request.start_async({self._spec.name: batch}, share_inputs=True)
            request.wait()
            return np.array(request.get_tensor(self._output).data, dtype=np.float32, copy=True)
        finally:
            self._requests.put(request)

    # ---- the contract of today's base class (checks, empty batch, fixed-batch chunks) ---------------------------
    def _io_spec(self) -> tuple[InputSpec, str]:
        meta, where = self.meta, str(self.path)
        inputs = {n: p for p in self._compiled.inputs for n in p.get_names()}
        outputs = {n for p in self._compiled.outputs for n in p.get_names()}
        if meta.input_name not in inputs:
            raise UserError(f"{where}: the graph has no input {meta.input_name!r} (inputs: {', '.join(sorted(inputs))})")
        if meta.output_name not in outputs:
            raise UserError(f"{where}: the graph has no output {meta.output_name!r} (outputs: {', '.join(sorted(outputs))})")
        port = inputs[meta.input_name]
        if port.get_element_type().get_type_name() != "u8":
            raise UserError(f"{where}: input {meta.input_name} must be uint8, but the graph declares "
                            f"{port.get_element_type().get_type_name()}")
        pshape = port.get_partial_shape()
        shape = tuple(d.get_length() if d.is_static else None for d in pshape)
        expected = (None if meta.dynamic_batch else meta.batch, *meta.input_size, 3)
        if len(shape) != 4 or any(s is not None and e is not None and s != e for s, e in zip(shape, expected)):
            raise UserError(f"{where}: input {meta.input_name} has shape {pshape}, but the metadata says "
                            f"N x {meta.input_size[0]} x {meta.input_size[1]} x 3")
        return InputSpec(meta.input_name, shape, "uint8"), meta.output_name

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    @property
    def max_batch(self) -> int | None:
        return self._spec.shape[0]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self._compiled is None:
            raise RuntimeError(f"{self.path.name}: the OpenVINO model is closed")
        if batch.ndim == 4 and batch.shape[0] == 0:
            return np.zeros((0, len(self.meta.classes), *self.meta.grid), dtype=np.float32)
        b = self.max_batch
        if b is None or batch.shape[0] == b:
            self.check_batch(batch)
            return self._infer(np.ascontiguousarray(batch))
        return run_batched(self, batch, b, fixed=True)

    def describe(self) -> str:
        """One line: which OpenVINO runs the file where, at which precision, and why that precision."""
        if self.meta.precision == "int8":
            why = (f"INT8 twin, gated on OpenVINO {self.gate.device}" if self.gate else
                   "INT8 twin gated at export on ONNX Runtime only: `uolrps gate` checks it on OpenVINO")
        elif self.precision == "f32":
            why = "the default; bf16/f16 only after `uolrps gate`"
        else:
            why = f"gated: {self.gate.summary}" if self.gate else "gate not checked"
        return (f"OpenVINO {self.version.split('-')[0]} runs {self.path.name} on {self.device} ({self.device_name}) "
                f"at {self.precision} precision ({why}), {self.concurrency} request(s) in flight")

    def close(self) -> None:
        self._compiled = None
        self._requests = queue.SimpleQueue()

    def __repr__(self) -> str:
        return f"OpenVinoBackend({self.path.name}, device={self.device}, precision={self.precision})"


def _gate_of(path: Path, device: str, precision: str):
    from uolrps.runtime.gates import find_gate

    return find_gate(path, "openvino", device, precision)


def _require_gate(path: Path, device: str, precision: str) -> None:
    if device.split(".")[0] == "AUTO":
        raise OptionError(f"precision {precision} needs the device named (CPU, GPU or NPU), not AUTO: the gate "
                          "holds for the device it ran on", "precision", "device")
    if not path.is_file():
        return  # load_backend words a missing file
    if _gate_of(path, device.split(".")[0], precision) is None:
        raise UserError(f"{path.name} has not passed the {precision} gate on OpenVINO {device.split('.')[0]} (no "
                        f"passing entry for this file in {path.name}.gates.json): run `uolrps gate {path} --backend "
                        f"openvino --device {device} --precision {precision}` first, or use precision f32")

