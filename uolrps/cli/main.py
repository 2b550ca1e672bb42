"""The `uolrps` command: a thin skin over the library, one module per command.

Each module in COMMANDS defines ``register(app)``. A :class:`uolrps.core.errors.UserError` anywhere becomes one
line on stderr and exit code 2, never a traceback, and so does a usage error (a missing option, a value that is not
a number): ``error: ... (`uolrps run --help` lists the options)``; an :class:`uolrps.core.errors.OptionError` is
first reworded with the flags of the command that ran (:func:`word_option_errors`). SIGTERM ends a command as
Ctrl-C does (:func:`_interruptible`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import signal
import sys
import threading

import typer

from uolrps import __version__
from uolrps.core.errors import OptionError, UserError

COMMANDS = ["calib", "export", "build", "gate", "run", "demo", "eval", "explain", "triton", "doctor", "bench"]  # modules uolrps/cli/<name>_cmd.py
# commands that read or write images and video: without OpenCV they stop at once, naming the extra to install
NEEDS_OPENCV = {"calib", "export", "run", "demo-data", "eval", "explain", "bench"}

NEEDS_TORCH = {"calib", "export"}  # a runtime-only install (uolrps[ort,headless], a Jetson) has no PyTorch


def check_torch(name: str) -> None:
    """One line naming the extra, instead of a ModuleNotFoundError deep in the command."""
    import importlib.util

    missing = [m for m in ("torch", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"`uolrps {name}` needs {' and '.join(missing)}, which this install lacks (a runtime-only "
                        "install): pip install 'uolrps[export]', or run it on another machine and copy the file here")


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


def conventional_help(command) -> None:
    """Typer's own conventions in --help, which recent Typer releases dropped: an on/off flag shows no value
    (``--multi``, not ``--multi <bool>``) and an argument is upper case in the usage line (``IMAGES``, not
    ``{images}``) and in error messages. Applied to the built command tree, in place (Typer's parameters
    are its own classes, so they are told apart by ``param_type_name``)."""
    for param in command.params:
        if param.param_type_name == "option" and getattr(param, "is_flag", False) and not getattr(param, "count", False):
            param.metavar = ""
        elif param.param_type_name == "argument":
            param.metavar = param.metavar or param.name.upper()
            if hasattr(param, "_usage_display_name"):  # Typer >= 0.2x wraps required arguments in {}
                more = "..." if param.nargs != 1 else ""
                shown = param.metavar + more if param.required else f"[{param.metavar}]{more}"
                param._usage_display_name = lambda shown=shown: shown
    make_help = command.get_help_option

    def get_help_option(ctx):
        option = make_help(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        conventional_help(sub)


def flags_of(command) -> dict[str, str]:
    """Python parameter name -> the flag that sets it in this command (the first one declared, as ``-o`` for
    ``output``), from click's own parameter table: the names an :class:`OptionError` is reworded with."""
    return {p.name: p.opts[0] for p in command.params if p.param_type_name == "option" and p.name and p.opts}


def word_option_errors(command) -> None:
    """Make each command's callback reword a library :class:`OptionError` with that command's flags (in place,
    over the built command tree), so ``sampling_ratio must be ...`` reads ``--sampling-ratio must be ...``."""
    for sub in getattr(command, "commands", {}).values():
        word_option_errors(sub)
    callback = command.callback
    if callback is None or getattr(callback, "words_option_errors", False):
        return
    flags = flags_of(command)

    @functools.wraps(callback)
    def worded(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except OptionError as e:
            raise UserError(e.reworded(flags)) from e

    worded.words_option_errors = True
    command.callback = worded


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for bad input, click's codes for usage errors)."""
    if "numpy" not in sys.modules:
        # The runtime's only BLAS call (heatmap upsampling, ~2 MFLOP a frame) is 5-70x slower in a
        # multi-threaded BLAS competing with the inference threads; it must be set before numpy loads.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        name = next((a for a in args if not a.startswith("-")), None)
        if name in NEEDS_OPENCV and not {"--help", "-h"} & set(args):
            from uolrps.core.opencv_info import import_cv2

            import_cv2(f"`uolrps {name}`")
        if name in NEEDS_TORCH and not {"--help", "-h"} & set(args):
            check_torch(name)
        command = typer.main.get_command(app)
        conventional_help(command)
        word_option_errors(command)
        with _interruptible():
            code = command(args=args, prog_name="uolrps", standalone_mode=False)  # usage errors come back to us
    except UserError as e:
        typer.echo(f"error: {e}", err=True)
        return 2
    except CLICK.NoArgsIsHelpError:  # `uolrps` or `uolrps run` alone: the help, as Typer shows it
        return _standalone(command, args)
    except CLICK.UsageError as e:  # one line, like every other bad input (Typer would draw a box over several)
        where = e.ctx.command_path if e.ctx is not None else "uolrps"
        typer.echo(f"error: {e.format_message()} (`{where} --help` lists the options)", err=True)
        return e.exit_code
    except typer.Abort:  # Ctrl-C outside a command's own signal handling
        typer.echo("Aborted!", err=True)
        return 1
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code if isinstance(code, int) and not isinstance(code, bool) else 0  # typer.Exit(N) comes back as N


@contextlib.contextmanager
def _interruptible():
    """SIGTERM (``kill``, ``docker stop``) ends any command as Ctrl-C does, not by the default, fatal action:
    the first SIGINT or SIGTERM raises KeyboardInterrupt (exit 130, said in one line), so the command's cleanup
    runs (temporary files removed, nothing half-written renamed into place); later ones are ignored, so they
    cannot cut that cleanup short. ``uolrps run`` installs its own handlers over these (the summary is still
    written). A SIGINT the caller ignores (``nohup ... &``) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum, frame):
        if not fired:
            fired.append(signum)
            raise KeyboardInterrupt
        fired.append(signum)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        current = signal.getsignal(sig)
        if current in (signal.SIG_IGN, None) or (sig == signal.SIGINT and current is not signal.default_int_handler):
            continue  # ignored by the caller, or someone else's handler: left alone
        if sig == signal.SIGTERM and current != signal.SIG_DFL:
            continue
        previous[sig] = current
        signal.signal(sig, handler)
    try:
        yield
    finally:
        if fired:
            name = signal.Signals(fired[0]).name
            typer.echo(f"interrupted by {name}: stopped before finishing; every output is whole or not written",
                       err=True)
        for sig, before in previous.items():  # as they were (main() is also called in-process), unless a
            if signal.getsignal(sig) is handler:  # command set its own meanwhile (run ignores late signals)
                signal.signal(sig, signal.SIG_IGN if fired else before)  # interrupted: exiting, late ones ignored


def _click_exceptions():
    """The click exception classes Typer raises: its own vendored copy (Typer >= 0.2x), else click's."""
    try:
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions


CLICK = _click_exceptions()


def _standalone(command, args: list[str]) -> int:
    try:
        command(args=args, prog_name="uolrps")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
