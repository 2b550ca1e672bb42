"""The one interface every inference backend implements (ONNX Runtime, TensorRT, ...)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from uolrps.meta import ModelMeta


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple  # ints, or None for a dynamic axis
    dtype: str  # numpy dtype name, "uint8"


class Backend(ABC):
    """``with Backend(path) as b: heatmaps = b(batch)``.

    ``batch`` is uint8 N x H x W x 3 in the model's colour order; the result is float32 N x K x h x w.
    ``meta`` is the model file's own metadata (:class:`uolrps.meta.ModelMeta`).
    """

    meta: ModelMeta
    #: How many calls may usefully run at once from different threads: 1 where one call already uses the device
    #: (a TensorRT engine, a GPU provider), more where calls overlap usefully (ONNX Runtime on the CPU: 2; a
    #: server reached over the network, whose round trips overlap). The multi-stream engine runs this many
    #: inference threads by default.
    concurrency: int = 1

    @property
    @abstractmethod
    def input_spec(self) -> InputSpec: ...

    @abstractmethod
    def __call__(self, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None:
        """Release the session or engine; calling it twice is harmless."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def check_batch(self, batch: np.ndarray) -> None:
        """Refuse a batch that does not match the declared input (expected against actual)."""
        spec = self.input_spec
        if batch.dtype != np.dtype(spec.dtype):
            raise ValueError(f"input {spec.name} must be {spec.dtype}, but got {batch.dtype}")
        if batch.ndim != len(spec.shape) or any(
            s is not None and s != b for s, b in zip(spec.shape, batch.shape)
        ):
            raise ValueError(f"input {spec.name} must have shape {spec.shape}, but got {batch.shape}")
