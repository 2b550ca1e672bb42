"""The one interface every inference backend implements (ONNX Runtime, TensorRT, Triton, ...).

A backend implements two things: opening (its constructor: load the model, read its ``meta``, check its
inputs and outputs against that metadata with :func:`check_io`, declare its :class:`Capabilities`) and one
inference call (:meth:`Backend.infer`, on a batch within the declared limits). The base class owns the rest:
the check of each batch against the model's input, the empty batch, chunking to the largest batch a call
takes, and padding to the smallest (copies of the last image, whose outputs are dropped).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from uolrps.core.errors import UserError
from uolrps.model.meta import ModelMeta


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity, as a container or taskset limits it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple  # ints, or None for a dynamic axis
    dtype: str  # numpy dtype name, "uint8"


@dataclass(frozen=True)
class Capabilities:
    """What a backend declares once it is open; callers read these, never probe the backend's attributes.

    - ``device``: where inference runs, in words (``cpu``, ``cuda``, ``tensorrt``, ``server``).
    - ``concurrency``: how many calls may usefully run at once from different threads: 1 where one call
      already uses the device (a TensorRT engine, a GPU provider), more where calls overlap usefully (ONNX
      Runtime on the CPU: 2; a server reached over the network). The multi-stream engine runs this many
      inference threads by default.
    - ``min_batch`` / ``max_batch``: the smallest and largest batch one inference call takes (``max_batch``
      None: any); ``fixed_batch``: every call takes exactly ``max_batch`` images.
    - ``provider`` / ``providers``: ONNX Runtime's execution provider that actually runs the model and the
      session's providers; None / () for other backends.
    - ``meta_from``: the file the metadata was read from when it is not the model file itself (an engine
      without a sidecar, opened with ``meta=`` its ONNX file); None otherwise.
    - ``precision``: the inference precision an engine chose at load time and runs (OpenVINO's f32, bf16 or
      f16); None where the precision is the model file's own (its ``meta.precision``).
    - ``summary``: one line in words on what runs the model where, at which precision and why, which `uolrps
      run` prints; None where the provider says enough.
    - ``verified``: whether the model file's graph-and-weights digest (written at export) was checked at load:
      True it matched (a mismatch is a UserError before this is built), False the file carries none (exported
      before digests, or edited by another tool), None the backend does not check one (engines, servers).
    """

    device: str = "cpu"
    concurrency: int = 1
    min_batch: int = 1
    max_batch: int | None = None
    fixed_batch: bool = False
    provider: str | None = None
    providers: tuple[str, ...] = ()
    meta_from: str | None = None
    precision: str | None = None
    summary: str | None = None
    verified: bool | None = None

    def __post_init__(self):
        if self.fixed_batch and self.max_batch is None:
            raise ValueError("a fixed batch needs max_batch")
        if self.max_batch is not None and not 1 <= self.min_batch <= self.max_batch:
            raise ValueError(f"batch limits {self.min_batch}..{self.max_batch} are empty")


EXPORT_FIX = ": use the `uolrps export` ONNX file (or what was built from it)"


def _dims(shape) -> tuple | None:
    """A shape as the backend gives it, with every dynamic axis (None, -1, 0, a name) as None."""
    if shape is None:
        return None
    return tuple(d if isinstance(d, int) and d > 0 else None for d in shape)


def check_io(where: str, meta: ModelMeta, inputs: dict[str, tuple], outputs: dict[str, tuple], *,
             noun: str = "the model", fix: str = EXPORT_FIX) -> None:
    """The one check of a model's inputs and outputs against its metadata, for every backend.

    ``inputs`` and ``outputs`` map each tensor name to ``(dtype, shape)`` or ``(dtype, shape, shown)`` as the
    backend sees them: dtype, the numpy dtype name (None when unknown); shape, ints (a dynamic axis as None or
    -1; shown as given) or None when unknown; ``shown``, the dtype in the backend's own words for the message
    (TensorRT's ``FLOAT``). A uolrps model has exactly one uint8 input N x H x W x 3 named
    ``meta.input_name`` and a float32 output N x K x h x w named ``meta.output_name``. ``noun`` names what is
    checked in the message (``the engine``), ``fix`` ends it with what to do."""
    if list(inputs) != [meta.input_name]:
        raise UserError(f"{where}: {noun}'s inputs are {list(inputs)}, but the model metadata says one input "
                        f"{meta.input_name!r}{fix}")
    if meta.output_name not in outputs:
        raise UserError(f"{where}: {noun} has no output {meta.output_name!r} (outputs: {list(outputs)}){fix}")
    inp, out = inputs[meta.input_name], outputs[meta.output_name]
    (idt, ishape), (odt, oshape) = inp[:2], out[:2]
    if idt not in (None, "uint8") or odt not in (None, "float32"):
        shown_in, shown_out = (inp[2] if len(inp) > 2 else idt), (out[2] if len(out) > 2 else odt)
        raise UserError(f"{where}: {noun} takes {shown_in} and returns {shown_out}, but uolrps models take uint8 "
                        f"images and return float32 heatmaps{fix}")
    H, W = meta.input_size
    dims = _dims(ishape)
    if dims is not None and (len(dims) != 4 or any(s is not None and s != e for s, e in zip(dims[1:], (H, W, 3)))):
        raise UserError(f"{where}: {noun} input shape {tuple(ishape)} is not N x {H} x {W} x 3 as the metadata "
                        f"says{fix}")
    h, w = meta.grid
    dims = _dims(oshape)
    if dims is not None and (len(dims) != 4 or any(s is not None and s != e for s, e in zip(dims[2:], (h, w)))
                             or (oshape[1] is not None and isinstance(oshape[1], int) and oshape[1] == 0)):
        raise UserError(f"{where}: {noun} output shape {tuple(oshape)} is not N x K x {h} x {w} as the metadata "
                        f"says{fix}")


class Backend(ABC):
    """``with Backend(path) as b: heatmaps = b(batch)``.

    ``batch`` is uint8 N x H x W x 3 in the model's colour order, any N; the result is float32 N x K x h x w.
    ``meta`` is the model file's own metadata (:class:`uolrps.model.meta.ModelMeta`); ``caps`` what the
    backend declares (:class:`Capabilities`). Subclasses set both when they open and implement :meth:`infer`.
    """

    meta: ModelMeta
    caps: Capabilities = Capabilities()

    @property
    def input_spec(self) -> InputSpec:
        c = self.caps
        return InputSpec(self.meta.input_name, (c.max_batch if c.fixed_batch else None, *self.meta.input_size, 3),
                         "uint8")

    @abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """One inference call on a checked, contiguous batch of ``caps.min_batch`` to ``caps.max_batch`` images."""

    def infer_chunks(self, chunks: list[np.ndarray]) -> list[np.ndarray]:
        """:meth:`infer` on each chunk, in order; a backend whose calls overlap may run them at once."""
        return [self.infer(c) for c in chunks]

    def check_open(self) -> None:
        """Raise RuntimeError once the backend is closed (each backend says so in its own words)."""

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.check_open()
        batch = np.asarray(batch)
        self.check_batch(batch)
        n = batch.shape[0]
        if n == 0:
            return np.zeros((0, len(self.meta.classes), *self.meta.grid), dtype=np.float32)
        c = self.caps
        step = c.max_batch or n
        if n <= step and n >= c.min_batch and not (c.fixed_batch and n != step):
            return self.infer(np.ascontiguousarray(batch))  # the common case: one call, no copy
        low = step if c.fixed_batch else c.min_batch
        chunks, sizes = [], []
        for start in range(0, n, step):
            part = batch[start:start + step]
            sizes.append(len(part))
            if len(part) < low:
                part = np.concatenate([part, np.repeat(part[-1:], low - len(part), axis=0)])
            chunks.append(np.ascontiguousarray(part))
        outs = [o[:k] for o, k in zip(self.infer_chunks(chunks), sizes)]
        return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=0)

    def close(self) -> None:
        """Release the session or engine; calling it twice is harmless."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def check_batch(self, batch: np.ndarray) -> None:
        """Refuse a batch that does not match the model's input (expected against actual)."""
        spec = self.input_spec
        if batch.dtype != np.dtype(spec.dtype):
            raise ValueError(f"input {spec.name} must be {spec.dtype}, but got {batch.dtype}")
        if batch.ndim != 4 or tuple(batch.shape[1:]) != tuple(spec.shape[1:]):
            raise ValueError(f"input {spec.name} must have shape (N, {', '.join(map(str, spec.shape[1:]))}), "
                             f"but got {batch.shape}")
