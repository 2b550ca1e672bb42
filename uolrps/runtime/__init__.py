"""The streaming runtime: numpy, OpenCV and one inference backend; never torch, onnx or tensorrt at import.

Public API (imported on first use, so ``import uolrps.runtime`` stays light):

- :class:`Localizer` — ``Localizer(model_path, threshold=None, backend="auto", multi=False, smooth=0.0,
  providers=None)``; ``localizer(frame_bgr) -> LocalizationResult``; ``localizer.heatmaps(frames)``.
- :func:`localize_stream` — ``for result in localize_stream("clip.mp4", model="m.onnx"): ...``
- :func:`localize_streams` — ``for name, result in localize_streams(["cam0", "rtsp://..."], "m.onnx"): ...``
- :class:`StreamEngine` — many streams, one model, batched; implements ``control.StreamControl``.
- :class:`LocalizationResult` — boxes, scores, heatmap, frame index, source timestamp, timings.
"""

from __future__ import annotations

from uolrps.core.lazy import lazy_attributes

_API = {
    "Localizer": "uolrps.runtime.localizer",
    "LocalizationResult": "uolrps.runtime.result",
    "localize_stream": "uolrps.runtime.pipeline",
    "localize_streams": "uolrps.runtime.pipeline",
    "StreamEngine": "uolrps.runtime.engine",
    "run": "uolrps.runtime.runner",
    "RunConfig": "uolrps.runtime.runner",
    "RunStats": "uolrps.runtime.stats",
    "open_source": "uolrps.runtime.sources",
}

__all__ = sorted(_API)

__getattr__, __dir__ = lazy_attributes(__name__, _API)
