"""Issue 8 friction: --help follows Typer's conventions: flags show no `<bool>` value and arguments are upper
case in the usage line (`IMAGES`, not `{images}`), for every command."""

from __future__ import annotations

import re

import pytest
import typer

from uolrps.cli.main import app, main


def command_names() -> list[str]:
    return sorted(typer.main.get_command(app).commands)


def help_text(capsys, monkeypatch, *args) -> str:
    monkeypatch.setenv("COLUMNS", "200")
    assert main([*args, "--help"]) == 0
    return capsys.readouterr().out


def test_every_command_is_covered():
    assert {"calib", "export", "build", "run", "demo-data", "eval", "explain"} <= set(command_names())


@pytest.mark.parametrize("name", [None, *command_names()])
def test_help_has_no_bool_placeholder_and_upper_case_arguments(name, capsys, monkeypatch):
    out = help_text(capsys, monkeypatch, *([name] if name else []))
    assert "<bool>" not in out, out
    usage = next(line for line in out.splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage, usage
    command = typer.main.get_command(app)
    command = command.commands[name] if name else command
    for param in command.params:
        if param.param_type_name == "argument":
            assert re.search(rf"\b{param.name.upper()}\b", usage), usage


def test_missing_argument_names_it_in_upper_case(capsys):
    assert main(["calib"]) == 2
    assert "Missing argument 'IMAGES'" in capsys.readouterr().err
