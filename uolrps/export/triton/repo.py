"""A Triton Inference Server model repository for an exported uolrps model (``uolrps triton-repo``).

``write_triton_repo(model, out)`` writes ``out/<name>/config.pbtxt`` and ``out/<name>/1/model.onnx``
(platform ``onnxruntime_onnx``); given an engine (with its sidecar) also ``out/<name>_trt/`` with
``1/model.plan`` (platform ``tensorrt_plan``). With ``platform="python"`` the entry runs the same ONNX file in
ONNX Runtime inside Triton's Python backend instead (``1/model.py``), for servers built without the
onnxruntime backend, such as the one bundled in the ``nvidia-pytriton`` wheel.

Every config carries the model metadata as ``parameters`` (the ``uolrps.*`` keys of
:meth:`uolrps.model.meta.ModelMeta.to_props`), so a client (``--backend triton``) reads the threshold and the input
contract from the server. The written text is parsed with Triton's own ``ModelConfig`` protobuf when
``tritonclient`` is installed. Nothing is written unless every entry could be prepared.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from uolrps.core.checked_io import check_free_space, write_failed
from uolrps.core.errors import OptionError, UserError
from uolrps.model.meta import ModelMeta

DEFAULT_MAX_BATCH = 8  # max_batch_size of a dynamic-batch model unless told otherwise
DEFAULT_QUEUE_DELAY_US = 1000  # how long the dynamic batcher may hold a request to fill a batch
PLATFORMS = ("onnxruntime", "python", "openvino")
KINDS = {"gpu": "KIND_GPU", "cpu": "KIND_CPU"}
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")

PYTHON_MODEL_FILE = "python_backend_model.py"  # package data: the 1/model.py of a python-backend entry


def python_model_source() -> str:
    """The ``model.py`` of a python-backend entry: ONNX Runtime on the model.onnx beside it."""
    from importlib.resources import files

    return files("uolrps.export.triton").joinpath(PYTHON_MODEL_FILE).read_text(encoding="utf-8")


@dataclass(frozen=True)
class RepoSettings:
    """How the server should batch and place the model (validated on creation)."""

    name: str | None = None  # the model's name on the server (default: the file's stem)
    max_batch: int | None = None  # max_batch_size for a dynamic-batch model (default 8)
    preferred: tuple[int, ...] | None = None  # preferred batch sizes (default: half and all of max_batch)
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    kind: str = "gpu"  # instance_group kind: gpu or cpu
    count: int = 1  # model instances per device
    platform: str = "onnxruntime"  # onnxruntime (onnxruntime_onnx), python (ONNX Runtime in the Python backend) or
    # openvino (Triton's OpenVINO backend on the IR of `uolrps export --openvino`, metadata in the IR; docs/openvino.md)

    def __post_init__(self) -> None:
        if self.name is not None and not NAME_RE.match(self.name):
            raise OptionError(f"name {self.name!r}: a Triton model name may use letters, digits, '_', '-' and '.'", "name")
        if self.max_batch is not None and self.max_batch < 1:
            raise OptionError(f"max_batch must be at least 1, but got {self.max_batch}", "max_batch")
        if self.queue_delay_us < 0:
            raise OptionError(f"queue_delay_us must be >= 0 microseconds, but got {self.queue_delay_us}", "queue_delay_us")
        if self.kind not in KINDS:
            raise OptionError(f"kind must be {' or '.join(KINDS)}, but got {self.kind!r}", "kind")
        if self.count < 1:
            raise OptionError(f"count must be at least 1 instance, but got {self.count}", "count")
        if self.platform not in PLATFORMS:
            raise OptionError(f"platform must be {' or '.join(PLATFORMS)}, but got {self.platform!r}", "platform")
        if self.preferred is not None and any(int(p) < 1 for p in self.preferred):
            raise OptionError(f"preferred sizes must be positive, but got {list(self.preferred)}", "preferred")


@dataclass(frozen=True)
class RepoEntry:
    name: str
    folder: Path
    config: Path
    files: tuple[Path, ...]
    max_batch_size: int


# ---- the config text ----------------------------------------------------------------------------------
def _quote(text: str) -> str:
    """A protobuf text-format string literal (non-ASCII as octal-escaped UTF-8 bytes)."""
    out = []
    for b in str(text).encode("utf-8"):
        c = chr(b)
        if c in '"\\':
            out.append("\\" + c)
        elif 32 <= b < 127:
            out.append(c)
        else:
            out.append("\\%03o" % b)
    return '"' + "".join(out) + '"'


def _dims(dims) -> str:
    return "[ " + ", ".join(str(int(d)) for d in dims) + " ]"


def batch_layout(meta: ModelMeta, settings: RepoSettings, engine_max: int | None = None) -> tuple[int, tuple, tuple]:
    """``(max_batch_size, input dims, output dims)`` for the config.

    A dynamic batch axis is Triton's to fill (``max_batch_size`` = the option, capped by an engine's profile);
    a fixed batch of 1 is ``max_batch_size: 1``; a fixed batch b > 1 cannot be split by Triton, so it is
    ``max_batch_size: 0`` with b in the dims and the client sends exactly b images per request.
    """
    H, W = meta.input_size
    per_image_in, per_image_out = (H, W, 3), (len(meta.classes), *meta.grid)
    if meta.dynamic_batch:
        mb = settings.max_batch or DEFAULT_MAX_BATCH
        if engine_max is not None and mb > engine_max:
            raise OptionError(f"max_batch {mb} is larger than the engine's optimisation profile allows "
                              f"({engine_max}): rebuild with `uolrps build --max-batch {mb}` or lower max_batch",
                              "max_batch")
        return mb, per_image_in, per_image_out
    if settings.max_batch is not None and settings.max_batch != meta.batch:
        raise OptionError(f"max_batch {settings.max_batch}: the model has a fixed batch of {meta.batch}; "
                          "export it with --dynamic-batch to let Triton batch requests", "max_batch")
    if meta.batch == 1:
        return 1, per_image_in, per_image_out
    return 0, (meta.batch, *per_image_in), (meta.batch, *per_image_out)


def config_text(name: str, meta: ModelMeta, settings: RepoSettings, platform: str,
                engine_max: int | None = None) -> str:
    """The config.pbtxt of one entry; ``platform`` is onnxruntime_onnx, tensorrt_plan, python or openvino."""
    mb, in_dims, out_dims = batch_layout(meta, settings, engine_max)
    lines = [f"name: {_quote(name)}"]
    lines.append(f"backend: {_quote(platform)}" if platform in ("python", "openvino") else f"platform: {_quote(platform)}")
    lines.append(f"max_batch_size: {mb}")
    lines += ["input [", "  {", f"    name: {_quote(meta.input_name)}", "    data_type: TYPE_UINT8",
              *(["    format: FORMAT_NHWC"] if len(in_dims) == 3 else []), f"    dims: {_dims(in_dims)}", "  }", "]"]
    lines += ["output [", "  {", f"    name: {_quote(meta.output_name)}", "    data_type: TYPE_FP32",
              f"    dims: {_dims(out_dims)}", "  }", "]"]
    if mb > 1:
        preferred = settings.preferred if settings.preferred is not None else sorted({max(1, mb // 2), mb})
        too_big = [p for p in preferred if int(p) > mb]
        if too_big:
            raise OptionError(f"preferred {too_big} is larger than max_batch_size {mb}", "preferred")
        lines += ["dynamic_batching {"]
        if preferred:
            lines.append(f"  preferred_batch_size: {_dims(preferred)}")
        lines += [f"  max_queue_delay_microseconds: {int(settings.queue_delay_us)}", "}"]
    kind = "KIND_CPU" if platform in ("python", "openvino") else KINDS[settings.kind]
    lines += ["instance_group [", "  {", f"    count: {int(settings.count)}", f"    kind: {kind}", "  }", "]"]
    if platform == "openvino":
        # Triton's OpenVINO backend refuses parameters it does not know, so our metadata lives in the IR's rt_info
        # (uolrps export --openvino) and the config carries only the backend's own keys
        lines += ["parameters {", '  key: "PERFORMANCE_HINT"', '  value: { string_value: "THROUGHPUT" }', "}"]
        if mb > 1:
            lines += ["parameters {", '  key: "ENABLE_BATCH_PADDING"', '  value: { string_value: "YES" }', "}"]
        return "\n".join(lines) + "\n"
    for key, value in sorted(meta.to_props().items()):
        lines += ["parameters {", f"  key: {_quote(key)}", f"  value: {{ string_value: {_quote(value)} }}", "}"]
    return "\n".join(lines) + "\n"


def validate_config(text: str, source: str = "config.pbtxt"):
    """Parse ``text`` with Triton's ``ModelConfig`` protobuf; returns the message, or None without tritonclient."""
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        return None
    config = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        raise UserError(f"{source} does not parse as a Triton ModelConfig ({e}): please report this") from None
    return config


