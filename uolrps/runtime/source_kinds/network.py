"""Network streams read by FFmpeg: ``rtsp://`` / ``rtsps://`` and ``http://`` / ``https://`` (MJPEG, HLS, ...)."""

from __future__ import annotations

import os
from dataclasses import replace

from uolrps.runtime.capture import NETWORK_TIMEOUT_S, SourceSpec
from uolrps.runtime.source_kinds import SourceKind
from uolrps.runtime.source_kinds.live_open import open_live


def recognise(raw: str, paths=None) -> SourceSpec | None:
    low = raw.lower()
    if low.startswith(("rtsp://", "rtsps://")):
        return SourceSpec("rtsp", raw, raw)
    if low.startswith(("http://", "https://")):
        return SourceSpec("http", raw, raw)
    return None


def open_stream(spec, *, stall_timeout=None, **kw):
    """A live source whose network timeout is the stall timeout unless the options set one."""
    from uolrps.runtime.live import DEFAULT_STALL_TIMEOUT

    stall = DEFAULT_STALL_TIMEOUT if stall_timeout is None else stall_timeout
    if spec.options.timeout_s is None:
        spec = replace(spec, options=replace(spec.options, timeout_s=stall))
    return open_live(spec, stall_timeout=stall, **kw)


def capture(spec: SourceSpec, cv2):
    opt = spec.options
    ms = int(1000 * (opt.timeout_s or NETWORK_TIMEOUT_S))
    key, before = "OPENCV_FFMPEG_CAPTURE_OPTIONS", os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")
    if spec.kind == "rtsp":
        os.environ[key] = f"rtsp_transport;{opt.rtsp_transport}"
    try:
        return cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG, [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
    finally:
        if spec.kind == "rtsp":
            if before is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = before


KINDS = (
    SourceKind("rtsp", live=True, recognise=recognise, open=open_stream, capture=capture, label="RTSP stream",
               hint="check that the server is up and the URL (host, port, path, credentials) is right: try it in a "
                    "player (`ffplay -rtsp_transport tcp URL`)", forms="rtsp://host/path", forms_rank=4,
               remote="network"),
    SourceKind("http", live=True, recognise=recognise, open=open_stream, capture=capture, label="HTTP stream",
               hint="check that the server is up and the URL serves a video stream (MJPEG or a format FFmpeg "
                    "reads): try it in a player (`ffplay URL`)", forms="http(s)://host/path", forms_rank=5,
               remote="network"),
)
