"""Timing and agreement of one benchmark target: warm-up, then per-call latencies of inference alone and of
the full per-frame path (preprocess + infer + boxes), and agreement with the FP32 ONNX Runtime reference."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from uolrps.core.boxes import first_box_iou, heatmap_to_boxes
from uolrps.runtime.preprocess import preprocess

AGREE_IOU = 0.9


@dataclass(frozen=True)
class Timing:
    p50_ms: float
    p95_ms: float
    p99_ms: float
    images_per_s: float  # batch size / mean latency

    @classmethod
    def of(cls, latencies_s: list[float], batch: int) -> "Timing":
        ms = np.asarray(latencies_s) * 1e3
        p50, p95, p99 = (float(np.percentile(ms, q)) for q in (50, 95, 99))
        return cls(p50, p95, p99, float(batch * 1e3 / ms.mean()))


@dataclass(frozen=True)
class Row:
    label: str
    backend: str
    provider: str  # what actually ran (ONNX Runtime's first active provider, "tensorrt", ...)
    precision: str
    batch: int
    infer: Timing
    full: Timing
    max_abs_diff: float | None  # against the FP32 ONNX Runtime reference; None without one
    box_agreement: float | None  # share of images whose first boxes have IoU >= 0.9 with the reference
    n_images: int
    model_batch: int | None = None  # the model's fixed batch size (None: dynamic); a larger batch runs in calls of it

    def to_json(self) -> dict:
        return asdict(self)


def timed(fn, warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def heatmaps_of(backend, inputs: np.ndarray, batch: int) -> np.ndarray:
    """Heatmaps of all ``inputs`` (N x H x W x 3) run in batches of ``batch`` (the last one as it comes)."""
    return np.concatenate([backend(np.ascontiguousarray(inputs[i:i + batch])) for i in range(0, len(inputs), batch)])


def agreement(got: np.ndarray, ref: np.ndarray, frame_sizes: list[tuple[int, int]], threshold: float) -> tuple[float, float]:
    """(max abs heatmap difference, share of images with first-box IoU >= 0.9); NaN difference if not finite."""
    if not (np.isfinite(got).all() and np.isfinite(ref).all()):
        return float("nan"), 0.0
    ious = [first_box_iou(heatmap_to_boxes(g[0], hw, threshold)[0], heatmap_to_boxes(r[0], hw, threshold)[0])
            for g, r, hw in zip(got, ref, frame_sizes)]
    return float(np.abs(got - ref).max()), float(np.mean(np.array(ious) >= AGREE_IOU))


def measure(backend, target, frames: list[np.ndarray], batch: int, warmup: int, iters: int,
            reference: np.ndarray | None) -> Row:
    """Time ``backend`` (an open :class:`uolrps.runtime.backends.base.Backend`) on ``frames`` (BGR) at ``batch``."""
    meta = backend.meta
    inputs = np.stack([preprocess(f, meta) for f in frames])
    picks = [frames[i % len(frames)] for i in range(batch)]
    x = np.ascontiguousarray(np.stack([preprocess(f, meta) for f in picks]))

    def full():
        y = backend(np.stack([preprocess(f, meta) for f in picks]))
        for f, h in zip(picks, y):
            for k in range(h.shape[0]):
                heatmap_to_boxes(h[k], f.shape[:2], meta.threshold, placement=meta.upsample)

    infer = Timing.of(timed(lambda: backend(x), warmup, iters), batch)
    whole = Timing.of(timed(full, max(1, warmup // 2), iters), batch)
    diff = share = None
    if reference is not None:
        got = heatmaps_of(backend, inputs, batch)
        diff, share = agreement(got, reference, [f.shape[:2] for f in frames], meta.threshold)
    provider = backend.caps.provider or target.backend
    return Row(target.label, target.backend, str(provider), getattr(meta, "precision", target.precision) or
               target.precision, batch, infer, whole, diff, share, len(frames),
               backend.caps.max_batch if backend.caps.fixed_batch else None)
