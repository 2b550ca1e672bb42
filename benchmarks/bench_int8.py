"""INT8 twins against their FP32 model on this CPU (ONNX Runtime): box agreement on real images, and speed at
batch 1 and 8 measured side by side (rounds interleaved, so load from other processes hits every model alike).

    python benchmarks/bench_int8.py MODEL.onnx --images ../shared/data/imagenet-loc/images [--batch 1,8]

MODEL is the FP32 file of `uolrps export --int8 --dynamic-batch`; its twins ``<stem>.int8.onnx`` (Q/DQ, the
TensorRT form) and ``<stem>.int8.cpu.onnx`` (dynamic, ViTs only) are found beside it. Agreement: the first
box of each image at the model's threshold, at the image's own size, through the runtime (uolrps.runtime);
the share of images with IoU >= 0.5 / 0.7 / 0.9 against the FP32 box. Also printed: the CPU's INT8 features
(/proc/cpuinfo) and whether ONNX Runtime asked the kernel for AMX tile data (arch_prctl), which its kernel
library does at start only where it has AMX kernels for this CPU.
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from uolrps.model.files import twin_path  # noqa: E402
from uolrps.core.images import list_images, read_bgr  # noqa: E402
from uolrps.core.boxes import first_box_iou  # noqa: E402

INT8_FLAGS = ("avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


def cpu_features() -> str:
    flags: set[str] = set()
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{model}; INT8 features: {', '.join(f for f in INT8_FLAGS if f in flags) or 'none'}"


def amx_permitted() -> bool | None:
    """Whether this process has AMX tile data permission (ARCH_GET_XCOMP_PERM, bit 18), Linux x86-64 only."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        mask = ctypes.c_uint64(0)
        if libc.syscall(158, 0x1022, ctypes.byref(mask)) != 0:  # SYS_arch_prctl, ARCH_GET_XCOMP_PERM
            return None
        return bool(mask.value & (1 << 18))
    except (OSError, AttributeError):
        return None


def session(path: Path, threads: int | None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def agreement(models: dict[str, Path], folder: Path, limit: int | None) -> dict[str, list[float]]:
    from uolrps.runtime import Localizer

    paths = list_images(folder)[:limit]
    locs = {k: Localizer(str(p)) for k, p in models.items()}
    ious: dict[str, list[float]] = {k: [] for k in models if k != "fp32"}
    for p in paths:
        frame = read_bgr(p)
        if frame is None:
            continue
        ref = locs["fp32"](frame).boxes
        for k in ious:
            ious[k].append(first_box_iou(locs[k](frame).boxes, ref))
    return ious


def speed(models: dict[str, Path], batches: list[int], size: tuple[int, int], rounds: int, iters: int,
          threads: int | None) -> dict[tuple[str, int], float]:
    """Median seconds per call of each (model, batch), over ``rounds`` interleaved rounds of ``iters`` calls."""
    rng = np.random.default_rng(0)
    sessions = {k: session(p, threads) for k, p in models.items()}
    xs = {b: rng.integers(0, 256, (b, *size, 3), dtype=np.uint8) for b in batches}
    for k, s in sessions.items():  # warm-up
        for b in batches:
            for _ in range(3):
                s.run(None, {"image": xs[b]})
    per: dict[tuple[str, int], list[float]] = {(k, b): [] for k in sessions for b in batches}
    for _ in range(rounds):
        for b in batches:
            for k, s in sessions.items():
                t0 = time.perf_counter()
                for _ in range(iters):
                    s.run(None, {"image": xs[b]})
                per[(k, b)].append((time.perf_counter() - t0) / iters)
    return {key: statistics.median(v) for key, v in per.items()}


def dynamic_conv_variant(model: Path) -> Path:
    """The encoder's convolutions quantized dynamically (ConvInteger), in a temporary file."""
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from uolrps.export.int8 import Int8Recipe, select_nodes

    m = onnx.load(str(model))
    out = Path(tempfile.mkdtemp(prefix="bench-int8-")) / "dynamic-conv.onnx"
    quantize_dynamic(m, out, op_types_to_quantize=["Conv"], nodes_to_quantize=select_nodes(m, Int8Recipe()),
                     weight_type=QuantType.QUInt8)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--images", type=Path, help="Folder for the agreement (skipped without it).")
    ap.add_argument("--limit", type=int, default=None, help="At most this many agreement images.")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: its own).")
    ap.add_argument("--dynamic-conv", action="store_true", help="Also time a dynamic-INT8 convolution variant "
                    "(what a CPU twin of a CNN would be; not written by export) to show why there is none.")
    a = ap.parse_args(argv)
    import onnxruntime as ort

    from uolrps.model.meta import ModelMeta

    models = {"fp32": a.model, "int8 (Q/DQ)": twin_path(a.model, "int8"), "int8 cpu (dynamic)": twin_path(a.model, "int8-cpu")}
    models = {k: p for k, p in models.items() if p.is_file()}
    meta = ModelMeta.from_props(session(a.model, 1).get_modelmeta().custom_metadata_map, str(a.model))
    print(f"model {a.model} ({meta.backbone}, {meta.input_size[0]}x{meta.input_size[1]}); "
          f"twins: {', '.join(p.name for p in models.values())}")
    print(f"CPU: {cpu_features()}; onnxruntime {ort.__version__}, threads {a.threads or 'default'}")
    if a.images:
        for k, v in agreement(models, a.images, a.limit).items():
            v = np.array(v)
            print(f"agreement {k} vs fp32 on {len(v)} images of {a.images}: box IoU >= 0.5 on {(v >= .5).mean():.1%}, "
                  f">= 0.7 on {(v >= .7).mean():.1%}, >= 0.9 on {(v >= .9).mean():.1%} (mean {v.mean():.3f})", flush=True)
    if a.dynamic_conv:
        models["int8 dynamic conv"] = dynamic_conv_variant(a.model)
    batches = [int(b) for b in a.batch.split(",")]
    t = speed(models, batches, tuple(meta.input_size), a.rounds, a.iters, a.threads)
    amx = amx_permitted()
    print(f"ONNX Runtime asked for AMX tile data: {'yes' if amx else 'no' if amx is False else 'unknown'}")
    print(f"{'model':<22}{'batch':>6}{'ms/call':>10}{'images/s':>10}{'vs fp32':>9}")
    for b in batches:
        for k in models:
            s = t[(k, b)]
            print(f"{k:<22}{b:>6}{s * 1e3:>10.1f}{b / s:>10.1f}{t[('fp32', b)] / s:>8.2f}x")


if __name__ == "__main__":
    main()
