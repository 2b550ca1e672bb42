"""`uolrps triton-repo MODEL -o DIR`: a Triton Inference Server model repository for an exported model."""

from __future__ import annotations

from pathlib import Path

import typer


def _preferred(text: str | None) -> tuple[int, ...] | None:
    from uolrps.core.errors import UserError

    if text is None:
        return None
    try:
        return tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise UserError(f"--preferred-batch must be comma-separated batch sizes such as 4,8, but got {text!r}") from None


def triton_repo(
    model: Path = typer.Argument(..., help="The .onnx from `uolrps export`."),
    output: Path = typer.Option(..., "-o", "--output", help="Model repository folder (created; other models in it are kept)."),
    engine: Path = typer.Option(None, "--engine", help="Also a tensorrt_plan entry <name>_trt from this engine (uolrps build; default: none, the ONNX entry only)."),
    name: str = typer.Option(None, "--name", help="Model name on the server (default: the file's stem)."),
    max_batch: int = typer.Option(None, "--max-batch", help="max_batch_size of a dynamic-batch model (default 8)."),
    preferred: str = typer.Option(None, "--preferred-batch", help="Preferred batch sizes, e.g. 4,8 (default: half and all of max)."),
    queue_delay_us: int = typer.Option(1000, "--queue-delay-us", help="How long the dynamic batcher may wait to fill a batch (microseconds)."),
    kind: str = typer.Option("gpu", "--kind", help="Where instances run: gpu or cpu."),
    count: int = typer.Option(1, "--count", help="Model instances per device."),
    platform: str = typer.Option("onnxruntime", "--platform", help="openvino: Triton's OpenVINO backend on an IR of the model (metadata in the IR; docs/openvino.md); onnxruntime (onnxruntime_onnx), or python: ONNX Runtime inside "
                                 "Triton's Python backend, for servers without the onnxruntime backend (PyTriton's)."),
    force: bool = typer.Option(False, "--force", help="Replace entries of the same name."),
) -> None:
    """Write DIR/<name>/config.pbtxt + DIR/<name>/1/model.onnx (and a TensorRT entry with --engine)."""
    from uolrps.export.triton.repo import RepoSettings, write_triton_repo

    settings = RepoSettings(name=name, max_batch=max_batch, preferred=_preferred(preferred),
                            queue_delay_us=queue_delay_us, kind=kind, count=count, platform=platform)
    entries = write_triton_repo(model, output, settings, engine=engine, force=force,
                                log=lambda m: typer.echo(m, err=True))
    typer.echo(f"serve it: tritonserver --model-repository={output.resolve()}")
    typer.echo(f"use it:   uolrps run --video SOURCE --model grpc://HOST:8001/{entries[0].name}")


def register(app: typer.Typer) -> None:
    app.command("triton-repo")(triton_repo)
