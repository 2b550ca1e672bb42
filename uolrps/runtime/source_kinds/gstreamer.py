"""A GStreamer pipeline ending in appsink: ``gst:PIPELINE`` (a Jetson CSI camera, say)."""

from __future__ import annotations

import re

from uolrps.core.errors import UserError
from uolrps.runtime.capture import SourceSpec
from uolrps.runtime.source_kinds import SourceKind
from uolrps.runtime.source_kinds.live_open import open_live


def recognise(raw: str) -> SourceSpec | None:
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


KINDS = (SourceKind("gst", live=True, recognise=recognise, open=open_live, capture=capture,
                    label="GStreamer pipeline", hint="check the pipeline with `gst-launch-1.0` (it must end in appsink)",
                    forms="gst:PIPELINE", forms_rank=6),)