# ---- reading the model ----------------------------------------------------------------------------------
def onnx_meta(path: Path) -> ModelMeta:
    """The uolrps metadata of an ONNX file (read without the onnx package), checked against its graph input."""
    from uolrps.model.onnx_meta import read_onnx_meta

    meta, inputs = read_onnx_meta(path)
    shape = inputs.get(meta.input_name, ())
    if meta.input_name not in inputs or (shape is not None and len(shape) != 4):
        raise UserError(f"{path}: the graph has no N x H x W x 3 input {meta.input_name!r} (inputs: "
                        f"{', '.join(inputs) or 'none'}): export it with `uolrps export`")
    return meta


def engine_info(engine: Path) -> tuple[ModelMeta, int | None]:
    """An engine's metadata (from its sidecar) and the largest batch its optimisation profile takes."""
    from uolrps.model.sidecar import read_sidecar

    if not engine.is_file():
        raise UserError(f"engine {str(engine)!r} does not exist: build it with `uolrps build MODEL.fp16.onnx`")
    side = read_sidecar(engine)
    profile = (side.build or {}).get("profile")
    engine_max = int(profile["max"][0]) if profile and profile.get("max") else None
    return side.meta, engine_max


# ---- writing --------------------------------------------------------------------------------------------
def _check_target(folder: Path, force: bool) -> None:
    if folder.exists() and not force:
        raise OptionError(f"{folder} already exists: remove it, choose another name, or pass force to replace it",
                          "name", "force")
    if folder.exists() and not folder.is_dir():
        raise OptionError(f"{folder} is a file, not a model folder: choose another -o or name", "name")


