"""A small fake of TensorRT's Python API that follows the real one, for a machine without a GPU.

Facts followed (read from the compiled ``tensorrt_cu12_bindings`` 10.3.0 and 11.4.0.106, see
/work/shared/docs/FIELD-NOTES.md; ``test_fakes_match_real_bindings`` checks the names and values where
those wheels are available):

- Enum names and values: ``BuilderFlag`` (GPU_FALLBACK=3, REFIT=4, TF32=6 in both; 11.4 dropped FP16, INT8,
  BF16, FP8, INT4, OBEY_/PREFER_PRECISION_CONSTRAINTS, REJECT_EMPTY_ALGORITHMS, WEIGHTLESS),
  ``NetworkDefinitionCreationFlag`` (10.3: EXPLICIT_BATCH=0, STRONGLY_TYPED=1; 11.4: STRONGLY_TYPED=0,
  PREFER_JIT_PYTHON_PLUGINS=1, PREFER_AOT_PYTHON_PLUGINS=2), ``DataType``, ``MemoryPoolType``, ``DeviceType``.
- ``trt.Builder(logger)``, ``trt.Runtime(logger)``, ``trt.OnnxParser(network, logger)`` never return None:
  without a GPU they raise ``TypeError: pybind11::init(): factory function returned nullptr``.
- ``build_serialized_network`` and ``ITimingCache.serialize()`` return ``IHostMemory``: a buffer (bytes() and
  memoryview work) with ``dtype`` and ``nbytes``, no len(), no slicing, no bytes methods.
- The ONNX parser decides op support by itself (:data:`PARSER_REFUSES` plus non-default domains, or what a
  test passes): it knows nothing of ``uolrps.export.tensorrt.ops``, so a wrong operator list can be caught.

A fake "plan" is the ONNX model with a JSON header (version, profile, DLA core): the fake runtime runs it
with ONNX Runtime, so results can be compared with a real ONNX Runtime session. pycuda's fake is in
fake_pycuda.py (device memory is shared through its DEVICE table), the backend seam's in fake_seam.py.
"""

from __future__ import annotations

import ctypes
import enum
import json
import threading
import types
from contextlib import contextmanager

import numpy as np
import onnx as _onnx  # bound now: tests may make `import onnx` fail for the code under test

from fake_pycuda import DEVICE as _DEVICE

PLAN_MAGIC = b"FAKEPLAN\n"
NULLPTR = "pybind11::init(): factory function returned nullptr"
PARSER_REFUSES = frozenset({"Unique", "Det", "StringNormalizer", "NonZeroish"})

BUILDER_FLAGS = {
    10: {"FP16": 0, "INT8": 1, "DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "DISABLE_TIMING_CACHE": 5, "TF32": 6,
         "SPARSE_WEIGHTS": 7, "SAFETY_SCOPE": 8, "OBEY_PRECISION_CONSTRAINTS": 9, "PREFER_PRECISION_CONSTRAINTS": 10,
         "DIRECT_IO": 11, "REJECT_EMPTY_ALGORITHMS": 12, "VERSION_COMPATIBLE": 13, "EXCLUDE_LEAN_RUNTIME": 14,
         "FP8": 15, "ERROR_ON_TIMING_CACHE_MISS": 16, "BF16": 17, "DISABLE_COMPILATION_CACHE": 18, "WEIGHTLESS": 19,
         "STRIP_PLAN": 19, "REFIT_IDENTICAL": 20, "WEIGHT_STREAMING": 21, "INT4": 22, "REFIT_INDIVIDUAL": 23},
    11: {"DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "DISABLE_TIMING_CACHE": 5, "TF32": 6, "SPARSE_WEIGHTS": 7,
         "SAFETY_SCOPE": 8, "DIRECT_IO": 11, "VERSION_COMPATIBLE": 12, "EXCLUDE_LEAN_RUNTIME": 13,
         "ERROR_ON_TIMING_CACHE_MISS": 15, "DISABLE_COMPILATION_CACHE": 17, "STRIP_PLAN": 18, "REFIT_IDENTICAL": 19,
         "WEIGHT_STREAMING": 20, "REFIT_INDIVIDUAL": 22, "STRICT_NANS": 23, "MONITOR_MEMORY": 24,
         "EDITABLE_TIMING_CACHE": 26, "DISTRIBUTIVE_INDEPENDENCE": 27},
}
NETWORK_FLAGS = {10: {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1},
                 11: {"STRONGLY_TYPED": 0, "PREFER_JIT_PYTHON_PLUGINS": 1, "PREFER_AOT_PYTHON_PLUGINS": 2}}
DATA_TYPES = {10: {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3, "BOOL": 4, "UINT8": 5, "FP8": 6, "BF16": 7,
                   "INT64": 8, "INT4": 9}}
DATA_TYPES[11] = {**DATA_TYPES[10], "FP4": 10, "E8M0": 11}
MEMORY_POOLS = {"WORKSPACE": 0, "DLA_MANAGED_SRAM": 1, "DLA_LOCAL_DRAM": 2, "DLA_GLOBAL_DRAM": 3, "TACTIC_DRAM": 4,
                "TACTIC_SHARED_MEMORY": 5}
