"""``--base FILE``: start from a general calibration and add one's own images, exactly.

v and u are means over all feature positions of all images; at one input size every image has the same
number of positions, so two calibrations merge as image-count-weighted means of their v and u, and w* comes
from the merged v, u, exactly as if every image had been calibrated in one run. That holds only for the same
backbone, weights (SHA-256), input size, input normalisation and feature options: anything else is refused.
Per-image representers (``--keep-representers``, for `uolrps explain`) cannot cover a base's images (its file
holds their means only), so the two are not combined. Class-wise calibrations are not merged.
``--base default`` names the calibration that ships for the backbone (efflite0: 3000 ImageNet photos).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uolrps.core.errors import OptionError

MUST_MATCH = ("backbone", "weights_sha256", "input_size", "mean", "std", "dilated")


@dataclass(frozen=True)
class Base:
    path: Path
    v: np.ndarray
    u: np.ndarray
    n_images: int
    meta: dict
    sha256: str

    def record(self) -> dict:
        return {"file": str(self.path), "sha256": self.sha256, "n_images": self.n_images,
                "images": self.meta.get("images")}


def resolve_base(path, backbone: str) -> Path:
    """``default`` (when no such file exists) is the shipped calibration of ``backbone``."""
    p = Path(path)
    if str(path) != "default" or p.exists():
        return p
    from uolrps.calib.means import DEFAULT_WSTAR_DIR, default_wstar_path

    shipped = default_wstar_path(backbone)
    if shipped is None:
        have = ", ".join(sorted(q.stem for q in DEFAULT_WSTAR_DIR.glob("*.npz"))) or "none"
        raise OptionError(f"base default: backbone {backbone!r} ships no calibration (shipped: {have}); give a "
                          "calibration file made with `uolrps calib`", "base")
    return shipped


def load_bases(paths, backbone: str = "") -> list[Base]:
    """Read every ``--base`` file (before any image is encoded); a file that cannot serve is an OptionError."""
    from uolrps.calib.means import load_calibration

    out = []
    for p in paths or ():
        p = resolve_base(p, backbone)
        data = load_calibration(p)
        missing = [k for k in ("v", "u", "n_images") if k not in data]
        if missing:
            raise OptionError(f"base {p} lacks {', '.join(missing)} (it holds w* only): it cannot be merged; "
                              "recalibrate it with `uolrps calib`", "base")
        if data["meta"].get("classwise") or np.ndim(data["v"]) != 1:
            raise OptionError(f"base {p} is a class-wise calibration: only single-w* calibrations merge", "base")
        n = int(np.asarray(data["n_images"]).sum())
        if n < 1:
            raise OptionError(f"base {p} says it holds {n} images", "base")
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        out.append(Base(p, np.asarray(data["v"], np.float64), np.asarray(data["u"], np.float64), n,
                        data["meta"], digest))
    return out


def check_compatible(bases: list[Base], meta: dict) -> None:
    """Refuse a base computed with another backbone, weights, input size, normalisation or options than ``meta``."""
    for b in bases:
        for key in MUST_MATCH:
            mine, theirs = meta.get(key), b.meta.get(key)
            if key in ("input_size", "mean", "std") and mine is not None and theirs is not None:
                same = np.allclose(np.asarray(mine, float), np.asarray(theirs, float), rtol=0, atol=1e-4)
            else:
                same = (mine == theirs) or (key == "dilated" and not mine and not theirs)
            if not same:
                raise OptionError(f"base {b.path} was calibrated with {key} {theirs!r}, this run with {mine!r}: "
                                  "only calibrations of the same backbone, weights, input size and normalisation "
                                  "merge exactly (calibrate both the same way)", "base")


def merge(v: np.ndarray, u: np.ndarray, n: int, bases: list[Base]) -> tuple[np.ndarray, np.ndarray, int]:
    """Image-count-weighted means of v and u over this run (``n`` images) and the bases."""
    total = n + sum(b.n_images for b in bases)
    v_all = (n * np.asarray(v, np.float64) + sum(b.n_images * b.v for b in bases)) / total
    u_all = (n * np.asarray(u, np.float64) + sum(b.n_images * b.u for b in bases)) / total
    return v_all, u_all, total
