"""Packaging: OpenCV is an extra (a Jetson keeps JetPack's cv2, a desktop gets a GUI wheel, a server a headless one),
the command says which extra to install when cv2 is missing, the torch floor is the real one, ONNX Runtime on a GPU
has its extra; and the OpenCV build report that `uolrps doctor` prints."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from uolrps.core.opencv_info import gui_backend, parse_build_information

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _names(reqs):
    return {Requirement(r).name for r in reqs}


def test_base_install_brings_no_opencv_wheel_and_extras_choose_one():
    assert not {n for n in _names(PROJECT["dependencies"]) if n.startswith("opencv")}
    extras = PROJECT["optional-dependencies"]
    assert _names(extras["opencv"]) == {"opencv-python"} and _names(extras["headless"]) == {"opencv-python-headless"}
    for name, reqs in extras.items():  # no other extra drags in a cv2 wheel that would shadow JetPack's
        if name not in ("opencv", "headless"):
            assert not {n for n in _names(reqs) if n.startswith("opencv")}, name
    assert _names(extras["ort-gpu"]) == {"onnxruntime-gpu"}
    assert "onnx" not in _names(extras["trt"])  # build works without it (tests/test_trt_build.py)


def test_torch_floor_is_where_the_export_call_exists():
    import torch

    floor = next(Requirement(r) for r in PROJECT["optional-dependencies"]["export"] if r.startswith("torch"))
    lows = [Version(s.version) for s in floor.specifier if s.operator == ">="]
    assert lows and min(lows) >= Version("2.5")  # torch.onnx.export gained dynamo= in 2.5; we pass dynamo=False
    assert "dynamo" in inspect.signature(torch.onnx.export).parameters


NO_CV2 = "import sys; sys.modules['cv2'] = None\nfrom uolrps.cli.main import main\nsys.exit(main({argv!r}))"


@pytest.mark.parametrize("argv", [["run", "--video", "clip.mp4", "--model", "m.onnx"], ["calib", "imgs", "-o", "w.npz"]])
def test_missing_opencv_names_the_extras(argv, tmp_path):
    out = subprocess.run([sys.executable, "-c", NO_CV2.format(argv=argv)], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "uolrps[opencv]" in out.stderr and "uolrps[headless]" in out.stderr and "JetPack" in out.stderr


HEADLESS_5 = """General configuration for OpenCV 5.0.0 =====================================
  GUI:                           NONE
  Video I/O:
    FFMPEG:                      YES
    GStreamer:                   NO
    v4l/v4l2:                    YES (linux/videodev2.h)
"""
DESKTOP_4 = """  GUI:                           QT5
    QT:                          YES (ver 5.15.13 )
  Video I/O:
    FFMPEG:                      YES
    GStreamer:                   NO
"""
JETPACK_OLD = """  GUI:
    GTK+:                        YES (ver 3.24.33)
  Video I/O:
    FFMPEG:                      YES
    GStreamer:                   YES (1.20.3)
    v4l/v4l2:                    YES (linux/videodev2.h)
"""


@pytest.mark.parametrize("text, gui, gst", [(HEADLESS_5, None, "NO"), (DESKTOP_4, "QT5", "NO"),
                                            (JETPACK_OLD, "GTK+", "YES (1.20.3)")])
def test_build_information_is_read(text, gui, gst):
    info = parse_build_information(text)
    assert gui_backend(info) == gui and info["GStreamer"] == gst and info["FFMPEG"] == "YES"


def test_this_environment_report():
    cv2 = pytest.importorskip("cv2")
    from uolrps.core.opencv_info import opencv_build

    b = opencv_build(cv2)
    assert b.version == cv2.__version__ and b.path.endswith(".py")
    assert (b.gui is None) == bool(re.search(r"GUI:\s+NONE", cv2.getBuildInformation()))
