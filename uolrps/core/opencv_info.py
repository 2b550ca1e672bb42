"""Which OpenCV this environment loads, and what it was built with (GUI for --show, GStreamer, FFmpeg, V4L2).

uolrps does not depend on one OpenCV wheel: a Jetson keeps JetPack's OpenCV (built with GStreamer, for CSI
cameras and hardware decoding), a desktop installs ``uolrps[opencv]`` (a GUI wheel, for ``--show``), a server
``uolrps[headless]``. Two wheels in one environment (``opencv-python`` and ``opencv-python-headless``) share
the ``cv2`` folder and break each other; a pip wheel in a venv with system site packages shadows JetPack's.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from uolrps.core.errors import UserError

INSTALL_HINT = ("pip install 'uolrps[opencv]' on a desktop (windows for --show) or 'uolrps[headless]' on a "
                "server; on a Jetson use JetPack's OpenCV (a venv made with --system-site-packages, see docs/jetson.md)")


def import_cv2(purpose: str = "uolrps"):
    """The ``cv2`` module, or a UserError naming the extra to install (and the libGL case)."""
    try:
        import cv2
    except ImportError as e:
        if "libGL" in str(e) or "libgthread" in str(e):
            raise UserError(f"OpenCV is installed but cannot load ({e}): this GUI wheel needs desktop libraries; on a "
                            "server use the headless one (pip uninstall -y opencv-python && pip install "
                            "'uolrps[headless]') or install them (apt install libgl1 libglib2.0-0)") from None
        raise UserError(f"{purpose} needs OpenCV, which is not installed: {INSTALL_HINT}") from None
    return cv2


@dataclass(frozen=True)
class OpenCVBuild:
    version: str
    path: str  # where cv2 was loaded from (a pip wheel in site-packages, or /usr/lib/python3/dist-packages)
    gui: str | None  # the GUI backend (GTK3, QT5, ...) or None for a headless build
    gstreamer: bool
    ffmpeg: bool
    v4l2: bool

    def to_json(self) -> dict:
        return asdict(self)


def _yes(info: dict[str, str], key: str) -> bool:
    return info.get(key, "NO").upper().startswith("YES")


def parse_build_information(text: str) -> dict[str, str]:
    """``Key: value`` lines of ``cv2.getBuildInformation()`` (first occurrence of each key wins)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"\s+([A-Za-z0-9+/ _.-]+?):\s+(.*\S)\s*$", line)
        if m and m.group(1) not in out:
            out[m.group(1)] = m.group(2)
    return out


def gui_backend(info: dict[str, str]) -> str | None:
    gui = info.get("GUI")
    if gui is not None:
        return None if gui.upper().startswith("NONE") else gui.split()[0]
    for key in ("GTK+", "QT", "Cocoa", "Win32 UI"):  # older builds list the toolkits only
        if _yes(info, key):
            return key
    return None


def opencv_build(cv2=None) -> OpenCVBuild:
    cv2 = cv2 if cv2 is not None else import_cv2()
    info = parse_build_information(cv2.getBuildInformation())
    return OpenCVBuild(version=str(cv2.__version__), path=str(getattr(cv2, "__file__", "") or ""),
                       gui=gui_backend(info), gstreamer=_yes(info, "GStreamer"), ffmpeg=_yes(info, "FFMPEG"),
                       v4l2=_yes(info, "v4l/v4l2"))
