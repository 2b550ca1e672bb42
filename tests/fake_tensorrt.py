"""Small, faithful fakes of the TensorRT Python API (builder side) and of the backend's CUDA seam.

They stand in for hardware this machine lacks (an NVIDIA GPU with TensorRT). They follow the documented
TensorRT 10/11 Python API: ``Builder.create_network(flags)``, ``OnnxParser.parse_from_file`` with
``num_errors``/``get_error``, ``IBuilderConfig.set_memory_pool_limit``, ``add_optimization_profile`` returning
an index or -1, ``create_timing_cache``/``set_timing_cache``/``get_timing_cache``, ``default_device_type``,
``DLA_core``, ``set_flag(BuilderFlag.GPU_FALLBACK)``, ``build_serialized_network`` returning None on failure.
TensorRT 11 lost the precision builder flags (``BuilderFlag.FP16`` ...); its fake has none.

The "plan" a fake build returns is the ONNX model itself plus a JSON header (version, profile): the fake
seam runs it with ONNX Runtime, so the backend's results can be compared with a real ONNX Runtime session.
Like a CUDA stream, the fake seam only queues copies and execution; they happen at ``synchronize()``.
"""

from __future__ import annotations

import enum
import json
import types
from contextlib import contextmanager

import numpy as np

PLAN_MAGIC = b"FAKEPLAN\n"


class _Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class _Logger:
    Severity = _Severity
    WARNING = _Severity.WARNING
    ERROR = _Severity.ERROR

    def __init__(self, min_severity=_Severity.WARNING):
        self.min_severity = min_severity


class _Tensor:
    def __init__(self, name, shape, dtype):
        self.name, self.shape, self.dtype = name, tuple(shape), dtype


class _Network:
    def __init__(self, flags):
        self.flags = flags
        self.inputs: list[_Tensor] = []

    @property
    def num_inputs(self):
        return len(self.inputs)

    def get_input(self, i):
        return self.inputs[i]


class _ParserError:
    def __init__(self, desc, node=-1):
        self._desc, self._node = desc, node

    def desc(self):
        return self._desc

    def node(self):
        return self._node

    def __str__(self):
        return f"In node {self._node}: {self._desc}"


class _Parser:
    def __init__(self, network, logger):
        self.network, self._errors = network, []

    def parse_from_file(self, path):
        import onnx

        from uolrps.export.trt_ops import unsupported_ops

        model = onnx.load(path)
        for i, op in enumerate(unsupported_ops(model)):
            self._errors.append(_ParserError(f"UNSUPPORTED_NODE: No importer registered for op: {op}", i))
        init = {t.name for t in model.graph.initializer}
        for vi in model.graph.input:
            if vi.name in init:
                continue
            shape = [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
            self.network.inputs.append(_Tensor(vi.name, shape, vi.type.tensor_type.elem_type))
        self.network.onnx_bytes = model.SerializeToString()
        return not self._errors

    @property
    def num_errors(self):
        return len(self._errors)

    def get_error(self, i):
        return self._errors[i]


class _Profile:
    def __init__(self):
        self.shapes = {}

    def set_shape(self, name, min, opt, max):  # noqa: A002 - the documented parameter names
        if len({len(min), len(opt), len(max)}) != 1 or not all(a <= b <= c for a, b, c in zip(min, opt, max)):
            raise RuntimeError("Shape provided for min is inconsistent with other shapes.")
        self.shapes[name] = (tuple(min), tuple(opt), tuple(max))


class _TimingCache:
    def __init__(self, version, entries):
        self.version, self.entries = version, entries

    def serialize(self):
        return b"FAKETC " + json.dumps({"version": self.version, "entries": self.entries}).encode()


def make_trt(version="10.3.0", dla_cores=0, fail_build=False):
    """A module object with the part of ``tensorrt`` that uolrps.export.trt_build uses."""
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.Logger = _Logger
    flags = {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1} if major == 10 else {"PREFER_AOT_PYTHON_PLUGINS": 1}
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", flags)
    trt.MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0, "DLA_MANAGED_SRAM": 1})
    trt.DeviceType = enum.IntEnum("DeviceType", {"GPU": 0, "DLA": 1})
    builder_flags = {"GPU_FALLBACK": 2, "REFIT": 3, "TF32": 7} | ({"FP16": 0, "INT8": 1} if major == 10 else {})
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", builder_flags)
    trt.OnnxParser = _Parser
    trt.calls = []  # (what, details) in call order, for assertions

    class Config:
        def __init__(self):
            self.pools, self.profiles, self.flags = {}, [], set()
            self.default_device_type, self.DLA_core = trt.DeviceType.GPU, -1
            self.timing_cache = None

        def set_memory_pool_limit(self, pool, size):
            self.pools[pool] = size

        def add_optimization_profile(self, profile):
            if not profile.shapes:
                return -1
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def set_flag(self, flag):
            self.flags.add(flag)

        def create_timing_cache(self, blob):
            blob = bytes(blob)
            if not blob:
                return _TimingCache(version, [])
            data = json.loads(blob[len(b"FAKETC "):])
            return _TimingCache(data["version"], data["entries"])

        def set_timing_cache(self, cache, ignore_mismatch):
            if cache.version != version and not ignore_mismatch:
                return False
            self.timing_cache = cache
            trt.calls.append(("set_timing_cache", len(cache.entries)))
            return True

        def get_timing_cache(self):
            return self.timing_cache

    class Builder:
        num_DLA_cores = dla_cores

        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags=0):
            trt.calls.append(("create_network", flags))
            return _Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return _Profile()

        def build_serialized_network(self, network, config):
            dynamic = [t.name for t in network.inputs if -1 in t.shape]
            covered = {n for p in config.profiles for n in p.shapes}
            if fail_build or set(dynamic) - covered:
                return None  # TensorRT logs the reason and returns None
            if config.timing_cache is not None:
                config.timing_cache.entries.append(f"tactics-{len(config.timing_cache.entries)}")
            header = {"version": version, "flags": network.flags, "workspace": config.pools.get(trt.MemoryPoolType.WORKSPACE),
                      "profile": {n: s for p in config.profiles for n, s in p.shapes.items()},
                      "dla_core": config.DLA_core if config.default_device_type == trt.DeviceType.DLA else None}
            trt.calls.append(("build", header))
            return PLAN_MAGIC + json.dumps(header).encode() + b"\n" + network.onnx_bytes

    trt.Builder = Builder
    return trt


