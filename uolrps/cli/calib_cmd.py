"""`uolrps calib IMAGES -o wstar.npz`: representer point selection from unlabeled images."""

from __future__ import annotations

from pathlib import Path

import typer


def calib(
    images: Path = typer.Argument(..., help="Folder of unlabeled images (searched recursively; class sub-folders for --classwise)."),
    output: Path = typer.Option(Path("wstar.npz"), "-o", "--output", help="Calibration file to write (.npz)."),
    backbone: str = typer.Option("vits", "--backbone", "-b", help="vits, vits8, vitb, r50 or efflite0."),
    weights: Path = typer.Option(None, "--weights", help="Checkpoint file (.pth or .safetensors); default: the published weights."),
    size: int = typer.Option(224, "--size", help="Images are stretched to SIZE x SIZE."),
    classwise: bool = typer.Option(False, "--classwise", help="One w* row per class sub-folder."),
    sampling_ratio: float = typer.Option(1.0, "--sampling-ratio", help="Deterministic fraction of the images to use."),
    batch: int = typer.Option(32, "--batch", help="Images per forward pass."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampling."),
    dilated: bool = typer.Option(False, "--dilated", help="r50 only: output stride 16 (dilated layer4)."),
    keep_representers: bool = typer.Option(False, "--keep-representers", help="Store each image's representer contribution (for `uolrps explain`)."),
    base: list[Path] = typer.Option(None, "--base", help="Merge this calibration (same backbone, weights and size) with "
                                    "IMAGES, exactly, weighted by image counts; may be given several times; "
                                    "`default`: the calibration shipped for the backbone. See docs/calib.md."),
) -> None:
    """Compute the projection vector w* from unlabeled images."""
    from uolrps.calib.wstar import compute_wstar
    from uolrps.core.paths import check_output_path

    from uolrps.calib.merge import resolve_base

    check_output_path(output, "-o", (".npz",), inputs=(weights, *(resolve_base(b, backbone) for b in base or ())))  # before minutes of calibration
    cal = compute_wstar(images, backbone=backbone, weights=weights, size=size, classwise=classwise,
                        sampling_ratio=sampling_ratio, batch=batch, seed=seed, dilated=dilated,
                        keep_representers=keep_representers, base=base or ())
    if cal.skipped:
        typer.echo(f"skipped {len(cal.skipped)} unreadable files, e.g. {', '.join(cal.skipped[:3])}", err=True)
    path = cal.save(output)
    rows = f"{cal.w.shape[0]} class rows" if cal.w.ndim == 2 else "one row"
    typer.echo(cal.report, err=True)
    for warning in cal.warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"wrote {path}: w* of {cal.w.shape[-1]} channels ({rows}) from {int(cal.n_images.sum())} images")


def register(app: typer.Typer) -> None:
    app.command("calib")(calib)
