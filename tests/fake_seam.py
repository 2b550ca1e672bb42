"""A fake of the TensorRT backend's CUDA seam (uolrps.runtime.backends.trt.CudaTensorRT) for the backend's logic.

It runs the fake plan (tests/fake_tensorrt.py) with ONNX Runtime. Like a CUDA stream, it only queues copies
and execution; they happen at ``synchronize()``. The real seam itself is tested with the fake tensorrt and
pycuda modules (test_trt_seam.py).
"""

from __future__ import annotations

import json
from contextlib import contextmanager

import numpy as np

from fake_tensorrt import PLAN_MAGIC

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

    def load(self, plan, dla_core=None):
        self._need_active()
        self.calls.append(("load", dla_core))
        assert plan.startswith(PLAN_MAGIC)
        header, _, onnx_bytes = plan[len(PLAN_MAGIC):].partition(b"\n")
        self.header = json.loads(header)
        if self.header["version"] != self.trt_version:
            from uolrps.core.errors import UserError  # what the real seam raises when deserialisation returns None

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
