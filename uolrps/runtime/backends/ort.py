"""ONNX Runtime backend: CPU, CUDA and TensorRT execution providers behind :class:`Backend`.

``onnxruntime`` is imported inside the constructor, never at module import.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

import numpy as np

from uolrps.core.errors import OptionError, UserError
from uolrps.model.meta import ModelMeta
from uolrps.model.onnx_meta import check_digest
from uolrps.runtime.backends.base import Backend, Capabilities, check_io, usable_cores

# short name (--providers) -> ONNX Runtime execution provider, in the order a session should try them
PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
GPU_HINT = ("install onnxruntime-gpu with matching CUDA/cuDNN/TensorRT libraries (pip install 'uolrps[ort-gpu]' after "
            "pip uninstall -y onnxruntime; on a Jetson the Jetson wheel, docs/jetson.md); `uolrps doctor` lists the "
            "providers this onnxruntime has")
log = logging.getLogger("uolrps.ort")
ORT_TYPES = {"tensor(uint8)": "uint8", "tensor(float)": "float32", "tensor(float16)": "float16",
             "tensor(double)": "float64"}


def parse_providers(providers: str | Iterable[str] | None) -> list[str]:
    """``"cpu,cuda"`` or ``["cuda"]`` -> short names in priority order (tensorrt, cuda, cpu); default cpu."""
    if providers is None:
        return ["cpu"]
    items = providers.split(",") if isinstance(providers, str) else list(providers)
    names = [p.strip().lower() for p in items if p.strip()]
    unknown = [p for p in names if p not in PROVIDERS]
    if unknown or not names:
        raise OptionError(f"unknown execution provider {', '.join(unknown) or repr(providers)}: "
                          f"use a comma-separated list of {', '.join(PROVIDERS)} (e.g. providers=cuda,cpu)", "providers")
    return [p for p in PROVIDERS if p in names]


def _provider_entries(names: list[str], model: Path) -> list:
    entries: list = []
    for name in names:
        if name == "tensorrt":
            from platformdirs import user_cache_dir

            cache = Path(user_cache_dir("uolrps")) / "ort-tensorrt"
            cache.mkdir(parents=True, exist_ok=True)
            entries.append((PROVIDERS[name], {"trt_engine_cache_enable": "True",
                                              "trt_engine_cache_path": str(cache)}))
        else:
            entries.append(PROVIDERS[name])
    return entries


class OrtBackend(Backend):
    """An ONNX Runtime session on a uolrps model file (metadata read from the file itself).

    A model with a fixed batch size ``b`` takes any N: the batch is run in chunks of ``b`` (the last one
    padded). Intra-op threads are left at ONNX Runtime's default count unless ``threads`` is given (fewer
    threads leave CPU cores to decoding and box extraction when inference runs on the CPU); its workers do
    not spin between runs, which holds up when other jobs share the cores.

    ``caps.concurrency`` (the batches the multi-stream engine keeps in flight): 2 on a CPU session with the default
    threads and at least two cores (two runs at once overlap one run's serial stretches and thread hand-offs
    with the other's work; the session is safe to run from several threads), 1 when ``threads`` was given
    (the caller sets how much CPU inference may take) or a GPU provider runs the model.
    """

    def __init__(self, path: str | Path, providers: str | Iterable[str] | None = None,
                 threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        names = parse_providers(providers)
        available = ort.get_available_providers()
        missing = [n for n in names if PROVIDERS[n] not in available]
        if missing:
            have = ", ".join(k for k, v in PROVIDERS.items() if v in available) or "none"
            raise OptionError(f"execution provider {', '.join(missing)} is not available in this onnxruntime "
                              f"{ort.__version__} (available: {have}): {GPU_HINT}, or use providers=cpu", "providers")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # ONNX Runtime's workers spin between runs by default: a little faster on an idle machine, several
        # times slower when another job shares the cores (benchmarks/bench_threads.py, docs/run.md)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        if threads is not None:
            if int(threads) <= 0:
                raise OptionError(f"threads must be a positive number of CPU threads, but got {threads}", "threads")
            options.intra_op_num_threads = int(threads)
        try:
            self._session = ort.InferenceSession(str(self.path), sess_options=options,
                                                 providers=_provider_entries(names, self.path))
        except Exception as e:  # onnxruntime raises its own pybind exception types
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"cannot load ONNX model {str(self.path)!r}: {first}") from None
        active = self._session.get_providers()
        lost = [n for n in names if PROVIDERS[n] not in active]
        if lost:
            raise UserError(f"execution provider {', '.join(lost)} failed to start for {self.path.name} "
                            f"(the session fell back to {', '.join(active)}): {GPU_HINT}")
        providers = [k for k, v in PROVIDERS.items() if v in active]
        # the first active provider takes every node it supports; the rest fall to the next ones (CPU last)
        provider = next(k for k, v in PROVIDERS.items() if v == active[0]) if active[0] in PROVIDERS.values() \
            else active[0]
        log.info("%s: ONNX Runtime %s runs it on %s (session providers: %s)", self.path.name, ort.__version__,
                 active[0], ", ".join(active))
        props = self._session.get_modelmeta().custom_metadata_map
        verified = check_digest(self.path.read_bytes(), props, str(self.path))  # damaged: one line, not junk
        self.meta = ModelMeta.from_props(props, source=str(self.path))
        fixed = self._check_io()
        self.caps = Capabilities(
            device=provider, providers=tuple(providers), provider=provider,
            concurrency=2 if provider == "cpu" and threads is None and usable_cores() >= 2 else 1,
            max_batch=fixed, min_batch=fixed or 1, fixed_batch=fixed is not None, verified=verified)

    def _check_io(self) -> int | None:
        """The graph's input and outputs against the metadata; returns the graph's fixed batch size (None: dynamic)."""
        def shape(node):
            return tuple(d if isinstance(d, int) and d > 0 else None for d in node.shape)

        def dtype(node):
            return ORT_TYPES.get(node.type, node.type)

        inputs = {i.name: (dtype(i), shape(i)) for i in self._session.get_inputs()}
        outputs = {o.name: (dtype(o), shape(o)) for o in self._session.get_outputs()}
        check_io(str(self.path), self.meta, inputs, outputs)
        return inputs[self.meta.input_name][1][0]

    def check_open(self) -> None:
        if self._session is None:
            raise RuntimeError(f"{self.path.name}: the session is closed")

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run([self.meta.output_name], {self.meta.input_name: batch})[0]

    def close(self) -> None:
        self._session = None

    def __repr__(self) -> str:
        return f"OrtBackend({self.path.name}, providers={list(self.caps.providers)})"
