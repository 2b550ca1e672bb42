"""What a remote caller (the HTTP API) may open: network streams by default, more only where the run says so.

Sources on the command line and in ``--sources`` files are the operator's and stay unrestricted. A source
that arrives through :meth:`uolrps.runtime.control.StreamControl.add_stream` goes through
:meth:`SourcePolicy.admit` first:

- its kind is decided by :func:`uolrps.runtime.sources.parse_source` (the one kind detection) and must be
  allowed: ``rtsp``/``http`` always; ``camera`` with ``camera``; ``gst`` with ``gst``; a video, an image, a
  folder or a glob of images with ``files=FOLDER``;
- a local path is resolved (symbolic links too) before the file system is asked anything about it, and
  must lie inside the allowed folder; a folder or glob is walked at most :data:`MAX_DEPTH` levels deep, over
  at most :data:`MAX_ENTRIES` entries, for at most :data:`MAX_WALK_S` seconds, and may give at most
  :data:`MAX_IMAGES` images, none of them outside the folder;
- a GStreamer pipeline (only with ``gst``) may use only the elements of :data:`GST_ELEMENTS` (capture,
  depayload, parse, decode, convert, appsink), must end in ``appsink``, and may read a file only with
  ``filesrc`` inside the allowed folder; no element that writes, executes or reaches other files;
- a source is at most :data:`MAX_SOURCE_CHARS` characters, with no control characters.

A refusal is a :class:`uolrps.errors.NotAllowedError` (the server answers 403) naming what the run would
have to allow. ``--serve-allow`` is parsed by :func:`parse_allow`: ``camera,gst,files=/srv/clips``.
"""

from __future__ import annotations

import glob as globlib
import os
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from uolrps.errors import NotAllowedError, OptionError, UserError
from uolrps.images import is_image
from uolrps.runtime.capture import CaptureOptions, SourceSpec
from uolrps.runtime.sources import LocalPaths, parse_source

MAX_SOURCE_CHARS = 2048
MAX_DEPTH = 8
MAX_ENTRIES = 20_000
MAX_IMAGES = 10_000
MAX_WALK_S = 5.0
NETWORK_KINDS = ("rtsp", "http")
FILE_KINDS = ("video", "image", "folder", "glob")

# GStreamer elements a pipeline from the API may use: sources that capture or receive video, and the
# elements between them and appsink. Nothing here writes a file, runs a program or opens a path it is given
# (filesrc is checked apart: only inside the allowed folder).
GST_ELEMENTS = frozenset({
    "nvarguscamerasrc", "v4l2src", "videotestsrc", "rtspsrc", "souphttpsrc",
    "queue", "capsfilter", "videoconvert", "nvvidconv", "nvvideoconvert", "videoscale", "videorate", "videoflip",
    "decodebin", "rtph264depay", "rtph265depay", "rtpjpegdepay", "h264parse", "h265parse", "jpegparse",
    "avdec_h264", "avdec_h265", "nvv4l2decoder", "omxh264dec", "omxh265dec", "jpegdec", "nvjpegdec",
    "qtdemux", "matroskademux", "tsdemux", "appsink", "filesrc",
})
GST_URL_PROPERTIES = {"rtspsrc": ("location", ("rtsp://", "rtsps://")),
                      "souphttpsrc": ("location", ("http://", "https://"))}
# a caps filter: video/x-raw(memory:NVMM), width=(int)1280, format=BGRx, framerate=30/1 (nothing else)
_CAPS = re.compile(r"(video|image)/[a-z0-9.+-]+(\(memory:[a-z0-9]+\))?"
                   r"(\s*,\s*[a-z][a-z0-9-]*\s*=\s*(\([a-z]+\)\s*)?[a-z0-9./+-]+)*", re.IGNORECASE)
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
        kind = spec.kind
        if kind in NETWORK_KINDS:
            return spec
        if kind == "camera" and self.camera:
            return spec
        if kind == "gst" and self.gst:
            check_pipeline(str(spec.target), self.files)
            return spec
        if kind in FILE_KINDS and self.files is not None:
            return spec  # its paths were confined and its walk bounded by _Confined
        raise NotAllowedError(f"this run lets the API open only {self.describe()}, not a {kind} source: the "
                              f"operator can allow more when starting the run (serve_allow: {_ALLOW_FORM})")


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


def check_pipeline(pipeline: str, files: Path | None = None) -> None:
    """NotAllowedError unless every element of this gst-launch pipeline is in :data:`GST_ELEMENTS`, it ends in
    ``appsink``, URLs are network URLs and a ``filesrc`` reads inside ``files``."""
    segments = _split_pipeline(pipeline)
    if not segments:
        raise NotAllowedError("the GStreamer pipeline is empty")
    names = []
    for seg in segments:
        try:
            tokens = shlex.split(seg)
        except ValueError as e:
            raise NotAllowedError(f"the GStreamer pipeline cannot be read ({e}): check its quotes") from None
        if not tokens:
            raise NotAllowedError("the GStreamer pipeline has an empty element between two '!'")
        head = tokens[0]
        if re.match(r"(video|image)/", seg.strip(), re.IGNORECASE):
            if not _CAPS.fullmatch(seg.strip()):
                raise NotAllowedError(f"the GStreamer caps {seg.strip()!r} are not plain media type and fields")
            names.append("caps")
            continue
        if "." in head:
            raise NotAllowedError(f"the GStreamer pipeline refers to a named element ({head!r}): a pipeline from "
                                  "the API must be a single chain")
        if head not in GST_ELEMENTS:
            raise NotAllowedError(f"the GStreamer element {head!r} is not one a pipeline from the API may use "
                                  f"(allowed: {', '.join(sorted(GST_ELEMENTS))})")
        props = {}
        for tok in tokens[1:]:
            key, eq, value = tok.partition("=")
            if not eq:
                raise NotAllowedError(f"the GStreamer element {head} has {tok!r}, which is not property=value")
            props[key.strip().lower()] = value.strip()
        names.append(head)
        if head == "filesrc":
            where = props.get("location")
            if files is None or not where:
                raise NotAllowedError("filesrc is allowed in a pipeline from the API only when the run allows a "
                                      "folder (serve_allow: files=FOLDER) and its location is inside it")
            real = Path(os.path.realpath(where))
            if not Path(where).is_absolute() or not (files in real.parents):
                raise NotAllowedError(f"filesrc location {where} is outside {files}, the only folder this run lets "
                                      "the API read")
        elif head in GST_URL_PROPERTIES:
            key, schemes = GST_URL_PROPERTIES[head]
            if key in props and not props[key].lower().startswith(schemes):
                raise NotAllowedError(f"{head} {key} must be a {' or '.join(schemes)} URL")
        for key in props:
            if key in ("location", "uri", "device") and head not in ("filesrc", "rtspsrc", "souphttpsrc", "v4l2src"):
                raise NotAllowedError(f"the GStreamer element {head} may not be given {key}= from the API")
        if head == "v4l2src" and "device" in props and not re.fullmatch(r"/dev/video\d+", props["device"]):
            raise NotAllowedError("v4l2src device must be /dev/videoN")
    if names[-1] != "appsink":
        raise NotAllowedError("a GStreamer pipeline from the API must end in appsink")
    if names.count("appsink") != 1:
        raise NotAllowedError("a GStreamer pipeline from the API must have exactly one appsink, at its end")


def _split_pipeline(text: str) -> list[str]:
    """The segments between ``!`` outside quotes."""
    out, cur, quote = [], [], None
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            cur.append(ch)
        elif ch == "!":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [s.strip() for s in out]
