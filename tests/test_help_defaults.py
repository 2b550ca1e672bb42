"""Every option's default is in ``--help`` (issue 19 item 6, "the missing defaults in --help"): Typer shows
``[default: X]`` for an option with a value; an option whose default is None (computed at run time: the model's
threshold, all images, the backbone's own...) says what it is in its help text; a required option says
``[required]``; an input or output that is simply not used unless given (``--save``, ``--json``...) needs none.
Checked over every command's parameters as the CLI builds them. Fails on e634ddc: 17 options said nothing."""

from __future__ import annotations

import typer

from uolrps.cli.main import app

# inputs and outputs that are simply not used unless given: no default to state
NOT_USED_UNLESS_GIVEN = {"--video", "--sources", "--save", "--jsonl", "--json", "--summary-json", "--save-vis",
                         "--serve-token", "--events", "--mqtt", "--webhook"}


def test_every_option_shows_or_states_its_default():
    command = typer.main.get_command(app)
    missing = []
    for name, sub in command.commands.items():
        ctx = typer.Context(sub)
        for p in sub.get_params(ctx):
            if p.param_type_name != "option" or getattr(p, "hidden", False) or p.required:
                continue
            if getattr(p, "is_flag", False) and p.default in (False, None) or p.opts[0] in NOT_USED_UNLESS_GIVEN:
                continue  # an on/off switch (off unless given), or an input or output not used unless given
            text = (p.help or "").lower()
            if p.default in (None, ()) and "default" not in text:
                missing.append(f"{name} {p.opts[0]}: no default and the help does not say what happens without it")
            elif p.default not in (None, ()) and p.show_default is False and "default" not in text:
                missing.append(f"{name} {p.opts[0]}: its default {p.default!r} is hidden")
    assert missing == [], "\n".join(missing)


def test_extras_in_help_survive_rich_markup():
    """Typer renders help with Rich, whose markup ate ``[track]`` in "uolrps[track]" (shown as "uolrps.")."""
    from typer.testing import CliRunner

    out = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "400"}).output
    assert "uolrps[track]" in out and "uolrps[export]" in out