DEVICE_TYPES = {"GPU": 0, "DLA": 1}
ONNX_TO_TRT = {"tensor(uint8)": "UINT8", "tensor(float)": "FLOAT", "tensor(float16)": "HALF"}


def host_memory(data: bytes):
    """An object like TensorRT's IHostMemory: a buffer of ``data``, with dtype and nbytes, nothing else."""
    cls = type("IHostMemory", (ctypes.Structure,), {"_fields_": [("data", ctypes.c_char * max(1, len(data)))]})
    mem = cls()
    ctypes.memmove(ctypes.addressof(mem), data, len(data))
    mem.nbytes, mem.dtype = len(data), "UINT8"
    return mem


class _Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class _Logger:
    Severity = _Severity
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = (_Severity(i) for i in range(5))
    created = 0  # how many loggers were made (TensorRT keeps one global logger)

    def __init__(self, min_severity=_Severity.WARNING):
        type(self).created += 1
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
    def __init__(self, desc, node, name, op):
        self._desc, self._node, self._name, self._op = desc, node, name, op

    def desc(self):
        return self._desc

    def node(self):
        return self._node

    def node_name(self):
        return self._name

    def node_operator(self):
        return self._op

    def __str__(self):
        return f"In node {self._node} with name: {self._name} and operator: {self._op} ({self._desc})"


