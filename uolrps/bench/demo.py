"""Demo data from photos that ship with scikit-image: a few JPEGs and a short pan/zoom clip.

``uolrps demo-data DIR`` writes ``DIR/images/*.jpg`` and ``DIR/clip.mp4`` (90 frames, 640 x 480, 30 FPS),
so ``uolrps run`` can be tried without a camera or a download. They are written as one set through the checked
output layer (:func:`uolrps.export.fileset.write_set`): a device, FIFO, socket or folder at one of their paths
is refused before any work, and a full disk leaves the files there before untouched, with one line.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uolrps.core.checked_io import free_bytes, refuse_special
from uolrps.core.errors import UserError
from uolrps.export.fileset import write_set

RESERVE_BYTES = 1 << 20  # kept free while the clip is written: its closing index and the folder's entries

PHOTOS = ("chelsea", "astronaut", "coffee", "rocket", "camera")  # skimage.data functions, bundled offline


@dataclass(frozen=True)
class DemoData:
    images: tuple[Path, ...]
    clip: Path
    frames: int
    fps: float
    size: tuple[int, int]  # (H, W) of the clip


def load_photos() -> dict[str, np.ndarray]:
    """The bundled photos as BGR uint8 arrays (grayscale ones expanded to three channels)."""
    try:
        import skimage.data as data
    except ImportError:
        raise UserError("demo data needs scikit-image: pip install scikit-image") from None
    photos = {}
    for name in PHOTOS:
        img = np.asarray(getattr(data, name)())
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        photos[name] = np.ascontiguousarray(img[:, :, 2::-1]).astype(np.uint8)
    return photos


def _pan_zoom(img: np.ndarray, u: float, size: tuple[int, int]) -> np.ndarray:
    """The view at progress u in [0, 1]: a 4:3 window shrinking from 100% to 75% while it drifts right/down."""
    import cv2

    H, W = size
    h, w = img.shape[:2]
    aspect = W / H
    cw = min(w, h * aspect)  # the largest window of the clip's aspect ratio
    ch = cw / aspect
    scale = 1.0 - 0.25 * u
    cw, ch = cw * scale, ch * scale
    x0 = (w - cw) * (0.2 + 0.6 * u)
    y0 = (h - ch) * (0.3 + 0.4 * u)
    # an affine map from the window to the frame: sub-pixel smooth motion, no integer crop jitter
    m = np.array([[W / cw, 0.0, -x0 * W / cw], [0.0, H / ch, -y0 * H / ch]], dtype=np.float64)
    return cv2.warpAffine(img, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def make_demo_data(root: str | Path, frames: int = 90, fps: float = 30.0, size: tuple[int, int] = (480, 640),
                   photos: tuple[str, ...] = PHOTOS) -> DemoData:
    """Write ``root/images/<name>.jpg`` and ``root/clip.mp4`` (a slow pan and zoom over each photo in turn)."""
    import cv2

    if frames < len(photos):
        raise UserError(f"the demo clip needs at least {len(photos)} frames (one per photo), but got {frames}")
    root = Path(root)
    for p in (root, root / "images"):
        if p.exists() and not p.is_dir():
            raise UserError(f"{str(p)!r} is a file: give a folder for the demo data (it gets images/ and clip.mp4)")
    clip = root / "clip.mp4"
    targets = [root / "images" / f"{name}.jpg" for name in photos]
    for target in (*targets, clip):  # before any work: a device, FIFO, socket or folder there is never written into
        refuse_special(target, "demo-data")
    try:
        (root / "images").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot make the folder {str(root / 'images')!r} ({e.strerror}): choose another place") from None
    bgr = load_photos()
    items = []
    for name, path in zip(photos, targets):
        ok, data = cv2.imencode(".jpg", bgr[name], [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            raise UserError(f"OpenCV cannot encode {path.name}")
        items.append((path, lambda tmp, payload=data.tobytes(): tmp.write_bytes(payload)))
    items.append((clip, lambda tmp: _write_clip(tmp, bgr, photos, frames, fps, size)))
    write_set(items, "demo-data")  # the images and the clip: all of them, whole, or none (said in one line)
    return DemoData(tuple(targets), clip, frames, fps, size)


def _write_clip(path: Path, bgr: dict, photos: tuple[str, ...], frames: int, fps: float,
                size: tuple[int, int]) -> None:
    """The pan/zoom clip into ``path``; an OSError when it could not be written whole (OpenCV's writer does not
    report a full disk: the free space is watched while writing and the finished file read back)."""
    import cv2

    H, W = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (W, H))
    if not writer.isOpened():
        raise UserError(f"OpenCV cannot write {path.name} (mp4v codec)")
    try:
        per = np.array_split(np.arange(frames), len(photos))
        for name, idx in zip(photos, per):
            for k in range(len(idx)):
                free = free_bytes(path.parent)
                if free is not None and free < RESERVE_BYTES:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                writer.write(_pan_zoom(bgr[name], k / max(len(idx) - 1, 1), size))
    finally:
        writer.release()
    cap = cv2.VideoCapture(str(path))
    try:
        n = 0
        while cap.isOpened() and cap.grab():
            n += 1
    finally:
        cap.release()
    if n != frames:  # cut short: a full disk (the usual cause) or an I/O error
        free = free_bytes(path.parent)
        raise OSError(errno.ENOSPC if free is not None and free < RESERVE_BYTES else errno.EIO,
                      f"the clip holds {n} of {frames} frames")
