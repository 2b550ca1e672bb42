"""`uolrps explain IMAGE --model m.onnx --calib c.npz -o explain.png`: the calibration images behind a box."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from uolrps.cli.model_options import BACKEND, DEVICE, META, PRECISION, PROVIDERS, THREADS, model_options
from uolrps.core.errors import UserError


def parse_box(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    parts = text.replace(" ", "").split(",")
    try:
        box = tuple(float(p) for p in parts)
    except ValueError:
        box = ()
    if len(box) != 4:
        raise UserError(f"--box must be four numbers x1,y1,x2,y2 (inclusive pixel corners), but got {text!r}")
    return box


def explain_(
    image: Path = typer.Argument(..., help="Image to explain."),
    model: Path = typer.Option(..., "--model", "-m", help="Model file (.onnx or .engine): gives the foreground box."),
    calib: Path = typer.Option(..., "--calib", help="Calibration file written by `uolrps calib --keep-representers`."),
    box: str = typer.Option(None, "--box", help="Explain this region x1,y1,x2,y2 instead of the model's box (the default)."),
    k: int = typer.Option(8, "-k", help="How many most positive and most negative calibration images to show."),
    output: Path = typer.Option(Path("explain.png"), "-o", "--output", help="PNG grid to write."),
    as_json: bool = typer.Option(False, "--json", help="Print paths, values and patch positions as JSON."),
    weights: Path = typer.Option(None, "--weights", help="Backbone checkpoint (default: the one recorded in the calibration file)."),
    backend: str = BACKEND,
    providers: str = PROVIDERS,
    threads: int = THREADS,
    meta: Path = META,
    device: str = DEVICE,
    precision: str = PRECISION,
) -> None:
    """Show which calibration images make the model call a region foreground (representer values)."""
    from uolrps.core.drawing import explain_grid
    from uolrps.explain.representers import IDENTITY_TOL, explain
    from uolrps.core.images import read_bgr
    from uolrps.core.paths import check_output_path, write_image

    check_output_path(output, "-o", (".png",), inputs=tuple(p for p in (image, model, calib, meta) if p))  # before the backbone loads
    exp = explain(image, model, calib, box=parse_box(box), k=k, weights=weights,
                  options=model_options(backend, providers, threads, meta, device, precision))
    grid = explain_grid(exp, read_bgr(image))
    write_image(output, grid, "-o")  # the encoded size is checked against the free space before the write
    if as_json:
        typer.echo(json.dumps(exp.to_json() | {"output": str(output)}, indent=2))
        return
    typer.echo(f"{image}: foreground box {[round(float(v), 1) for v in exp.box]} ({exp.box_source}), "
               f"{len(exp.positions)} feature positions")
    typer.echo(f"projection score {exp.score:+.6f} = sum of {len(exp.values)} representer values "
               f"{exp.values.sum():+.6f} (difference {exp.identity_error:.1e})")
    for name, idx in (("most positive", exp.positive), ("most negative", exp.negative)):
        typer.echo(f"{name}:")
        for i in idx:
            typer.echo(f"  {exp.values[i]:+.4e}  {exp.reps.paths[i]}")
    if exp.identity_error > IDENTITY_TOL:
        typer.echo(f"warning: the values miss the score by {exp.identity_error:.1e} (> {IDENTITY_TOL}): the "
                   "calibration file's representers do not sum to its w*", err=True)
    if not exp.model_matches_calibration:
        typer.echo("warning: the model was exported with another w* than this calibration file's; the box comes "
                   "from the model, the values explain the calibration file's w*", err=True)
    typer.echo(f"wrote {output}")


def register(app: typer.Typer) -> None:
    app.command("explain")(explain_)
