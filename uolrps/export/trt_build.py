"""`uolrps build`: an ONNX graph to a TensorRT engine and its sidecar, with the TensorRT Python API.

Works with TensorRT 10.x (JetPack 6, desktop) and 11.x, chosen by ``packaging.version.Version(trt.__version__)``:

- The network is strongly typed: precision comes from the graph (``model.fp16.onnx``), never from builder
  flags. TensorRT 10 needs ``1 << NetworkDefinitionCreationFlag.STRONGLY_TYPED``; TensorRT 11 removed weak
  typing, so every network is strongly typed and the flag is deprecated and ignored: we pass 0 there.
- A dynamic batch axis (``-1`` or a symbolic name in the ONNX input) gets one optimisation profile
  min/opt/max; every other axis must be static.
- Every parser error is printed; every TensorRT call that can fail is checked (a build returning None is an
  error, never an empty file). The timing cache is loaded before and saved after the build. ``--dla N`` runs
  on DLA core N with GPU fallback, after checking that the device has that core.

``tensorrt`` is imported inside :func:`build_engine` only; tests pass a fake module object as ``trt=``.
"""

from __future__ import annotations

import hashlib
import math
import shlex
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from packaging.version import InvalidVersion, Version

from uolrps import __version__
from uolrps.errors import UserError
from uolrps.meta import ModelMeta
from uolrps.paths import write_atomic
from uolrps.runtime.sidecar import Sidecar, sha256_file, sidecar_path, write_sidecar

MIN_TENSORRT = Version("10")
DEFAULT_MAX_BATCH = 8
INSTALL_HINT = ("pip install 'uolrps[trt]' on a desktop GPU; on a Jetson, TensorRT comes with JetPack "
                "(the python3-libnvinfer package), install pycuda with pip")


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as e:
        raise UserError(f"building an engine needs the TensorRT Python package ({e}): {INSTALL_HINT}") from None
    return tensorrt


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


# ---- what the ONNX file says ------------------------------------------------------------------------------
@dataclass(frozen=True)
class OnnxInfo:
    path: Path
    sha256: str
    meta: ModelMeta
    input_name: str
    input_shape: tuple  # ints, None for a dynamic axis


def read_onnx_info(onnx_path: str | Path) -> OnnxInfo:
    import onnx

    path = Path(onnx_path)
    if not path.is_file():
        raise UserError(f"ONNX file {str(path)!r} does not exist: export one with `uolrps export --fp16`")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # DecodeError and friends
        raise UserError(f"{path} is not a readable ONNX file ({type(e).__name__}: {e})") from None
    meta = ModelMeta.from_props({p.key: p.value for p in model.metadata_props}, source=str(path))
    initializers = {t.name for t in model.graph.initializer}
    inputs = {i.name: i for i in model.graph.input if i.name not in initializers}
    if meta.input_name not in inputs:
        raise UserError(f"{path}: the graph has no input {meta.input_name!r} (inputs: {', '.join(inputs) or 'none'})")
    dims = inputs[meta.input_name].type.tensor_type.shape.dim
    shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims)
    return OnnxInfo(path, sha256_file(path), meta, meta.input_name, shape)


# ---- settings and the optimisation profile -----------------------------------------------------------------
@dataclass(frozen=True)
class BuildSettings:
    workspace_gib: float = 2.0
    timing_cache: Path | None = None
    dla_core: int | None = None
    min_batch: int | None = None
    opt_batch: int | None = None
    max_batch: int | None = None

    def __post_init__(self) -> None:
        w = self.workspace_gib
        if not isinstance(w, (int, float)) or not math.isfinite(w) or not 0 < w <= 1024:
            raise UserError(f"--workspace-gib must be a number of GiB in (0, 1024], but got {w}")
        if self.dla_core is not None and (not isinstance(self.dla_core, int) or self.dla_core < 0):
            raise UserError(f"--dla must be a DLA core number (0, 1, ...), but got {self.dla_core}")
        for flag, v in (("--min-batch", self.min_batch), ("--opt-batch", self.opt_batch), ("--max-batch", self.max_batch)):
            if v is not None and (not isinstance(v, int) or v < 1):
                raise UserError(f"{flag} must be a positive int, but got {v}")

    @property
    def workspace_bytes(self) -> int:
        return int(self.workspace_gib * (1 << 30))


@dataclass(frozen=True)
class BatchProfile:
    min: int
    opt: int
    max: int

    def shapes(self, shape: tuple) -> tuple[tuple, tuple, tuple]:
        rest = tuple(shape[1:])
        return (self.min, *rest), (self.opt, *rest), (self.max, *rest)


