"""OpenVINO backend: our ONNX files (FP32, FP16 twin, INT8 twin) or an OpenVINO IR from ``uolrps export --openvino``,
on an OpenVINO device (CPU, GPU, NPU or AUTO), behind :class:`Backend`.

``openvino`` is imported inside the constructor, never at module import. Like every backend, this one opens the
model (:func:`open_model`: read the file, check device and precision, compile), checks its tensors with
:func:`check_io`, declares its :class:`Capabilities` and implements one inference call (:meth:`infer`, one infer
request) and, for a fixed-batch model, overlapping calls (:meth:`infer_chunks`, several requests in flight).
The base class checks batches, answers the empty batch and chunks and pads to the declared batch.

Precision is explicit: OpenVINO would pick bf16 by itself on a CPU with bf16 support (AVX-512 BF16 or AMX),
so the ``INFERENCE_PRECISION_HINT`` is always set: f32 unless ``precision`` says otherwise, and bf16 or f16
only for a model file that passed the twin gate on that device and precision (:mod:`uolrps.model.gates`).
``caps.precision`` is what the compiled model runs; ``caps.summary`` says which engine, where, at which
precision and why.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

import numpy as np

from uolrps.core.errors import OptionError, UserError
from uolrps.model.ir_meta import read_ir_meta
from uolrps.runtime.backends.base import Backend, Capabilities, check_io, usable_cores

_DISPATCH = threading.Lock()  # one thread at a time in OpenVINO's Python dispatch (start_async)
log = logging.getLogger("uolrps.openvino")
DEVICES = ("CPU", "GPU", "NPU", "AUTO")
PRECISIONS = ("f32", "bf16", "f16")  # INFERENCE_PRECISION_HINT values we set
CAPABILITY = {"bf16": "BF16", "f16": "FP16"}  # the device's OPTIMIZATION_CAPABILITIES entry each one needs
OV_TYPES = {"u8": "uint8", "f32": "float32", "f16": "float16", "f64": "float64"}


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
    meta = read_ir_meta(model, str(path))
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


def _ports(ports) -> dict[str, tuple]:
    """OpenVINO ports -> {name: (numpy dtype name, shape with None for a dynamic axis)} for :func:`check_io`."""
    out = {}
    for p in ports:
        kind = p.get_element_type().get_type_name()
        pshape = p.get_partial_shape()
        shape = None if pshape.rank.is_dynamic else tuple(d.get_length() if d.is_static else None for d in pshape)
        for name in p.get_names():
            out[name] = (OV_TYPES.get(kind, kind), shape)
    return out


class OpenVinoBackend(Backend):
    """An OpenVINO compiled model on a uolrps model file (``.onnx`` or an ``.xml`` IR with our metadata).

    - ``device``: CPU (default), GPU, NPU or AUTO (OpenVINO picks; ``caps.device`` then says which ran).
    - ``threads``: CPU inference threads with one stream (the latency setting; ``caps.concurrency`` 1); without
      it, OpenVINO's throughput setting: streams as OpenVINO chooses for this machine, and ``caps.concurrency`` =
      its optimal number of infer requests (at most the usable cores), so the engine keeps that many calls in
      flight.
    - ``precision``: the INFERENCE_PRECISION_HINT, always set: f32 (default), bf16 or f16 (gated, see the
      module docstring). ``caps.precision`` afterwards says what the compiled model reports it runs.

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
        inputs, outputs = _ports(compiled.inputs), _ports(compiled.outputs)
        check_io(str(self.path), self.meta, inputs, outputs)
        shape = inputs[self.meta.input_name][1]
        fixed = shape[0] if shape is not None else None
        self.version = ov.__version__
        try:
            ran_on = ", ".join(compiled.get_property("EXECUTION_DEVICES"))
        except Exception:  # not every plugin reports it
            ran_on = device
        self.device_name = core.get_property(ran_on.split(",")[0].strip(), "FULL_DEVICE_NAME") \
            if ran_on.split(".")[0] in ("CPU", "GPU", "NPU") else ran_on
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        ran_at = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)  # "f32", "bf16", "f16"
        if ran_at != precision:
            raise UserError(f"OpenVINO compiled {self.path.name} at {ran_at} on {ran_on}, not the "
                            f"{precision} asked for: use precision {ran_at}")
        optimal = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        concurrency = 1 if threads is not None else max(1, min(optimal, usable_cores()))
        self.gate = None if precision == "f32" and self.meta.precision != "int8" else \
            _gate_of(self.path, ran_on.split(".")[0], precision)
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self.caps = Capabilities(device=ran_on, concurrency=concurrency, max_batch=fixed, min_batch=fixed or 1,
                                 fixed_batch=fixed is not None, precision=ran_at,
                                 summary=self._summary(ran_on, ran_at, concurrency))
        log.info("%s", self.caps.summary)

    def _summary(self, ran_on: str, ran_at: str, concurrency: int) -> str:
        """One line: which OpenVINO runs the file where, at which precision, and why that precision."""
        if self.meta.precision == "int8":
            why = (f"INT8 twin, gated on OpenVINO {self.gate.device}" if self.gate else
                   "INT8 twin gated at export on ONNX Runtime only: `uolrps gate` checks it on OpenVINO")
        elif ran_at == "f32":
            why = "the default; bf16/f16 only after `uolrps gate`"
        else:
            why = f"gated: {self.gate.summary}" if self.gate else "gate not checked"
        return (f"OpenVINO {self.version.split('-')[0]} runs {self.path.name} on {ran_on} ({self.device_name}) "
                f"at {ran_at} precision ({why}), {concurrency} request(s) in flight")

    def check_open(self) -> None:
        if self._compiled is None:
            raise RuntimeError(f"{self.path.name}: the OpenVINO model is closed")

    def _request(self):
        try:
            return self._requests.get_nowait()
        except queue.Empty:
            return self._compiled.create_infer_request()

    def _result(self, request) -> np.ndarray:
        return np.array(request.get_tensor(self.meta.output_name).data, dtype=np.float32, copy=True)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        with _DISPATCH:
            request = self._request()
        try:
            with _DISPATCH:  # OpenVINO's Python input dispatch deadlocked with two threads in it at once
                request.start_async({self.meta.input_name: batch}, share_inputs=True)
            request.wait()
            return self._result(request)
        finally:
            self._requests.put(request)

    def infer_chunks(self, chunks: list[np.ndarray]) -> list[np.ndarray]:
        """The chunks of a fixed-batch model, ``caps.concurrency`` infer requests in flight at a time."""
        outs: list[np.ndarray] = []
        step = max(1, self.caps.concurrency)
        for start in range(0, len(chunks), step):
            running = []
            try:
                for chunk in chunks[start:start + step]:
                    with _DISPATCH:
                        request = self._request()
                        running.append(request)
                        request.start_async({self.meta.input_name: chunk}, share_inputs=True)
                for request in running:
                    request.wait()
                    outs.append(self._result(request))
            finally:
                for request in running:
                    self._requests.put(request)
        return outs

    def close(self) -> None:
        self._compiled = None
        self._requests = queue.SimpleQueue()

    def __repr__(self) -> str:
        return f"OpenVinoBackend({self.path.name}, device={self.caps.device}, precision={self.caps.precision})"


def _gate_of(path: Path, device: str, precision: str):
    from uolrps.model.gates import find_gate

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