def check_repo_target(model: str | Path, out: str | Path, settings: RepoSettings | None = None) -> Path:
    """The entry folder ``model`` would get in ``out``; a UserError when it is taken or ``out`` is a file."""
    settings, out = settings or RepoSettings(), Path(out)
    if out.exists() and not out.is_dir():
        raise OptionError(f"triton_repo {str(out)!r} is a file: give a folder for the model repository", "triton_repo")
    folder = out / (settings.name or default_name(Path(model)))
    _check_target(folder, force=False)
    return folder


def default_name(model: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", model.stem)


def _entry_bytes(config: str, files: dict[str, Path | str]) -> int:
    """What one entry will take on disk, known before it is written (its config and files)."""
    return len(config.encode()) + sum(len(src.encode()) if isinstance(src, str) else Path(src).stat().st_size
                                      for src in files.values())


def _stage(out: Path, name: str, config: str, files: dict[str, Path | str]) -> Path:
    """Write one entry into a hidden staging folder inside ``out``; returns it. A staging folder left there by
    an earlier write that was killed is removed first, and named in the log."""
    stage = out / f".{name}.tmp"
    if stage.is_dir() and not stage.is_symlink():
        shutil.rmtree(stage, ignore_errors=True)
        logging.getLogger("uolrps").warning("removed %s, left by an earlier write of %s that did not finish",
                                            stage, name)
    (stage / "1").mkdir(parents=True)
    (stage / "config.pbtxt").write_text(config, encoding="utf-8")
    for rel, src in files.items():
        dst = stage / "1" / rel
        if isinstance(src, str):
            dst.write_text(src, encoding="utf-8")
        else:
            shutil.copyfile(src, dst)
    return stage


def write_triton_repo(model: str | Path, out: str | Path, settings: RepoSettings | None = None,
                      engine: str | Path | None = None, force: bool = False, log=print) -> list[RepoEntry]:
    """Write the repository entries for ``model`` (and ``engine``) into ``out``; see the module docstring."""
    settings = settings or RepoSettings()
    model, out = Path(model), Path(out)
    if not model.is_file():
        raise UserError(f"model file {str(model)!r} does not exist: pass the .onnx from `uolrps export`")
    if model.suffix.lower() != ".onnx":
        raise OptionError(f"{model.name}: the repository is made from the exported .onnx (give an engine with engine)",
                          "engine")
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {str(out)!r} is a file: give a folder for the model repository")
    meta = onnx_meta(model)
    name = settings.name or default_name(model)
    platform = settings.platform if settings.platform in ("python", "openvino") else "onnxruntime_onnx"
    files: dict[str, Path | str] = {"model.onnx": model}
    if platform == "python":
        files["model.py"] = python_model_source()
    if platform == "openvino":
        import tempfile

        from uolrps.export.openvino_ir import write_ir

        ir_dir = Path(tempfile.mkdtemp(prefix="uolrps-ir-"))
        try:
            xml = write_ir(model, ir_dir / "model.xml", log=log)
        except BaseException:
            shutil.rmtree(ir_dir, ignore_errors=True)
            raise
        files = {"model.xml": xml, "model.bin": xml.with_suffix(".bin")}
    plans = [(name, config_text(name, meta, settings, platform), files, batch_layout(meta, settings)[0])]
    if engine is not None:
        emeta, engine_max = engine_info(Path(engine))
        for field in ("backbone", "input_size", "grid", "classes", "input_name", "output_name"):
            if getattr(emeta, field) != getattr(meta, field):
                raise OptionError(f"engine {Path(engine).name} was not built from {model.name}: its {field} is "
                                  f"{getattr(emeta, field)}, the model's {getattr(meta, field)}", "engine")
        plans.append((f"{name}_trt", config_text(f"{name}_trt", emeta, settings, "tensorrt_plan", engine_max),
                      {"model.plan": Path(engine)}, batch_layout(emeta, settings, engine_max)[0]))
    for entry_name, text, *_ in plans:
        validate_config(text, f"{entry_name}/config.pbtxt")
        _check_target(out / entry_name, force)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"-o {str(out)!r}: cannot create the folder ({e.strerror}): choose another place") from None
    try:  # the sizes are known: an entry that cannot fit is refused before it is begun
        check_free_space(out / plans[0][0], sum(_entry_bytes(text, f) for _, text, f, _ in plans), "-o")
    except UserError:
        if platform == "openvino":
            shutil.rmtree(ir_dir, ignore_errors=True)
        raise
    staged: list[tuple[str, Path]] = []
    try:
        for entry_name, text, entry_files, _ in plans:
            staged.append((entry_name, _stage(out, entry_name, text, entry_files)))
    except OSError as e:
        if platform == "openvino":
            shutil.rmtree(ir_dir, ignore_errors=True)
        for _, stage in staged:
            shutil.rmtree(stage, ignore_errors=True)
        shutil.rmtree(out / f".{plans[len(staged)][0]}.tmp", ignore_errors=True)
        raise write_failed("-o", out, e, "nothing was written (the model repository is as it was)") from None
    if platform == "openvino":
        shutil.rmtree(ir_dir, ignore_errors=True)
    entries = []
    for (entry_name, _, entry_files, mb), (_, stage) in zip(plans, staged):
        target = out / entry_name
        old = out / f".{entry_name}.old"
        if target.exists():  # moved aside, not deleted, until the new entry is in place: a kill between the two
            shutil.rmtree(old, ignore_errors=True)  # renames leaves the old entry in .NAME.old, never nothing
            target.rename(old)
        stage.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        entries.append(RepoEntry(entry_name, target, target / "config.pbtxt",
                                 tuple(target / "1" / f for f in entry_files), mb))
        log(f"wrote {target}/ (config.pbtxt, {', '.join('1/' + f for f in entry_files)}; max_batch_size {mb})")
    return entries
