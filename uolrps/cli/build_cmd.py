"""`uolrps build MODEL.fp16.onnx`: a TensorRT engine and its sidecar, on the machine that will run it."""

from __future__ import annotations

from pathlib import Path

import typer


def build(
    model: Path = typer.Argument(..., help="ONNX file from `uolrps export` (model.fp16.onnx for FP16 engines)."),
    engine_path: Path = typer.Option(None, "-o", "--output", help="Engine to write; default: MODEL with .engine."),
    workspace_gib: float = typer.Option(2.0, "--workspace-gib", help="Largest scratch memory a layer may use, GiB."),
    timing_cache: Path = typer.Option(None, "--timing-cache", help="Timing cache file to read and update (faster rebuilds; default: none)."),
    dla_core: int = typer.Option(None, "--dla", help="Run on this DLA core (default: none, the GPU; Jetson AGX Orin / Orin NX; the Orin Nano has "
                            "none), with GPU fallback. DLA builds need TensorRT 10.x up to 10.7 (JetPack 6); strongly "
                            "typed DLA builds only from TensorRT 11.4.1 with JetPack 7.2. Layers DLA lacks (ViT "
                            "LayerNorm, GELU, attention) fall back to the GPU."),
    min_batch: int = typer.Option(None, "--min-batch", help="Smallest batch of a --dynamic-batch model (default 1)."),
    opt_batch: int = typer.Option(None, "--opt-batch", help="Batch to tune for (default: the smallest)."),
    max_batch: int = typer.Option(None, "--max-batch", help="Largest batch (default 8)."),
) -> None:
    """Build a TensorRT engine (strongly typed; precision comes from the graph) and print the trtexec equivalent."""
    from uolrps.export.tensorrt.build import build_engine

    engine, sidecar = build_engine(model, engine_path, workspace_gib=workspace_gib, timing_cache=timing_cache,
                                   dla_core=dla_core, min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch,
                                   log=typer.echo)
    typer.echo(f"run it with `uolrps run --model {engine} --video SOURCE` (metadata in {sidecar.name})")


def register(app: typer.Typer) -> None:
    app.command("build")(build)
