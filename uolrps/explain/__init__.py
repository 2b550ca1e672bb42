"""Representer explanations: ``explain(image, model, calib_npz, box=None, k=8)`` gives every calibration
image's share of the projection score of a region (``uolrps.explain.representers``); ``explain_grid`` draws
it (``uolrps.core.drawing``). Names are resolved on first use; the test image's features need torch."""

from __future__ import annotations

from uolrps.core.lazy import lazy_attributes

_EXPORTS = {
    "explain": "uolrps.explain.representers",
    "load_representers": "uolrps.explain.representers",
    "Explanation": "uolrps.explain.representers",
    "explain_grid": "uolrps.core.drawing",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
