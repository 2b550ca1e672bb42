"""The exceptions that the command line turns into a single clear line and exit code 2.

The library speaks Python: an :class:`OptionError` names the parameter as the Python API spells it
(``sampling_ratio must be in (0, 1], but got 2``) and lists the parameters it names in ``params``. The
command line (uolrps/cli/main.py) rewords it with the flags of the command that ran (``--sampling-ratio
must be ...``), found in click's own parameter table, so no library module needs to know a flag.
"""

from __future__ import annotations

import re
from collections.abc import Mapping


class UserError(Exception):
    """Bad input from the user: the message says what was wrong and what to do."""


class NotAllowedError(UserError):
    """A request the input is well formed for, but that this run does not allow (an HTTP server answers 403):
    the message says what is allowed and who can allow more."""


class OptionError(UserError):
    """A bad value of one or more named parameters. ``message`` names each parameter in ``params`` as in
    Python: as ``name=VALUE`` or else as the first whole word ``name``, which :meth:`reworded` replaces with
    the caller's name for it."""

    def __init__(self, message: str, *params: str):
        if not params:
            raise TypeError("OptionError needs the name of at least one parameter")
        super().__init__(message)
        self.message = message
        self.params = params

    def reworded(self, names: Mapping[str, str]) -> str:
        """The message with each parameter found in ``names`` (Python name -> e.g. ``--flag``) replaced;
        parameters missing from ``names`` keep their Python name."""
        return self._replace(names, " ")

    def renamed(self, names: Mapping[str, str]) -> "OptionError":
        """The same error for a caller that passes these parameters under its own names (old -> new), e.g. a
        runner that passes its ``serve_token`` as the server's ``token``; ``name=VALUE`` stays ``new=VALUE``."""
        return OptionError(self._replace(names, "="), *dict.fromkeys(names.get(p, p) for p in self.params))

    def _replace(self, names: Mapping[str, str], keyword_sep: str) -> str:
        text = self.message
        for param in self.params:
            if param in names:
                new = names[param]
                # ``param=VALUE`` where written (``pass weights=PATH`` -> ``pass --weights PATH``), else the first
                # whole word, not part of a path, a file name, a longer name or a quoted value ('split' column)
                name = rf"(?<![\w./\\'\"-]){re.escape(param)}"
                keyword, n = re.subn(name + "=", lambda _m, new=new: new + keyword_sep, text, count=1)
                text = keyword if n else re.sub(name + r"(?![\w/\\'\"-]|\.\w)", lambda _m, new=new: new, text, count=1)
        return text


def param_of(name: str) -> str | None:
    """The Python parameter a check's ``name`` stands for: ``name`` itself, or its head before `` (`` when it
    adds a detail (``write_threshold (model.fp16.onnx)``); None for a flag (``--jsonl``) or a label
    (``the sidecar``)."""
    head = name.split(" (", 1)[0]
    return head if head.isidentifier() else None


def option_error(message: str, name: str) -> UserError:
    """The error of a check that takes the name of what it checks (``check_output_path(path, name)``): an
    :class:`OptionError` naming the parameter when ``name`` is a Python parameter name (the library's calls,
    reworded by the command line), else a UserError with ``name`` as written (a CLI's own ``--flag``, or a
    label such as ``the sidecar``). See :func:`param_of`."""
    param = param_of(name)
    return OptionError(message, param) if param else UserError(message)
