"""The family of model files one export writes, named in one place.

``model.onnx`` (FP32) has twins beside it that share its base name: ``model.fp16.onnx``, ``model.int8.onnx``
(Q/DQ, for TensorRT), ``model.int8.cpu.onnx`` (for ONNX Runtime on a CPU); a TensorRT engine is
``<name>.engine`` (or ``.plan``) with its sidecar JSON beside it; an OpenVINO IR is ``<name>.xml`` with its
weights in ``<name>.bin`` (``uolrps export --openvino``), and ``<file>.gates.json`` records the precision gates
a file passed on an engine (``uolrps.model.gates``). A new precision variant is one more
``Variant`` in ``VARIANTS``; the export's plan (``uolrps.export.variants``) says how each is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ONNX_SUFFIX = ".onnx"
ENGINE_SUFFIXES = (".engine", ".plan")
ENGINE_SUFFIX = ENGINE_SUFFIXES[0]
IR_SUFFIX = ".xml"  # an OpenVINO IR; its weights are the .bin beside it


@dataclass(frozen=True)
class Variant:
    name: str  # "fp32", "fp16", "int8", "int8-cpu": the precision label (bench, docs/int8.md)
    tag: str  # "" or ".fp16": what goes between the base name and ".onnx"


VARIANTS: tuple[Variant, ...] = (Variant("fp32", ""), Variant("fp16", ".fp16"), Variant("int8", ".int8"),
                                 Variant("int8-cpu", ".int8.cpu"))
_BY_NAME = {v.name: v for v in VARIANTS}
_TAGS_LONGEST_FIRST = sorted((v for v in VARIANTS if v.tag), key=lambda v: -len(v.tag))


def variant(name: str) -> Variant:
    return _BY_NAME[name]


def register_variant(v: Variant) -> Variant:
    """Add a precision variant to the family (its file ``<base><tag>.onnx``); its name and tag must be new."""
    global VARIANTS, _TAGS_LONGEST_FIRST
    if v.name in _BY_NAME or not v.tag or any(v.tag == w.tag for w in VARIANTS):
        raise ValueError(f"variant {v.name!r} ({v.tag!r}) is taken or has no tag of its own")
    VARIANTS = (*VARIANTS, v)
    _BY_NAME[v.name] = v
    _TAGS_LONGEST_FIRST = sorted((w for w in VARIANTS if w.tag), key=lambda w: -len(w.tag))
    return v


def unregister_variant(name: str) -> None:
    global VARIANTS, _TAGS_LONGEST_FIRST
    VARIANTS = tuple(v for v in VARIANTS if v.name != name)
    _BY_NAME.pop(name, None)
    _TAGS_LONGEST_FIRST = sorted((w for w in VARIANTS if w.tag), key=lambda w: -len(w.tag))


def is_engine(path: str | Path) -> bool:
    return Path(str(path)).suffix.lower() in ENGINE_SUFFIXES


def is_onnx(path: str | Path) -> bool:
    return Path(str(path)).suffix.lower() == ONNX_SUFFIX


@dataclass(frozen=True)
class ModelFiles:
    """The family around one base path (``dir/model``, no suffix)."""

    base: Path

    @classmethod
    def of(cls, path: str | Path) -> "ModelFiles":
        """The family of any one of its files: ``dir/model.int8.cpu.onnx`` -> base ``dir/model``."""
        return cls(split(path)[0])

    def path(self, variant_name: str = "fp32", suffix: str = ONNX_SUFFIX) -> Path:
        return self.base.with_name(self.base.name + _BY_NAME[variant_name].tag + suffix)

    def onnx_files(self) -> list[Path]:
        """Every ONNX variant's path, FP32 first (existing or not)."""
        return [self.path(v.name) for v in VARIANTS]


def split(path: str | Path) -> tuple[Path, str]:
    """``dir/model.fp16.onnx`` -> (``dir/model``, "fp16"); a name without a variant tag is FP32."""
    path = Path(path)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    for v in _TAGS_LONGEST_FIRST:
        if stem.endswith(v.tag):
            return path.with_name(stem[: -len(v.tag)]), v.name
    return path.with_name(stem), "fp32"


def twin_path(path: str | Path, variant_name: str) -> Path:
    """The ``variant_name`` twin written beside the export ``path`` (``model.onnx`` -> ``model.fp16.onnx``)."""
    path = Path(path)
    return path.with_name(path.stem + _BY_NAME[variant_name].tag + path.suffix)


def engine_path_for(onnx_path: str | Path) -> Path:
    """``model.fp16.onnx`` -> ``model.fp16.engine`` (beside it)."""
    return Path(onnx_path).with_suffix(ENGINE_SUFFIX)


def ir_path_for(onnx_path: str | Path) -> Path:
    """``model.onnx`` -> ``model.xml`` (the OpenVINO IR beside it; its weights go to ``model.bin``)."""
    return Path(onnx_path).with_suffix(IR_SUFFIX)
