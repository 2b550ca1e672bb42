"""The engine's sidecar ``model.engine.json``: what a TensorRT engine was built with, checked at load.

A serialized TensorRT engine runs only under the TensorRT version that built it and on GPUs of the same
compute capability. The sidecar, written by ``uolrps build`` beside the engine, records the TensorRT
version, the GPU name and compute capability, the SHA-256 of the source ONNX file and of the engine, the
build settings, and the model metadata (:meth:`ModelMeta.to_props`), so the runtime needs nothing else and
can say what differs before TensorRT fails with a less helpful message. Standard library, numpy-free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import InvalidVersion, Version

from uolrps.core.digest import sha256_file
from uolrps.core.errors import OptionError, UserError
from uolrps.model.meta import ModelMeta
from uolrps.core.paths import write_atomic

SIDECAR_FORMAT = 1
SIDECAR_SUFFIX = ".json"  # model.engine -> model.engine.json


def sidecar_path(engine_path: str | Path) -> Path:
    """``model.engine`` -> ``model.engine.json`` (a path that already ends in .json is returned as is)."""
    p = Path(engine_path)
    return p if p.suffix == SIDECAR_SUFFIX else p.with_name(p.name + SIDECAR_SUFFIX)


@dataclass(frozen=True)
class Sidecar:
    tensorrt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]
    meta: ModelMeta
    onnx_sha256: str = ""
    onnx_file: str = ""
    engine_sha256: str = ""
    build: dict = field(default_factory=dict)  # workspace_gib, profile, dla_core, timing_cache, strongly_typed
    created: str = ""
    uolrps_version: str = ""

    def to_json(self) -> dict:
        return {
            "format": SIDECAR_FORMAT,
            "tensorrt_version": self.tensorrt_version,
            "gpu": {"name": self.gpu_name, "compute_capability": "%d.%d" % tuple(self.compute_capability)},
            "onnx": {"file": self.onnx_file, "sha256": self.onnx_sha256},
            "engine_sha256": self.engine_sha256,
            "build": self.build,
            "created": self.created,
            "uolrps_version": self.uolrps_version,
            "meta": self.meta.to_props(),
        }

    @classmethod
    def from_json(cls, data: dict, source: str = "sidecar") -> "Sidecar":
        if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
            raise UserError(f"{source} is not a uolrps engine sidecar (format {SIDECAR_FORMAT}): rebuild the engine "
                            "with `uolrps build MODEL.fp16.onnx`")
        try:
            gpu, onnx = data["gpu"], data.get("onnx", {})
            return cls(
                tensorrt_version=str(data["tensorrt_version"]),
                gpu_name=str(gpu["name"]),
                compute_capability=parse_compute_capability(gpu["compute_capability"]),
                meta=ModelMeta.from_props(data["meta"], source=source),
                onnx_sha256=str(onnx.get("sha256", "")),
                onnx_file=str(onnx.get("file", "")),
                engine_sha256=str(data.get("engine_sha256", "")),
                build=dict(data.get("build", {})),
                created=str(data.get("created", "")),
                uolrps_version=str(data.get("uolrps_version", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:  # fields of the wrong kind too
            raise UserError(f"{source} is incomplete or damaged ({type(e).__name__}: {e}): rebuild the engine "
                            "with `uolrps build MODEL.fp16.onnx`") from None


def parse_compute_capability(value) -> tuple[int, int]:
    """``"8.7"``, ``(8, 7)`` or ``[8, 7]`` -> ``(8, 7)``."""
    if isinstance(value, str):
        major, _, minor = value.partition(".")
        return int(major), int(minor or 0)
    major, minor = value
    return int(major), int(minor)


def write_sidecar(path: str | Path, sidecar: Sidecar) -> Path:
    """Write ``sidecar`` as JSON at ``path`` (an engine path or the sidecar path), atomically."""
    path = sidecar_path(path)
    text = json.dumps(sidecar.to_json(), indent=2, sort_keys=True) + "\n"
    # "the sidecar" is a label, not a parameter (write_sidecar's sidecar is the object): a failure is a UserError
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), "the sidecar")
    return path


def read_sidecar(path: str | Path) -> Sidecar:
    """Read the sidecar of an engine (``path`` is the engine or its sidecar); a missing one is a UserError."""
    path = sidecar_path(path)
    engine = path.with_name(path.name[: -len(SIDECAR_SUFFIX)])
    if not path.is_file():
        raise UserError(f"no sidecar {path.name} beside {engine.name}: build engines with `uolrps build "
                        "MODEL.fp16.onnx`, which writes both (the sidecar carries the model metadata)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e}): rebuild the engine with `uolrps build`") from None
    return Sidecar.from_json(data, source=str(path))


@dataclass(frozen=True)
class Difference:
    """One way the running system differs from the one that built the engine."""

    what: str  # "tensorrt", "compute_capability", "gpu", "engine"
    message: str
    fatal: bool

    def __str__(self) -> str:
        return self.message


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a.strip() == b.strip()


def sidecar_differences(sidecar: Sidecar, trt_version: str, gpu_name: str, compute_capability,
                        engine_sha256: str | None = None) -> list[Difference]:
    """Every difference between the build recorded in ``sidecar`` and the running TensorRT and GPU."""
    onnx = sidecar.onnx_file or "MODEL.fp16.onnx"
    rebuild = f"rebuild with `uolrps build {onnx}` on this machine"
    cc_run = parse_compute_capability(compute_capability)
    out: list[Difference] = []
    if not _same_version(sidecar.tensorrt_version, trt_version):
        out.append(Difference("tensorrt", f"engine built with TensorRT {sidecar.tensorrt_version}, running "
                              f"{trt_version}: {rebuild}", True))
    if tuple(sidecar.compute_capability) != cc_run:
        built = "%d.%d" % tuple(sidecar.compute_capability)
        out.append(Difference("compute_capability", f"engine built for compute capability {built} "
                              f"({sidecar.gpu_name}), this GPU is {cc_run[0]}.{cc_run[1]} ({gpu_name}): {rebuild}",
                              True))
    elif sidecar.gpu_name.strip() != gpu_name.strip():
        out.append(Difference("gpu", f"engine built on {sidecar.gpu_name}, running on {gpu_name} (same compute "
                              f"capability, so it loads, but its kernels were timed on the other GPU: {rebuild} "
                              "for best speed)", False))
    if engine_sha256 and sidecar.engine_sha256 and engine_sha256 != sidecar.engine_sha256:
        out.append(Difference("engine", "the engine file is not the one this sidecar describes (SHA-256 "
                              f"differs): {rebuild}", True))
    return out


def check_sidecar(sidecar: Sidecar, trt_version: str, gpu_name: str, compute_capability,
                  engine_sha256: str | None = None) -> list[str]:
    """Raise :class:`UserError` when the engine cannot run here; return the warnings (GPU name) otherwise.

    TensorRT version, compute capability and engine checksum mismatches are fatal; a different GPU name with
    the same compute capability is a warning (the engine runs, perhaps slower).
    """
    diffs = sidecar_differences(sidecar, trt_version, gpu_name, compute_capability, engine_sha256)
    fatal = [d.message for d in diffs if d.fatal]
    if fatal:
        raise UserError("; ".join(fatal))
    return [d.message for d in diffs]


def update_sidecar_meta(path: str | Path, **changes) -> ModelMeta:
    """Change model metadata fields in an engine's sidecar (e.g. ``threshold=0.42``), atomically.

    ``path`` is the engine or its sidecar. The new metadata is validated (a threshold outside [0, 1] is a
    UserError) before the file is replaced; returns the new :class:`ModelMeta`.
    """
    sc = read_sidecar(path)
    try:
        meta = sc.meta.replace(**changes)
    except TypeError as e:
        raise UserError(f"cannot change the model metadata: {e}") from None
    from dataclasses import replace

    write_sidecar(path, replace(sc, meta=meta))
    return meta


@dataclass(frozen=True)
class EngineDescription:
    """What is known about an engine before TensorRT loads it: its sidecar, or the ONNX file it was built from."""

    meta: ModelMeta
    sidecar: Sidecar | None  # None for an engine from trtexec or Polygraphy opened with --meta
    warnings: tuple[str, ...] = ()

    @property
    def dla_core(self) -> int | None:
        core = self.sidecar.build.get("dla_core") if self.sidecar is not None else None
        return int(core) if core is not None else None


def describe_engine(engine_path: str | Path, meta_onnx: str | Path | None = None) -> EngineDescription:
    """The sidecar of ``engine_path``, or (no sidecar) the metadata of ``meta_onnx``, the ONNX it was built from.

    With both, the sidecar wins and a ``meta_onnx`` other than the one the sidecar names is a warning. With
    neither, a UserError says how to get one.
    """
    engine = Path(engine_path)
    side = sidecar_path(engine)
    if side.is_file():
        sc = read_sidecar(engine)
        warnings: list[str] = []
        if meta_onnx is not None and sc.onnx_sha256 and sha256_file(meta_onnx) != sc.onnx_sha256:
            warnings.append(f"--meta {Path(meta_onnx).name} is not the ONNX file this engine was built from "
                            f"({sc.onnx_file or 'see its sidecar'}); using the sidecar {side.name}")
        return EngineDescription(sc.meta, sc, tuple(warnings))
    if meta_onnx is None:
        raise OptionError(f"no sidecar {side.name} beside {engine.name}: build engines with `uolrps build MODEL.fp16.onnx` "
                          "(it writes both), or, for an engine from trtexec or Polygraphy, pass meta=MODEL.onnx "
                          "(the ONNX file it was built from, which carries the model metadata)", "meta")
    from uolrps.model.onnx_meta import read_onnx_meta

    meta, _ = read_onnx_meta(meta_onnx)
    note = (f"{engine.name} has no sidecar (built by trtexec or Polygraphy?): the model metadata comes from "
            f"{Path(meta_onnx).name}; the engine's inputs and outputs are checked against it, but its TensorRT "
            "version, GPU and DLA core cannot be checked before TensorRT loads it (rebuild it with `uolrps build` "
            "if TensorRT refuses it)")
    return EngineDescription(meta, None, (note,))
