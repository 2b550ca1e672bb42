"""``Localizer``: a uolrps model file plus the box protocol, callable on one BGR frame.

The three stages are also public (``preprocess``, ``infer``, ``postprocess``) so that the streaming pipeline
can run them in separate threads and give exactly the same results as calling the localizer frame by frame.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from uolrps.core.errors import UserError
from uolrps.model.files import is_engine
from uolrps.core.options import check_interval, check_positive, check_smooth, check_threshold
from uolrps.core.batching import chunk_ranges
from uolrps.core.boxes import check_placement
from uolrps.runtime.backends import ModelOptions, open_model
from uolrps.runtime.blas import limit_blas_threads
from uolrps.runtime.post import PostProcessor
from uolrps.runtime.preprocess import preprocess
from uolrps.runtime.result import LocalizationResult

DEFAULT_BATCH = 16  # frames per backend call in :meth:`Localizer.heatmaps` when the batch axis is dynamic


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


def as_frame(frame) -> np.ndarray:
    """An array as given (``preprocess`` checks it is BGR uint8 H x W x 3), or the image read from a path;
    anything else is a UserError saying what is expected."""
    if isinstance(frame, (str, Path)):
        from uolrps.core.images import read_bgr

        path = Path(frame)
        if not path.is_file():
            raise UserError(f"image {str(path)!r} does not exist (give a BGR uint8 array or an image file)")
        img = read_bgr(path)
        if img is None:
            raise UserError(f"{str(path)!r} is not a readable image")
        return img
    if not isinstance(frame, np.ndarray):
        raise UserError(f"a frame must be a BGR uint8 H x W x 3 array (as cv2.imread gives) or an image path, "
                        f"but got {type(frame).__name__}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or frame.shape[0] == 0 or frame.shape[1] == 0:
        what = ("an empty array" if frame.size == 0 else
                "a gray (H x W) image: convert it with cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)" if frame.ndim == 2 else
                "a 4-channel image: drop alpha with cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)"
                if frame.ndim == 3 and frame.shape[2] == 4 else
                f"{frame.dtype} values: convert to uint8 0-255" if frame.ndim == 3 and frame.shape[2] == 3 else
                f"an array of shape {frame.shape}")
        raise UserError(f"a frame must be a BGR uint8 H x W x 3 array (as cv2.imread gives), but got {what} "
                        f"({frame.dtype} {frame.shape})")
    return frame


def threshold_origin(model_path: str | Path, meta, given: bool) -> str:
    """Where the threshold in effect comes from, in words: ``given`` (the caller's threshold: the argument, or
    run's --threshold), or the model's metadata / the engine's sidecar and what chose the value stored there
    (``default`` = the export's default)."""
    if given:
        return "given"
    path = Path(str(model_path))
    if is_engine(path):
        from uolrps.model.sidecar import sidecar_path

        where = f"engine sidecar {sidecar_path(path).name}"
    else:
        where = f"model metadata of {path.name}"
    return f"{where} ({meta.threshold_source})"


class Localizer:
    """Localize the main object of BGR frames with a uolrps model (``.onnx`` or TensorRT ``.engine``).

    - ``threshold``: box threshold t as a fraction of the heatmap's maximum; None takes the model's own.
    - ``backend``: ``auto`` (by file suffix or URL), ``ort``, ``openvino``, ``trt`` or ``triton``; ``providers``: ONNX Runtime
      execution providers, e.g. ``"cuda,cpu"``, and ``threads``: its intra-op CPU threads (``ort`` and
      ``openvino``; default: their own); ``meta``: an engine's ONNX file when it has no sidecar. ``options`` (a
      :class:`uolrps.runtime.backends.ModelOptions`) gives all of these at once, backend-specific ones included
      (OpenVINO's ``device`` and ``precision``).
    - ``multi``: every contour whose area is at least ``min_area`` (a fraction of the frame area), largest
      first, instead of the largest one only.
    - ``upsample``: how the map is placed on the frame (``uolrps.core.boxes.PLACEMENTS``); None takes the
      model's own (its metadata key ``upsample``; ``authors`` for a file made before that key existed).
    - ``smooth``: A in [0, 1): exponential moving average of the heatmap over successive calls,
      ``m = A * m_prev + (1 - A) * heatmap`` (0 = off). Call :meth:`reset` between unrelated videos.

    ``localizer(frame_bgr)`` (a BGR uint8 array, or an image file's path) returns a
    :class:`LocalizationResult`; :meth:`heatmaps` returns raw maps for many frames at once (batched when the
    model allows), for evaluation. ``threshold_origin`` says where the threshold in effect came from: the
    ``threshold`` argument, the ONNX model's metadata or the engine's sidecar (with what chose it there).
    """

    def __init__(self, model_path: str | Path, threshold: float | None = None, backend: str = "auto",
                 multi: bool = False, smooth: float = 0.0, providers: str | Iterable[str] | None = None,
                 min_area: float = 0.01, threads: int | None = None, meta: str | Path | None = None,
                 options: ModelOptions | None = None, upsample: str | None = None) -> None:
        check_threshold(threshold)
        check_smooth(smooth)
        check_interval(min_area, "min_area", 0, 1, "[)", " (a fraction of the frame area)")
        if upsample is not None:
            check_placement(upsample)
        limit_blas_threads()
        # meta: for a TensorRT engine without a sidecar (trtexec, Polygraphy), the ONNX file it was built from
        if options is None:
            options = ModelOptions(backend, providers, threads, meta)
        self.backend = open_model(model_path, options)
        self.meta = self.backend.meta
        self._post = PostProcessor(float(self.meta.threshold if threshold is None else threshold), multi=multi,
                                   smooth=smooth, min_area=min_area, placement=upsample or self.meta.upsample)
        self.threshold_origin = threshold_origin(self.backend.caps.meta_from or model_path, self.meta,
                                                 threshold is not None)

    threshold = property(lambda self: self._post.threshold, lambda self, v: setattr(self._post, "threshold", float(v)))
    multi = property(lambda self: self._post.multi, lambda self, v: setattr(self._post, "multi", bool(v)))
    smooth = property(lambda self: self._post.smooth, lambda self, v: setattr(self._post, "smooth", float(v)))
    min_area = property(lambda self: self._post.min_area, lambda self, v: setattr(self._post, "min_area", float(v)))
    upsample = property(lambda self: self._post.placement)

    def postprocessor(self) -> PostProcessor:
        """A post-processor with this localizer's settings and a smoothing state of its own (one per stream)."""
        return self._post.copy()

    @property
    def max_batch(self) -> int | None:
        """The largest batch one backend call takes: the fixed batch, the engine profile's largest, a Triton
        model's max_batch_size, or None (any) for a dynamic ONNX batch axis."""
        return self.backend.caps.max_batch

    # ---- the three stages -----------------------------------------------------------------------------
    def preprocess(self, frame_bgr: np.ndarray) -> np.ndarray:
        """One BGR uint8 frame -> the model's H' x W' x 3 input (resize by stretching, colour order)."""
        return preprocess(frame_bgr, self.meta)

    def infer(self, images: np.ndarray) -> np.ndarray:
        """N x H' x W' x 3 uint8 model inputs -> N x K x h x w float32 heatmaps."""
        return self.backend(images)

    def postprocess(self, heatmap: np.ndarray, frame_size: tuple[int, int], frame_index: int = 0,
                    timestamp: float = 0.0, timings: dict[str, float] | None = None) -> LocalizationResult:
        """K x h x w heatmap of one frame -> boxes on the (H, W) frame; applies ``smooth`` (in call order)."""
        return self._post(heatmap, frame_size, frame_index, timestamp, timings)

    # ---- whole frames ---------------------------------------------------------------------------------
    def __call__(self, frame_bgr: np.ndarray | str | Path, frame_index: int = 0,
                 timestamp: float = 0.0) -> LocalizationResult:
        frame_bgr = as_frame(frame_bgr)
        t0 = time.perf_counter()
        x = self.preprocess(frame_bgr)
        timings = {"pre": _ms(t0)}
        t0 = time.perf_counter()
        hm = self.infer(x[None])[0]
        timings["infer"] = _ms(t0)
        return self.postprocess(hm, frame_bgr.shape[:2], frame_index, timestamp, timings)

    def heatmaps(self, frames_bgr: Sequence[np.ndarray], batch_size: int | None = None) -> np.ndarray:
        """Raw heatmaps (N x K x h x w float32, no smoothing) of BGR frames of any sizes.

        Frames are preprocessed and sent in batches of ``batch_size`` (default 16 when the model's batch
        axis is dynamic, else the model's fixed batch size; a last, partial batch for a fixed-batch model
        is padded with copies whose outputs are dropped).
        """
        n = len(frames_bgr)
        if n == 0:
            return np.zeros((0, len(self.meta.classes), *self.meta.grid), dtype=np.float32)
        fixed = self.backend.input_spec.shape[0]
        step = int(batch_size or fixed or DEFAULT_BATCH)
        check_positive(step, "batch_size", "int")
        out = []
        for start, stop in chunk_ranges(n, step):
            chunk = np.stack([self.preprocess(as_frame(f)) for f in frames_bgr[start:stop]])
            out.append(self.infer(chunk))  # the backend pads a fixed batch's last chunk
        return out[0] if len(out) == 1 else np.concatenate(out, axis=0)

    def reset(self) -> None:
        """Forget the smoothing state (start of a new, unrelated video)."""
        self._post.reset()

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "Localizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Localizer({self.meta.backbone}, threshold={self.threshold}, multi={self.multi}, "
                f"smooth={self.smooth}, backend={self.backend!r})")
