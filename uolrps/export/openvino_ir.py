"""`uolrps export --openvino`: the exported ONNX graph as an OpenVINO IR (``model.xml`` + ``model.bin``) with our
metadata carried in the IR's rt_info (section ``uolrps``, the same keys and values as the ONNX metadata_props).

The IR is read straight by `--backend openvino` (and by Triton's OpenVINO backend); it holds FP32 weights
(``compress_to_fp16=False``: the inference precision is a runtime choice, gated, docs/openvino.md). Before the
files are written, the IR's heatmaps are checked against the ONNX graph in ONNX Runtime on a few images.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import numpy as np

from uolrps.errors import UserError

IR_TOLERANCE = 1e-4


def ir_path_for(onnx_path: str | Path) -> Path:
    return Path(onnx_path).with_suffix(".xml")


def write_ir(onnx_path: str | Path, output: str | Path | None = None, log=print) -> Path:
    """Convert ``onnx_path`` (a uolrps ONNX file) to ``output`` (default: the same name, ``.xml``) and its ``.bin``."""
    from uolrps.runtime.backends import _importable

    if not _importable("openvino"):
        raise UserError("writing an OpenVINO IR needs OpenVINO (not installed): pip install 'uolrps[openvino]'")
    import openvino as ov

    from uolrps.export.verify import run_onnx, synthetic_images
    from uolrps.runtime.backends.openvino import RT_SECTION, OpenVinoBackend, meta_from_rt_info

    onnx_path = Path(onnx_path)
    xml = Path(output) if output is not None else ir_path_for(onnx_path)
    if xml.suffix.lower() != ".xml":
        raise UserError(f"the OpenVINO IR must be an .xml file (its weights go to .bin beside it), not {xml.name}")
    model = ov.Core().read_model(str(onnx_path))
    meta = meta_from_rt_info(model, str(onnx_path))
    for key, value in meta.to_props().items():
        model.set_rt_info(value, [RT_SECTION, key])
    tmp = xml.with_name(f".{xml.stem}.{os.getpid()}-{secrets.token_hex(4)}.xml")
    try:
        ov.save_model(model, str(tmp), compress_to_fp16=False)
        x = np.stack(synthetic_images(tuple(meta.input_size), 4))
        n = meta.batch if not meta.dynamic_batch else len(x)
        x = x[:n] if n <= len(x) else np.concatenate([x] * n)[:n]
        with OpenVinoBackend(tmp) as ir:
            diff = float(np.abs(ir(x) - run_onnx(onnx_path, x)).max())
        if not diff <= IR_TOLERANCE:
            raise UserError(f"the OpenVINO IR of {onnx_path.name} differs from the ONNX graph by {diff:.2e} > "
                            f"{IR_TOLERANCE}; nothing was written")
        os.replace(tmp.with_suffix(".bin"), xml.with_suffix(".bin"))
        os.replace(tmp, xml)
    finally:
        for leftover in (tmp, tmp.with_suffix(".bin")):
            leftover.unlink(missing_ok=True)
    log(f"OpenVINO IR vs the ONNX graph on {len(x)} images: max abs heatmap diff {diff:.2e}")
    return xml
