"""The uolrps metadata of an ONNX model in memory: one home below the export and its twins (FP16, INT8)."""

from __future__ import annotations

from uolrps import __version__
from uolrps.meta import ModelMeta
from uolrps.onnx_header import DIGEST_KEY, graph_digest


def set_meta(model, meta: ModelMeta):
    """Put ``meta`` in ``model``'s metadata_props (replacing what was there) with the digest of the graph and
    its weights (:func:`uolrps.onnx_header.graph_digest`, checked at load); returns ``model``. Call it last,
    after every change to the graph."""
    del model.metadata_props[:]
    model.producer_name, model.producer_version = "uolrps", __version__
    digest = graph_digest(model.SerializeToString())
    for k, v in meta.to_props().items():
        model.metadata_props.add(key=k, value=v)
    model.metadata_props.add(key=DIGEST_KEY, value=digest)
    return model
