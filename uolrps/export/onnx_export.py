"""`uolrps export`: encoder + w* -> one ONNX graph (and its precision twins), verified.

torch.onnx.export (TorchScript exporter, opset 17, constants folded) -> onnxslim -> onnx.checker ->
TensorRT op check -> metadata -> ONNX Runtime against PyTorch on 32 images (finite and within 1e-3) -> the
twins asked for (FP16, INT8), each made and gated as the plan of variants says (:mod:`uolrps.export.variants`)
-> every file written as one set (nothing is written when any check fails).

Exporter warnings are shown, except the few known to be harmless for our graphs (:data:`HARMLESS_WARNINGS`):
a TracerWarning says the trace may not generalise, which the user must see.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from uolrps import __version__
from uolrps.calib.means import DEFAULT_WSTAR_DIR, default_wstar_path
from uolrps.core.digest import sha256_wstar
from uolrps.core.errors import OptionError, UserError
from uolrps.core.options import MAX_EXPORT_BATCH, check_input_size
from uolrps.model.files import ir_path_for, twin_path
from uolrps.model.meta import DEFAULT_PLACEMENT, ModelMeta

OPSET = 17
# (message regex, why it is harmless here); everything else the exporter warns about is logged
HARMLESS_WARNINGS = (
    (r"You are using the legacy TorchScript-based ONNX export", "we choose the TorchScript exporter (dynamo=False)"),
    (r"The feature will be removed", "the same deprecation, raised inside the TorchScript exporter"),
    (r"Constant folding - Only steps=1 can be constant folded", "onnxslim folds these Slices afterwards"),
)


@dataclass
class ExportResult:
    path: Path
    meta: ModelMeta
    max_abs_diff: float
    fp16_path: Path | None = None
    int8: list = field(default_factory=list)  # uolrps.export.int8.Int8Twin, Q/DQ first
    triton_entries: list = field(default_factory=list)  # uolrps.export.triton.repo.RepoEntry, with triton_repo
    ir_path: Path | None = None  # the OpenVINO IR (model.xml, its weights in model.bin), with openvino
    variants: dict = field(default_factory=dict)  # every file written -> its gate's report (the plan's verdicts)


def resolve_wstar(backbone: str, wstar: str | Path | None, calib_images: str | Path | None,
                  encoder, progress: bool, log=None) -> tuple[np.ndarray, dict, str, str]:
    """(w, calibration meta, source description, sha256 of w) from --wstar, --calib-images or the default;
    ``log`` gets a --calib-images calibration's stability line and warnings, as `uolrps calib` prints them."""
    from uolrps.calib.wstar import compute_wstar
    from uolrps.calib.means import load_calibration

    if wstar is not None and calib_images is not None:
        raise OptionError("give either wstar or calib_images, not both", "wstar", "calib_images")
    if calib_images is not None:
        cal = compute_wstar(calib_images, encoder=encoder, progress=progress)
        for line in ([cal.report] + [f"warning: {m}" for m in cal.warnings]) if log is not None else ():
            log(line)
        w, meta, source = cal.w, cal.meta, f"calibrated from {calib_images}"
    else:
        path = Path(wstar) if wstar is not None else default_wstar_path(backbone)
        if path is None:
            raise UserError(missing_wstar_message(backbone, encoder.info.weights))
        data = load_calibration(path)
        w, meta = data["w"], data["meta"]
        source = f"default w* for {backbone} ({meta.get('images', '?')})" if wstar is None else str(path)
    if meta.get("backbone") not in (None, backbone):
        raise OptionError(f"w* was calibrated with backbone {meta['backbone']!r}, not {backbone!r}: "
                          f"pass backbone {meta['backbone']} or recalibrate", "backbone")
    _check_normalisation(meta, encoder.info, backbone)
    digest = sha256_wstar(w)
    return np.asarray(w, dtype=np.float32), meta, source, digest


def _check_normalisation(meta: dict, info, backbone: str) -> None:
    """A w* is a direction in the feature space of one input normalisation: features of another are not it
    (efflite0 calibrations made before its (x - 127) / 128 fix used the ImageNet mean/std)."""
    for key in ("mean", "std"):
        got, want = meta.get(key), getattr(info, key)
        if got is not None and (len(got) != len(want) or not np.allclose(got, want, atol=1e-3)):
            raise UserError(f"w* was calibrated with input {key} {list(got)}, but {backbone} now normalises with "
                            f"{list(want)}: its features differ, so recalibrate (`uolrps calib IMAGES --backbone "
                            f"{backbone} -o wstar.npz`) or use the shipped default w*")


