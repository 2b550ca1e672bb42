"""The `uolrps` command: a thin skin over the library, one module per command.

Each module in COMMANDS defines ``register(app)``. A :class:`uolrps.errors.UserError` anywhere becomes one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from uolrps import __version__
from uolrps.errors import UserError

COMMANDS = ["calib", "export", "build", "run", "demo", "eval", "explain"]  # modules uolrps/cli/<name>_cmd.py

app = typer.Typer(
    name="uolrps", add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Unsupervised object localization with representer point selection, from calibration to the edge.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"uolrps {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """uolrps: calib -> export -> build -> run / eval / explain."""


for _name in COMMANDS:
    importlib.import_module(f"uolrps.cli.{_name}_cmd").register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for bad input, click's codes for usage errors)."""
    if "numpy" not in sys.modules:
        # The runtime's only BLAS call (heatmap upsampling, ~2 MFLOP a frame) is 5-70x slower in a
        # multi-threaded BLAS competing with the inference threads; it must be set before numpy loads.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        app(args=argv, prog_name="uolrps")  # standalone: usage errors print themselves and exit
    except UserError as e:
        typer.echo(f"error: {e}", err=True)
        return 2
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
