"""The sources of a run (``RunConfig.source``, one or several, and ``sources_file``), with names and capture options.

A sources file has one source per line: ``[NAME=]SOURCE [--size WxH] [--fps N] [--fourcc XXXX]
[--rtsp-transport tcp|udp]``. ``NAME`` must be a bare identifier (letters, digits, ``_``), so an ``=``
inside a GStreamer pipeline or a URL query is never taken for a name; options start at the first `` --``
followed by one of the option names. Blank lines and lines starting with ``#`` are ignored.

Errors name the parameter the text came from (``sources_file``, ``size``) as an :class:`OptionError`; the
``--size``... inside a line are the file's own syntax, quoted as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from uolrps.core.errors import OptionError, UserError, option_error
from uolrps.runtime.capture import CaptureOptions

_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(?!=)(.+)")
_OPTS = re.compile(r"\s--(size|fps|fourcc|rtsp-transport)(?=\s)")


@dataclass(frozen=True)
class SourceEntry:
    name: str | None
    source: str
    options: CaptureOptions = CaptureOptions()


def parse_size(text: str, where: str = "size", param: str | None = None) -> tuple[int, int]:
    """``WxH`` -> (W, H); an error begins with ``where`` and names ``param`` (default: ``where``, when it is a
    parameter name; see :func:`uolrps.core.errors.option_error`)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m or min(int(m.group(1)), int(m.group(2))) <= 0:
        raise option_error(f"{where} must be WIDTHxHEIGHT such as 1280x720, but got {text!r}", param or where)
    return int(m.group(1)), int(m.group(2))


def _error(message: str, param: str | None) -> UserError:
    return OptionError(message, param) if param else UserError(message)


def parse_options(text: str, base: CaptureOptions, where: str, param: str | None = None) -> CaptureOptions:
    """The ``--size WxH --fps N ...`` part of a line; errors begin with ``where`` and name ``param``."""
    tokens = text.split()
    out = base
    if len(tokens) % 2:
        raise _error(f"{where}: every option needs a value (--size WxH, --fps N, --fourcc XXXX, "
                     f"--rtsp-transport tcp|udp), but got {text.strip()!r}", param)
    for key, value in zip(tokens[::2], tokens[1::2]):
        if key == "--size":
            out = replace(out, size=parse_size(value, f"{where}: --size", param))
        elif key == "--fps":
            try:
                out = replace(out, fps=float(value))
            except ValueError:
                raise _error(f"{where}: --fps must be a number, but got {value!r}", param) from None
        elif key == "--fourcc":
            out = replace(out, fourcc=value)
        elif key == "--rtsp-transport":
            out = replace(out, rtsp_transport=value)
        else:
            raise _error(f"{where}: unknown option {key!r} (use --size, --fps, --fourcc, --rtsp-transport)", param)
    return out


def parse_line(line: str, base: CaptureOptions = CaptureOptions(), where: str = "source",
               param: str | None = None) -> SourceEntry | None:
    """One line of a sources file (None for a blank line or a comment); errors begin with ``where`` and name
    ``param``."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    m = _OPTS.search(" " + text)
    options = base
    if m:
        cut = m.start()  # index in " " + text; the same index in text is the space before the option
        options = parse_options(text[cut:], base, where, param)
        text = text[:cut].strip()
    named = _NAME.fullmatch(text)
    if named and "://" not in named.group(1):
        return SourceEntry(named.group(1), named.group(2).strip(), options)
    return SourceEntry(None, text, options)


def read_sources_file(path: str | Path, base: CaptureOptions = CaptureOptions(),
                      param: str = "sources_file") -> list[SourceEntry]:
    """The entries of a sources file; errors name ``param``, the parameter that gave ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise OptionError(f"{param} {str(path)!r}: cannot read it ({getattr(e, 'strerror', None) or e})", param) from None
    entries = []
    for i, line in enumerate(text.splitlines(), 1):
        entry = parse_line(line, base, f"{param} {path.name} line {i}", param)
        if entry is not None:
            entries.append(entry)
    if not entries:
        raise OptionError(f"{param} {str(path)!r} lists no source (one per line: [NAME=]SOURCE)", param)
    return entries


def check_names(entries: list[SourceEntry]) -> None:
    """Duplicate names are refused."""
    seen: set[str] = set()
    for e in entries:
        if e.name is not None:
            if e.name in seen:
                raise UserError(f"two sources are named {e.name!r}: every stream needs its own name")
            seen.add(e.name)
