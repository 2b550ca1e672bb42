"""The uolrps metadata of an OpenVINO model, read and written in one place.

An OpenVINO IR (``model.xml`` + ``model.bin``, from ``uolrps export --openvino``) carries the same keys and
values as the ONNX file's metadata_props, in the IR's rt_info section ``uolrps``. An ONNX file read by
OpenVINO keeps its metadata_props in rt_info ``framework``; both are read here. The functions take an
``openvino.Model`` (the caller imports openvino); nothing heavy is imported by this module.
"""

from __future__ import annotations

from uolrps.core.errors import UserError
from uolrps.model.meta import PREFIX, ModelMeta

RT_SECTION = "uolrps"  # where `uolrps export --openvino` puts our metadata in an IR's rt_info


def read_ir_meta(model, source: str) -> ModelMeta:
    """Our metadata from an ``openvino.Model``: the IR's ``uolrps`` rt_info section, else the ONNX file's
    metadata_props (rt_info ``framework``). A model without it is a UserError that says how to make one."""
    props: dict[str, str] = {}
    for section in (RT_SECTION, "framework"):
        if model.has_rt_info([section]):
            items = model.get_rt_info()[section]
            try:
                props = {str(k): v.astype(str) for k, v in items.items()}
            except AttributeError:  # a plain value, not a section
                props = {}
            if PREFIX + "format" in props:
                break
    if PREFIX + "format" not in props:
        hint = ("export it with `uolrps export --openvino`" if source.lower().endswith(".xml")
                else "export it with `uolrps export`")
        raise UserError(f"{source} has no uolrps metadata (the model's rt_info has no {PREFIX}format): {hint}")
    return ModelMeta.from_props(props, source=source)


def set_ir_meta(model, meta: ModelMeta) -> None:
    """Write ``meta`` into an ``openvino.Model``'s rt_info section ``uolrps`` (saved with the IR)."""
    for key, value in meta.to_props().items():
        model.set_rt_info(value, [RT_SECTION, key])