# ---- the backend's seam -----------------------------------------------------------------------------------
class FakeCudaTensorRT:
    """Stands in for uolrps.runtime.backends.trt.CudaTensorRT; runs the fake plan with ONNX Runtime."""

    def __init__(self, trt_version="10.3.0", gpu_name="Orin", compute_capability=(8, 7), reject_shapes=False,
                 fail_execute=False):
        self.trt_version, self.gpu_name, self.compute_capability = trt_version, gpu_name, compute_capability
        self.reject_shapes, self.fail_execute = reject_shapes, fail_execute
        self.calls: list = []
        self.closed = 0
        self._active = 0
        self._queue: list = []
        self._shapes: dict = {}
        self._addresses: dict = {}

    @contextmanager
    def active(self):
        self._active += 1
        try:
            yield
        finally:
            self._active -= 1

    def _need_active(self):
        assert self._active > 0, "CUDA call outside the seam's active() context"

    def load(self, plan):
        self._need_active()
        self.calls.append(("load",))
        assert plan.startswith(PLAN_MAGIC)
        header, _, onnx_bytes = plan[len(PLAN_MAGIC):].partition(b"\n")
        self.header = json.loads(header)
        if self.header["version"] != self.trt_version:
            from uolrps.errors import UserError  # what the real seam raises when deserialisation returns None

            raise UserError("TensorRT could not deserialise the engine")
        import onnxruntime as ort

        self.session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])

    def io_tensors(self):
        from uolrps.runtime.backends.trt import TensorInfo

        out = []
        kinds = {"tensor(uint8)": "UINT8", "tensor(float)": "FLOAT", "tensor(float16)": "HALF"}
        for item, is_input in [(i, True) for i in self.session.get_inputs()] + [(o, False) for o in self.session.get_outputs()]:
            shape = tuple(d if isinstance(d, int) else -1 for d in item.shape)
            prof = self.header["profile"].get(item.name)
            out.append(TensorInfo(item.name, is_input, kinds[item.type], shape,
                                  tuple(tuple(s) for s in prof) if prof and is_input else None))
        return out

    def alloc(self, shape, dtype):
        self._need_active()
        self.calls.append(("alloc", tuple(shape), np.dtype(dtype).name))
        host = np.full(shape, 255, dtype=dtype) if np.dtype(dtype) == np.uint8 else np.full(shape, np.nan, dtype)
        return host, bytearray(host.nbytes)

    def bind(self, name, device):
        self._need_active()
        self._addresses[name] = device
        return True

    def set_input_shape(self, name, shape):
        self._need_active()
        self.calls.append(("set_input_shape", tuple(shape)))
        prof = self.header["profile"].get(name)
        ok = not self.reject_shapes and (prof is None or all(lo <= s <= hi for lo, s, hi in zip(prof[0], shape, prof[2])))
        if ok:
            self._shapes[name] = tuple(shape)
        return ok

    def _input_shape(self):
        i = self.session.get_inputs()[0]
        return self._shapes.get(i.name) or tuple(i.shape)

    def tensor_shape(self, name):
        n = self._input_shape()[0]
        o = next(o for o in self.session.get_outputs() if o.name == name)
        return (n, *o.shape[1:])

    def h2d(self, device, host):
        self._need_active()
        assert host.flags.c_contiguous and host.nbytes <= len(device)
        data = host.tobytes()
        self._queue.append(lambda: device.__setitem__(slice(0, len(data)), data))

    def execute(self):
        self._need_active()
        inp = self.session.get_inputs()[0]
        shape = self._input_shape()
        if self.fail_execute or any(not isinstance(d, int) or d < 0 for d in shape):
            return False  # enqueue refused: an input shape is unset
        out_name = self.session.get_outputs()[0].name
        src, dst = self._addresses[inp.name], self._addresses[out_name]

        def run():
            x = np.frombuffer(bytes(src[:int(np.prod(shape))]), dtype=np.uint8).reshape(shape)
            y = self.session.run([out_name], {inp.name: x})[0].astype(np.float32)
            dst[:y.nbytes] = y.tobytes()
        self.calls.append(("execute", shape))
        self._queue.append(run)
        return True

    def d2h(self, host, device):
        self._need_active()
        assert host.flags.c_contiguous and host.nbytes <= len(device)

        def copy():
            host[...] = np.frombuffer(bytes(device[:host.nbytes]), dtype=host.dtype).reshape(host.shape)
        self._queue.append(copy)

    def synchronize(self):
        self._need_active()
        queue, self._queue = self._queue, []
        for op in queue:
            op()

    def close(self):
        self.closed += 1
