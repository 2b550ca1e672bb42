"""The uolrps metadata of an ONNX model in memory: one home below the export and its twins (FP16, INT8)."""

from __future__ import annotations

from uolrps import __version__
from uolrps.meta import ModelMeta


def set_meta(model, meta: ModelMeta):
    """Put ``meta`` in ``model``'s metadata_props (replacing what was there); returns ``model``."""
    del model.metadata_props[:]
    for k, v in meta.to_props().items():
        model.metadata_props.add(key=k, value=v)
    model.producer_name, model.producer_version = "uolrps", __version__
    return model
