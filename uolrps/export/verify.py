"""Export verification and the twin gate, both in ONNX Runtime on the CPU.

- :func:`verify`: the FP32 ONNX graph against the PyTorch module it was traced from (max abs heatmap
  difference, box IoU per image). Non-finite heatmaps fail: ``nan > tol`` is False, so every comparison
  here is written as "finite and within", never as "not over".
- :func:`gate_twin`: a precision twin (FP16, INT8, ...) against the FP32 reference graph: finite heatmaps,
  and box IoU >= ``min_iou`` on at least ``min_share`` of at least :data:`MIN_GATE_IMAGES` images, else a
  :class:`UserError` that says where it failed. Used by `uolrps export` and by the INT8 export.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uolrps.core.errors import UserError
from uolrps.core.images import list_images, read_rgb, resize
from uolrps.core.batching import run_batched  # the one batching helper: chunks of b, the last padded
from uolrps.core.boxes import first_box_iou, heatmap_to_boxes

N_VERIFY = 32
MIN_GATE_IMAGES = 32  # a share of 95% means something only over a few dozen images
TWIN_MIN_IOU = 0.9
TWIN_MIN_SHARE = 0.95


@dataclass
class VerifyReport:
    max_abs_diff: float  # NaN when either side had a non-finite value
    ious: list[float]
    nonfinite: int = 0  # images whose ONNX or PyTorch heatmap has a NaN or an infinity

    def within(self, tolerance: float) -> bool:
        """True only when every heatmap is finite and the difference is at most ``tolerance``."""
        return self.nonfinite == 0 and bool(np.isfinite(self.max_abs_diff)) and self.max_abs_diff <= tolerance


@dataclass(frozen=True)
class TwinReport:
    label: str
    n_images: int
    max_abs_diff: float
    ious: tuple[float, ...]
    share: float  # share of images whose first boxes have IoU >= min_iou
    min_iou: float
    min_share: float

    def summary(self) -> str:
        return (f"{self.label} vs FP32 graph on {self.n_images} images: max abs heatmap diff {self.max_abs_diff:.2e}, "
                f"box IoU >= {self.min_iou:g} on {self.share:.0%} (needs {self.min_share:.0%}), "
                f"lowest IoU {min(self.ious):.3f}")


def synthetic_images(size: tuple[int, int], n: int = N_VERIFY, seed: int = 0) -> list[np.ndarray]:
    """Textured backgrounds with one bright ellipse each: generated stand-ins when no images are given."""
    import cv2

    rng = np.random.default_rng(seed)
    H, W = size
    out = []
    for _ in range(n):
        img = cv2.GaussianBlur(rng.integers(0, 120, (H, W, 3), dtype=np.uint8), (0, 0), 3)
        centre = (int(rng.integers(W // 4, 3 * W // 4)), int(rng.integers(H // 4, 3 * H // 4)))
        axes = (int(rng.integers(W // 8, W // 3)), int(rng.integers(H // 8, H // 3)))
        colour = tuple(int(c) for c in rng.integers(120, 256, 3))
        cv2.ellipse(img, centre, axes, float(rng.integers(0, 180)), 0, 360, colour, -1)
        out.append(img)
    return out


def sample_images(source, size: tuple[int, int], n: int = N_VERIFY) -> list[np.ndarray]:
    """``n`` RGB images at ``size``: spread evenly over the images under ``source``, topped up with generated
    ones when there are fewer than ``n`` (or none)."""
    paths = list_images(source) if source and Path(source).exists() else []
    imgs: list[np.ndarray] = []
    if paths:
        picks = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, min(n, len(paths)))]
        imgs = [resize(im, size) for im in (read_rgb(p) for p in picks) if im is not None]
    if len(imgs) < n:
        imgs += synthetic_images(size, n - len(imgs))
    return imgs


def _session(model_or_path, exact_qdq: bool = False):
    """An ONNX Runtime CPU session. ``exact_qdq``: graph optimisations off, so that a Q/DQ graph runs as written
    (quantize, dequantize, float arithmetic: the INT8 rounding TensorRT reproduces, with exact integer sums)
    instead of ORT's fused integer kernels, which on a CPU without VNNI (AVX2: u8s8 through 16-bit pair sums)
    saturate and judge a good twin as broken."""
    import onnxruntime as ort

    if hasattr(model_or_path, "SerializeToString"):
        src = model_or_path.SerializeToString()
    elif isinstance(model_or_path, (bytes, bytearray)):
        src = bytes(model_or_path)
    else:
        src = str(model_or_path)
    opts = ort.SessionOptions()
    if exact_qdq:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def _run_session(sess, images: np.ndarray) -> np.ndarray:
    """Run ``images`` through a session; a fixed batch b runs in chunks of b, the last padded."""
    inp = sess.get_inputs()[0]
    out = sess.get_outputs()[0].name
    fixed = isinstance(inp.shape[0], int) and inp.shape[0] > 0
    return run_batched(lambda chunk: sess.run([out], {inp.name: chunk})[0], images,
                       inp.shape[0] if fixed else None, fixed=fixed)


def run_onnx(model_or_path, images: np.ndarray, batch: int | None = None, dynamic_batch: bool | None = None,
             exact_qdq: bool = False) -> np.ndarray:
    """Heatmaps of ``images`` (uint8 N x H x W x 3) from an ONNX model, path, or serialized bytes, in ORT CPU
    (``exact_qdq``: a Q/DQ graph as written, see :func:`_session`)."""
    return _run_session(_session(model_or_path, exact_qdq), np.ascontiguousarray(images, dtype=np.uint8))


def _first_box_ious(a: np.ndarray, b: np.ndarray, size: tuple[int, int], threshold: float) -> list[float]:
    return [first_box_iou(heatmap_to_boxes(x[0], size, threshold)[0], heatmap_to_boxes(y[0], size, threshold)[0])
            for x, y in zip(a, b)]


def _nonfinite(*arrays: np.ndarray) -> np.ndarray:
    bad = np.zeros(len(arrays[0]), dtype=bool)
    for a in arrays:
        bad |= ~np.isfinite(a.reshape(len(a), -1)).all(axis=1)
    return bad


def verify(model, graph, images: list[np.ndarray], threshold: float, batch: int = 1,
           dynamic_batch: bool = False) -> VerifyReport:
    """The ONNX ``model`` in ONNX Runtime against the PyTorch ``graph`` on ``images``."""
    import torch

    x = np.stack(images).astype(np.uint8)
    got = run_onnx(model, x)
    with torch.inference_mode():
        ref = graph(torch.from_numpy(x)).numpy()
    bad = _nonfinite(got, ref)
    if bad.any():  # no boxes from NaN maps
        return VerifyReport(float("nan"), [], int(bad.sum()))
    ious = _first_box_ious(got, ref, x.shape[1:3], threshold)
    return VerifyReport(float(np.abs(got - ref).max()), ious)


def _threshold_of(sess, default: float = 0.5) -> float:
    """The box threshold the model file stores (``uolrps.threshold``, a JSON number; a bare ``threshold`` prop
    where a graph has only that), else ``default``."""
    props = sess.get_modelmeta().custom_metadata_map
    try:
        return float(props.get("uolrps.threshold", props.get("threshold", default)))
    except (TypeError, ValueError):
        return default


def gate_twin(reference, twin, images, *, min_iou: float = TWIN_MIN_IOU, min_share: float = TWIN_MIN_SHARE,
              label: str = "twin", threshold: float | None = None, exact_qdq: bool = False) -> TwinReport:
    """Gate ``twin`` against ``reference`` (ONNX paths, models or bytes; both run in ONNX Runtime CPU).

    ``images`` are RGB uint8 arrays (at least :data:`MIN_GATE_IMAGES`), resized to the model's input size
    where they differ. Passes when every heatmap of both is finite and the first boxes (at the model's
    threshold, or ``threshold``) have IoU >= ``min_iou`` on at least ``min_share`` of the images; otherwise
    raises :class:`UserError` saying where it failed. Returns the :class:`TwinReport`. ``exact_qdq``: run the
    twin as written (see :func:`_session`), for a Q/DQ twin that TensorRT, not ONNX Runtime, will run.
    """
    images = list(images)
    if len(images) < MIN_GATE_IMAGES:  # before the sessions load
        gate_inputs(images, (1, 1), label)
    ref_sess, twin_sess = _session(reference), _session(twin, exact_qdq)
    shape = ref_sess.get_inputs()[0].shape
    H, W = (shape[1], shape[2]) if len(shape) == 4 and all(isinstance(d, int) for d in shape[1:3]) else images[0].shape[:2]
    x = gate_inputs(images, (H, W), label)
    ref, got = _run_session(ref_sess, x), _run_session(twin_sess, x)
    t = _threshold_of(ref_sess) if threshold is None else float(threshold)
    return judge_twin(ref, got, (H, W), t, min_iou=min_iou, min_share=min_share, label=label)


def gate_inputs(images, size: tuple[int, int], label: str = "twin") -> np.ndarray:
    """RGB uint8 images stacked at ``size`` (H, W) for a gate, resized where they differ; at least
    :data:`MIN_GATE_IMAGES`, else a UserError."""
    images = list(images)
    if len(images) < MIN_GATE_IMAGES:
        raise UserError(f"the {label} gate needs at least {MIN_GATE_IMAGES} verification images for a share to "
                        f"mean something, but got {len(images)}: give a folder with more images")
    H, W = size
    x = []
    for i, im in enumerate(images):
        im = np.asarray(im)
        if im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
            raise UserError(f"{label} gate: image {i} must be RGB uint8 H x W x 3, but got {im.dtype} {im.shape}")
        x.append(im if im.shape[:2] == (H, W) else resize(im, (H, W)))
    return np.stack(x)


def judge_twin(ref: np.ndarray, got: np.ndarray, size: tuple[int, int], threshold: float, *,
               min_iou: float = TWIN_MIN_IOU, min_share: float = TWIN_MIN_SHARE, label: str = "twin") -> TwinReport:
    """The gate's verdict on heatmaps ``got`` (a twin, or a reduced precision of any engine) against the FP32
    reference ``ref`` of the same images of ``size``: finite, and first boxes at ``threshold`` with IoU >=
    ``min_iou`` on at least ``min_share`` of the images. Returns the report; a failure is a UserError."""
    n = len(ref)
    if ref.shape != got.shape:
        raise UserError(f"{label}: heatmaps of shape {got.shape[1:]}, but the FP32 graph gives {ref.shape[1:]}")
    for which, arr in (("the FP32 reference", ref), (label, got)):
        bad = np.flatnonzero(_nonfinite(arr))
        if len(bad):
            raise UserError(f"{label} gate failed: {which} gives non-finite heatmaps (NaN or infinity) on "
                            f"{len(bad)} of {n} images (first: image {bad[0]}); the files were not written")
    ious = _first_box_ious(got, ref, size, threshold)
    share = float(np.mean(np.array(ious) >= min_iou))
    report = TwinReport(label, n, float(np.abs(got - ref).max()), tuple(ious), share, min_iou, min_share)
    if not share >= min_share:
        worst = int(np.argmin(ious))
        raise UserError(f"{label} gate failed: box IoU >= {min_iou:g} with the FP32 graph on only {share:.0%} of "
                        f"{n} images (needs {min_share:.0%}; lowest {ious[worst]:.3f} on image {worst}, max "
                        f"heatmap diff {report.max_abs_diff:.2e}); the files were not written")
    return report