def missing_wstar_message(backbone: str, weights: str | Path | None) -> str:
    """Everything an export without w* needs, in one line: the weights (found, or where to put them) and the
    w*, with the commands that get both (the first error a new user meets, so it must be complete)."""
    from uolrps.calib.backbones import get_spec

    spec = get_spec(backbone)
    shipped = sorted(p.stem for p in DEFAULT_WSTAR_DIR.glob("*.npz")) or ["none"]
    w_flag = f" --weights {weights}" if weights is not None else ""
    if weights is not None:
        have = f"weights: {weights}"
    elif spec.url is None:
        have = "weights: bundled"
    else:
        from uolrps.calib.download import cache_path, fetch_command, is_cached

        have = (f"weights: found at {cache_path(spec.url)}" if is_cached(spec.url) else
                f"weights: not here yet; `uolrps calib` downloads them from {spec.url} to {cache_path(spec.url)} "
                f"(offline: `{fetch_command(spec.url)}` on a connected machine, then copy the file to that exact "
                "path, or pass --weights FILE)")
    return (f"backbone {backbone!r} ships no default w* (only {', '.join(shipped)} do{'es' if len(shipped) == 1 else ''}): "
            f"export needs a w* calibrated on images like yours; {have}. Run `uolrps calib IMAGES --backbone "
            f"{backbone}{w_flag} -o wstar.npz`, then `uolrps export --backbone {backbone}{w_flag} --wstar wstar.npz` "
            f"(or both at once: --calib-images IMAGES)")


def pick_rows(w: np.ndarray, classes: list[str], class_index: int | None) -> tuple[np.ndarray, list[str]]:
    if w.ndim == 1:
        if class_index not in (None, 0):
            raise OptionError(f"class_index {class_index} given, but w* has a single row", "class_index")
        return w[None], list(classes[:1]) or ["object"]
    if class_index is None:
        return w, list(classes)
    if not 0 <= class_index < w.shape[0]:
        raise OptionError(f"class_index must be in 0..{w.shape[0] - 1} for this class-wise w*, but got {class_index}",
                          "class_index")
    return w[class_index:class_index + 1], [classes[class_index]]


def exporter_warnings(records) -> list[str]:
    """One ``warning: ...`` line per distinct warning the exporter raised, less the known-harmless ones."""
    out: list[str] = []
    for r in records:
        text = str(r.message).strip()
        if any(re.search(pattern, text) for pattern, _ in HARMLESS_WARNINGS):
            continue
        line = f"warning: torch.onnx.export: {r.category.__name__}: {text.splitlines()[0] if text else ''}"
        if line not in out:
            out.append(line)
    return out


def torch_to_onnx(graph, size: tuple[int, int], batch: int, dynamic_batch: bool, log=print):
    """Trace ``graph`` to an ONNX ModelProto (opset 17), simplified with onnxslim and checked."""
    import onnx
    import onnxslim
    import torch

    H, W = size
    dummy = torch.zeros(batch, H, W, 3, dtype=torch.uint8)
    buf = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught, torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("always")
        torch.onnx.export(
            graph, (dummy,), buf, dynamo=False, opset_version=OPSET, input_names=["image"],
            output_names=["heatmap"], do_constant_folding=True,
            dynamic_axes={"image": {0: "N"}, "heatmap": {0: "N"}} if dynamic_batch else None,
        )
    for line in exporter_warnings(caught):
        log(line)
    model = onnx.load_from_string(buf.getvalue())
    model = onnxslim.slim(model)
    onnx.checker.check_model(model, full_check=True)
    return model


