"""Evaluation of a shipped model on annotated images (numpy, OpenCV and the runtime; no torch at import).

``evaluate(dataset, model, ...)`` (``uolrps.eval.evaluate``) runs the model once per image and sweeps
thresholds on the stored heatmaps; ``load_dataset`` / ``detect_format`` (``uolrps.eval.datasets``) read
CSV, PASCAL VOC, CUB-200-2011, wsolevaluation and COCO annotations. Names are resolved on first use.
"""

from __future__ import annotations

from uolrps.core.lazy import lazy_attributes

_EXPORTS = {
    "evaluate": "uolrps.eval.evaluate",
    "load_dataset": "uolrps.eval.datasets",
    "detect_format": "uolrps.eval.datasets",
    "format_table": "uolrps.eval.report",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
