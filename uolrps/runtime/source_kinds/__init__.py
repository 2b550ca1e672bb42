"""The registry of source kinds: how a source string is recognised, whether it is live, how it opens.

Each kind is declared once, by one module of this package, as a :class:`SourceKind`; nothing else in
uolrps switches on a source's kind. To add a kind, write a module with a ``KINDS`` tuple and add its name to
``MODULES`` here, or call :func:`register` (from a plug-in or a test). Kinds are tried in order: the first
whose ``recognise`` returns a :class:`~uolrps.runtime.capture.SourceSpec` wins.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

MODULES = ("camera", "network", "gstreamer", "images", "video")  # in the order source strings are tried


def _none(spec) -> None:
    return None


def _no_files(spec) -> list:
    return []


@dataclass(frozen=True)
class SourceKind:
    """One kind of source (``name`` is ``SourceSpec.kind``).

    - ``recognise(raw)``: a SourceSpec for a source string of this kind (stripped, non-empty), else None;
      raises UserError for a string that is of this kind but wrong (a missing camera device, say).
    - ``open(spec, *, loop, capture_factory, backoff, reopen_limit, stall_timeout, open_now)`` -> a Source.
    - ``capture(spec, cv2)``: the OpenCV ``VideoCapture`` for this kind (None: a plain FFmpeg capture of the
      target); called under the process-wide open lock, with OpenCV's logging quiet.
    - ``label`` and ``hint``: how messages name it, and what to check when it does not open.
    - ``images``: a sequence of image files (recorded as a folder of images, not a video).
    - ``files(spec)``: the files it reads (no output may overwrite them); ``root(spec)``: the folder image
      names are relative to; ``stream_name(spec)``: its default stream name (None: ``cam<index>``).
    - ``capture_options``: whether the capture options (size, fps, fourcc) apply to it; where not (files,
      which play at their own size and rate), a run that was given them says once that they are ignored.
    """

    name: str
    live: bool
    recognise: Callable
    open: Callable
    label: str = ""
    hint: str = "check the source"
    capture: Callable | None = None
    images: bool = False
    capture_options: bool = True
    files: Callable = _no_files
    root: Callable = _none
    stream_name: Callable = _none
    forms: str = ""  # how to write it, for the message that lists every form
    forms_rank: int = 100  # where ``forms`` comes in that message


_KINDS: dict[str, SourceKind] = {}
_loaded = False


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for name in MODULES:
            for kind in importlib.import_module(f"{__name__}.{name}").KINDS:
                _KINDS.setdefault(kind.name, kind)


def register(kind: SourceKind, first: bool = False) -> SourceKind:
    """Add (or replace) a kind; ``first`` tries it before every other kind."""
    _load()
    _KINDS.pop(kind.name, None)
    if first:
        rest = dict(_KINDS)
        _KINDS.clear()
        _KINDS[kind.name] = kind
        _KINDS.update(rest)
    else:
        _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    _load()
    _KINDS.pop(name, None)


def kinds() -> list[SourceKind]:
    _load()
    return list(_KINDS.values())


def kind_of(spec_or_name) -> SourceKind:
    """The kind of a SourceSpec (or of a kind name); KeyError for one that is not registered."""
    _load()
    return _KINDS[getattr(spec_or_name, "kind", spec_or_name)]


def forms() -> str:
    """Every way to write a source, for messages."""
    return ", ".join(dict.fromkeys(k.forms for k in sorted(kinds(), key=lambda k: k.forms_rank) if k.forms))


def path_of(raw: str) -> Path:
    """A source string as a file path (``file://`` dropped, ``~`` expanded)."""
    return Path(raw[7:] if raw.lower().startswith("file://") else raw).expanduser()


