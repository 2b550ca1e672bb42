"""The trtexec command line that builds the same engine as `uolrps build` (printed by every build)."""

from __future__ import annotations

import shlex
from pathlib import Path

from packaging.version import Version

from uolrps.export.tensorrt.onnx_info import OnnxInfo, read_onnx_info
from uolrps.export.tensorrt.profile import BatchProfile, BuildSettings, batch_profile
from uolrps.model.files import engine_path_for


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
    """The trtexec command line equivalent to `uolrps build` with the same arguments."""
    settings = BuildSettings(workspace_gib, Path(timing_cache) if timing_cache else None, dla_core,
                             min_batch, opt_batch, max_batch)
    info = read_onnx_info(onnx_path)
    profile = batch_profile(info.input_shape, settings, source=str(info.path))
    engine = Path(engine_path) if engine_path else engine_path_for(onnx_path)
    major = Version(trt_version).major if trt_version else None
    return shlex.join(trtexec_argv(info, engine, settings, profile, major))
