"""Representer explanations: ``explain(image, model, calib_npz, box=None, k=8)`` gives every calibration
image's share of the projection score of a region (``uolrps.explain.representers``); ``explain_grid`` draws
it (``uolrps.explain.draw``). Names are resolved on first use; the test image's features need torch."""

from __future__ import annotations

_EXPORTS = {
    "explain": "uolrps.explain.representers",
    "load_representers": "uolrps.explain.representers",
    "Explanation": "uolrps.explain.representers",
    "explain_grid": "uolrps.explain.draw",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'uolrps.explain' has no attribute {name!r}")
