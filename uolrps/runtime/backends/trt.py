"""TensorRT backend: an engine from ``uolrps build``, run with pycuda on one CUDA stream.

Pinned host buffers and device buffers sized for the largest batch of the engine's optimisation profile
are allocated once; each call copies the batch host-to-device asynchronously, sets the input shape when the
batch axis is dynamic, enqueues ``execute_async_v3``, copies the heatmaps back and synchronises the stream.
The model metadata comes from the engine's sidecar, which is checked against the running TensorRT and GPU
before the engine is deserialised (with ``runtime.DLA_core`` set from it for a DLA engine); an engine from
trtexec or Polygraphy has no sidecar and is opened with ``meta=`` the ONNX file it was built from.

Every call into TensorRT and pycuda goes through :class:`CudaTensorRT` (the seam); the logic around it
(sidecar checks, I/O validation, dtype mapping, buffer sizing, profile checks, batching) is
:class:`TensorRTBackend` and is tested on machines without a GPU with a fake of the seam. ``tensorrt`` and
``pycuda`` are imported inside the seam's constructor, never at module import.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uolrps.core.errors import UserError
from uolrps.core.gpu import import_pycuda, import_tensorrt, query_gpu, trt_create, trt_logger
from uolrps.runtime.backends.base import Backend, Capabilities, check_io
from uolrps.model.sidecar import check_sidecar, describe_engine

log = logging.getLogger("uolrps.trt")
# TensorRT DataType names -> numpy dtypes of host buffers (BF16, FP8, INT4 have no numpy type)
TRT_DTYPES = {"FLOAT": "float32", "HALF": "float16", "INT8": "int8", "INT32": "int32", "INT64": "int64",
              "BOOL": "bool", "UINT8": "uint8"}


def numpy_dtype(trt_name: str) -> np.dtype:
    """A TensorRT DataType name (``"FLOAT"``, ``"UINT8"``, ...) as a numpy dtype."""
    name = str(trt_name).rsplit(".", 1)[-1].upper()
    if name not in TRT_DTYPES:
        raise UserError(f"TensorRT tensor type {name} has no host type here: rebuild the engine from the "
                        "uolrps export (uint8 input, float32 output)")
    return np.dtype(TRT_DTYPES[name])


@dataclass(frozen=True)
class TensorInfo:
    name: str
    is_input: bool
    dtype: str  # TensorRT DataType name
    shape: tuple  # -1 for a dynamic axis
    profile: tuple | None = None  # (min, opt, max) shapes in profile 0, for inputs with a dynamic axis


class CudaTensorRT:
    """The seam: one deserialised engine, one execution context, one CUDA stream, pinned and device memory.

    pycuda's contexts belong to threads: every use happens inside :meth:`active`, which pushes the device's
    primary context on the calling thread and pops it on the same thread. :meth:`close` releases the primary
    context (``detach()``, which pushes it and releases it without popping, so we pop it) when called on the
    thread that opened the engine; from another thread ``detach()`` would do nothing, so the release is left
    to the end of the process there. Either way the calling thread's context stack is left as it was.
    ``trt`` and ``cuda`` (the tensorrt and pycuda.driver modules) are imported when not given.
    """

    def __init__(self, device: int = 0, *, trt=None, cuda=None) -> None:
        self._trt = trt if trt is not None else import_tensorrt("the TensorRT backend")
        self._cuda = cuda if cuda is not None else import_pycuda()
        self.trt_version = str(self._trt.__version__)
        self.gpu_name, self.compute_capability = query_gpu(device, self._cuda)
        self._ctx = self._cuda.Device(device).retain_primary_context()
        self._thread = threading.get_ident()
        self._logger = trt_logger(self._trt)
        self._engine = self._context = self._stream = self._runtime = None
        self._allocations: list = []
        self._released = False

    @contextmanager
    def active(self):
        self._ctx.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    def load(self, plan: bytes, dla_core: int | None = None) -> None:
        runtime = trt_create(self._trt.Runtime, self._logger, what="a runtime")
        self._runtime = runtime
        if dla_core is not None:  # a DLA engine is deserialised with its core set first
            cores = int(getattr(runtime, "num_DLA_cores", 0) or 0)
            if not 0 <= dla_core < cores:
                have = f"{cores} DLA cores" if cores else "no DLA"
                raise UserError(f"the engine was built for DLA core {dla_core}, but this device has {have}: rebuild "
                                "it without --dla (or with a core this device has)")
            runtime.DLA_core = int(dla_core)
        self._engine = runtime.deserialize_cuda_engine(plan)
        if self._engine is None:
            raise UserError("TensorRT could not deserialise the engine (see the TensorRT messages above): "
                            "rebuild it with `uolrps build` on this machine")
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise UserError("TensorRT could not create an execution context (out of GPU memory?)")
        self._stream = self._cuda.Stream()

    def io_tensors(self) -> list[TensorInfo]:
        trt, engine = self._trt, self._engine
        out = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            shape = tuple(int(d) for d in engine.get_tensor_shape(name))
            profile = None
            if is_input and -1 in shape:
                profile = tuple(tuple(int(d) for d in s) for s in engine.get_tensor_profile_shape(name, 0))
            out.append(TensorInfo(name, is_input, engine.get_tensor_dtype(name).name, shape, profile))
        return out

    def alloc(self, shape: tuple, dtype) -> tuple[np.ndarray, object]:
        host = self._cuda.pagelocked_empty(shape, dtype)
        device = self._cuda.mem_alloc(max(1, host.nbytes))
        self._allocations += [host, device]
        return host, device

    def bind(self, name: str, device) -> bool:
        return bool(self._context.set_tensor_address(name, int(device)))

    def set_input_shape(self, name: str, shape: tuple) -> bool:
        return bool(self._context.set_input_shape(name, tuple(shape)))

    def tensor_shape(self, name: str) -> tuple:
        return tuple(int(d) for d in self._context.get_tensor_shape(name))

    def h2d(self, device, host: np.ndarray) -> None:
        self._cuda.memcpy_htod_async(device, host, self._stream)  # the size is the host view's

    def execute(self) -> bool:
        return bool(self._context.execute_async_v3(self._stream.handle))

    def d2h(self, host: np.ndarray, device) -> None:
        self._cuda.memcpy_dtoh_async(host, device, self._stream)

    def synchronize(self) -> None:
        self._stream.synchronize()

    def close(self) -> None:
        if self._released:
            return
        with self.active():
            for a in self._allocations:
                if hasattr(a, "free"):
                    a.free()
                elif getattr(a, "base", None) is not None and hasattr(a.base, "free"):
                    a.base.free()
            self._allocations = []
            self._context = self._engine = self._runtime = self._stream = None
        self._released = True
        if threading.get_ident() == self._thread:
            self._ctx.detach()  # pushes the primary context and releases it without popping ...
            self._cuda.Context.pop()  # ... so pop it here, on the same thread
        else:
            log.debug("engine closed from another thread: the primary context is released at exit")


@dataclass(frozen=True)
class EngineIO:
    input: TensorInfo
    output: TensorInfo
    image_shape: tuple  # (H, W, 3)
    heatmap_shape: tuple  # (K, h, w)
    min_batch: int
    max_batch: int
    dynamic: bool


def plan_io(tensors: list[TensorInfo], meta, source: str) -> EngineIO:
    """Check the engine's I/O against the model metadata; the batch range comes from profile 0."""
    def seen(t):  # (numpy dtype name, shape, TensorRT's name): a type with no host type is refused here
        return numpy_dtype(t.dtype).name, tuple(t.shape), str(t.dtype).rsplit(".", 1)[-1]

    inputs = {t.name: seen(t) for t in tensors if t.is_input}
    outputs = {t.name: t for t in tensors if not t.is_input}
    check_io(source, meta, inputs, {n: seen(t) if n == meta.output_name else (None, None) for n, t in outputs.items()},
             noun="the engine",
             fix=": rebuild the engine from the `uolrps export` ONNX file it was meant for")
    inp, out = next(t for t in tensors if t.is_input), outputs[meta.output_name]
    image = (*meta.input_size, 3)
    if inp.shape[0] == -1:
        if not inp.profile:
            raise UserError(f"{source}: the engine's batch axis is dynamic but it has no optimisation profile")
        lo, hi = int(inp.profile[0][0]), int(inp.profile[2][0])
        if not 1 <= lo <= hi:
            raise UserError(f"{source}: the engine's batch profile {lo}..{hi} is empty: rebuild")
        return EngineIO(inp, out, image, tuple(out.shape[1:]), lo, hi, True)
    b = int(inp.shape[0])
    return EngineIO(inp, out, image, tuple(out.shape[1:]), b, b, False)


