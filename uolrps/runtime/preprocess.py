"""Frame to model input: the only preprocessing outside the graph is a resize and the colour order."""

from __future__ import annotations

import numpy as np

from uolrps.core.images import resize
from uolrps.model.meta import ModelMeta


def preprocess(frame_bgr: np.ndarray, meta: ModelMeta) -> np.ndarray:
    """BGR uint8 H x W x 3 frame to one H' x W' x 3 uint8 image in the model's colour order (no batch axis)."""
    if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.dtype != np.uint8:
        raise ValueError(f"frame must be a uint8 H x W x 3 BGR array, but got {frame_bgr.dtype} {frame_bgr.shape}")
    img = resize(frame_bgr, meta.input_size)
    if meta.color == "RGB":
        img = img[:, :, ::-1]
    return np.ascontiguousarray(img)