def export_model(backbone: str = "vits", output: str | Path = "model.onnx", weights=None, wstar=None,
                 calib_images=None, size: int = 224, batch: int = 1, dynamic_batch: bool = False,
                 fp16: bool = False, class_index: int | None = None, threshold: float | None = None,
                 dilated: bool = False, verify_images=None, progress: bool = True, log=print, int8: bool = False,
                 int8_calib=None, int8_images: int | None = None, triton_repo: str | Path | None = None,
                 openvino: bool = False, variants=()) -> ExportResult:
    """Export, verify and write ``output`` (and ``<stem>.fp16.onnx`` with ``fp16``, the INT8 twins of
    :mod:`uolrps.export.int8` with ``int8``); see the module docstring. ``threshold`` None: the backbone's
    default (``BackboneSpec.default_threshold``, chosen from measurements). ``triton_repo``: also write a
    Triton model repository entry for ``output`` into that folder (the defaults of
    :func:`uolrps.export.triton.repo.write_triton_repo`; a taken entry is refused before any work).
    ``openvino``: also write the OpenVINO IR ``<stem>.xml`` / ``.bin`` with the model metadata
    (:func:`uolrps.export.openvino_ir.write_ir`; without OpenVINO installed it is refused before any work).
    ``variants``: names of more variants of the plan to write (:mod:`uolrps.export.variants`)."""
    from uolrps.calib.encoder import build_encoder
    from uolrps.export.fileset import write_set
    from uolrps.export.int8 import DEFAULT_IMAGES as DEFAULT_INT8_IMAGES, Int8Twin
    from uolrps.export.variants import Build, wanted
    from uolrps.export.verify import sample_images
    from uolrps.core.paths import check_distinct_outputs, check_output_path

    check_input_size(size)  # before anything is built: 100000 would exhaust the memory first
    if triton_repo is not None:  # before the export, so a taken name costs nothing
        from uolrps.export.triton.repo import check_repo_target

        check_repo_target(output, triton_repo)
    if openvino:  # before the export, so a missing extra costs nothing
        from uolrps.export.openvino_ir import require_openvino

        require_openvino()
    plan = wanted({"fp16": fp16, "int8": int8}, tuple(variants))
    outputs = {t.label: twin_path(output, t.name) for t in plan}
    outputs["output (OpenVINO IR)"] = ir_path_for(output) if openvino else None
    check_distinct_outputs(outputs)
    output = check_output_path(output, "output", (".onnx",), inputs=(weights, wstar))
    for t in plan[1:]:
        check_output_path(twin_path(output, t.name), t.label, (".onnx",), inputs=(weights, wstar))
    if openvino:
        check_output_path(ir_path_for(output), "output (OpenVINO IR)", (".xml",), inputs=(weights, wstar))
    int8_folder = _check_int8(int8, int8_calib, int8_images, calib_images, wstar, output, (weights, wstar))
    if batch < 1 or batch > MAX_EXPORT_BATCH:
        raise OptionError(f"batch must be from 1 to {MAX_EXPORT_BATCH}, but got {batch}", "batch")
    if threshold is None:
        from uolrps.calib.backbones import get_spec

        threshold = get_spec(backbone).default_threshold
    if wstar is None and calib_images is None and default_wstar_path(backbone) is None:
        raise UserError(missing_wstar_message(backbone, weights))  # before a download that could not help
    encoder = build_encoder(backbone, weights, size, dilated=dilated, progress=progress)
    w, cal_meta, source, w_digest = resolve_wstar(backbone, wstar, calib_images, encoder, progress, log)
    cal_size = tuple(cal_meta.get("input_size", (size, size)))
    if cal_size != encoder.info.input_size:
        log(f"note: w* was calibrated at {cal_size[0]}x{cal_size[1]}, exporting at {size}x{size}")
    rows, classes = pick_rows(w, cal_meta.get("classes", ["object"]), class_index)
    info = encoder.info
    meta = ModelMeta(
        backbone=backbone, input_size=info.input_size, grid=info.grid, mean=info.mean, std=info.std,
        threshold=threshold, dynamic_batch=dynamic_batch, batch=batch, classes=tuple(classes),
        weights_sha256=info.weights_sha256, wstar_source=source, wstar_sha256=w_digest, version=__version__,
        upsample=DEFAULT_PLACEMENT, extra={"dilated": dilated, "wstar_calibration": {k: cal_meta.get(k) for k in
               ("images", "n_skipped", "sampling_ratio", "date", "input_size")}},
    )
    images = sample_images(verify_images or calib_images or cal_meta.get("images"), info.input_size)
    build = Build(encoder, rows, meta, output, batch, dynamic_batch, images, log=log,
                  to_onnx=lambda *a, **k: torch_to_onnx(*a, **k),
                  options={"int8_folder": int8_folder, "int8_images": int8_images or DEFAULT_INT8_IMAGES})
    files = []
    for twin in plan:  # each made and gated before anything is written
        made = twin.make(build)
        if made is None:  # the variant does not apply to this graph (the INT8 CPU twin of a CNN)
            continue
        build.made[twin.name] = made
        build.verdicts[twin.name] = verdict = twin.gate(build, made)
        if twin.name != "fp32":
            log(verdict.summary())
        files.append((twin_path(output, twin.name), made))
    result = ExportResult(output, meta.replace(precision="fp32"), build.verdicts["fp32"].max_abs_diff)
    if "fp16" in build.made:
        result.fp16_path = twin_path(output, "fp16")
    result.int8 = [Int8Twin(twin_path(output, n), build.made[n], build.recipes[n], build.verdicts[n])
                   for n in ("int8", "int8-cpu") if n in build.made]
    result.variants = {twin_path(output, n): build.verdicts[n] for n in build.made}
    write_set([(path, _onnx_writer(m)) for path, m in files], "-o")  # the one fileset writer: all or none
    if triton_repo is not None:
        from uolrps.export.triton.repo import write_triton_repo

        result.triton_entries = write_triton_repo(result.path, triton_repo, log=log)
    if openvino:
        from uolrps.export.openvino_ir import write_ir

        result.ir_path = write_ir(result.path, log=log)
    return result


def _check_int8(int8: bool, int8_calib, int8_images, calib_images, wstar, output: Path, inputs) -> Path | None:
    """Before any work: the INT8 options, the quantizer and the calibration folder (--calib-images, else
    --int8-calib, else the folder the --wstar file was calibrated on). Raises UserError."""
    if not int8:
        if int8_calib is not None or int8_images is not None:
            raise OptionError("int8_calib and int8_images need int8", "int8_calib", "int8_images", "int8")
        return None
    from uolrps.export.int8 import check_quantizer, resolve_calib_folder

    if int8_images is not None and int8_images < 1:
        raise OptionError(f"int8_images must be at least 1, but got {int8_images}", "int8_images")
    check_quantizer()
    wstar_images = None
    if calib_images is None and int8_calib is None and wstar is not None:
        from uolrps.calib.means import load_calibration

        wstar_images = load_calibration(wstar)["meta"].get("images")
    return resolve_calib_folder(calib_images, int8_calib, wstar_images)


def _onnx_writer(model):
    import onnx

    return lambda tmp: onnx.save(model, str(tmp))
