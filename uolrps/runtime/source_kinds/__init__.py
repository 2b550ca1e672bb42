"""The registry of source kinds: how a source string is recognised, whether it is live, how it opens.

Each kind is declared once, by one module of this package, as a :class:`SourceKind`; nothing else in
uolrps switches on a source's kind. To add a kind, write a module with a ``KINDS`` tuple and add its name to
``MODULES`` here, or call :func:`register` (from a plug-in or a test). Kinds are tried in order: the first
whose ``recognise`` returns a :class:`~uolrps.runtime.capture.SourceSpec` wins.

A kind that reads local files asks the file system only through the :class:`LocalPaths` it is given, so that
the HTTP API's policy (:mod:`uolrps.runtime.source_policy`) can confine and bound it. A kind also declares
what a remote caller (the HTTP API) needs to be allowed to open it (``remote``) and its own check of a
source from such a caller (``admit``); a new kind is closed to the API unless it says otherwise.
"""

from __future__ import annotations

import glob as globlib
import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from uolrps.core.images import is_image, list_images

MODULES = ("camera", "network", "gstreamer", "images", "video")  # in the order source strings are tried


def _none(spec) -> None:
    return None


def _no_files(spec) -> list:
    return []


def _admit_as_is(spec, folder) -> None:
    return None


class LocalPaths:
    """How a kind looks at local paths while it recognises a source string: ``check`` sees every path before
    the file system is asked about it (and returns the path to use), ``folder`` and ``glob`` list the images.
    This default is the operator's (the command line, ``--sources``): any path, unbounded walks.
    :mod:`uolrps.runtime.source_policy` gives the API's confined and bounded one."""

    def check(self, path: Path) -> Path:
        return path

    def folder(self, path: Path) -> list[Path]:
        return list_images(path)

    def glob(self, pattern: str) -> list[Path]:
        return sorted(Path(p) for p in globlib.glob(pattern, recursive=True) if is_image(Path(p)))


@dataclass(frozen=True)
class SourceKind:
    """One kind of source (``name`` is ``SourceSpec.kind``).

    - ``recognise(raw, paths)``: a SourceSpec for a source string of this kind (stripped, non-empty), else
      None; raises UserError for a string that is of this kind but wrong (a missing camera device, say). A
      local path goes through ``paths`` (a :class:`LocalPaths`) before the file system is asked about it.
    - ``open(spec, *, loop, capture_factory, backoff, reopen_limit, stall_timeout, open_now)`` -> a Source.
    - ``capture(spec, cv2)``: the OpenCV ``VideoCapture`` for this kind (None: a plain FFmpeg capture of the
      target); called under the process-wide open lock, with OpenCV's logging quiet.
    - ``label`` and ``hint``: how messages name it, and what to check when it does not open.
    - ``images``: a sequence of image files (recorded as a folder of images, not a video).
    - ``files(spec)``: the files it reads (no output may overwrite them); ``root(spec)``: the folder image
      names are relative to; ``stream_name(spec)``: its default stream name (None: ``cam<index>``).
    - ``remote``: what the run must allow for a remote caller (the HTTP API) to open this kind: ``network``
      (always allowed), or a word of ``serve_allow`` (``camera``, ``gst``, ``files``: then its paths were
      confined by the policy's LocalPaths); "" (the default): never.
    - ``admit(spec, folder)``: this kind's own check of a source from a remote caller that the run allows
      (``folder``: the one folder the API may read, or None); raises NotAllowedError.
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
    remote: str = ""
    admit: Callable = _admit_as_is


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


def is_url(raw: str) -> bool:
    """Whether a source string starts with a scheme other than ``file://`` (so it is no local path)."""
    low = raw.lower()
    return bool(re.match(r"[a-z][a-z0-9+.-]*://", low)) and not low.startswith("file://")


def path_of(raw: str) -> Path:
    """A source string as a file path (``file://`` dropped, ``~`` expanded)."""
    return Path(raw[7:] if raw.lower().startswith("file://") else raw).expanduser()


