"""A video file, read frame by frame without loss (any container FFmpeg reads)."""

from __future__ import annotations

from pathlib import Path

from uolrps.core.images import is_image
from uolrps.runtime.capture import SourceSpec
from uolrps.runtime.source_kinds import LocalPaths, SourceKind, is_url, path_of


def recognise(raw: str, paths: LocalPaths | None = None) -> SourceSpec | None:
    if is_url(raw):
        return None
    path = (paths or LocalPaths()).check(path_of(raw))
    return SourceSpec("video", path, raw) if path.is_file() and not is_image(path) else None


def open_video(spec, *, loop=False, capture_factory=None, **_):
    from uolrps.runtime.capture import opencv_capture
    from uolrps.runtime.files import VideoFileSource

    return VideoFileSource(spec, loop=loop, capture_factory=capture_factory or opencv_capture)


KINDS = (SourceKind("video", live=False, recognise=recognise, open=open_video, label="video file",
                    capture_options=False, files=lambda spec: [Path(spec.target)],
                    stream_name=lambda spec: Path(str(spec.text)).stem, forms="a video file", forms_rank=1,
                    remote="files"),)
