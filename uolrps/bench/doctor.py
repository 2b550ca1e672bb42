"""`uolrps doctor`: one screen on what this machine can do with uolrps, and what to fix.

Each :class:`Check` is one line: what was looked at, whether it works, what was found, and (when it does not
work) the fix. Nothing here installs or downloads anything; heavy libraries are imported only to ask them
their version and abilities (a TensorRT builder is created to see whether a GPU is usable).
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from uolrps.core.errors import UserError


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: informational (neither works nor fails)
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = {True: "ok", False: "no", None: "--"}[self.ok]
        text = f"[{mark}] {self.name}: {self.detail}"
        return text + (f"\n       fix: {self.fix}" if self.fix and self.ok is False else "")


def jetson_model() -> str | None:
    """The Jetson module name (from the device tree), or None on other machines."""
    for p in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        try:
            text = Path(p).read_bytes().decode(errors="replace").strip("\x00\n ")
        except OSError:
            continue
        if "jetson" in text.lower() or Path("/etc/nv_tegra_release").exists():
            return text
    return "Jetson (L4T)" if Path("/etc/nv_tegra_release").exists() else None


def _installed(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _version(module: str) -> tuple[object | None, str]:
    try:
        m = importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - ImportError, or a broken install raising anything
        return None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return m, str(getattr(m, "__version__", "?"))


def check_python(jetson: str | None) -> list[Check]:
    out = [Check("machine", None, f"{platform.machine()} {platform.system()}" + (f", {jetson}" if jetson else ""))]
    ok = sys.version_info >= (3, 10)
    out.append(Check("Python", ok, f"{platform.python_version()} ({sys.executable})",
                     "uolrps needs Python 3.10+ (JetPack 6's TensorRT bindings are for 3.10)"))
    np_mod, v = _version("numpy")
    out.append(Check("numpy", np_mod is not None, v, "pip install numpy"))
    return out


def check_opencv(jetson: str | None) -> tuple[list[Check], object | None]:
    from uolrps.core.opencv_info import INSTALL_HINT, opencv_build

    wheels = [d for d in ("opencv-python", "opencv-python-headless", "opencv-contrib-python") if _installed(d)]
    try:
        b = opencv_build()
    except UserError as e:
        return [Check("OpenCV", False, str(e).split(":")[0], INSTALL_HINT)], None
    out = [Check("OpenCV", True, f"{b.version} from {b.path}" + (f" (pip: {', '.join(wheels)})" if wheels else ""))]
    if len(wheels) > 1:
        out.append(Check("OpenCV wheels", False, f"{' and '.join(wheels)} share the cv2 folder",
                         f"pip uninstall -y {' '.join(wheels)}, then install one: 'uolrps[opencv]' or 'uolrps[headless]'"))
    if jetson and wheels:
        out.append(Check("OpenCV on Jetson", False, "a pip wheel shadows JetPack's OpenCV (no GStreamer, no CSI camera)",
                         f"pip uninstall -y {' '.join(wheels)} in this venv (made with --system-site-packages)"))
    out += [Check("  GUI (--show)", b.gui is not None, b.gui or "none (headless build)",
                  "pip uninstall -y opencv-python-headless && pip install 'uolrps[opencv]' (needs a desktop), or use "
                  "--save / --serve instead of --show"),
            Check("  FFmpeg (files, rtsp://, http://)", b.ffmpeg, "yes" if b.ffmpeg else "no",
                  "an OpenCV build with FFmpeg (the pip wheels have it)"),
            Check("  GStreamer (gst:..., CSI cameras)", b.gstreamer, "yes" if b.gstreamer else "no",
                  "JetPack's OpenCV on a Jetson; elsewhere an OpenCV built with GStreamer (not the pip wheels)"),
            Check("  V4L2 (cam0, /dev/video0)", b.v4l2, "yes" if b.v4l2 else "no", "an OpenCV build with V4L2 (Linux)")]
    return out, b


def check_onnxruntime() -> tuple[list[Check], list[str]]:
    cpu, gpu = _installed("onnxruntime"), _installed("onnxruntime-gpu")
    out = []
    if cpu and gpu:
        out.append(Check("onnxruntime wheels", False, f"onnxruntime {cpu} and onnxruntime-gpu {gpu} are both installed "
                         "(one package folder: the last installed wins)",
                         "pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'uolrps[ort-gpu]' (GPU) or 'uolrps[ort]'"))
    ort, v = _version("onnxruntime")
    if ort is None:
        out.append(Check("ONNX Runtime", False, v, "pip install 'uolrps[ort]' (CPU) or 'uolrps[ort-gpu]' (CUDA desktop)"))
        return out, []
    providers = [p for p in ort.get_available_providers() if p != "AzureExecutionProvider"]  # a remote-call EP
    out.append(Check("ONNX Runtime", True, f"{v}, providers: {', '.join(providers)}"))
    for short, full in (("cuda", "CUDAExecutionProvider"), ("tensorrt", "TensorrtExecutionProvider")):
        out.append(Check(f"  --providers {short}", full in providers, "available" if full in providers else "not in this build",
                         "pip uninstall -y onnxruntime && pip install 'uolrps[ort-gpu]' (desktop CUDA 12); on a Jetson "
                         "the Jetson onnxruntime-gpu wheel (docs/jetson.md)"))
    return out, providers


def check_cuda() -> tuple[list[Check], list[tuple[str, tuple[int, int]]]]:
    from uolrps.core.gpu import cuda_init

    try:
        import pycuda.driver as cuda
    except Exception as e:  # noqa: BLE001
        return [Check("pycuda / CUDA driver", False, f"{type(e).__name__}: {e}",
                      "pip install pycuda (on a Jetson with /usr/local/cuda/bin on PATH, see docs/jetson.md)")], []
    try:
        n = cuda_init(cuda)
    except UserError as e:
        return [Check("pycuda / CUDA driver", False, str(e).split(": check")[0], "see `nvidia-smi`; docs/tensorrt.md")], []
    driver = cuda.get_driver_version() if hasattr(cuda, "get_driver_version") else "?"
    gpus = []
    for i in range(n):
        d = cuda.Device(i)
        gpus.append((d.name(), tuple(int(x) for x in d.compute_capability())))
    out = [Check("pycuda / CUDA driver", n > 0, f"pycuda {_installed('pycuda') or '?'}, driver API {driver}, {n} GPU(s)",
                 "no CUDA device visible: check `nvidia-smi`, CUDA_VISIBLE_DEVICES and the video/render groups")]
    out += [Check(f"  GPU {i}", True, f"{name}, compute capability {cc[0]}.{cc[1]}") for i, (name, cc) in enumerate(gpus)]
    return out, gpus


def check_tensorrt() -> tuple[list[Check], bool]:
    from uolrps.core.gpu import NULLPTR, trt_logger

    trt, v = _version("tensorrt")
    if trt is None:
        return [Check("TensorRT", False, v, "desktop: pip install 'uolrps[trt]'; Jetson: JetPack's python3-libnvinfer "
                      "in a venv made with --system-site-packages")], False
    try:
        builder = trt.Builder(trt_logger(trt))
    except TypeError as e:
        if NULLPTR not in str(e):
            raise
        return [Check("TensorRT", False, f"{v}, but no builder can be created (no usable GPU)",
                      "check `nvidia-smi` / CUDA_VISIBLE_DEVICES and that the driver supports this TensorRT's CUDA")], False
    dla = int(getattr(builder, "num_DLA_cores", 0) or 0)
    return [Check("TensorRT", True, f"{v}, builder OK"),
            Check("  DLA cores", None, f"{dla}" + (" (DLA builds: TensorRT 10.x up to 10.7, or 11.4.1+)" if dla else ""))], True


def check_export_side() -> list[Check]:
    out = []
    for mod, extra in (("torch", "export"), ("onnx", "export"), ("onnxslim", "export")):
        m, v = _version(mod)
        out.append(Check(f"{mod} (export)", m is not None, v, f"pip install 'uolrps[{extra}]' (only where you export)"))
    from uolrps.calib.download import cache_dir

    cache = cache_dir()
    files = sorted(p.name for p in cache.glob("*") if p.is_file()) if cache.is_dir() else []
    out.append(Check("weights cache", None, f"{cache} ({len(files)} files{': ' + ', '.join(files[:4]) if files else ''})"
                     + (" [UOLRPS_CACHE]" if os.environ.get("UOLRPS_CACHE") else "")))
    return out


def _check_cameras(v4l2: bool) -> Check:
    """V4L2 support is not a camera: say which /dev/video* nodes exist (none: not ok, and why)."""
    import glob

    nodes = sorted(glob.glob("/dev/video*"))
    if not v4l2:
        return Check("sources: cam0, /dev/video0", False, "no", "OpenCV with V4L2")
    if not nodes:
        return Check("sources: cam0, /dev/video0", False, "V4L2, but no camera here (no /dev/video* device)",
                     "connect a camera (or in a container pass it with --device /dev/video0)")
    return Check("sources: cam0, /dev/video0", True, f"V4L2; cameras: {', '.join(nodes)}")


def _check_triton() -> Check:
    """The triton backend's client library; informational, since a Triton server is optional."""
    grpc_mod, version = _version("tritonclient.grpc")
    http_mod, _ = _version("tritonclient.http")
    have = [p for p, m in (("grpc", grpc_mod), ("http", http_mod)) if m is not None]
    what = "uolrps run --model grpc://HOST:8001/NAME"
    if not have:
        return Check(what, None, "tritonclient not installed: pip install 'uolrps[triton]' to use a Triton server")
    return Check(what, True, f"tritonclient {_installed('tritonclient') or version} ({', '.join(have)})")


