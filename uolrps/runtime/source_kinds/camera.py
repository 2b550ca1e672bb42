"""A V4L2 (or any OpenCV) camera: ``cam0``, ``0``, ``/dev/video0``, ``/dev/v4l/by-id/...``."""

from __future__ import annotations

import re
from pathlib import Path

from uolrps.core.errors import UserError
from uolrps.runtime.capture import SourceSpec, log
from uolrps.runtime.source_kinds import SourceKind
from uolrps.runtime.source_kinds.live_open import open_live


def recognise(raw: str, paths=None) -> SourceSpec | None:
    m = re.fullmatch(r"(cam)?(\d+)", raw)
    if m:
        if m.group(1) is None and Path(raw).exists():
            log.info("source %r: the file or folder %r in the current folder, not camera %s (write cam%s for the "
                     "camera)", raw, raw, raw, raw)
            return None
        return SourceSpec("camera", int(m.group(2)), raw)
    if re.fullmatch(r"/dev/video\d+", raw) or (raw.startswith("/dev/v4l/") and ".." not in Path(raw).parts):
        # also the stable by-id/by-path names (never a way out of /dev/v4l: no file's existence is told)
        if not Path(raw).exists():
            raise UserError(f"camera {raw} does not exist: check the cable and `ls /dev/video* /dev/v4l/by-id`")
        return SourceSpec("camera", raw, raw)
    return None


def capture(spec: SourceSpec, cv2):
    opt = spec.options
    api = cv2.CAP_V4L2 if hasattr(cv2, "CAP_V4L2") and Path("/dev").is_dir() else cv2.CAP_ANY
    cap = cv2.VideoCapture(spec.target, api)
    if cap.isOpened():
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if opt.fourcc:  # before the size: the format decides which sizes exist
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*opt.fourcc))
        if opt.size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, opt.size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, opt.size[1])
        if opt.fps:
            cap.set(cv2.CAP_PROP_FPS, opt.fps)
    return cap


KINDS = (SourceKind("camera", live=True, recognise=recognise, open=open_live, capture=capture, label="camera",
                    hint="check that it exists, is connected and not used by another program (`ls /dev/video*`, "
                         "`v4l2-ctl --list-devices`)",
                    forms="cam0 / 0 / /dev/video0 (camera)", forms_rank=0, remote="camera"),)
