"""A small fake of ``pycuda.driver`` that follows the real one (see /work/shared/docs/FIELD-NOTES.md).

- ``Device(i).retain_primary_context()`` does not push the context; ``ctx.detach()`` on a primary context
  pushes it and releases it without popping, and does nothing when called from another thread;
  ``Context.pop()`` pops the calling thread's stack (each thread has its own stack).
- Memory, copies and streams need a current context on the calling thread (pycuda raises LogicError
  "explicit_context_dependent failed ..." otherwise).
- ``init()`` raises pycuda's own RuntimeError (a subclass of ``pycuda.driver.Error``, not the builtin) when
  there is a driver and no device.

Device memory is a bytearray per address in :data:`DEVICE`, which the fake TensorRT runtime reads and writes.
"""

from __future__ import annotations

import threading
import types

import numpy as np

DEVICE: dict[int, bytearray] = {}


def make_pycuda(devices=(("Orin", (8, 7)),), driver_without_device=False):
    """A module object like ``pycuda.driver``, with a per-thread context stack the tests can read."""
    cuda = types.ModuleType("pycuda.driver")

    class Error(Exception):
        pass

    class LogicError(Error):
        pass

    class RuntimeError(Error):  # noqa: A001 - pycuda's own name, not the builtin
        pass

    cuda.Error, cuda.LogicError, cuda.RuntimeError = Error, LogicError, RuntimeError
    local = threading.local()
    cuda.retained = {}  # device index -> primary context retain count
    cuda.events = []

    def stack():
        if not hasattr(local, "stack"):
            local.stack = []
        return local.stack

    def need_context(what):
        if not stack():
            raise LogicError(f"{what} failed: invalid device context - no currently active context?")

    cuda.stack = lambda: list(stack())

    def init(flags=0):
        if driver_without_device:
            raise RuntimeError("cuInit failed: no CUDA-capable device is detected")
    cuda.init = init

    class Context:
        def __init__(self, device):
            self.device, self.thread = device, threading.get_ident()

        def push(self):
            stack().append(self)
            cuda.events.append(("push", self.device))

        @staticmethod
        def pop():
            if not stack():
                raise LogicError("cuCtxPopCurrent failed: invalid device context")
            ctx = stack().pop()
            cuda.events.append(("pop", ctx.device))

        def detach(self):
            if threading.get_ident() != self.thread:
                return  # does nothing from another thread
            stack().append(self)  # pushes it, releases it, does not pop it
            cuda.retained[self.device] -= 1
            cuda.events.append(("detach", self.device))

    class Device:
        def __init__(self, ordinal):
            if not 0 <= ordinal < len(devices):
                raise LogicError("cuDeviceGet failed: invalid device ordinal")
            self.ordinal = ordinal

        @staticmethod
        def count():
            return len(devices)

        def name(self):
            return devices[self.ordinal][0]

        def compute_capability(self):
            return devices[self.ordinal][1]

        def retain_primary_context(self):
            cuda.retained[self.ordinal] = cuda.retained.get(self.ordinal, 0) + 1
            return Context(self.ordinal)

    class DeviceAllocation:
        def __init__(self, n):
            self.address = id(self)
            DEVICE[self.address] = bytearray(n)

        def __int__(self):
            return self.address

        def free(self):
            need_context("cuMemFree")
            DEVICE.pop(self.address, None)

    class Stream:
        def __init__(self):
            need_context("cuStreamCreate")
            self.handle = id(self)

        def synchronize(self):
            need_context("cuStreamSynchronize")

    def pagelocked_empty(shape, dtype):
        need_context("cuMemHostAlloc")
        return np.empty(shape, dtype)

    def mem_alloc(n):
        need_context("cuMemAlloc")
        return DeviceAllocation(n)

    def memcpy_htod_async(dest, src, stream=None):
        need_context("cuMemcpyHtoDAsync")
        data = np.ascontiguousarray(src).tobytes()
        DEVICE[int(dest)][:len(data)] = data

    def memcpy_dtoh_async(dest, src, stream=None):
        need_context("cuMemcpyDtoHAsync")
        dest[...] = np.frombuffer(bytes(DEVICE[int(src)][:dest.nbytes]), dest.dtype).reshape(dest.shape)

    cuda.Context, cuda.Device, cuda.Stream = Context, Device, Stream
    cuda.pagelocked_empty, cuda.mem_alloc = pagelocked_empty, mem_alloc
    cuda.memcpy_htod_async, cuda.memcpy_dtoh_async = memcpy_htod_async, memcpy_dtoh_async
    return cuda
