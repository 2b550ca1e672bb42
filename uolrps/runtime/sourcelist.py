"""The sources of a run: ``--video`` (repeatable) and ``--sources FILE``, with names and capture options.

A sources file has one source per line: ``[NAME=]SOURCE [--size WxH] [--fps N] [--fourcc XXXX]
[--rtsp-transport tcp|udp]``. ``NAME`` must be a bare identifier (letters, digits, ``_``), so an ``=``
inside a GStreamer pipeline or a URL query is never taken for a name; options start at the first `` --``
followed by one of the option names. Blank lines and lines starting with ``#`` are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from uolrps.errors import UserError
from uolrps.runtime.capture import CaptureOptions

_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(?!=)(.+)")
_OPTS = re.compile(r"\s--(size|fps|fourcc|rtsp-transport)(?=\s)")


@dataclass(frozen=True)
class SourceEntry:
    name: str | None
    source: str
    options: CaptureOptions = CaptureOptions()


def parse_size(text: str, where: str = "--size") -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m or min(int(m.group(1)), int(m.group(2))) <= 0:
        raise UserError(f"{where} must be WIDTHxHEIGHT such as 1280x720, but got {text!r}")
    return int(m.group(1)), int(m.group(2))


def parse_options(text: str, base: CaptureOptions, where: str) -> CaptureOptions:
    tokens = text.split()
    out = base
    if len(tokens) % 2:
        raise UserError(f"{where}: every option needs a value (--size WxH, --fps N, --fourcc XXXX, "
                        f"--rtsp-transport tcp|udp), but got {text.strip()!r}")
    for key, value in zip(tokens[::2], tokens[1::2]):
        if key == "--size":
            out = replace(out, size=parse_size(value, f"{where}: --size"))
        elif key == "--fps":
            try:
                out = replace(out, fps=float(value))
            except ValueError:
                raise UserError(f"{where}: --fps must be a number, but got {value!r}") from None
        elif key == "--fourcc":
            out = replace(out, fourcc=value)
        elif key == "--rtsp-transport":
            out = replace(out, rtsp_transport=value)
        else:
            raise UserError(f"{where}: unknown option {key!r} (use --size, --fps, --fourcc, --rtsp-transport)")
    return out


def parse_line(line: str, base: CaptureOptions = CaptureOptions(), where: str = "source") -> SourceEntry | None:
    """One line of a sources file (None for a blank line or a comment)."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    m = _OPTS.search(" " + text)
    options = base
    if m:
        cut = m.start()  # index in " " + text; the same index in text is the space before the option
        options = parse_options(text[cut:], base, where)
        text = text[:cut].strip()
    named = _NAME.fullmatch(text)
    if named and "://" not in named.group(1):
        return SourceEntry(named.group(1), named.group(2).strip(), options)
    return SourceEntry(None, text, options)


def read_sources_file(path: str | Path, base: CaptureOptions = CaptureOptions()) -> list[SourceEntry]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"--sources {str(path)!r}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    entries = []
    for i, line in enumerate(text.splitlines(), 1):
        entry = parse_line(line, base, f"--sources {path.name} line {i}")
        if entry is not None:
            entries.append(entry)
    if not entries:
        raise UserError(f"--sources {str(path)!r} lists no source (one per line: [NAME=]SOURCE)")
    return entries


def check_names(entries: list[SourceEntry]) -> None:
    """Duplicate names are refused."""
    seen: set[str] = set()
    for e in entries:
        if e.name is not None:
            if e.name in seen:
                raise UserError(f"two sources are named {e.name!r}: every stream needs its own name")
            seen.add(e.name)
