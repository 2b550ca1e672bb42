"""The `uolrps` command: a thin skin over the library, one module per command.

Each module in COMMANDS defines ``register(app)``. A :class:`uolrps.errors.UserError` anywhere becomes one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer

from uolrps import __version__
from uolrps.errors import UserError

COMMANDS = ["calib", "export"]  # modules uolrps/cli/<name>_cmd.py

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
    """Entry point; returns the exit code (2 for bad input, 130 for Ctrl-C)."""
    try:
        rc = app(args=argv, standalone_mode=False)
    except UserError as e:
        typer.echo(f"error: {e}", err=True)
        return 2
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except typer.Exit as e:
        return e.exit_code
    except Exception as e:  # click's usage errors
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            return e.exit_code
        if isinstance(e, click.exceptions.Abort):
            return 130
        raise
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
