"""`uolrps doctor`: what this machine can do with uolrps, and what to fix."""

from __future__ import annotations

import json

import typer


def doctor(as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON (for scripts).")) -> None:
    """Check Python, OpenCV (GUI, GStreamer, FFmpeg, V4L2), ONNX Runtime, TensorRT, CUDA, GPUs and DLA."""
    from uolrps.bench.doctor import diagnose, report_json

    checks = diagnose()
    if as_json:
        typer.echo(json.dumps(report_json(checks), indent=1))
        return
    for c in checks:
        typer.echo(c.line())
    n = sum(c.ok is False for c in checks)
    typer.echo(f"{n} line(s) say no: each names its fix" if n else "everything uolrps can use is here")


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
