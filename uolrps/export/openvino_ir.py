"""`uolrps export --openvino`: the exported ONNX graph as an OpenVINO IR (``model.xml`` + ``model.bin``) with our
metadata carried in the IR's rt_info (section ``uolrps``, the same keys and values as the ONNX metadata_props;
:mod:`uolrps.model.ir_meta` reads and writes it).

The IR is read straight by `--backend openvino` (and by Triton's OpenVINO backend); it holds FP32 weights
(``compress_to_fp16=False``: the inference precision is a runtime choice, gated, docs/openvino.md). Before the
files are written, the IR's heatmaps (OpenVINO on the CPU at f32) are checked against the ONNX graph in ONNX
Runtime on a few images.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from uolrps.core.errors import UserError
from uolrps.core.lazy import importable
from uolrps.export.fileset import write_set
from uolrps.model.files import IR_SUFFIX, ir_path_for
from uolrps.model.ir_meta import read_ir_meta, set_ir_meta

IR_TOLERANCE = 1e-4


def require_openvino() -> None:
    if not importable("openvino"):
        raise UserError("writing an OpenVINO IR needs OpenVINO (not installed): pip install 'uolrps[openvino]'")


def _run_ir(ov, xml: Path, meta, x: np.ndarray) -> np.ndarray:
    """The IR's heatmaps of ``x`` on OpenVINO's CPU at f32 (the precision hint set: never OpenVINO's own bf16)."""
    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    result = compiled.create_infer_request().infer({meta.input_name: x})
    return np.asarray(result[compiled.output(meta.output_name)], dtype=np.float32)


def write_ir(onnx_path: str | Path, output: str | Path | None = None, log=print) -> Path:
    """Convert ``onnx_path`` (a uolrps ONNX file) to ``output`` (default: the same name, ``.xml``) and its ``.bin``."""
    require_openvino()
    import openvino as ov

    from uolrps.export.verify import run_onnx, synthetic_images

    onnx_path = Path(onnx_path)
    xml = Path(output) if output is not None else ir_path_for(onnx_path)
    if xml.suffix.lower() != IR_SUFFIX:
        raise UserError(f"the OpenVINO IR must be an .xml file (its weights go to .bin beside it), not {xml.name}")
    model = ov.Core().read_model(str(onnx_path))
    meta = read_ir_meta(model, str(onnx_path))
    set_ir_meta(model, meta)
    with tempfile.TemporaryDirectory(prefix="uolrps-ir-") as staging:  # made and checked there, then written
        tmp = Path(staging) / "model.xml"
        ov.save_model(model, str(tmp), compress_to_fp16=False)
        x = np.stack(synthetic_images(tuple(meta.input_size), 4))
        n = meta.batch if not meta.dynamic_batch else len(x)
        x = x[:n] if n <= len(x) else np.concatenate([x] * n)[:n]
        if meta != read_ir_meta(ov.Core().read_model(str(tmp)), str(tmp)):
            raise UserError(f"the OpenVINO IR of {onnx_path.name} does not carry its metadata back; nothing was written")
        diff = float(np.abs(_run_ir(ov, tmp, meta, x) - run_onnx(onnx_path, x)).max())
        if not diff <= IR_TOLERANCE:
            raise UserError(f"the OpenVINO IR of {onnx_path.name} differs from the ONNX graph by {diff:.2e} > "
                            f"{IR_TOLERANCE}; nothing was written")
        # both files as one set through the checked writer (devices refused, full disk one line, leftovers cleaned)
        write_set([(xml.with_suffix(".bin"), lambda out: shutil.copyfile(tmp.with_suffix(".bin"), out)),
                   (xml, lambda out: shutil.copyfile(tmp, out))], "OpenVINO IR")
    log(f"OpenVINO IR vs the ONNX graph on {len(x)} images: max abs heatmap diff {diff:.2e}")
    return xml
