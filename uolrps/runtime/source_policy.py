"""What a remote caller (the HTTP API) may open: network streams by default, more only where the run says so.

Sources on the command line and in ``--sources`` files are the operator's and stay unrestricted. A source
that arrives through :meth:`uolrps.runtime.control.StreamControl.add_stream` goes through
:meth:`SourcePolicy.admit` first:

- its kind is decided by :func:`uolrps.runtime.sources.parse_source` (the registry of source kinds,
  :mod:`uolrps.runtime.source_kinds`) and must be allowed: each kind declares in ``SourceKind.remote`` what
  the run must allow for it (network streams always; cameras with ``camera``; GStreamer pipelines with
  ``gst``; a video, an image, a folder or a glob of images with ``files=FOLDER``; a kind that declares
  nothing, never), and then checks the source itself (``SourceKind.admit``);
- a local path is resolved (symbolic links too) before the file system is asked anything about it, and
  must lie inside the allowed folder; a folder or glob is walked at most :data:`MAX_DEPTH` levels deep, over
  at most :data:`MAX_ENTRIES` entries, for at most :data:`MAX_WALK_S` seconds, and may give at most
  :data:`MAX_IMAGES` images, none of them outside the folder;
- a GStreamer pipeline (only with ``gst``) may use only the elements of
  :data:`uolrps.runtime.source_kinds.gstreamer.GST_ELEMENTS` (capture, depayload, parse, decode, convert,
  appsink), must end in ``appsink``, and may read a file only with ``filesrc`` inside the allowed folder; no
  element that writes, executes or reaches other files (the gst kind's ``admit``);
- a source is at most :data:`MAX_SOURCE_CHARS` characters, with no control characters.

A refusal is a :class:`uolrps.core.errors.NotAllowedError` (the server answers 403) naming what the run would
have to allow. ``--serve-allow`` is parsed by :func:`parse_allow`: ``camera,gst,files=/srv/clips``.
"""

from __future__ import annotations

import glob as globlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from uolrps.core.errors import NotAllowedError, OptionError, UserError
from uolrps.core.images import is_image
from uolrps.runtime.capture import CaptureOptions, SourceSpec
from uolrps.runtime.source_kinds import LocalPaths, kind_of
from uolrps.runtime.sources import parse_source

MAX_SOURCE_CHARS = 2048
MAX_DEPTH = 8
MAX_ENTRIES = 20_000
MAX_IMAGES = 10_000
MAX_WALK_S = 5.0

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class SourcePolicy:
    """What the API may open besides network streams: ``camera``, ``gst`` (checked pipelines) and local
    ``files`` under one folder (None: none)."""

    camera: bool = False
    gst: bool = False
    files: Path | None = None

    def describe(self) -> str:
        allowed = ["network streams (rtsp://, rtsps://, http://, https://)"]
        if self.camera:
            allowed.append("cameras")
        if self.gst:
            allowed.append("GStreamer pipelines of known elements")
        if self.files is not None:
            allowed.append(f"files under {self.files}")
        return ", ".join(allowed)

    def allows(self, remote: str) -> bool:
        """Whether this run lets the API open a kind whose ``SourceKind.remote`` is ``remote``."""
        return {"network": True, "camera": self.camera, "gst": self.gst,
                "files": self.files is not None}.get(remote, False)

    def admit(self, text: str, options: CaptureOptions | None = None) -> SourceSpec:
        """The parsed source if a remote caller may open it, else NotAllowedError (or UserError for a source
        that is not a source at all)."""
        if not isinstance(text, str):
            raise UserError("the source must be a string")
        if len(text) > MAX_SOURCE_CHARS:
            raise UserError(f"the source is {len(text)} characters long; the limit is {MAX_SOURCE_CHARS}")
        if _CONTROL.search(text):
            raise UserError("the source holds control characters (a newline, a tab, a NUL): send it on one line")
        spec = parse_source(text, options, paths=_Confined(self))
        kind = kind_of(spec)
        if not self.allows(kind.remote):
            raise NotAllowedError(f"this run lets the API open only {self.describe()}, not a {spec.kind} source: "
                                  f"the operator can allow more when starting the run (serve_allow: {_ALLOW_FORM})")
        kind.admit(spec, self.files)  # local paths were already confined and walks bounded by _Confined
        return spec


_ALLOW_FORM = "camera, gst, files=FOLDER, comma-separated"