def batch_profile(input_shape: tuple, settings: BuildSettings, source: str = "the model") -> BatchProfile | None:
    """The min/opt/max batch of a dynamic batch axis (None for a fixed batch); other axes must be static."""
    if len(input_shape) != 4 or any(d is None for d in input_shape[1:]):
        shown = "x".join("?" if d is None else str(d) for d in input_shape)
        raise UserError(f"{source}: input shape {shown} must be N x H x W x 3 with only N dynamic: "
                        "re-export it with `uolrps export` (a fixed --size)")
    asked = {"--min-batch": settings.min_batch, "--opt-batch": settings.opt_batch, "--max-batch": settings.max_batch}
    fixed = input_shape[0]
    if fixed is not None:
        wrong = [f"{k} {v}" for k, v in asked.items() if v is not None and v != fixed]
        if wrong:
            raise UserError(f"{source} has a fixed batch of {fixed}, so {', '.join(wrong)} cannot apply: "
                            "export with --dynamic-batch for a batch range")
        return None
    lo = settings.min_batch or 1
    opt = settings.opt_batch or lo
    hi = settings.max_batch or max(DEFAULT_MAX_BATCH, lo, opt)
    if not lo <= opt <= hi:
        raise UserError(f"the batch profile needs --min-batch <= --opt-batch <= --max-batch, but got {lo}, {opt}, {hi}")
    return BatchProfile(lo, opt, hi)


def default_engine_path(onnx_path: str | Path) -> Path:
    """``model.fp16.onnx`` -> ``model.fp16.engine`` (beside it)."""
    return Path(onnx_path).with_suffix(".engine")


# ---- the equivalent trtexec command -------------------------------------------------------------------------
def trtexec_argv(info: OnnxInfo, engine_path: Path, settings: BuildSettings, profile: BatchProfile | None,
                 major: int | None = None) -> list[str]:
    """trtexec arguments that build the same engine (``major`` None: the TensorRT version is unknown)."""
    argv = ["trtexec", f"--onnx={info.path}", f"--saveEngine={engine_path}",
            f"--memPoolSize=workspace:{max(1, round(settings.workspace_gib * 1024))}"]  # MiB in every 10.x/11.x
    if major is None or major < 11:
        argv.append("--stronglyTyped")  # needed on 10.x; 11.x is always strongly typed (the flag is a no-op)
    if profile is not None:
        for flag, shape in zip(("--minShapes", "--optShapes", "--maxShapes"), profile.shapes(info.input_shape)):
            argv.append(f"{flag}={info.input_name}:{'x'.join(map(str, shape))}")
    if settings.timing_cache is not None:
        argv.append(f"--timingCacheFile={settings.timing_cache}")
    if settings.dla_core is not None:
        argv += [f"--useDLACore={settings.dla_core}", "--allowGPUFallback"]
    return argv


def trtexec_command(onnx_path, engine_path=None, workspace_gib=2.0, timing_cache=None, dla_core=None,
                    min_batch=None, opt_batch=None, max_batch=None, trt_version: str | None = None) -> str:
    """The trtexec command line equivalent to :func:`build_engine` with the same arguments."""
    settings = BuildSettings(workspace_gib, Path(timing_cache) if timing_cache else None, dla_core,
                             min_batch, opt_batch, max_batch)
    info = read_onnx_info(onnx_path)
    profile = batch_profile(info.input_shape, settings, source=str(info.path))
    engine = Path(engine_path) if engine_path else default_engine_path(onnx_path)
    major = Version(trt_version).major if trt_version else None
    return shlex.join(trtexec_argv(info, engine, settings, profile, major))


# ---- the build -------------------------------------------------------------------------------------------
def _need(value, what: str):
    if value is None:
        raise UserError(f"TensorRT could not {what} (see the TensorRT messages above)")
    return value


def _parse(trt, logger, network, info: OnnxInfo, log) -> None:
    parser = _need(trt.OnnxParser(network, logger), "create the ONNX parser")
    ok = parser.parse_from_file(str(info.path))
    errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
    for i, err in enumerate(errors, 1):
        log(f"TensorRT ONNX parser error {i}/{len(errors)}: {err}")
    if not ok or errors:
        first = errors[0].splitlines()[0] if errors else "no error message"
        raise UserError(f"TensorRT cannot parse {info.path.name} ({len(errors)} parser errors, first: {first}): "
                        "check it with uolrps.export.trt_ops.check_tensorrt_ops and re-export")
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
            raise UserError(f"--dla {settings.dla_core}: this device {have}. DLA needs a Jetson AGX Orin or Orin NX "
                            "with TensorRT 10.x up to 10.7 (JetPack 6) or 11.4.1+ (JetPack 7.2.2); drop --dla")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = settings.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)


