"""Store a threshold chosen on data in the model file itself, so that `uolrps run` uses it by default.

ONNX: the ``uolrps.threshold`` and ``uolrps.threshold_source`` metadata props are rewritten with the
``onnx`` package (weights kept where they are: external data is neither loaded nor moved), into a temporary
file beside the model that then replaces it, so a crash never leaves half a model. TensorRT engine: its
sidecar JSON, through ``uolrps.runtime.sidecar.update_sidecar_meta``.
"""

from __future__ import annotations

import json
from pathlib import Path

from uolrps.errors import UserError
from uolrps.paths import write_atomic
from uolrps.meta import PREFIX, ModelMeta

ENGINE_SUFFIXES = (".engine", ".plan")


def write_threshold(model_path: str | Path, threshold: float, source: str) -> ModelMeta:
    """Write ``threshold`` (and where it came from) into the model's metadata; returns the new metadata."""
    path = Path(model_path)
    t = float(threshold)
    if not 0.0 <= t <= 1.0:
        raise UserError(f"threshold must be in [0, 1], but got {t}")
    if not path.is_file():
        raise UserError(f"model file {path} does not exist")
    if path.suffix.lower() == ".onnx":
        return _write_onnx(path, t, source)
    if path.suffix.lower() in ENGINE_SUFFIXES:
        try:
            from uolrps.runtime.sidecar import update_sidecar_meta
        except ImportError:
            raise UserError("this installation cannot update engine sidecars (uolrps.runtime.sidecar is missing)") from None
        return update_sidecar_meta(path, threshold=t, threshold_source=source)
    raise UserError(f"cannot write a threshold into {path.name}: the model must be a .onnx file or a "
                    f"TensorRT engine ({', '.join(ENGINE_SUFFIXES)})")


def _write_onnx(path: Path, t: float, source: str) -> ModelMeta:
    try:
        import onnx
    except ImportError:
        raise UserError("--write-threshold on an ONNX model needs the onnx package: pip install 'uolrps[export]'") from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise UserError(f"cannot read {path} as an ONNX model ({type(e).__name__}: {e})") from None
    props = {p.key: p.value for p in model.metadata_props}
    meta = ModelMeta.from_props(props, source=str(path)).replace(threshold=round(t, 6), threshold_source=source)
    new = dict(props)
    new[PREFIX + "threshold"] = json.dumps(meta.threshold)
    new[PREFIX + "threshold_source"] = json.dumps(meta.threshold_source)
    del model.metadata_props[:]
    for k, v in new.items():
        model.metadata_props.add(key=k, value=v)
    write_atomic(path, lambda tmp: onnx.save(model, str(tmp)), "--write-threshold")
    return meta
