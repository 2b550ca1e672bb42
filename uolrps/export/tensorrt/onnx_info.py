"""What `uolrps build` needs to know about an ONNX file (metadata, image input, SHA-256), without ``onnx``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from uolrps.core.errors import UserError
from uolrps.model.meta import ModelMeta
from uolrps.model.onnx_meta import read_onnx_meta
from uolrps.core.digest import sha256_file


@dataclass(frozen=True)
class OnnxInfo:
    path: Path
    sha256: str
    meta: ModelMeta
    input_name: str
    input_shape: tuple  # ints, None for a dynamic axis


def read_onnx_info(onnx_path: str | Path) -> OnnxInfo:
    """The uolrps metadata and the image input of an ONNX file, without importing ``onnx``."""
    path = Path(onnx_path)
    if not path.is_file():
        raise UserError(f"ONNX file {str(path)!r} does not exist: export one with `uolrps export --fp16`")
    meta, inputs = read_onnx_meta(path)
    if meta.input_name not in inputs:
        raise UserError(f"{path}: the graph has no input {meta.input_name!r} (inputs: {', '.join(inputs) or 'none'})")
    shape = inputs[meta.input_name]
    if shape is None:
        raise UserError(f"{path}: input {meta.input_name!r} declares no shape: re-export it with `uolrps export`")
    return OnnxInfo(path, sha256_file(path), meta, meta.input_name, shape)