class TensorRTBackend(Backend):
    """A TensorRT engine with its sidecar: ``TensorRTBackend("model.fp16.engine")(batch) -> heatmaps``.

    Any batch size is accepted: a batch larger than the engine's largest batch runs in chunks, and a chunk
    smaller than a fixed batch or than the profile's smallest batch is padded with copies of its last image
    (their heatmaps are dropped). Calls are serialised (one context, one stream).
    """

    def __init__(self, engine_path: str | Path, *, meta: str | Path | None = None, cuda=None) -> None:
        self.path = Path(engine_path)
        if not self.path.is_file():
            raise UserError(f"engine file {str(self.path)!r} does not exist: build one with `uolrps build MODEL.fp16.onnx`")
        desc = describe_engine(self.path, meta)
        self.sidecar, self.meta = desc.sidecar, desc.meta
        self._cuda = cuda if cuda is not None else CudaTensorRT()
        self._lock = threading.Lock()
        self._closed = False
        try:
            plan = self.path.read_bytes()
            self.warnings = list(desc.warnings)
            if self.sidecar is not None:
                self.warnings += check_sidecar(self.sidecar, self._cuda.trt_version, self._cuda.gpu_name,
                                               self._cuda.compute_capability, hashlib.sha256(plan).hexdigest())
            for w in self.warnings:
                log.warning("%s: %s", self.path.name, w)
            with self._cuda.active():
                self._cuda.load(plan, desc.dla_core)
                self.io = plan_io(self._cuda.io_tensors(), self.meta, str(self.path))
                hi = self.io.max_batch
                self._h_in, self._d_in = self._cuda.alloc((hi, *self.io.image_shape), np.uint8)
                self._h_out, self._d_out = self._cuda.alloc((hi, *self.io.heatmap_shape), np.float32)
                for name, dev in ((self.io.input.name, self._d_in), (self.io.output.name, self._d_out)):
                    if not self._cuda.bind(name, dev):
                        raise UserError(f"{self.path.name}: TensorRT refused the buffer address of {name}")
        except BaseException:
            self._cuda.close()
            self._closed = True
            raise
        self._bound_batch = None if self.io.dynamic else self.io.max_batch
        self.caps = Capabilities(device="tensorrt" if desc.dla_core is None else f"dla{desc.dla_core}",
                                 min_batch=self.io.min_batch, max_batch=self.io.max_batch,
                                 fixed_batch=not self.io.dynamic,
                                 meta_from=str(meta) if meta is not None and self.sidecar is None else None)

    def check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.path.name}: the engine is closed")

    def infer(self, chunk: np.ndarray) -> np.ndarray:
        k = chunk.shape[0]  # within the profile's min_batch..max_batch (the base class pads and chunks)
        with self._lock, self._cuda.active():
            np.copyto(self._h_in[:k], chunk)
            if self._bound_batch != k:
                self._set_batch(k)
            self._cuda.h2d(self._d_in, self._h_in[:k])
            try:
                ok = self._cuda.execute()
                self._cuda.d2h(self._h_out[:k], self._d_out)
            finally:
                self._cuda.synchronize()
            if not ok:
                raise RuntimeError(f"{self.path.name}: TensorRT execution failed (see the TensorRT messages above)")
            return self._h_out[:k].copy()

    def _set_batch(self, k: int) -> None:
        name, io = self.io.input.name, self.io
        if not self._cuda.set_input_shape(name, (k, *io.image_shape)):
            raise UserError(f"{self.path.name}: batch {k} is outside the engine's optimisation profile "
                            f"{io.min_batch}..{io.max_batch}: rebuild with `uolrps build ... --max-batch {k}`")
        got = self._cuda.tensor_shape(io.output.name)
        if tuple(got) != (k, *io.heatmap_shape):
            raise RuntimeError(f"{self.path.name}: for batch {k} the engine's output shape is {got}, "
                               f"expected {(k, *io.heatmap_shape)}")
        self._bound_batch = k

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._cuda.close()

    def __repr__(self) -> str:
        return f"TensorRTBackend({self.path.name}, batch {self.io.min_batch}..{self.io.max_batch})"