def parse_allow(text: str | None) -> SourcePolicy:
    """``--serve-allow``: ``camera``, ``gst`` and ``files=FOLDER``, comma-separated (None or "": network only).
    The folder must exist."""
    if not text:
        return SourcePolicy()
    camera = gst = False
    files = None
    for item in (p.strip() for p in text.split(",")):
        key, _, value = item.partition("=")
        key = key.strip().lower()
        if key == "camera" and not value:
            camera = True
        elif key == "gst" and not value:
            gst = True
        elif key == "files" and value.strip():
            folder = Path(value.strip()).expanduser()
            if not folder.is_dir():
                raise OptionError(f"serve_allow names files={value.strip()}, which is not a folder: give an existing "
                                  "folder", "serve_allow")
            files = folder.resolve()
        elif key == "network" and not value:
            pass  # always allowed
        else:
            raise OptionError(f"serve_allow has {item!r}; use {_ALLOW_FORM} (network streams are always allowed)",
                              "serve_allow")
    return SourcePolicy(camera=camera, gst=gst, files=files)


class _Confined(LocalPaths):
    """Local paths for the API: inside the allowed folder only, walks bounded (see the module docstring)."""

    def __init__(self, policy: SourcePolicy) -> None:
        self.policy = policy

    def _refuse(self, what: str) -> NotAllowedError:
        if self.policy.files is None:
            return NotAllowedError(f"this run lets the API open only {self.policy.describe()}, not local files: "
                                   "the operator can allow a folder when starting the run (serve_allow: files=FOLDER)")
        return NotAllowedError(f"{what} is outside {self.policy.files}, the only folder this run lets the API "
                               "read")

    def _inside(self, path: Path) -> Path:
        root = self.policy.files
        try:
            resolved = Path(os.path.realpath(path))
        except (OSError, ValueError):
            raise self._refuse("the path") from None
        if root is None or not (resolved == root or root in resolved.parents):
            raise self._refuse("the path")
        return resolved

    def check(self, path: Path) -> Path:
        if self.policy.files is None:
            raise self._refuse("")
        parts = path.parts
        if ".." in parts:
            raise NotAllowedError("a source from the API may not climb out of a folder with '..'")
        # the part before the first wildcard must lie inside the folder (a glob may not start above it)
        fixed = []
        for part in parts:
            if any(c in part for c in "*?["):
                break
            fixed.append(part)
        if not fixed or not Path(*fixed).is_absolute():
            raise NotAllowedError(f"a local source from the API must be an absolute path under {self.policy.files}")
        self._inside(Path(*fixed))
        return path

    def _bounded(self, found, what: str) -> list[Path]:
        images: list[Path] = []
        deadline = time.monotonic() + MAX_WALK_S
        for n, p in enumerate(found):
            if n >= MAX_ENTRIES or time.monotonic() > deadline:
                raise NotAllowedError(f"{what} holds too much for a source from the API (over {MAX_ENTRIES} "
                                      f"entries or {MAX_WALK_S:g} s to list): name a smaller folder")
            p = Path(p)
            if is_image(p):
                self._inside(p)
                images.append(p)
                if len(images) > MAX_IMAGES:
                    raise NotAllowedError(f"{what} holds over {MAX_IMAGES} images; a source from the API may have "
                                          "at most that many: name a smaller folder")
        return sorted(images)

    def folder(self, path: Path) -> list[Path]:
        return self._bounded(_walk(path, MAX_DEPTH), f"folder {path}")

    def glob(self, pattern: str) -> list[Path]:
        root = self.policy.files
        depth = MAX_DEPTH + len(root.parts)

        def matches():
            for p in globlib.iglob(pattern, recursive=True):
                if len(Path(p).parts) > depth:
                    raise NotAllowedError(f"glob {pattern} reaches deeper than {MAX_DEPTH} folders under {root}")
                yield p

        return self._bounded(matches(), f"glob {pattern}")


def _walk(top: Path, max_depth: int):
    """Every file under ``top``, at most ``max_depth`` folders deep, not following links to folders."""
    base = len(top.parts)
    for folder, dirs, files in os.walk(top, followlinks=False):
        here = Path(folder)
        if len(here.parts) - base >= max_depth:
            dirs[:] = []
        for f in files:
            yield here / f
        for d in dirs:
            yield here / d  # counted as entries (a huge tree of empty folders is bounded too)
