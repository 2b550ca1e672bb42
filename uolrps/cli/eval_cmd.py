"""`uolrps eval DATASET --model model.onnx`: localization accuracy of the shipped model on a data set."""

from __future__ import annotations

from pathlib import Path

import typer

from uolrps.cli.model_options import (BACKEND, DEVICE, META, PRECISION, PROVIDERS, THREADS, UPSAMPLE,
                                      model_options)


def eval_(
    dataset: Path = typer.Argument(..., help="Data set folder or annotation file (CSV, VOC, CUB, wsolevaluation, COCO)."),
    model: str = typer.Option(..., "--model", "-m", help="Model file (.onnx or TensorRT .engine), or a Triton model "
                              "URL grpc://HOST:8001/NAME."),
    fmt: str = typer.Option("auto", "--format", help="auto, csv, voc, cub, wsol or coco."),
    protocol: str = typer.Option("both", "--protocol", help="both (authors and wsol), authors, wsol, wsolevaluation "
                                 "or uolwrps (a published pipeline end to end, beside authors), or all: see "
                                 "docs/eval.md for which paper's numbers each is comparable with."),
    upsample: str = UPSAMPLE,
    split: str = typer.Option(None, "--split", help="Which split: a value of a CSV's split column, a VOC ImageSets/Main/<SPLIT>.txt list, train or test "
                         "for CUB, a wsolevaluation split folder (default: all images; test for CUB and wsolevaluation)."),
    images_root: Path = typer.Option(None, "--images-root", help="Folder the image paths are relative to (default: found next to the annotations)."),
    write_threshold: bool = typer.Option(False, "--write-threshold", help="Store the best threshold in the model file's metadata."),
    json_path: Path = typer.Option(None, "--json", help="Write the full result as JSON to this file."),
    save_vis: Path = typer.Option(None, "--save-vis", help="Write overlays of the worst and best cases into this folder."),
    n_vis: int = typer.Option(8, "--n-vis", help="How many worst and best cases --save-vis writes."),
    channel: int = typer.Option(0, "--channel", help="Heatmap channel to evaluate (class-wise models)."),
    caam: str = typer.Option(None, "--caam", help="Also evaluate the CAAM baseline (channel sum of the features) of this backbone (needs torch; default: none)."),
    caam_weights: Path = typer.Option(None, "--caam-weights", help="Checkpoint for --caam (default: the published weights)."),
    backend: str = BACKEND,
    providers: str = PROVIDERS,
    threads: int = THREADS,
    meta: Path = META,
    device: str = DEVICE,
    precision: str = PRECISION,
    workers: int = typer.Option(0, "--workers", help="Threads for decoding and the sweep (0: up to 2)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Evaluate a model's boxes against ground truth (MaxBoxAccV2, CorLoc, PxAP where masks exist)."""
    from uolrps.eval.evaluate import evaluate
    from uolrps.eval.report import format_table
    from uolrps.core.options import check_at_least

    check_at_least(workers, 0, "--workers (0: automatic)")

    res = evaluate(dataset, model, fmt=fmt, protocol=protocol, split=split, images_root=images_root,
                   write_threshold=write_threshold, json_path=json_path, save_vis=save_vis, n_vis=n_vis,
                   channel=channel, caam_backbone=caam, caam_weights=caam_weights, progress=not quiet,
                   workers=workers or None, options=model_options(backend, providers, threads, meta, device,
                                                                      precision),
                   upsample=upsample)
    typer.echo(format_table(res))


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_)
