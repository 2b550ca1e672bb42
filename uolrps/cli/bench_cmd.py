"""`uolrps bench MODEL`: latency, images/s and agreement of every backend and precision twin beside MODEL."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from uolrps.cli.model_options import META, THREADS


def bench(
    model: str = typer.Argument(..., help="model.onnx (its .fp16/.int8 twins and engines beside it are measured too), "
                                "an engine, or a served model's URL."),
    batches: str = typer.Option("1", "--batch", "-b", help="Batch sizes, comma-separated (e.g. 1,4,8)."),
    images: Path = typer.Option(None, "--images", help="Folder of real images for the timing and the agreement "
                                "(default: 32 generated 640x480 images)."),
    warmup: int = typer.Option(10, "--warmup", help="Untimed calls before timing."),
    iters: int = typer.Option(50, "--iters", help="Timed calls per target and batch size."),
    backends: str = typer.Option(None, "--backends", help="Only these, e.g. ort:cpu,trt (default: all that run here)."),
    threads: int = THREADS,
    meta: Path = META,
    json_out: Path = typer.Option(None, "--json", help="Also write the results as JSON to this file."),
) -> None:
    """Warm-up, then p50/p95/p99 latency and images/s (inference alone and the full per-frame path), and agreement
    with the FP32 ONNX Runtime result (max heatmap difference, share of boxes with IoU >= 0.9)."""
    from uolrps.bench import run_bench
    from uolrps.bench.report import table
    from uolrps.core.paths import check_output_path, write_atomic

    if json_out is not None:
        check_output_path(json_out, "--json", (".json",), inputs=(model, meta))
    report = run_bench(model, batches, images, warmup, iters, backends.split(",") if backends else None, threads,
                       str(meta) if meta else None, progress=lambda m: typer.echo(m, err=True))
    typer.echo(table(report))
    if json_out is not None:
        text = json.dumps(report.to_json(), indent=1) + "\n"
        write_atomic(json_out, lambda tmp: tmp.write_text(text, encoding="utf-8"), "--json", size=len(text.encode()))
        typer.echo(f"wrote {json_out}", err=True)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
