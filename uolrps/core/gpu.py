"""The NVIDIA side of this machine, in one place below `uolrps build`, the TensorRT backend and `uolrps doctor`.

- :func:`import_tensorrt` / :func:`import_pycuda`: lazy imports whose failure names what to install.
- :func:`trt_logger`: one ``trt.Logger`` per process (TensorRT keeps one global logger).
- :func:`trt_create`: calls a TensorRT constructor (``trt.Builder``, ``trt.Runtime``, ``trt.OnnxParser``).
  They are pybind factories that never return None: when the C++ factory fails (no visible GPU, CUDA
  error 35) they raise ``TypeError: pybind11::init(): factory function returned nullptr``, which becomes a
  one-line :class:`UserError` saying what to check.
- :func:`query_gpu`: name and compute capability from pycuda; ``pycuda.driver.init()`` raises pycuda's own
  RuntimeError on a machine with a driver and no device, which becomes a one-line error too.

Nothing here imports tensorrt or pycuda at module import.
"""

from __future__ import annotations

import threading

from uolrps.core.errors import UserError

INSTALL_HINT = ("pip install 'uolrps[trt]' on a desktop GPU; on a Jetson, TensorRT comes with JetPack "
                "(the python3-libnvinfer package) and pycuda installs with pip (see docs/jetson.md)")
GPU_CHECK = ("check that an NVIDIA GPU is visible: `nvidia-smi` on a desktop, CUDA_VISIBLE_DEVICES, that this "
             "user may use the GPU (the video/render groups on a Jetson), and that the driver is not older than "
             "the CUDA that TensorRT was built for; `uolrps doctor` shows what is missing")
NULLPTR = "factory function returned nullptr"

_lock = threading.Lock()
# id(tensorrt module) -> (that module, its one Logger). The module is kept with its logger: an id alone can be
# reused by another module object once the first is gone (tests create fake modules), which would hand a new
# module the dead one's logger.
_loggers: dict[int, tuple[object, object]] = {}


def import_tensorrt(purpose: str = "this"):
    try:
        import tensorrt
    except ImportError as e:
        raise UserError(f"{purpose} needs the TensorRT Python package ({e}): {INSTALL_HINT}") from None
    return tensorrt


def import_pycuda(purpose: str = "the TensorRT backend"):
    try:
        import pycuda.driver as cuda
    except ImportError as e:
        raise UserError(f"{purpose} needs pycuda ({e}): {INSTALL_HINT}") from None
    return cuda


def trt_logger(trt):
    """The process's one ``trt.Logger`` (at WARNING) for the TensorRT module ``trt``."""
    with _lock:
        entry = _loggers.get(id(trt))
        if entry is None or entry[0] is not trt:
            entry = _loggers[id(trt)] = (trt, trt.Logger(trt.Logger.WARNING))
        return entry[1]


def trt_create(factory, *args, what: str):
    """``factory(*args)`` for a TensorRT constructor; its nullptr TypeError (or a None) becomes a UserError."""
    try:
        obj = factory(*args)
    except TypeError as e:
        if NULLPTR not in str(e):
            raise
        raise UserError(f"TensorRT could not create {what} (the CUDA GPU could not be used): {GPU_CHECK}") from None
    if obj is None:
        raise UserError(f"TensorRT could not create {what} (see the TensorRT messages above): {GPU_CHECK}")
    return obj


def _cuda_errors(cuda) -> tuple[type, ...]:
    """pycuda's exception classes (its own RuntimeError derives from pycuda.driver.Error, not the builtin)."""
    found = tuple(c for c in (getattr(cuda, "Error", None), getattr(cuda, "RuntimeError", None))
                  if isinstance(c, type) and issubclass(c, BaseException))
    return found + (RuntimeError,)


def cuda_init(cuda) -> int:
    """``cuda.init()`` and the device count, with pycuda's errors as one line."""
    try:
        cuda.init()
        return int(cuda.Device.count())
    except _cuda_errors(cuda) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"CUDA could not start ({first}): {GPU_CHECK}") from None


def query_gpu(device: int = 0, cuda=None) -> tuple[str, tuple[int, int]]:
    """Name and compute capability of CUDA device ``device``, from pycuda (``cuda``: the pycuda.driver module)."""
    cuda = cuda if cuda is not None else import_pycuda("asking the GPU")
    count = cuda_init(cuda)
    if count <= device:
        raise UserError(f"no CUDA GPU {device} on this machine (pycuda sees {count}): TensorRT engines need an "
                        f"NVIDIA GPU; {GPU_CHECK}")
    d = cuda.Device(device)
    major, minor = d.compute_capability()
    return d.name(), (int(major), int(minor))
