"""Calibration: encoders, checkpoints and w* (PyTorch). Names are resolved lazily, so importing this
package costs nothing until a function is used."""

from __future__ import annotations

_EXPORTS = {
    "compute_wstar": "uolrps.calib.wstar",
    "Calibration": "uolrps.calib.wstar",
    "load_calibration": "uolrps.calib.wstar",
    "wstar_from_means": "uolrps.calib.wstar",
    "build_encoder": "uolrps.calib.encoder",
    "features": "uolrps.calib.encoder",
    "BACKBONES": "uolrps.calib.backbones",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'uolrps.calib' has no attribute {name!r}")
