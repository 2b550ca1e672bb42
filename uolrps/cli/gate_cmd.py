"""`uolrps gate MODEL --backend openvino --precision bf16`: gate an engine's reduced precision (or the INT8 twin on
that engine) against the FP32 graph, and record a pass beside the model."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

log = logging.getLogger("uolrps.gate")


def gate(
    model: Path = typer.Argument(..., help="Model file: model.onnx, a twin (model.fp16.onnx, model.int8.onnx) or an "
                                 "OpenVINO IR model.xml, with the FP32 model.onnx beside it."),
    backend: str = typer.Option("openvino", "--backend", help="The engine whose precision is gated: openvino."),
    device: str = typer.Option("CPU", "--device", help="OpenVINO device: CPU, GPU or NPU (the gate holds for one device)."),
    precision: str = typer.Option("bf16", "--precision", help="Inference precision to gate: bf16, f16, or f32 (for the "
                                  "INT8 twin on OpenVINO's INT8 kernels)."),
    images: Path = typer.Option(None, "--images", help="Folder of at least 32 typical images (default: the folder w* "
                                "was calibrated on, as the model's metadata records it)."),
    n_images: int = typer.Option(32, "--n-images", help="How many images the gate compares (at least 32)."),
) -> None:
    """Gate a reduced inference precision: finite heatmaps and box IoU >= 0.9 with FP32 on >= 95% of the images
    (the INT8 twin: IoU >= 0.7 on >= 90%). A pass is recorded in MODEL.gates.json; a failure writes nothing."""
    from uolrps.eval.precision_gate import gate_precision

    result = gate_precision(model, backend=backend, device=device, precision=precision, images=images,
                            n_images=n_images, log=lambda text: typer.echo(text, err=True))
    typer.echo(f"passed: {result.model.name} at {result.entry.precision} on OpenVINO {result.entry.device} "
               f"({result.entry.device_name}); recorded in {result.record}")


def register(app: typer.Typer) -> None:
    app.command("gate")(gate)
