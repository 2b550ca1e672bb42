"""v and u, the means a calibration is made of: w* from them, the file that stores them (read without pickle),
and where the shipped ones live. Below wstar (which computes them), merge and stability (which combine and
judge them) and export (which reads them), so none of those imports another to reach these."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from uolrps.core.errors import UserError

EPS = 1e-12
DEFAULT_WSTAR_DIR = Path(__file__).resolve().parents[1] / "export" / "default_wstar"  # shipped calibrations


def wstar_from_means(v: np.ndarray, u: np.ndarray) -> np.ndarray:
    """w* = normalize(v - u |v| / |u|), row-wise for a K x C input."""
    single = np.ndim(v) == 1
    v, u = np.atleast_2d(v).astype(np.float64), np.atleast_2d(u).astype(np.float64)
    s = np.linalg.norm(v, axis=1, keepdims=True) / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), EPS)
    d = v - u * s
    w = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), EPS)
    return w[0] if single else w


def load_calibration(path: str | Path) -> dict:
    """Arrays of a calibration .npz (no pickle) with ``meta`` decoded; a bad file is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"calibration file {path} does not exist: make one with `uolrps calib IMAGES -o {path.name}`")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        data["meta"] = json.loads(str(data["meta"]))
        data["w"]
    except Exception as e:
        raise UserError(f"{path} is not a uolrps calibration file ({type(e).__name__}: {e})") from None
    return data


def default_wstar_path(backbone: str) -> Path | None:
    """The calibration shipped for ``backbone``, or None."""
    p = DEFAULT_WSTAR_DIR / f"{backbone}.npz"
    return p if p.is_file() else None
