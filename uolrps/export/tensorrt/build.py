"""`uolrps build`: an ONNX graph to a TensorRT engine and its sidecar, with the TensorRT Python API.

Works with TensorRT 10.x (JetPack 6, desktop) and 11.x, chosen by ``packaging.version.Version(trt.__version__)``:

- The network is strongly typed: precision comes from the graph (``model.fp16.onnx``), never from builder
  flags. TensorRT 10 needs ``1 << NetworkDefinitionCreationFlag.STRONGLY_TYPED``; TensorRT 11 removed weak
  typing, so every network is strongly typed and the flag is deprecated and ignored: we pass 0 there.
- A dynamic batch axis gets one optimisation profile min/opt/max (:mod:`uolrps.export.tensorrt.profile`).
- Every parser error is printed (the parser is the op check here: no operator list, no ``onnx`` import, so
  building works with what ``[trt]`` installs); every TensorRT call that can fail is checked: a constructor's
  nullptr TypeError and a None are one-line errors (:func:`uolrps.core.gpu.trt_create`), a build returning None is
  an error, never an empty file. The timing cache is loaded before and saved after the build. ``--dla N``
  runs on DLA core N with GPU fallback, after checking that the device has that core.

Split: ONNX inspection :mod:`~uolrps.export.tensorrt.onnx_info`, settings and profile :mod:`~uolrps.export.tensorrt.profile`,
the trtexec equivalent :mod:`~uolrps.export.tensorrt.trtexec`, the sidecar :mod:`uolrps.model.sidecar`.
``tensorrt`` is imported inside :func:`build_engine` only; tests pass a fake module object as ``trt=``.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from packaging.version import InvalidVersion, Version

from uolrps import __version__
from uolrps.core.errors import OptionError, UserError
from uolrps.export.tensorrt.trtexec import trtexec_argv
from uolrps.model.files import ENGINE_SUFFIXES, engine_path_for
from uolrps.export.tensorrt.onnx_info import OnnxInfo, read_onnx_info
from uolrps.export.tensorrt.profile import BatchProfile, BuildSettings, batch_profile
from uolrps.core.gpu import INSTALL_HINT, import_tensorrt, trt_create, trt_logger
from uolrps.core.paths import write_atomic
from uolrps.model.sidecar import Sidecar, sidecar_path, write_sidecar

MIN_TENSORRT = Version("10")


# ---- version dispatch ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrtApi:
    """What differs between the TensorRT major versions we support."""

    version: Version

    @property
    def major(self) -> int:
        return self.version.major

    def network_flags(self, trt) -> int:
        """10.x: opt in to strong typing; 11.x: strong typing is the only mode (the flag is ignored)."""
        if self.major == 10:
            return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        return 0


def trt_api(trt) -> TrtApi:
    raw = str(getattr(trt, "__version__", ""))
    try:
        version = Version(raw)
    except InvalidVersion:
        raise UserError(f"cannot read the TensorRT version {raw!r}: reinstall TensorRT ({INSTALL_HINT})") from None
    if version < MIN_TENSORRT:
        raise UserError(f"TensorRT {raw} is too old: uolrps needs TensorRT 10 or newer (JetPack 6 on Jetson)")
    return TrtApi(version)


# ---- the build -------------------------------------------------------------------------------------------
def _need(value, what: str):
    if value is None:
        raise UserError(f"TensorRT could not {what} (see the TensorRT messages above)")
    return value


def _parse(trt, logger, network, info: OnnxInfo, log) -> None:
    parser = trt_create(trt.OnnxParser, network, logger, what="the ONNX parser")
    ok = parser.parse_from_file(str(info.path))
    errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
    for i, err in enumerate(errors, 1):
        log(f"TensorRT ONNX parser error {i}/{len(errors)}: {err}")
    if not ok or errors:
        first = errors[0].splitlines()[0] if errors else "no error message"
        raise UserError(f"TensorRT cannot parse {info.path.name} ({len(errors)} parser errors, first: {first}): "
                        "see docs/tensorrt.md and re-export")
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    if info.input_name not in names:
        raise UserError(f"TensorRT parsed {info.path.name} without its input {info.input_name!r} (inputs: {names})")


def _configure(trt, builder, config, info: OnnxInfo, settings: BuildSettings, profile: BatchProfile | None) -> None:
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
    if profile is not None:
        p = _need(builder.create_optimization_profile(), "create an optimisation profile")
        try:
            p.set_shape(info.input_name, *profile.shapes(info.input_shape))
        except (RuntimeError, ValueError, TypeError) as e:
            raise UserError(f"TensorRT refused the batch profile {profile}: {e}") from None
        if config.add_optimization_profile(p) < 0:
            raise UserError(f"TensorRT refused the batch profile {profile} for input {info.input_name}")
    if settings.dla_core is not None:
        cores = int(getattr(builder, "num_DLA_cores", 0) or 0)
        if settings.dla_core >= cores:
            have = f"has {cores} DLA cores (0..{cores - 1})" if cores else "has no DLA"
            raise OptionError(f"dla_core {settings.dla_core}: this device {have}. DLA needs a Jetson AGX Orin or Orin NX "
                              "with TensorRT 10.x up to 10.7 (JetPack 6) or 11.4.1+ (JetPack 7.2.2); drop dla_core",
                              "dla_core", "dla_core")  # two mentions, each reworded
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = settings.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)


def _load_timing_cache(config, path: Path | None):
    if path is None:
        return None
    blob = path.read_bytes() if path.is_file() else b""
    cache = _need(config.create_timing_cache(blob), f"read the timing cache {path}")
    if not config.set_timing_cache(cache, False):
        raise OptionError(f"timing cache {path} was made by another TensorRT version or GPU: delete it or choose "
                          "another timing_cache file", "timing_cache")
    return cache


def host_bytes(buffer) -> bytes:
    """The bytes of a TensorRT ``IHostMemory`` (a buffer, not bytes: no len(), no slicing)."""
    return bytes(memoryview(buffer).cast("B"))


def build_engine(onnx_path, engine_path=None, workspace_gib=2.0, timing_cache=None, dla_core=None,
                 min_batch=None, opt_batch=None, max_batch=None, *, log=print, trt=None,
                 gpu: tuple[str, tuple[int, int]] | None = None) -> tuple[Path, Path]:
    """Build ``engine_path`` (default: the ONNX path with ``.engine``) and its sidecar; returns both paths.

    ``log`` receives progress lines, the equivalent trtexec command and every parser error. ``trt`` is the
    ``tensorrt`` module (imported when None); ``gpu`` is ``(name, (major, minor))`` of the building GPU
    (asked of pycuda when None). Raises :class:`UserError` for every failure, with what to do. The engine,
    the timing cache and the sidecar are written only after a successful build.
    """
    settings = BuildSettings(workspace_gib, Path(timing_cache) if timing_cache else None, dla_core,
                             min_batch, opt_batch, max_batch)
    info = read_onnx_info(onnx_path)
    profile = batch_profile(info.input_shape, settings, source=str(info.path))
    engine_path = Path(engine_path) if engine_path else engine_path_for(info.path)
    from uolrps.core.paths import check_distinct_outputs, check_output_path

    check_distinct_outputs({"engine_path": engine_path, "the sidecar": sidecar_path(engine_path), "timing_cache": timing_cache})
    check_output_path(engine_path, "engine_path", ENGINE_SUFFIXES, inputs=(info.path,))
    if timing_cache:
        check_output_path(timing_cache, "timing_cache", inputs=(info.path,))
    if trt is None:
        try:
            trt = import_tensorrt("building an engine")
        except UserError:
            log("equivalent trtexec command: " + shlex.join(trtexec_argv(info, engine_path, settings, profile)))
            raise
    api = trt_api(trt)
    log("equivalent trtexec command: " + shlex.join(trtexec_argv(info, engine_path, settings, profile, api.major)))
    logger = trt_logger(trt)
    builder = trt_create(trt.Builder, logger, what="a builder")
    if gpu is None:
        from uolrps.core.gpu import query_gpu

        gpu = query_gpu()
    gpu_name, cc = gpu[0], tuple(gpu[1])
    network = _need(builder.create_network(api.network_flags(trt)), "create a network")
    _parse(trt, logger, network, info, log)
    config = _need(builder.create_builder_config(), "create a builder config")
    _configure(trt, builder, config, info, settings, profile)
    _load_timing_cache(config, settings.timing_cache)
    log(f"building {engine_path.name} with TensorRT {trt.__version__} on {gpu_name} (compute capability "
        f"{cc[0]}.{cc[1]}); this takes minutes")
    plan = builder.build_serialized_network(network, config)
    data = host_bytes(plan) if plan is not None else b""
    if not data:
        raise OptionError(f"TensorRT could not build {engine_path.name} (see the TensorRT messages above); try a "
                          "larger workspace_gib", "workspace_gib")
    if settings.timing_cache is not None:
        cache = _need(config.get_timing_cache(), "return the timing cache")
        cache_bytes = host_bytes(_need(cache.serialize(), "serialize the timing cache"))
        write_atomic(settings.timing_cache, lambda tmp: tmp.write_bytes(cache_bytes), "timing_cache")
        log(f"saved timing cache {settings.timing_cache}")
    write_atomic(engine_path, lambda tmp: tmp.write_bytes(data), "engine_path")

    build = {
        "workspace_gib": settings.workspace_gib,
        "strongly_typed": True,
        "network_flags": api.network_flags(trt),
        "profile": None if profile is None else {"input": info.input_name, "min": profile.min,
                                                 "opt": profile.opt, "max": profile.max},
        "dla_core": settings.dla_core,
        "gpu_fallback": settings.dla_core is not None,
        "timing_cache": None if settings.timing_cache is None else str(settings.timing_cache),
    }
    sidecar = Sidecar(tensorrt_version=str(trt.__version__), gpu_name=gpu_name, compute_capability=cc,
                      meta=info.meta, onnx_sha256=info.sha256, onnx_file=info.path.name,
                      engine_sha256=hashlib.sha256(data).hexdigest(), build=build,
                      created=datetime.now(timezone.utc).isoformat(timespec="seconds"), uolrps_version=__version__)
    side = write_sidecar(engine_path, sidecar)
    log(f"wrote {engine_path} ({len(data) / 2**20:.1f} MiB) and {side.name}")
    return engine_path, sidecar_path(engine_path)
