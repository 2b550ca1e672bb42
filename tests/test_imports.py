"""The runtime (and the core and model layers under it) import with numpy and OpenCV only: no torch, onnx,
tensorrt, pycuda, nor onnxruntime at import."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "onnx", "tensorrt", "pycuda", "onnxruntime", "tritonclient", "grpc", "gevent", "openvino")

PROBE = r"""
import importlib, json, pkgutil, sys
import uolrps.core, uolrps.model, uolrps.runtime as rt
after_package = sorted(m for m in {HEAVY} if m in sys.modules)
names = [m.name for pkg in (uolrps.core, uolrps.model, rt) for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
for name in names:
    importlib.import_module(name)
for attr in rt.__all__:
    getattr(rt, attr)
import uolrps.cli.run_cmd, uolrps.bench.demo
print(json.dumps({"names": names, "after_package": after_package,
                  "loaded": sorted(m for m in {HEAVY} if m in sys.modules)}))
"""


def test_runtime_imports_nothing_heavy():
    code = PROBE.replace("{HEAVY}", repr(HEAVY))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["after_package"] == []
    assert report["loaded"] == [], f"heavy modules loaded at import: {report['loaded']}"
    for expected in ("uolrps.runtime.localizer", "uolrps.runtime.pipeline", "uolrps.runtime.sources",
                     "uolrps.runtime.live", "uolrps.runtime.outputs", "uolrps.core.drawing",
                     "uolrps.runtime.backends.ort", "uolrps.runtime.runner",
                     "uolrps.runtime.control", "uolrps.runtime.backends.triton", "uolrps.runtime.engine",
                     "uolrps.runtime.stream", "uolrps.runtime.handoff", "uolrps.core.batching",
                     "uolrps.runtime.capture", "uolrps.runtime.files", "uolrps.runtime.post",
                     "uolrps.runtime.recording", "uolrps.runtime.sourcelist", "uolrps.runtime.blas",
                     "uolrps.runtime.outputs.video", "uolrps.runtime.outputs.images",
                     "uolrps.runtime.source_policy"):
        assert expected in report["names"]


def test_ort_is_loaded_only_when_a_model_is_opened(tmp_path):
    from tinymodel import make_tiny_model

    model = make_tiny_model(tmp_path / "m.onnx")
    code = ("import sys; from uolrps.runtime import Localizer; before = 'onnxruntime' in sys.modules; "
            f"Localizer({str(model)!r}); print(before, 'onnxruntime' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "False"]


def test_build_side_and_gpu_helpers_import_nothing_heavy():
    mods = ["uolrps.core.gpu", "uolrps.model.onnx_meta", "uolrps.export.tensorrt.build", "uolrps.export.tensorrt.trtexec",
            "uolrps.export.tensorrt.onnx_info", "uolrps.export.tensorrt.profile", "uolrps.export.tensorrt.support",
            "uolrps.export.fileset", "uolrps.cli.build_cmd", "uolrps.bench", "uolrps.bench.targets",
            "uolrps.bench.measure", "uolrps.bench.report", "uolrps.bench.doctor", "uolrps.core.opencv_info",
            "uolrps.cli.bench_cmd", "uolrps.cli.doctor_cmd"]
    code = (f"import importlib, json, sys\nfor m in {mods!r}: importlib.import_module(m)\n"
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
