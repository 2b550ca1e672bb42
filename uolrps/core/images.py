"""Finding and decoding images, the same way in calibration, evaluation and the runtime (no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def list_images(root: str | Path) -> list[Path]:
    """Every image file under ``root`` (recursively), sorted by path; a single image file gives itself."""
    root = Path(root)
    if root.is_file():
        return [root] if is_image(root) else []
    return sorted(p for p in root.rglob("*") if p.is_file() and is_image(p))


def read_bgr(path: str | Path) -> np.ndarray | None:
    """Decode an 8-bit BGR image (H x W x 3, uint8), or None when the file cannot be decoded."""
    import cv2

    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:  # missing, a folder, unreadable: the caller counts it as unreadable
        return None
    if data.size == 0:
        return None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None or img.ndim != 3 or img.shape[2] != 3:
        return None
    return img


def read_rgb(path: str | Path) -> np.ndarray | None:
    """Decode an 8-bit RGB image, or None when the file cannot be decoded."""
    img = read_bgr(path)
    return None if img is None else img[:, :, ::-1].copy()


def resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Stretch ``img`` to ``size`` = (H, W) with OpenCV INTER_LINEAR: the one resize of the whole project."""
    import cv2

    h, w = size
    if img.shape[0] == h and img.shape[1] == w:
        return img
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
