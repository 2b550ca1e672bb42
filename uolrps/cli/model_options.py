"""The model options every command that opens a model shares (run, eval, explain, bench), declared once
(and the box placement, ``--upsample``, that run and eval share).

Each is a Typer option used as a parameter default; :func:`model_options` turns the values into the one
:class:`uolrps.runtime.backends.ModelOptions` the Python API takes (OpenVINO's ``device`` and ``precision`` as
its backend-specific ``extra``).
"""

from __future__ import annotations

from pathlib import Path

import typer

BACKEND = typer.Option("auto", "--backend", help="auto (by file suffix or URL), ort, openvino, trt or triton.")
RUN_BACKEND = typer.Option("auto", "--backend", help="auto (by file suffix or URL; an .onnx file runs on ONNX Runtime "
                           "unless --device/--precision ask for OpenVINO), ort, openvino, trt or triton.")
PROVIDERS = typer.Option(None, "--providers", help="ONNX Runtime providers, e.g. cuda,cpu or tensorrt,cuda,cpu "
                         "(default: cpu).")
THREADS = typer.Option(None, "--threads", help="ONNX Runtime or OpenVINO CPU threads (default: see docs/run.md).")
META = typer.Option(None, "--meta", help="For a TensorRT engine without a sidecar (built by trtexec or Polygraphy): "
                    "the ONNX file it was built from, which carries the model metadata (default: the engine's sidecar JSON).")
DEVICE = typer.Option(None, "--device", help="OpenVINO device: CPU (default), GPU, NPU or AUTO.")
PRECISION = typer.Option(None, "--precision", help="OpenVINO inference precision: f32 (default), or bf16 / f16 for a "
                         "model that passed `uolrps gate` on that device.")

# how the heatmap is placed on the image before its boxes are found (uolrps.core.boxes.PLACEMENTS): not a way
# to open the model, so not in ModelOptions, but declared once for the commands that draw or score boxes
UPSAMPLE = typer.Option(None, "--upsample", help="How the heatmap is placed on the image before its boxes are found: "
                        "authors (bilinear, aligned corners: the authors' code), bilinear, bilinear-minmax, bicubic "
                        "or bicubic-minmax (default: the model's own, so run and eval agree; for eval it applies "
                        "to the authors and wsol protocols; see docs/eval.md).")


def model_options(backend: str = "auto", providers: str | None = None, threads: int | None = None,
                  meta: Path | None = None, device: str | None = None, precision: str | None = None):
    from uolrps.runtime.backends import ModelOptions

    extra = {k: v for k, v in (("device", device), ("precision", precision)) if v is not None}
    return ModelOptions(backend, providers, threads, meta, extra)