def check_openvino() -> Check:
    """OpenVINO's version, its devices and what each runs (informational: ONNX Runtime runs the same files)."""
    what = "uolrps run --backend openvino"
    ov, version = _version("openvino")
    if ov is None:
        return Check(what, None, "OpenVINO not installed: pip install 'uolrps[openvino]' (the faster CPU engine; "
                     "Intel GPUs and NPUs, docs/openvino.md)")
    try:
        core = ov.Core()
        devices = []
        for d in core.available_devices:
            caps = [c for c in core.get_property(d, "OPTIMIZATION_CAPABILITIES") if c in ("FP32", "BF16", "FP16", "INT8")]
            devices.append(f"{d} ({core.get_property(d, 'FULL_DEVICE_NAME')}: {', '.join(caps)})")
    except Exception as e:  # a broken plugin or driver: say so, do not fail the report
        return Check(what, False, f"OpenVINO {version} is installed but cannot list its devices ({e})",
                     "reinstall openvino, or the device's driver")
    return Check(what, True, f"OpenVINO {version.split('-')[0]} on {'; '.join(devices) or 'no device'}")


def diagnose() -> list[Check]:
    """Every check, in the order printed."""
    jetson = jetson_model()
    checks = check_python(jetson)
    cv_checks, cv = check_opencv(jetson)
    ort_checks, providers = check_onnxruntime()
    cuda_checks, gpus = check_cuda()
    trt_checks, trt_ok = check_tensorrt()
    checks += cv_checks + ort_checks + trt_checks + cuda_checks + check_export_side()
    has_cv = cv is not None
    checks += [
        Check("uolrps run --model model.onnx", has_cv and bool(providers), "ONNX Runtime " +
              (f"on {', '.join(p.replace('ExecutionProvider', '') for p in providers)}" if providers else "missing"),
              "install OpenCV and ONNX Runtime (above)"),
        Check("uolrps run --model model.engine", has_cv and trt_ok and bool(gpus),
              "TensorRT + pycuda + GPU" if trt_ok and gpus else "needs TensorRT, pycuda and a visible GPU",
              "see the TensorRT and pycuda lines above; build engines with `uolrps build` on this machine"),
        check_openvino(),
        _check_triton(),
        Check("sources: files, image folders", has_cv, "yes" if has_cv else "no", "install OpenCV (above)"),
        _check_cameras(has_cv and cv.v4l2),
        Check("sources: rtsp://, http(s)://", has_cv and (cv.ffmpeg or cv.gstreamer),
              "yes" if has_cv and (cv.ffmpeg or cv.gstreamer) else "no", "OpenCV with FFmpeg or GStreamer"),
        Check("sources: gst:PIPELINE, CSI cameras", has_cv and cv.gstreamer, "yes" if has_cv and cv.gstreamer else "no",
              "OpenCV with GStreamer (JetPack's on a Jetson)"),
        Check("--show window", has_cv and cv.gui is not None, "yes" if has_cv and cv.gui else "no",
              "the GUI OpenCV wheel 'uolrps[opencv]' and a display; or --save / --serve"),
    ]
    return checks


def report_json(checks: list[Check]) -> dict:
    return {"checks": [asdict(c) for c in checks], "problems": sum(c.ok is False for c in checks)}
