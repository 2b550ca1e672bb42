"""`uolrps run --video SRC --model MODEL`: streaming localization of a camera, file or stream."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from uolrps.errors import UserError


def run(
    video: str = typer.Option(..., "--video", "-v", help="Source: cam0 / 0 / /dev/video0, a video file, an image, "
                              "a folder or glob of images, rtsp://..., http(s)://..., or gst:PIPELINE."),
    model: Path = typer.Option(..., "--model", "-m", help="Model file: .onnx (uolrps export) or .engine (uolrps build)."),
    threshold: float = typer.Option(None, "--threshold", "-t", help="Box threshold as a fraction of the heatmap "
                                    "maximum (default: the model's own)."),
    multi: bool = typer.Option(False, "--multi", help="A box for every region above the threshold (largest first)."),
    smooth: float = typer.Option(0.0, "--smooth", help="Heatmap smoothing over time, A in [0, 1): 0 = off, 0.8 = strong."),
    show: bool = typer.Option(False, "--show", help="Show a window with the boxes and the frame rate (q or Esc quits)."),
    save: Path = typer.Option(None, "--save", help="Write an annotated video (.mp4 or .avi), same size and rate as the source."),
    jsonl: Path = typer.Option(None, "--jsonl", help="Write one JSON line per frame (boxes, scores, timings)."),
    heatmap: bool = typer.Option(False, "--heatmap", help="Overlay the heatmap in --show and --save."),
    max_frames: int = typer.Option(None, "--max-frames", help="Stop after N frames."),
    loop: bool = typer.Option(False, "--loop", help="Restart a file or image folder at its end (until Ctrl-C)."),
    backend: str = typer.Option("auto", "--backend", help="auto (by file suffix), ort or trt."),
    providers: str = typer.Option(None, "--providers", help="ONNX Runtime providers, e.g. cuda,cpu or tensorrt,cuda,cpu (default: cpu)."),
    threads: int = typer.Option(None, "--threads", help="ONNX Runtime CPU threads (default: its own choice)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    summary_json: Path = typer.Option(None, "--summary-json", help="Also write the summary as JSON to this file."),
) -> None:
    """Localize the main object in every frame of a camera, video file, image folder or network stream."""
    from uolrps.paths import check_distinct_outputs, check_output_path, write_atomic
    from uolrps.runtime.runner import RunConfig, run as run_pipeline

    check_distinct_outputs({"--save": save, "--jsonl": jsonl, "--summary-json": summary_json})
    if summary_json is not None:
        check_output_path(summary_json, "--summary-json", inputs=(model, video))
    config = RunConfig(source=video, model=model, threshold=threshold, multi=multi, smooth=smooth, show=show,
                       save=save, jsonl=jsonl, heatmap=heatmap, max_frames=max_frames, loop=loop, backend=backend,
                       providers=providers, threads=threads, progress=not quiet)
    stats = run_pipeline(config)
    typer.echo(stats.line())
    if summary_json is not None:
        text = json.dumps(stats.summary(), indent=1) + "\n"
        write_atomic(summary_json, lambda tmp: tmp.write_text(text, encoding="utf-8"), "--summary-json")
    written = [f"{p}" for p in (save, jsonl) if p is not None]
    if written:
        typer.echo(f"wrote {', '.join(written)}", err=True)
    if stats.interrupted:
        raise typer.Exit(130)
    if stats.source_error:
        raise UserError(f"the source {video!r} failed after {stats.frames} frames: {stats.source_error}")
    if stats.frames == 0:
        raise UserError(f"no frame could be read from {video!r} ({stats.skipped} unreadable): check the source")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
