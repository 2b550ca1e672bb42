"""`uolrps bench MODEL`: latency, throughput and agreement of every backend and precision twin beside MODEL.

For each target (:mod:`uolrps.bench.targets`) and batch size: warm-up, then p50/p95/p99 latency and images/s
of inference alone and of the full per-frame path, and agreement with the FP32 ONNX Runtime result on the
same images (:mod:`uolrps.bench.measure`). What cannot run here is listed with what would make it run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from uolrps.core.errors import OptionError, UserError

log = logging.getLogger("uolrps.bench")
N_IMAGES = 32


@dataclass
class BenchReport:
    model: str
    images: str  # where the frames came from
    batches: list[int]
    rows: list = field(default_factory=list)  # measure.Row
    skipped: list = field(default_factory=list)  # targets.Skipped
    reference: str | None = None

    def to_json(self) -> dict:
        return {"model": self.model, "images": self.images, "batches": self.batches, "reference": self.reference,
                "rows": [r.to_json() for r in self.rows],
                "not_measured": [{"target": s.label, "reason": s.reason} for s in self.skipped]}


def load_frames(images: str | Path | None, n: int = N_IMAGES) -> tuple[list[np.ndarray], str]:
    """Up to ``n`` BGR frames spread over the images under ``images``; generated ones when None."""
    from uolrps.core.images import list_images, read_bgr

    if images is None:
        from uolrps.export.verify import synthetic_images

        return [im[:, :, ::-1].copy() for im in synthetic_images((480, 640), n)], f"{n} generated 640x480 images"
    paths = list_images(images) if Path(images).exists() else []
    if not paths:
        raise OptionError(f"images {str(images)!r}: no images there (give a folder of .jpg/.png files)", "images")
    picks = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, min(n, len(paths)))]
    frames = [f for f in (read_bgr(p) for p in picks) if f is not None]
    if not frames:
        raise OptionError(f"images {str(images)!r}: none of the images could be read", "images")
    return frames, f"{len(frames)} images from {images}"


def parse_batches(text: str | list[int]) -> list[int]:
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        out = [int(str(b).strip()) for b in items if str(b).strip()]
    except ValueError:
        raise OptionError(f"batches must be a comma-separated list of positive ints (e.g. 1,4,8), but got {text!r}",
                          "batches") from None
    if not out or any(b < 1 for b in out):
        raise OptionError(f"batches must be a comma-separated list of positive ints (e.g. 1,4,8), but got {text!r}",
                          "batches")
    return out


def run_bench(model, batches="1", images=None, warmup: int = 10, iters: int = 50, backends: list[str] | None = None,
              threads: int | None = None, meta: str | None = None, progress=log.info) -> BenchReport:
    """Measure every target; ``progress`` receives one line per target and batch as it finishes."""
    from uolrps.bench.measure import heatmaps_of, measure
    from uolrps.bench.targets import discover, reference_of
    from uolrps.runtime.backends import load_backend
    from uolrps.runtime.preprocess import preprocess

    batch_list = parse_batches(batches)
    if warmup < 0 or iters < 1:
        raise OptionError(f"warmup must be >= 0 and iters >= 1, but got {warmup} and {iters}", "warmup", "iters")
    targets, skipped = discover(model, backends, threads, meta)
    frames, source = load_frames(images)
    report = BenchReport(str(model), source, batch_list, skipped=skipped)
    ref_path = reference_of(model)
    reference = None
    if ref_path is not None:
        with load_backend(ref_path, "ort", providers="cpu") as ref:
            reference = heatmaps_of(ref, np.stack([preprocess(f, ref.meta) for f in frames]), 1)
        report.reference = f"{ref_path.name} on ONNX Runtime CPU"
    for target in targets:
        with load_backend(target.model, target.backend, **target.options) as backend:
            for b in batch_list:
                row = measure(backend, target, frames, b, warmup, iters, reference)
                report.rows.append(row)
                progress(f"{row.label} batch {b}: {row.infer.p50_ms:.2f} ms p50, {row.infer.images_per_s:.1f} images/s")
    return report
