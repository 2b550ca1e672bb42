"""`uolrps export`: one ONNX graph from uint8 frame to heatmap, plus its FP16 twin with --fp16 and INT8 twins
with --int8."""

from __future__ import annotations

from pathlib import Path

import typer


def export(
    backbone: str = typer.Option("vits", "--backbone", "-b", help="vits, vits8, vitb, r50 or efflite0."),
    output: Path = typer.Option(Path("model.onnx"), "-o", "--output", help="ONNX file to write."),
    weights: Path = typer.Option(None, "--weights", help="Checkpoint file; default: the published weights."),
    wstar: Path = typer.Option(None, "--wstar", help="Calibration file from `uolrps calib` (default: the w* shipped for efflite0; other backbones need this or --calib-images)."),
    calib_images: Path = typer.Option(None, "--calib-images", help="Calibrate on these images instead of --wstar (default: none)."),
    size: int = typer.Option(224, "--size", help="Input size S (S x S); a multiple of the ViT patch size."),
    batch: int = typer.Option(1, "--batch", help="Fixed batch size."),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="Dynamic batch axis."),
    fp16: bool = typer.Option(False, "--fp16", help="Also write <output stem>.fp16.onnx (mixed precision)."),
    class_index: int = typer.Option(None, "--class-index", help="Class-wise w*: export this row only (default: all rows)."),
    threshold: float = typer.Option(None, "--threshold", help="Default box threshold stored in the model "
                                    "[default: the backbone's: 0.4 for efflite0, 0.5 for the others]."),
    dilated: bool = typer.Option(False, "--dilated", help="r50 only: output stride 16."),
    triton_repo: Path = typer.Option(None, "--triton-repo", help="Also write a Triton model repository entry "
                                     "DIR/<output stem>/ (defaults of `uolrps triton-repo`, which has the options)."),
    int8: bool = typer.Option(False, "--int8", help="Also write <output stem>.int8.onnx (Q/DQ, for TensorRT) and, "
                              "for ViTs, <output stem>.int8.cpu.onnx (for ONNX Runtime on a CPU); see docs/int8.md."),
    int8_calib: Path = typer.Option(None, "--int8-calib", help="INT8 calibration images (default: --calib-images, "
                                    "else the folder the --wstar file was calibrated on)."),
    int8_images: int = typer.Option(None, "--int8-images", help="How many calibration images to sample [default: 256]."),
    openvino: bool = typer.Option(False, "--openvino", help="Also write <output stem>.xml/.bin, an OpenVINO IR with "
                                  "the model metadata (docs/openvino.md)."),
) -> None:
    """Export encoder + w* as one verified ONNX graph (uint8 image in, heatmap out)."""
    from uolrps.export.onnx_export import export_model

    res = export_model(backbone=backbone, output=output, weights=weights, wstar=wstar, calib_images=calib_images,
                       size=size, batch=batch, dynamic_batch=dynamic_batch, fp16=fp16, class_index=class_index,
                       threshold=threshold, dilated=dilated, log=lambda m: typer.echo(m, err=True), int8=int8,
                       int8_calib=int8_calib, int8_images=int8_images, triton_repo=triton_repo, openvino=openvino)
    typer.echo(f"wrote {res.path} ({res.meta.backbone}, input {res.meta.input_size[0]}x{res.meta.input_size[1]}, "
               f"heatmap {len(res.meta.classes)} x {res.meta.grid[0]} x {res.meta.grid[1]})")
    if res.fp16_path:
        typer.echo(f"wrote {res.fp16_path} (mixed precision; build it with `uolrps build {res.fp16_path}`)")
    for t in res.int8:
        use = (f"for TensorRT: `uolrps build {t.path}`" if t.recipe.form == "QDQ" else "for ONNX Runtime on a CPU")
        typer.echo(f"wrote {t.path} (int8 {t.recipe.form}, {len(t.recipe.nodes)} layers quantized; {use})")
    if res.ir_path:
        typer.echo(f"wrote {res.ir_path} and {res.ir_path.with_suffix('.bin').name} (OpenVINO IR; "
                   f"`uolrps run --model {res.ir_path}`)")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
