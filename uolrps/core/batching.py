"""The one batching helper: run any number of inputs through a model that takes batches of a fixed size
(pad the last chunk with copies of its last item, drop their outputs) or of any size up to a limit."""

from __future__ import annotations

from typing import Callable

import numpy as np


def pad_batch(batch: np.ndarray, size: int) -> np.ndarray:
    """``batch`` (N >= 1 items on axis 0) padded to ``size`` items with copies of its last item."""
    n = batch.shape[0]
    if n == 0 or n > size:
        raise ValueError(f"cannot pad a batch of {n} to {size}")
    if n == size:
        return batch
    return np.concatenate([batch, np.repeat(batch[-1:], size - n, axis=0)], axis=0)


def run_batched(fn: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, step: int | None,
                fixed: bool = False) -> np.ndarray:
    """``fn`` over ``batch`` in chunks of at most ``step`` items (None: all at once); with ``fixed`` every
    chunk is exactly ``step`` items (the last one padded, its extra outputs dropped). Outputs concatenated
    in order on axis 0."""
    n = batch.shape[0]
    if step is not None and step <= 0:
        raise ValueError(f"step must be a positive batch size, but got {step}")
    if step is None or (n == step) or (n < step and not fixed):
        return fn(batch)
    parts = []
    for start in range(0, n, step):
        chunk = batch[start:start + step]
        k = chunk.shape[0]
        out = fn(np.ascontiguousarray(pad_batch(chunk, step)) if fixed and k < step else chunk)
        parts.append(out[:k])
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


def chunk_ranges(n: int, step: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n)`` in steps of ``step``."""
    if step <= 0:
        raise ValueError(f"step must be a positive batch size, but got {step}")
    return [(s, min(s + step, n)) for s in range(0, n, step)]
