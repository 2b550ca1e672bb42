"""`uolrps doctor` on this machine (no GPU) and, through the TensorRT and pycuda fakes, on what a GPU machine and a
Jetson would report: every "no" names its fix."""

from __future__ import annotations

import json
import sys
import types

import pytest

from fake_pycuda import make_pycuda
from fake_tensorrt import make_trt
from uolrps.cli.main import main
from uolrps.bench import doctor


@pytest.fixture
def gpu_machine(monkeypatch):
    def install(trt=None, cuda=None):
        if trt is not None:
            monkeypatch.setitem(sys.modules, "tensorrt", trt)
        if cuda is not None:
            pkg = types.ModuleType("pycuda")
            pkg.driver = cuda
            monkeypatch.setitem(sys.modules, "pycuda", pkg)
            monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
    return install


def _by_name(checks):
    return {c.name.strip(): c for c in checks}


def test_json_on_this_machine(capsys):
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = [c["name"].strip() for c in report["checks"]]
    for want in ("Python", "numpy", "OpenCV", "GUI (--show)", "ONNX Runtime", "TensorRT", "pycuda / CUDA driver",
                 "uolrps run --model model.onnx", "uolrps run --model model.engine", "--show window"):
        assert want in names
    assert all(c["fix"] for c in report["checks"] if c["ok"] is False)
    assert report["problems"] == sum(c["ok"] is False for c in report["checks"])


def test_text_lines_name_the_fix(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("[no]"):
            assert lines[i + 1].strip().startswith("fix: ")


def test_a_gpu_machine_with_dla(gpu_machine):
    gpu_machine(make_trt("10.3.0", dla_cores=2), make_pycuda(devices=(("Orin", (8, 7)),)))
    c = _by_name(doctor.diagnose())
    assert c["TensorRT"].ok and "10.3.0, builder OK" in c["TensorRT"].detail
    assert c["DLA cores"].detail.startswith("2 ")
    assert c["GPU 0"].detail == "Orin, compute capability 8.7"
    assert c["uolrps run --model model.engine"].ok


def test_no_usable_gpu_is_said_with_the_fix(gpu_machine):
    gpu_machine(make_trt(gpu=False), make_pycuda(driver_without_device=True))
    c = _by_name(doctor.diagnose())
    assert c["TensorRT"].ok is False and "no builder can be created" in c["TensorRT"].detail
    assert c["pycuda / CUDA driver"].ok is False and "no CUDA-capable device" in c["pycuda / CUDA driver"].detail
    assert c["uolrps run --model model.engine"].ok is False


def test_jetson_with_a_pip_opencv_wheel(monkeypatch):
    monkeypatch.setattr(doctor, "jetson_model", lambda: "NVIDIA Jetson AGX Orin Developer Kit")
    monkeypatch.setattr(doctor, "_installed", lambda d: "4.10.0" if d == "opencv-python-headless" else None)
    c = _by_name(doctor.diagnose())
    assert c["OpenCV on Jetson"].ok is False and "shadows JetPack's OpenCV" in c["OpenCV on Jetson"].detail
    assert "--system-site-packages" in c["OpenCV on Jetson"].fix


def test_both_onnxruntime_wheels(monkeypatch):
    monkeypatch.setattr(doctor, "_installed", lambda d: {"onnxruntime": "1.20", "onnxruntime-gpu": "1.20"}.get(d))
    c = _by_name(doctor.diagnose())
    assert c["onnxruntime wheels"].ok is False and "uolrps[ort-gpu]" in c["onnxruntime wheels"].fix
