"""Frame sources chosen by one string, read with a timeout and a status.

Forms: ``cam0`` / ``0`` / ``/dev/video0`` (V4L2 camera), a video file, an image file, a folder or glob of
images, ``rtsp://...``, ``http(s)://...`` and ``gst:PIPELINE`` (GStreamer, e.g. a Jetson CSI camera).

A bare number ``N`` is camera N unless a file or folder named ``N`` exists in the current folder, which
then wins (with a note in the log); ``camN`` and ``/dev/videoN`` are always the camera.

Files are read losslessly (:mod:`uolrps.runtime.files`). Live sources (:mod:`uolrps.runtime.live`) run a
capture thread that keeps only the newest frame and reopens the capture when it stops delivering.
"""

from __future__ import annotations

import glob as globlib
import re
from dataclasses import replace
from pathlib import Path
from typing import Callable

from uolrps.errors import UserError
from uolrps.images import is_image, list_images
from uolrps.redact import redact
from uolrps.runtime.capture import (DEFAULT_FPS, CaptureOptions, Frame, Read, Source, SourceSpec, Status,  # noqa: F401
                                    log, opencv_capture)
from uolrps.runtime.files import IMAGE_FPS, ImageSource, VideoFileSource  # noqa: F401
from uolrps.runtime.live import DEFAULT_STALL_TIMEOUT, LiveSource

FORMS = ("cam0 / 0 / /dev/video0 (camera), a video file, an image file, a folder or glob of images "
         "('photos/*.jpg'), rtsp://host/path, http(s)://host/path, gst:PIPELINE")


class LocalPaths:
    """How :func:`parse_source` looks at a local path: ``check`` sees every path before the file system is
    asked about it, ``folder`` and ``glob`` list the images. This default is the operator's (the command line,
    ``--sources``): any path, unbounded walks. :mod:`uolrps.runtime.source_policy` gives the API's bounded one."""

    def check(self, path: Path) -> Path:
        return path

    def folder(self, path: Path) -> list[Path]:
        return list_images(path)

    def glob(self, pattern: str) -> list[Path]:
        return sorted(Path(p) for p in globlib.glob(pattern, recursive=True) if is_image(Path(p)))


def parse_source(text: str | int | Path, options: CaptureOptions | None = None,
                 paths: LocalPaths | None = None) -> SourceSpec:
    """Classify a source string (checks that files exist; opens nothing). ``paths``: how local paths are
    checked and listed (default :class:`LocalPaths`: anything, as the operator wrote it)."""
    spec = _classify(text, paths or LocalPaths())
    return spec if options is None else replace(spec, options=options)


def _classify(text: str | int | Path, paths: LocalPaths) -> SourceSpec:
    raw = str(text).strip()
    if not raw:
        raise UserError(f"empty source: use {FORMS}")
    m = re.fullmatch(r"(cam)?(\d+)", raw)
    if m:
        if m.group(1) is None and Path(raw).exists():
            log.info("source %r: the file or folder %r in the current folder, not camera %s (write cam%s for the "
                     "camera)", raw, raw, raw, raw)
        else:
            return SourceSpec("camera", int(m.group(2)), raw)
    if re.fullmatch(r"/dev/video\d+", raw) or raw.startswith("/dev/v4l/"):  # also the stable by-id/by-path names
        if not Path(raw).exists():
            raise UserError(f"camera {raw} does not exist: check the cable and `ls /dev/video* /dev/v4l/by-id`")
        return SourceSpec("camera", raw, raw)
    low = raw.lower()
    if low.startswith(("rtsp://", "rtsps://")):
        return SourceSpec("rtsp", raw, raw)
    if low.startswith(("http://", "https://")):
        return SourceSpec("http", raw, raw)
    if low.startswith("gst:"):
        if not raw[4:].strip():
            raise UserError("empty GStreamer pipeline: use gst:'nvarguscamerasrc ! ... ! appsink'")
        return SourceSpec("gst", raw[4:].strip(), raw)
    if low.startswith("file://"):
        raw = raw[7:]
    elif re.match(r"[a-z][a-z0-9+.-]*://", low):
        raise UserError(f"unknown source scheme in {raw!r}: use {FORMS}")
    path = paths.check(Path(raw).expanduser())
    if path.is_dir():
        images = paths.folder(path)
        if not images:
            raise UserError(f"folder {raw!r} holds no images (.jpg, .jpeg, .png, .bmp, .webp)")
        return SourceSpec("folder", images, raw)
    if path.is_file():
        return SourceSpec("image" if is_image(path) else "video", [path] if is_image(path) else path, raw)
    if any(c in raw for c in "*?["):
        images = paths.glob(str(path))
        if not images:
            raise UserError(f"glob {raw!r} matches no images (.jpg, .jpeg, .png, .bmp, .webp)")
        return SourceSpec("glob", images, raw)
    raise UserError(f"source {raw!r} is not an existing file or folder, nor a known form: use {FORMS}")


def open_source(source: str | int | Path | SourceSpec, loop: bool = False, capture_factory: Callable | None = None,
                backoff: tuple[float, float] = (0.5, 8.0), reopen_limit: int | None = None,
                stall_timeout: float = DEFAULT_STALL_TIMEOUT, open_now: bool = True) -> Source:
    """Open a source given by one string (see :data:`FORMS`).

    ``loop`` restarts files and image sequences at their end. ``capture_factory(spec)`` replaces OpenCV's
    ``VideoCapture`` (video files and live sources). Live sources are reopened when they stop delivering
    (failed reads, or nothing for ``stall_timeout`` s), waiting ``backoff[0]`` seconds, doubling up to
    ``backoff[1]``; ``reopen_limit`` failed recoveries in a row end the source with :data:`Status.ERROR`
    (None: keep trying). ``open_now=False`` opens a live source in its capture thread (a source that is
    down at the start is then retried like one that went down later, instead of raising here).
    """
    spec = source if isinstance(source, SourceSpec) else parse_source(source)
    factory = capture_factory or opencv_capture
    if spec.kind in ("image", "folder", "glob"):
        return ImageSource(spec, loop=loop)
    if spec.kind == "video":
        return VideoFileSource(spec, loop=loop, capture_factory=factory)
    if loop:
        log.info("loop has no effect on the live source %s", redact(spec.text))
    if spec.kind in ("rtsp", "http") and spec.options.timeout_s is None:
        spec = replace(spec, options=replace(spec.options, timeout_s=stall_timeout))
    return LiveSource(spec, capture_factory=factory, backoff=backoff, reopen_limit=reopen_limit,
                      stall_timeout=stall_timeout, open_now=open_now)
