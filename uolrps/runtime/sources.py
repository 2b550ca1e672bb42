"""Frame sources chosen by one string, read with a timeout and a status.

Forms: ``cam0`` / ``0`` / ``/dev/video0`` (V4L2 camera), a video file, an image file, a folder or glob of
images, ``rtsp://...``, ``http(s)://...`` and ``gst:PIPELINE`` (GStreamer, e.g. a Jetson CSI camera).

A bare number ``N`` is camera N unless a file or folder named ``N`` exists in the current folder, which
then wins (with a note in the log); ``camN`` and ``/dev/videoN`` are always the camera.

Files are read losslessly (:mod:`uolrps.runtime.files`). Live sources (:mod:`uolrps.runtime.live`) run a
capture thread that keeps only the newest frame and reopens the capture when it stops delivering.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

from uolrps.core.errors import NotAllowedError, UserError
from uolrps.runtime.capture import CaptureOptions, Source, SourceSpec
from uolrps.runtime.live import DEFAULT_STALL_TIMEOUT
from uolrps.runtime.source_kinds import LocalPaths, forms, is_url, kind_of, kinds


def parse_source(text: str | int | Path, options: CaptureOptions | None = None,
                 paths: LocalPaths | None = None) -> SourceSpec:
    """Classify a source string (checks that files exist; opens nothing): the first registered kind
    (:mod:`uolrps.runtime.source_kinds`) that recognises it. ``paths``: how the kinds check and list local
    paths (default :class:`~uolrps.runtime.source_kinds.LocalPaths`: anything, as the operator wrote it;
    :mod:`uolrps.runtime.source_policy` gives the API's confined, bounded one)."""
    spec = _classify(text, paths or LocalPaths())
    return spec if options is None else replace(spec, options=options)


def _classify(text: str | int | Path, paths: LocalPaths) -> SourceSpec:
    raw = str(text).strip()
    if not raw:
        raise UserError(f"empty source: use {forms()}")
    refused = None
    for kind in kinds():
        try:
            spec = kind.recognise(raw, paths)
        except NotAllowedError as e:  # ``paths`` refused a local path: a later kind may still claim the string
            refused = refused or e
            continue
        if spec is not None:
            return spec
    if refused is not None:
        raise refused
    if is_url(raw):
        raise UserError(f"unknown source scheme in {raw!r}: use {forms()}")
    raise UserError(f"source {raw!r} is not an existing file or folder, nor a known form: use {forms()}")


def open_source(source: str | int | Path | SourceSpec, loop: bool = False, capture_factory: Callable | None = None,
                backoff: tuple[float, float] = (0.5, 8.0), reopen_limit: int | None = None,
                stall_timeout: float = DEFAULT_STALL_TIMEOUT, open_now: bool = True) -> Source:
    """Open a source given by one string (the forms of :mod:`uolrps.runtime.source_kinds`).

    ``loop`` restarts files and image sequences at their end. ``capture_factory(spec)`` replaces OpenCV's
    ``VideoCapture`` (video files and live sources). Live sources are reopened when they stop delivering
    (failed reads, or nothing for ``stall_timeout`` s), waiting ``backoff[0]`` seconds, doubling up to
    ``backoff[1]``; ``reopen_limit`` failed recoveries in a row end the source with :data:`Status.ERROR`
    (None: keep trying). ``open_now=False`` opens a live source in its capture thread (a source that is
    down at the start is then retried like one that went down later, instead of raising here).
    """
    spec = source if isinstance(source, SourceSpec) else parse_source(source)
    return kind_of(spec).open(spec, loop=loop, capture_factory=capture_factory, backoff=backoff,
                              reopen_limit=reopen_limit, stall_timeout=stall_timeout, open_now=open_now)
