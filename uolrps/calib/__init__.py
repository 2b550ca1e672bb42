"""Calibration: encoders, checkpoints and w* (PyTorch). Names are resolved lazily, so importing this
package costs nothing until a function is used."""

from __future__ import annotations

from uolrps.core.lazy import lazy_attributes

_EXPORTS = {
    "compute_wstar": "uolrps.calib.wstar",
    "Calibration": "uolrps.calib.wstar",
    "load_calibration": "uolrps.calib.means",
    "wstar_from_means": "uolrps.calib.means",
    "build_encoder": "uolrps.calib.encoder",
    "features": "uolrps.calib.encoder",
    "BACKBONES": "uolrps.calib.backbones",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
