"""The INT8 gate's measure on many images: the Q/DQ twin against its FP32 model, both as the gate runs it.

    python benchmarks/int8_agreement.py MODEL.onnx --images ../shared/data/imagenet-loc/images [--limit 250]

For ``MODEL.int8.onnx`` beside MODEL: the first box at the model's threshold on each image resized to the
model's input size (the gate's inputs, :func:`uolrps.export.verify.gate_inputs`), against the FP32 graph's; the
share of images with IoU >= 0.5 / 0.7 / 0.9 and the mean IoU, twice: the twin **as written** (graph
optimisations off: quantize, dequantize, float arithmetic; what the export gate runs and what TensorRT
reproduces) and **as ONNX Runtime runs it** by default (fused integer kernels; on a CPU without VNNI these
saturate). Prints the CPU's INT8 features beside the figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from uolrps.core.boxes import first_box_iou, heatmap_to_boxes  # noqa: E402
from uolrps.core.images import list_images, read_rgb  # noqa: E402
from uolrps.export.verify import _session, _run_session, _threshold_of, gate_inputs  # noqa: E402
from uolrps.model.files import twin_path  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_int8 import cpu_features  # noqa: E402


def shares(ref: np.ndarray, got: np.ndarray, size, t: float) -> str:
    ious = np.array([first_box_iou(heatmap_to_boxes(a[0], size, t)[0], heatmap_to_boxes(b[0], size, t)[0])
                     for a, b in zip(ref, got)])
    return (f"IoU >= 0.5 on {100 * np.mean(ious >= 0.5):.1f}%, >= 0.7 on {100 * np.mean(ious >= 0.7):.1f}%, "
            f">= 0.9 on {100 * np.mean(ious >= 0.9):.1f}% (mean {ious.mean():.3f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=250)
    a = ap.parse_args()
    twin = twin_path(a.model, "int8")
    ref_sess = _session(a.model)
    H, W = ref_sess.get_inputs()[0].shape[1:3]
    paths = list_images(a.images)[: a.limit]
    x = gate_inputs([read_rgb(p) for p in paths], (H, W), "int8")
    t = _threshold_of(ref_sess)
    ref = _run_session(ref_sess, x)
    print(f"CPU: {cpu_features()}; {len(x)} images of {a.images} at {W}x{H}, threshold {t:g}")
    for label, exact in (("as written (the gate)", True), ("ORT default (fused)", False)):
        got = _run_session(_session(twin, exact_qdq=exact), x)
        print(f"{twin.name} {label}: {shares(ref, got, (H, W), t)}")


if __name__ == "__main__":
    main()
