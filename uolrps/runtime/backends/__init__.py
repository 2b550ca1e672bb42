"""The backend registry: a table from backend name and model-file suffix to a lazily imported loader.

Nothing heavy is imported here: each backend module imports its own library inside its constructor, and
the module itself is imported only when that backend is asked for. A missing library becomes a
:class:`UserError` that names the extra to install.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from uolrps.core.errors import OptionError, UserError
from uolrps.model.files import ENGINE_SUFFIXES, IR_SUFFIX, ONNX_SUFFIX


@dataclass(frozen=True)
class BackendEntry:
    name: str
    suffixes: tuple[str, ...]  # model-file suffixes this backend loads (for backend="auto")
    target: str  # "module:Class", imported on demand
    libraries: tuple[str, ...]  # top-level packages the backend needs
    extra: str  # pip extra that installs them
    options: tuple[str, ...] = ()  # keyword options the loader accepts
    what: str = ""
    url: bool = False  # the model is a server URL (SCHEME://...), not a file
    # (suffix, message) for model files this backend cannot run although it is asked to: what to do instead
    # ({name}: the file's name, {path}: its path); an OptionError naming ``backend`` before anything loads
    refuses: tuple[tuple[str, str], ...] = ()


BACKENDS: dict[str, BackendEntry] = {
    "ort": BackendEntry("ort", (ONNX_SUFFIX,), "uolrps.runtime.backends.ort:OrtBackend", ("onnxruntime",), "ort",
                        options=("providers", "threads"), what="ONNX Runtime"),
    "trt": BackendEntry("trt", ENGINE_SUFFIXES, "uolrps.runtime.backends.trt:TensorRTBackend",
                        ("tensorrt", "pycuda"), "trt", options=("meta",), what="TensorRT",
                        refuses=((ONNX_SUFFIX, "backend=trt runs TensorRT engines, but {name} is an ONNX model: build "
                                  "an engine from it with `uolrps build {path}` and run the .engine, or run it with "
                                  "ONNX Runtime (the ort backend)"),)),
    "triton": BackendEntry("triton", (), "uolrps.runtime.backends.triton:TritonBackend",
                           ("tritonclient", "grpc", "geventhttpclient", "gevent"), "triton",
                           options=("timeout", "retry_s", "in_flight"), what="Triton Inference Server", url=True),
    "openvino": BackendEntry("openvino", (IR_SUFFIX,), "uolrps.runtime.backends.openvino:OpenVinoBackend",
                             ("openvino",), "openvino", options=("device", "threads", "precision"), what="OpenVINO"),
}
URL_FORM = "grpc://HOST:8001/NAME or http://HOST:8000/NAME"
CPU_ENGINES = ("openvino", "ort")  # engines that run an .onnx file on the CPU (`run --backend auto`: auto_cpu_engine)


def is_url(model) -> bool:
    """True when ``model`` names a server (``grpc://...``, ``http://...``) rather than a file."""
    return isinstance(model, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", model) is not None


def backend_name(path: str | Path, backend: str = "auto") -> str:
    """The registry name for ``path``: ``backend`` itself, or the one whose suffix matches (``auto``).

    A URL model (``grpc://``, ``http://``) belongs to the backend that takes URLs (``triton``).
    """
    url = is_url(path)
    if backend != "auto":
        if backend not in BACKENDS:
            raise UserError(f"unknown backend {backend!r}: use one of auto, {', '.join(BACKENDS)}")
        if url != BACKENDS[backend].url:
            if url:
                raise OptionError(f"model {path!r} is a server URL, which only backend "
                                  f"{' or '.join(e.name for e in BACKENDS.values() if e.url)} takes", "model", "backend")
            raise OptionError(f"backend {backend} takes a server URL as model ({URL_FORM}), but got {str(path)!r}",
                              "backend", "model")
        return backend
    if url:
        return next(e.name for e in BACKENDS.values() if e.url)
    suffix = Path(path).suffix.lower()
    for entry in BACKENDS.values():
        if suffix in entry.suffixes:
            return entry.name
    known = ", ".join(f"{s} ({e.name})" for e in BACKENDS.values() for s in e.suffixes)
    raise OptionError(f"cannot tell the backend of model {str(path)!r} from its suffix: use {known}, "
                      "or choose one with backend=NAME", "backend")


def auto_cpu_engine(options: "ModelOptions") -> tuple[str, str]:
    """The engine `uolrps run --backend auto` runs an ONNX file on, and why: the one of :data:`CPU_ENGINES` that
    takes every option given, when only one does (``providers``: ONNX Runtime; ``device`` and ``precision``:
    OpenVINO); else ONNX Runtime, saying so where OpenVINO is installed too. OpenVINO is not chosen by itself
    yet: a `uolrps run` on it deadlocked in OpenVINO's Python input dispatch in 3 of about 700 test runs under
    load (docs/openvino.md), so it runs when asked for (``--backend openvino``) until a soak test clears it.
    (:func:`load_backend`'s own ``auto`` stays by file suffix: the library does not switch engines under a
    caller.)"""
    from uolrps.core.lazy import importable

    given = [k for k, v in options.loader_options().items() if v is not None]
    takes = [n for n in CPU_ENGINES if set(given) <= set(BACKENDS[n].options)]
    if len(takes) == 1:
        name = takes[0]
        own = [k for k in given if not all(k in BACKENDS[n].options for n in CPU_ENGINES)]
        return name, f"auto: {' and '.join(own)} only {BACKENDS[name].what} takes"
    if not takes:  # options of both: the file's own engine refuses the others, naming them
        return "ort", "auto: by file suffix"
    if importable("openvino"):
        return "ort", "auto: ONNX Runtime (OpenVINO is installed too: --backend openvino runs it)"
    return "ort", "auto: ONNX Runtime"


def choose_engine(model, options: "ModelOptions") -> tuple["ModelOptions", str | None]:
    """``options`` with ``backend`` resolved for `uolrps run`, and why (None when nothing was chosen here): an
    ``auto`` backend on an ONNX file goes to :func:`auto_cpu_engine`; anything else is left as it is."""
    from dataclasses import replace

    if options.backend != "auto" or is_url(model) or Path(str(model)).suffix.lower() != ONNX_SUFFIX:
        return options, None
    name, because = auto_cpu_engine(options)
    return replace(options, backend=name), because


def load_backend(path: str | Path, backend: str = "auto", **options):
    """Open ``path`` with the chosen backend; returns a :class:`uolrps.runtime.backends.base.Backend`.

    ``options`` go to the backend's constructor (``providers`` and ``threads`` for ``ort``; ``device``, ``threads`` and
    ``precision`` for ``openvino``); an option the backend does not
    take, a missing model file and a missing library are refused with a :class:`UserError`.
    """
    entry = BACKENDS[backend_name(path, backend)]
    path = str(path) if entry.url else Path(path)
    if not entry.url and path.is_dir():
        raise UserError(f"model {str(path)!r} is a folder, not a model file: pass the path of a .onnx model from "
                        "`uolrps export` or an .engine from `uolrps build`")
    for suffix, message in entry.refuses:
        if not entry.url and path.suffix.lower() == suffix:
            raise OptionError(message.format(name=path.name, path=path), "backend")
    if not entry.url and not path.is_file():
        raise UserError(f"model file {str(path)!r} does not exist: pass the path of a .onnx model from "
                        "`uolrps export` or an .engine from `uolrps build`")
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(entry.options))
    if unknown:
        raise OptionError(f"{', '.join(unknown)} does not apply to the {entry.name} backend ({entry.what})", *unknown)
    module_name, _, class_name = entry.target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
        return cls(path, **given)
    except ModuleNotFoundError as e:
        root = (e.name or "").split(".")[0]
        if root in entry.libraries:
            raise UserError(f"the {entry.name} backend needs {root} ({e}): pip install 'uolrps[{entry.extra}]'") from None
        if e.name == module_name:
            raise UserError(f"the {entry.name} backend ({entry.what}) is not part of this uolrps installation") from None
        raise


@dataclass(frozen=True)
class ModelOptions:
    """How to open a model, the same for run, eval, explain and bench: the backend (``auto``: by suffix or
    URL), ONNX Runtime's ``providers`` and ``threads``, ``meta`` (an engine without a sidecar: the ONNX file
    it was built from) and backend-specific ``extra`` options (Triton's ``timeout``, ``retry_s``,
    ``in_flight``; OpenVINO's ``device`` and ``precision``). An option the chosen backend does not take is
    refused when the model opens."""

    backend: str = "auto"
    providers: str | tuple[str, ...] | None = None
    threads: int | None = None
    meta: str | Path | None = None
    extra: dict = field(default_factory=dict)

    def loader_options(self) -> dict:
        return {"providers": self.providers, "threads": self.threads, "meta": self.meta, **self.extra}


def open_model(path: str | Path, options: ModelOptions | None = None):
    """:func:`load_backend` with a :class:`ModelOptions`."""
    options = options or ModelOptions()
    return load_backend(path, options.backend, **options.loader_options())
