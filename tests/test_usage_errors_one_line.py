"""A usage error (a value that is not a number, an unknown option, a missing argument or command) is one
``error: ...`` line and exit 2, like every other bad input (README: "Bad input anywhere gives one `error: ...`
line"). Found by the re-run of issue 19's trial (scripts/trial_bad_inputs.py): on e634ddc Typer drew a box of
five lines ("Usage: ...", "Try ...", a framed "Error")."""

from __future__ import annotations

import pytest

from uolrps.cli.main import main


@pytest.mark.parametrize("args,needle", [
    (["run", "--video", "x.mp4", "--model", "m.onnx", "--threshold", "abc"], "Invalid value for '--threshold'"),
    (["run", "--bogus"], "No such option: --bogus"),
    (["calib"], "Missing argument 'IMAGES'"),
    (["demo-data", "--frames"], "'--frames' requires an argument"),
    (["nosuchcommand"], "No such command 'nosuchcommand'"),
])
def test_a_usage_error_is_one_error_line_and_exit_2(args, needle, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert "--help` lists the options" in lines[0]


def test_help_version_and_no_arguments_still_work(capsys):
    assert main(["run", "--help"]) == 0 and "Usage: uolrps run" in capsys.readouterr().out
    assert main(["--version"]) == 0 and "uolrps" in capsys.readouterr().out
    assert main([]) == 2 and "Usage: uolrps" in "".join(capsys.readouterr())  # the help, as before
