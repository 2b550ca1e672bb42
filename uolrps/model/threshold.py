"""Store a threshold chosen on data in the model file itself, so that `uolrps run` uses it by default.

ONNX: the ``uolrps.threshold`` and ``uolrps.threshold_source`` metadata props are rewritten with the
``onnx`` package (weights kept where they are: external data is neither loaded nor moved), into a temporary
file beside the model that then replaces it, so a crash never leaves half a model. The model's twins beside it
(``model.onnx``, ``model.fp16.onnx``, ``model.int8.onnx``, ``model.int8.cpu.onnx``: the files one export
writes, whichever of them was evaluated) get the same threshold, when their metadata says they come from the
same export (backbone, input size, weights and w* hashes): the FP16 twin is the file a TensorRT engine is built
from. TensorRT engine: its sidecar JSON, through ``uolrps.model.sidecar.update_sidecar_meta``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from uolrps.core.errors import OptionError, UserError
from uolrps.model.meta import ModelMeta
from uolrps.model.onnx_meta import update_meta
from uolrps.core.paths import write_atomic

from uolrps.model.files import ENGINE_SUFFIXES, ModelFiles, is_engine, is_onnx

TWIN_ORDER = ("fp32", "fp16", "int8-cpu", "int8")  # the order the twins are read, written and listed in


@dataclass(frozen=True)
class ThresholdWrite:
    """What ``write_threshold`` did: the new metadata of the evaluated model, every file it rewrote, and
    the twins it left alone (with why)."""

    meta: ModelMeta
    written: tuple[Path, ...]
    left: tuple[tuple[Path, str], ...] = ()

    @property
    def threshold(self) -> float:
        return self.meta.threshold


def twin_paths(model_path: str | Path) -> list[Path]:
    """The ONNX files one export writes, derived from any one of them (the evaluated file first); only
    those that exist."""
    path = Path(model_path)
    if not is_onnx(path):
        return [path]
    files = ModelFiles.of(path)
    family = [files.path(name, path.suffix) for name in TWIN_ORDER]
    return [path] + [p for p in family if p.is_file() and p.resolve() != path.resolve()]


def threshold_targets(model_path: str | Path) -> dict[str, Path]:
    """The files ``write_threshold`` may rewrite, by a label naming that parameter (for the distinct-outputs check)."""
    path = Path(model_path)
    if is_engine(path):
        from uolrps.model.sidecar import sidecar_path

        return {"write_threshold (engine sidecar)": sidecar_path(path)}
    return {f"write_threshold ({p.name})": p for p in twin_paths(path)}


def write_threshold(model_path: str | Path, threshold: float, source: str) -> ThresholdWrite:
    """Write ``threshold`` (and where it came from) into the model's metadata and its twins'."""
    path = Path(model_path)
    t = float(threshold)
    if not 0.0 <= t <= 1.0:
        raise UserError(f"threshold must be in [0, 1], but got {t}")
    if not path.is_file():
        raise UserError(f"model file {path} does not exist")
    if is_onnx(path):
        return _write_onnx_family(path, t, source)
    if is_engine(path):
        from uolrps.model.sidecar import sidecar_path, update_sidecar_meta

        meta = update_sidecar_meta(path, threshold=t, threshold_source=source)
        return ThresholdWrite(meta, (sidecar_path(path),))
    raise UserError(f"cannot write a threshold into {path.name}: the model must be a .onnx file or a "
                    f"TensorRT engine ({', '.join(ENGINE_SUFFIXES)})")


def _same_export(a: ModelMeta, b: ModelMeta) -> str | None:
    """None when ``b`` comes from the same export as ``a``; else what differs."""
    for key in ("backbone", "input_size", "grid", "classes", "weights_sha256", "wstar_sha256"):
        if getattr(a, key) != getattr(b, key):
            return f"its {key} differs from the evaluated model's"
    return None


def _write_onnx_family(path: Path, t: float, source: str) -> ThresholdWrite:
    try:
        import onnx
    except ImportError:
        raise OptionError("write_threshold on an ONNX model needs the onnx package: pip install 'uolrps[export]'",
                          "write_threshold") from None
    loaded = []  # every file is read and checked before any is written
    for p in twin_paths(path):
        try:
            model = onnx.load(str(p), load_external_data=False)
        except Exception as e:
            if p == path:
                raise UserError(f"cannot read {p} as an ONNX model ({type(e).__name__}: {e})") from None
            loaded.append((p, None, None, f"it is not a readable ONNX model ({type(e).__name__})"))
            continue
        props = {q.key: q.value for q in model.metadata_props}
        try:
            meta = ModelMeta.from_props(props, source=str(p))
        except UserError as e:
            if p == path:
                raise
            loaded.append((p, None, None, f"its metadata is unusable ({e})"))
            continue
        loaded.append((p, model, meta, None))
    reference = loaded[0][2]
    written, left, new_meta = [], [], None
    for p, model, meta, why in loaded:
        why = why or _same_export(reference, meta)
        if why:
            left.append((p, why))
            continue
        m = meta.replace(threshold=round(t, 6), threshold_source=source)
        update_meta(model, threshold=m.threshold, threshold_source=m.threshold_source)
        write_atomic(p, lambda tmp, model=model: onnx.save(model, str(tmp)), "write_threshold")
        written.append(p)
        new_meta = new_meta or m
    return ThresholdWrite(new_meta, tuple(written), tuple(left))