def _make_parser(refuses):
    class OnnxParser:
        def __init__(self, network, logger):
            if network is None or logger is None:
                raise TypeError(NULLPTR)
            self.network, self._errors, self._subgraphs = network, [], []

        def _refused(self, node):
            return node.domain not in ("", "ai.onnx") or node.op_type in refuses

        def _check(self, model):
            self._errors = []
            for i, node in enumerate(model.graph.node):
                if self._refused(node):
                    self._errors.append(_ParserError(f"UNSUPPORTED_NODE: No importer registered for op: {node.op_type}",
                                                     i, node.name or f"node{i}", node.op_type))
            return not self._errors

        def parse(self, model, path=None):
            model = _onnx.ModelProto.FromString(bytes(memoryview(model).cast("B")))
            ok = self._check(model)
            init = {t.name for t in model.graph.initializer}
            for vi in model.graph.input:
                if vi.name not in init:
                    shape = [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
                    self.network.inputs.append(_Tensor(vi.name, shape, vi.type.tensor_type.elem_type))
            self.network.onnx_bytes = model.SerializeToString()
            return ok

        def parse_from_file(self, path):
            with open(path, "rb") as f:
                return self.parse(f.read())

        def supports_model_v2(self, model, path=None):
            m = _onnx.ModelProto.FromString(bytes(memoryview(model).cast("B")))
            ok = self._check(m)
            self._subgraphs = []  # runs of nodes with the same verdict, as the parser partitions the graph
            for i, node in enumerate(m.graph.node):
                good = not self._refused(node)
                if self._subgraphs and self._subgraphs[-1][0] == good:
                    self._subgraphs[-1][1].append(i)
                else:
                    self._subgraphs.append((good, [i]))
            return ok

        @property
        def num_subgraphs(self):
            return len(self._subgraphs)

        def is_subgraph_supported(self, i):
            return self._subgraphs[i][0]

        def get_subgraph_nodes(self, i):
            return list(self._subgraphs[i][1])

        @property
        def num_errors(self):
            return len(self._errors)

        def get_error(self, i):
            return self._errors[i]

        def clear_errors(self):
            self._errors = []
    return OnnxParser


class _Profile:
    def __init__(self):
        self.shapes = {}

    def set_shape(self, input, min, opt, max):  # noqa: A002 - the binding's parameter names
        if len({len(min), len(opt), len(max)}) != 1 or not all(a <= b <= c for a, b, c in zip(min, opt, max)):
            raise RuntimeError("Shape provided for min is inconsistent with other shapes.")
        self.shapes[input] = (tuple(min), tuple(opt), tuple(max))


class _TimingCache:
    def __init__(self, version, entries):
        self.version, self.entries = version, entries

    def serialize(self):
        return host_memory(b"FAKETC " + json.dumps({"version": self.version, "entries": self.entries}).encode())


def make_trt(version="10.3.0", dla_cores=0, fail_build=False, gpu=True, refuses=PARSER_REFUSES):
    """A module object with the parts of ``tensorrt`` uolrps uses (builder, parser, runtime, engine).

    ``gpu=False``: no visible GPU, so the constructors raise the nullptr TypeError. ``refuses``: the op types
    this fake TensorRT's ONNX parser does not import.
    """
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.Logger = type("Logger", (_Logger,), {"created": 0})
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", NETWORK_FLAGS[major])
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", BUILDER_FLAGS[major])
    trt.DataType = enum.IntEnum("DataType", DATA_TYPES[major])
    trt.MemoryPoolType = enum.IntEnum("MemoryPoolType", MEMORY_POOLS)
    trt.DeviceType = enum.IntEnum("DeviceType", DEVICE_TYPES)
    trt.TensorIOMode = enum.IntEnum("TensorIOMode", {"NONE": 0, "INPUT": 1, "OUTPUT": 2})
    trt.OnnxParser = _make_parser(frozenset(refuses))
    trt.calls = []  # (what, details) in call order, for assertions

    def need_gpu():
        if not gpu:
            raise TypeError(NULLPTR)

    class IBuilderConfig:
        def __init__(self):
            self.pools, self.profiles, self.flags = {}, [], set()
            self.default_device_type, self.DLA_core = trt.DeviceType.GPU, -1
            self.timing_cache = None

        def set_memory_pool_limit(self, pool, pool_size):
            self.pools[pool] = pool_size

        def add_optimization_profile(self, profile):
            if not profile.shapes:
                return -1
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def set_flag(self, flag):
            assert isinstance(flag, trt.BuilderFlag)
            self.flags.add(flag)

        def create_timing_cache(self, serialized_timing_cache):
            blob = bytes(memoryview(serialized_timing_cache).cast("B"))
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
            need_gpu()
            self.logger = logger

        def create_network(self, flags=0):
            trt.calls.append(("create_network", flags))
            return _Network(flags)

        def create_builder_config(self):
            return IBuilderConfig()

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
                      "dla_core": config.DLA_core if config.default_device_type == trt.DeviceType.DLA else None,
                      "builder_flags": sorted(int(f) for f in config.flags)}
            trt.calls.append(("build", header))
            return host_memory(PLAN_MAGIC + json.dumps(header).encode() + b"\n" + network.onnx_bytes)

    class ICudaEngine:
        def __init__(self, header, onnx_bytes):
            import onnxruntime as ort

            self.header, self.session = header, ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
            self._io = [(i, True) for i in self.session.get_inputs()] + [(o, False) for o in self.session.get_outputs()]

        @property
        def num_io_tensors(self):
            return len(self._io)

        def get_tensor_name(self, index):
            return self._io[index][0].name

        def _item(self, name):
            return next((item, is_in) for item, is_in in self._io if item.name == name)

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if self._item(name)[1] else trt.TensorIOMode.OUTPUT

        def get_tensor_shape(self, name):
            return tuple(d if isinstance(d, int) else -1 for d in self._item(name)[0].shape)

        def get_tensor_dtype(self, name):
            return trt.DataType[ONNX_TO_TRT[self._item(name)[0].type]]

        def get_tensor_profile_shape(self, name, profile_index):
            return [tuple(s) for s in self.header["profile"][name]]

        def create_execution_context(self):
            return IExecutionContext(self)

    class IExecutionContext:
        def __init__(self, engine):
            self.engine, self.addresses, self.shapes = engine, {}, {}

        def set_tensor_address(self, name, memory):
            self.addresses[name] = int(memory)
            return True

        def set_input_shape(self, name, shape):
            prof = self.engine.header["profile"].get(name)
            if prof and not all(lo <= s <= hi for lo, s, hi in zip(prof[0], shape, prof[2])):
                return False
            self.shapes[name] = tuple(shape)
            return True

        def _input(self):
            i = self.engine.session.get_inputs()[0]
            return i, self.shapes.get(i.name) or self.engine.get_tensor_shape(i.name)

        def get_tensor_shape(self, name):
            n = self._input()[1][0]
            return (n, *self.engine.get_tensor_shape(name)[1:])

        def execute_async_v3(self, stream_handle):
            inp, shape = self._input()
            if -1 in shape:
                return False
            out = self.engine.session.get_outputs()[0].name
            src = _DEVICE[self.addresses[inp.name]]
            x = np.frombuffer(bytes(src[:int(np.prod(shape))]), np.uint8).reshape(shape)
            y = self.engine.session.run([out], {inp.name: x})[0].astype(np.float32).tobytes()
            _DEVICE[self.addresses[out]][:len(y)] = y
            trt.calls.append(("execute", shape))
            return True

    class Runtime:
        num_DLA_cores = dla_cores

        def __init__(self, logger):
            need_gpu()
            self.logger, self.DLA_core = logger, -1

        def deserialize_cuda_engine(self, serialized_engine):
            plan = bytes(memoryview(serialized_engine).cast("B"))
            if not plan.startswith(PLAN_MAGIC):
                return None
            header, _, onnx_bytes = plan[len(PLAN_MAGIC):].partition(b"\n")
            header = json.loads(header)
            trt.calls.append(("deserialize", self.DLA_core))
            if header["version"] != version:
                return None  # "The engine plan file is not compatible with this version of TensorRT"
            if header["dla_core"] is not None and self.DLA_core != header["dla_core"]:
                return None  # a DLA engine needs runtime.DLA_core set to its core first
            return ICudaEngine(header, onnx_bytes)

    trt.Builder, trt.Runtime = Builder, Runtime
    return trt
