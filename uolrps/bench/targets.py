"""What `uolrps bench MODEL` measures: every precision twin beside MODEL on every backend that can run it here.

Twins share a base name: ``model.onnx`` (FP32), ``model.fp16.onnx``, ``model.int8.onnx``, ``model.int8.cpu.onnx``
(ONNX Runtime's CPU form, no engine) and their engines
``model[.fp16|.int8].engine``. Each model file goes to the backend the registry
(:data:`uolrps.runtime.backends.BACKENDS`) picks for it; a backend with several ways to run (ONNX Runtime's
execution providers) is expanded by :data:`VARIANTS`, any other backend (a URL model of a server backend, say)
is measured once with its defaults, so a new row in the backends table is benchmarked without changes here.
What cannot run here is listed with the reason and the fix, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from uolrps.core.errors import OptionError, UserError
from uolrps.core.lazy import importable
from uolrps.model.files import ENGINE_SUFFIXES, ModelFiles
from uolrps.model.files import VARIANTS as FILE_VARIANTS
from uolrps.runtime.backends import BACKENDS, backend_name



@dataclass(frozen=True)
class Target:
    label: str  # e.g. "model.fp16.onnx ort:cuda"
    model: str  # file path or URL
    backend: str  # registry name
    precision: str
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    label: str
    reason: str  # why not measured here, and what would make it run


def reference_of(model: str | Path) -> Path | None:
    """The FP32 ONNX twin that agreement is measured against, when it exists."""
    if "://" in str(model):
        return None
    ref = ModelFiles.of(Path(model)).path("fp32")
    return ref if ref.is_file() else None


def ort_variants(path: Path, precision: str, threads: int | None) -> tuple[list[Target], list[Skipped]]:
    if not importable("onnxruntime"):
        return [], [Skipped(f"{path.name} ort", "onnxruntime is not installed: pip install 'uolrps[ort]'")]
    import onnxruntime as ort

    have = ort.get_available_providers()
    targets, skipped = [], []
    for short, full, fix in (("cpu", "CPUExecutionProvider", ""),
                             ("cuda", "CUDAExecutionProvider", "pip install 'uolrps[ort-gpu]' on a CUDA machine"),
                             ("tensorrt", "TensorrtExecutionProvider", "onnxruntime-gpu with TensorRT libraries")):
        label = f"{path.name} ort:{short}"
        if full in have:
            opts = {"providers": short if short == "cpu" else f"{short},cpu"}
            if threads is not None and short == "cpu":
                opts["threads"] = threads
            targets.append(Target(label, str(path), "ort", precision, opts))
        else:
            skipped.append(Skipped(label, f"this onnxruntime has no {full}: {fix}"))
    return targets, skipped


def trt_variants(path: Path, precision: str, threads: int | None, meta: str | None = None) -> tuple[list[Target], list[Skipped]]:
    missing = [m for m in ("tensorrt", "pycuda") if not importable(m)]
    label = f"{path.name} trt"
    if missing:
        return [], [Skipped(label, f"{' and '.join(missing)} not installed: TensorRT engines run on an NVIDIA GPU "
                            "(pip install 'uolrps[trt]'; JetPack on a Jetson)")]
    return [Target(label, str(path), "trt", precision, {"meta": meta} if meta else {})], []


def openvino_variants(path: Path, precision: str, threads: int | None) -> tuple[list[Target], list[Skipped]]:
    """OpenVINO on the CPU: f32 for every file; bf16 for the FP32 file where the CPU runs bf16 and the file passed
    its bf16 gate (`uolrps gate`), else listed with the reason."""
    if not importable("openvino"):
        return [], [Skipped(f"{path.name} openvino", "openvino is not installed: pip install 'uolrps[openvino]'")]
    import openvino as ov

    from uolrps.model.gates import find_gate

    opts = {"device": "CPU", **({"threads": threads} if threads is not None else {})}
    targets = [Target(f"{path.name} openvino:f32", str(path), "openvino", precision, opts)]
    skipped = []
    if precision == "fp32":
        label = f"{path.name} openvino:bf16"
        if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            skipped.append(Skipped(label, "this CPU has no bf16 (AVX-512 BF16 or AMX)"))
        elif find_gate(path, "openvino", "CPU", "bf16") is None:
            skipped.append(Skipped(label, f"not gated: run `uolrps gate {path.name} --precision bf16` first"))
        else:
            targets.append(Target(label, str(path), "openvino", "bf16", {**opts, "precision": "bf16"}))
    return targets, skipped


VARIANTS = {"ort": ort_variants, "trt": trt_variants}
CPU_ENGINES = {"openvino": openvino_variants}  # other engines that run each ONNX file too


def discover(model: str | Path, backends: list[str] | None = None, threads: int | None = None,
             meta: str | None = None) -> tuple[list[Target], list[Skipped]]:
    """Targets for MODEL and its twins (``backends``: keep only labels containing one of these, e.g. "ort:cpu")."""
    targets: list[Target] = []
    skipped: list[Skipped] = []
    if "://" in str(model):  # a served model: one target, the backend the registry names
        name = backend_name(str(model))
        targets.append(Target(f"{model} {name}", str(model), name, "?", {}))
    else:
        model = Path(model)
        if not model.is_file():
            raise UserError(f"model file {str(model)!r} does not exist: pass a .onnx from `uolrps export` or an "
                            ".engine from `uolrps build`")
        family = ModelFiles.of(model)
        for precision in (v.name for v in FILE_VARIANTS):
            onnx = family.path(precision)
            engines = [family.path(precision, s) for s in ENGINE_SUFFIXES]
            files = [p for p in [onnx, *engines] if p.is_file()]
            for path in files:
                name = backend_name(path)
                expand = VARIANTS.get(name)
                if expand is trt_variants:
                    t, s = trt_variants(path, precision, threads, meta)
                elif expand is not None:
                    t, s = expand(path, precision, threads)
                else:
                    t, s = [Target(f"{path.name} {name}", str(path), name, precision, {})], []
                targets += t
                skipped += s
            if onnx.is_file():
                for expand_cpu in CPU_ENGINES.values():
                    t, s = expand_cpu(onnx, precision, threads)
                    targets += t
                    skipped += s
            if onnx.is_file() and not any(e.is_file() for e in engines) and precision in ("fp16", "int8"):
                skipped.append(Skipped(f"{engines[0].name} trt", f"no engine beside it: on the GPU machine run "
                                       f"`uolrps build {onnx.name}`, then `uolrps bench {model.name}` again"))
    if backends:
        keep = [t for t in targets if any(b in t.label.split()[-1] for b in backends)]
        if not keep:
            raise OptionError(f"backends {','.join(backends)} matches none of: "
                              f"{', '.join(t.label for t in targets) or 'nothing runnable here'}", "backends")
        targets = keep
    unknown = [t.backend for t in targets if t.backend not in BACKENDS]
    if unknown:
        raise UserError(f"unknown backend {unknown[0]!r}")
    return targets, skipped
