"""`uolrps demo-data DIR`: sample photos and a short clip to try `uolrps run` on, from scikit-image."""

from __future__ import annotations

from pathlib import Path

import typer


def demo_data(
    directory: Path = typer.Argument(Path("demo"), help="Folder to write images/ and clip.mp4 into."),
    frames: int = typer.Option(90, "--frames", help="Frames in the clip (30 per second)."),
) -> None:
    """Write a few photos bundled with scikit-image (DIR/images) and a pan/zoom clip over them (DIR/clip.mp4)."""
    from uolrps.bench.demo import make_demo_data

    demo = make_demo_data(directory, frames=frames)
    typer.echo(f"wrote {len(demo.images)} images to {demo.images[0].parent} and {demo.clip} "
               f"({demo.frames} frames, {demo.size[1]}x{demo.size[0]}, {demo.fps:g} FPS)")


def register(app: typer.Typer) -> None:
    app.command("demo-data")(demo_data)