def _load_timing_cache(config, path: Path | None):
    if path is None:
        return None
    blob = path.read_bytes() if path.is_file() else b""
    cache = _need(config.create_timing_cache(blob), f"read the timing cache {path}")
    if not config.set_timing_cache(cache, False):
        raise UserError(f"timing cache {path} was made by another TensorRT version or GPU: delete it or choose "
                        "another --timing-cache file")
    return cache


def _save_timing_cache(config, path: Path | None, log) -> None:
    if path is None:
        return
    cache = _need(config.get_timing_cache(), "return the timing cache")
    data = _need(cache.serialize(), "serialize the timing cache")
    write_atomic(path, lambda tmp: tmp.write_bytes(data), "--timing-cache")
    log(f"saved timing cache {path}")


def build_engine(onnx_path, engine_path=None, workspace_gib=2.0, timing_cache=None, dla_core=None,
                 min_batch=None, opt_batch=None, max_batch=None, *, log=print, trt=None,
                 gpu: tuple[str, tuple[int, int]] | None = None) -> tuple[Path, Path]:
    """Build ``engine_path`` (default: the ONNX path with ``.engine``) and its sidecar; returns both paths.

    ``log`` receives progress lines, the equivalent trtexec command and every parser error. ``trt`` is the
    ``tensorrt`` module (imported when None); ``gpu`` is ``(name, (major, minor))`` of the building GPU
    (asked of pycuda when None). Raises :class:`UserError` for every failure, with what to do.
    """
    settings = BuildSettings(workspace_gib, Path(timing_cache) if timing_cache else None, dla_core,
                             min_batch, opt_batch, max_batch)
    info = read_onnx_info(onnx_path)
    profile = batch_profile(info.input_shape, settings, source=str(info.path))
    engine_path = Path(engine_path) if engine_path else default_engine_path(info.path)
    from uolrps.export.trt_ops import unsupported_ops
    from uolrps.paths import check_distinct_outputs, check_output_path

    check_distinct_outputs({"-o": engine_path, "the sidecar": sidecar_path(engine_path), "--timing-cache": timing_cache})
    check_output_path(engine_path, "-o", (".engine", ".plan"), inputs=(info.path,))
    if timing_cache:
        check_output_path(timing_cache, "--timing-cache", inputs=(info.path,))

    problems = unsupported_ops(info.path)
    if problems:
        log(f"warning: {info.path.name} uses operators TensorRT 10 may refuse: {'; '.join(problems)}")
    if trt is None:
        try:
            trt = import_tensorrt()
        except UserError:
            log("equivalent trtexec command: " + shlex.join(trtexec_argv(info, engine_path, settings, profile)))
            raise
    api = trt_api(trt)
    log("equivalent trtexec command: " + shlex.join(trtexec_argv(info, engine_path, settings, profile, api.major)))
    if gpu is None:
        from uolrps.runtime.backends.trt import query_gpu

        gpu = query_gpu()
    gpu_name, cc = gpu[0], tuple(gpu[1])

    logger = trt.Logger(trt.Logger.WARNING)
    builder = _need(trt.Builder(logger), "create a builder (is a CUDA GPU visible?)")
    network = _need(builder.create_network(api.network_flags(trt)), "create a network")
    _parse(trt, logger, network, info, log)
    config = _need(builder.create_builder_config(), "create a builder config")
    _configure(trt, builder, config, info, settings, profile)
    _load_timing_cache(config, settings.timing_cache)
    log(f"building {engine_path.name} with TensorRT {trt.__version__} on {gpu_name} (compute capability "
        f"{cc[0]}.{cc[1]}); this takes minutes")
    plan = builder.build_serialized_network(network, config)
    if plan is None or len(memoryview(plan).cast("B")) == 0:
        raise UserError(f"TensorRT could not build {engine_path.name} (see the TensorRT messages above); try a "
                        "larger --workspace-gib or check the graph with check_tensorrt_ops")
    data = bytes(memoryview(plan).cast("B"))
    _save_timing_cache(config, settings.timing_cache, log)
    write_atomic(engine_path, lambda tmp: tmp.write_bytes(data), "-o")

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
