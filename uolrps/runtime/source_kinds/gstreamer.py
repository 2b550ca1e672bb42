"""A GStreamer pipeline ending in appsink: ``gst:PIPELINE`` (a Jetson CSI camera, say).

A pipeline from a remote caller (the HTTP API, only where the run allows ``gst``) is held to
:func:`check_pipeline`: only the elements of :data:`GST_ELEMENTS`, ending in ``appsink``, network URLs only,
``filesrc`` only inside the folder the API may read.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from uolrps.core.errors import NotAllowedError, UserError
from uolrps.runtime.capture import SourceSpec
from uolrps.runtime.source_kinds import SourceKind
from uolrps.runtime.source_kinds.live_open import open_live


# GStreamer elements a pipeline from the API may use: sources that capture or receive video, and the
# elements between them and appsink. Nothing here writes a file, runs a program or opens a path it is given
# (filesrc is checked apart: only inside the allowed folder).
GST_ELEMENTS = frozenset({
    "nvarguscamerasrc", "v4l2src", "videotestsrc", "rtspsrc", "souphttpsrc",
    "queue", "capsfilter", "videoconvert", "nvvidconv", "nvvideoconvert", "videoscale", "videorate", "videoflip",
    "decodebin", "rtph264depay", "rtph265depay", "rtpjpegdepay", "h264parse", "h265parse", "jpegparse",
    "avdec_h264", "avdec_h265", "nvv4l2decoder", "omxh264dec", "omxh265dec", "jpegdec", "nvjpegdec",
    "qtdemux", "matroskademux", "tsdemux", "appsink", "filesrc",
})
GST_URL_PROPERTIES = {"rtspsrc": ("location", ("rtsp://", "rtsps://")),
                      "souphttpsrc": ("location", ("http://", "https://"))}
# a caps filter: video/x-raw(memory:NVMM), width=(int)1280, format=BGRx, framerate=30/1 (nothing else)
_CAPS = re.compile(r"(video|image)/[a-z0-9.+-]+(\(memory:[a-z0-9]+\))?"
                   r"(\s*,\s*[a-z][a-z0-9-]*\s*=\s*(\([a-z]+\)\s*)?[a-z0-9./+-]+)*", re.IGNORECASE)


def recognise(raw: str, paths=None) -> SourceSpec | None:
    if not raw.lower().startswith("gst:"):
        return None
    if not raw[4:].strip():
        raise UserError("empty GStreamer pipeline: use gst:'nvarguscamerasrc ! ... ! appsink'")
    return SourceSpec("gst", raw[4:].strip(), raw)


def capture(spec: SourceSpec, cv2):
    if not re.search(r"GStreamer:\s+YES", cv2.getBuildInformation()):
        raise UserError("this OpenCV build has no GStreamer support, so gst: sources cannot open: "
                        "use the system OpenCV (JetPack's python3-opencv) or a video file / camera form")
    return cv2.VideoCapture(spec.target, cv2.CAP_GSTREAMER)


def check_pipeline(pipeline: str, files: Path | None = None) -> None:
    """NotAllowedError unless every element of this gst-launch pipeline is in :data:`GST_ELEMENTS`, it ends in
    ``appsink``, URLs are network URLs and a ``filesrc`` reads inside ``files``."""
    segments = _split_pipeline(pipeline)
    if not segments:
        raise NotAllowedError("the GStreamer pipeline is empty")
    names = []
    for seg in segments:
        try:
            tokens = shlex.split(seg)
        except ValueError as e:
            raise NotAllowedError(f"the GStreamer pipeline cannot be read ({e}): check its quotes") from None
        if not tokens:
            raise NotAllowedError("the GStreamer pipeline has an empty element between two '!'")
        head = tokens[0]
        if re.match(r"(video|image)/", seg.strip(), re.IGNORECASE):
            if not _CAPS.fullmatch(seg.strip()):
                raise NotAllowedError(f"the GStreamer caps {seg.strip()!r} are not plain media type and fields")
            names.append("caps")
            continue
        if "." in head:
            raise NotAllowedError(f"the GStreamer pipeline refers to a named element ({head!r}): a pipeline from "
                                  "the API must be a single chain")
        if head not in GST_ELEMENTS:
            raise NotAllowedError(f"the GStreamer element {head!r} is not one a pipeline from the API may use "
                                  f"(allowed: {', '.join(sorted(GST_ELEMENTS))})")
        props = {}
        for tok in tokens[1:]:
            key, eq, value = tok.partition("=")
            if not eq:
                raise NotAllowedError(f"the GStreamer element {head} has {tok!r}, which is not property=value")
            props[key.strip().lower()] = value.strip()
        names.append(head)
        if head == "filesrc":
            where = props.get("location")
            if files is None or not where:
                raise NotAllowedError("filesrc is allowed in a pipeline from the API only when the run allows a "
                                      "folder (serve_allow: files=FOLDER) and its location is inside it")
            real = Path(os.path.realpath(where))
            if not Path(where).is_absolute() or not (files in real.parents):
                raise NotAllowedError(f"filesrc location {where} is outside {files}, the only folder this run lets "
                                      "the API read")
        elif head in GST_URL_PROPERTIES:
            key, schemes = GST_URL_PROPERTIES[head]
            if key in props and not props[key].lower().startswith(schemes):
                raise NotAllowedError(f"{head} {key} must be a {' or '.join(schemes)} URL")
        for key in props:
            if key in ("location", "uri", "device") and head not in ("filesrc", "rtspsrc", "souphttpsrc", "v4l2src"):
                raise NotAllowedError(f"the GStreamer element {head} may not be given {key}= from the API")
        if head == "v4l2src" and "device" in props and not re.fullmatch(r"/dev/video\d+", props["device"]):
            raise NotAllowedError("v4l2src device must be /dev/videoN")
    if names[-1] != "appsink":
        raise NotAllowedError("a GStreamer pipeline from the API must end in appsink")
    if names.count("appsink") != 1:
        raise NotAllowedError("a GStreamer pipeline from the API must have exactly one appsink, at its end")


def _split_pipeline(text: str) -> list[str]:
    """The segments between ``!`` outside quotes."""
    out, cur, quote = [], [], None
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            cur.append(ch)
        elif ch == "!":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [s.strip() for s in out]


def admit(spec: SourceSpec, folder: Path | None) -> None:
    """A pipeline from a remote caller: :func:`check_pipeline`."""
    check_pipeline(str(spec.target), folder)


KINDS = (SourceKind("gst", live=True, recognise=recognise, open=open_live, capture=capture,
                    label="GStreamer pipeline", hint="check the pipeline with `gst-launch-1.0` (it must end in appsink)",
                    forms="gst:PIPELINE", forms_rank=6, remote="gst", admit=admit),)
