"""SHA-256 digests: of a file (weights, models, engines) and of a w* array (what metadata records)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_wstar(w: np.ndarray) -> str:
    """Digest of a w* (any shape) as the float32 bytes a model file is built from."""
    return hashlib.sha256(np.ascontiguousarray(w, dtype=np.float32).tobytes()).hexdigest()
