"""Export verification: the ONNX graph in ONNX Runtime against the PyTorch module, on a few images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uolrps.images import list_images, read_rgb, resize
from uolrps.runtime.boxes import first_box_iou, heatmap_to_boxes

N_VERIFY = 8


@dataclass
class VerifyReport:
    max_abs_diff: float
    ious: list[float]


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
    """``n`` RGB images at ``size`` spread evenly over the images under ``source``, else generated ones."""
    paths = list_images(source) if source and Path(source).exists() else []
    if paths:
        picks = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, min(n, len(paths)))]
        imgs = [im for im in (read_rgb(p) for p in picks) if im is not None]
        if imgs:
            return [resize(im, size) for im in imgs]
    return synthetic_images(size, n)


def run_onnx(model_or_path, images: np.ndarray, batch: int, dynamic_batch: bool) -> np.ndarray:
    import onnxruntime as ort

    src = model_or_path.SerializeToString() if hasattr(model_or_path, "SerializeToString") else str(model_or_path)
    sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    step = len(images) if dynamic_batch else batch
    outs = []
    for i in range(0, len(images), step):
        chunk = images[i:i + step]
        pad = step - len(chunk)
        if pad:  # a fixed batch larger than what is left: pad with copies, drop their outputs
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
        outs.append(sess.run(["heatmap"], {"image": chunk})[0][: step - pad])
    return np.concatenate(outs)


def verify(model, graph, images: list[np.ndarray], threshold: float, batch: int,
           dynamic_batch: bool) -> VerifyReport:
    import torch

    x = np.stack(images).astype(np.uint8)
    got = run_onnx(model, x, batch, dynamic_batch)
    with torch.inference_mode():
        ref = graph(torch.from_numpy(x)).numpy()
    H, W = x.shape[1:3]
    ious = [first_box_iou(heatmap_to_boxes(g[0], (H, W), threshold)[0], heatmap_to_boxes(r[0], (H, W), threshold)[0])
            for g, r in zip(got, ref)]
    return VerifyReport(float(np.abs(got - ref).max()), ious)
