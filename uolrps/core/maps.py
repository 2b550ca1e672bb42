"""Heatmap arithmetic on numpy arrays shared by evaluation baselines and explanations: the model's output
contract (clamped at 0, min-max normalised per map, a constant map gives zeros). The exported graph does the
same in torch (``uolrps.export.graph.minmax``)."""

from __future__ import annotations

import numpy as np


def minmax(scores: np.ndarray, axes=(-2, -1), clamp: bool = False) -> np.ndarray:
    """``scores`` min-max normalised to [0, 1] over ``axes`` (each map on its own); a constant map gives zeros.
    ``clamp``: negative scores are set to 0 first."""
    s = np.maximum(scores, 0.0) if clamp else np.asarray(scores)
    lo = s.min(axis=axes, keepdims=True)
    rng = s.max(axis=axes, keepdims=True) - lo
    return np.where(rng > 0, (s - lo) / np.where(rng > 0, rng, 1.0), 0.0)
