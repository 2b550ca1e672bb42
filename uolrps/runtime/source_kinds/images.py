"""Images read in order: one image file, a folder of images, or a glob (``'photos/*.jpg'``)."""

from __future__ import annotations

from pathlib import Path

from uolrps.core.errors import UserError
from uolrps.core.images import is_image
from uolrps.runtime.capture import SourceSpec
from uolrps.runtime.source_kinds import LocalPaths, SourceKind, is_url, path_of


def recognise(raw: str, paths: LocalPaths | None = None) -> SourceSpec | None:
    if is_url(raw):
        return None
    paths = paths or LocalPaths()
    path = paths.check(path_of(raw))
    if path.is_dir():
        images = paths.folder(path)
        if not images:
            raise UserError(f"folder {raw!r} holds no images (.jpg, .jpeg, .png, .bmp, .webp)")
        return SourceSpec("folder", images, raw)
    if path.is_file():
        return SourceSpec("image", [path], raw) if is_image(path) else None
    if any(c in raw for c in "*?["):
        images = paths.glob(str(path))
        if not images:
            raise UserError(f"glob {raw!r} matches no images (.jpg, .jpeg, .png, .bmp, .webp)")
        return SourceSpec("glob", images, raw)
    return None


def open_images(spec, *, loop=False, **_):
    from uolrps.runtime.files import ImageSource

    return ImageSource(spec, loop=loop)


def files(spec) -> list[Path]:
    return [Path(t) for t in spec.target] + ([Path(spec.text)] if spec.kind == "folder" else [])


def stream_name(spec) -> str:
    return "images" if spec.kind == "glob" else Path(str(spec.text).rstrip("/")).stem


def _kind(name: str, forms: str, rank: int) -> SourceKind:
    return SourceKind(name, live=False, recognise=recognise, open=open_images, images=True, files=files,
                      capture_options=False, root=(lambda spec: spec.text) if name == "folder" else (lambda spec: None),
                      stream_name=stream_name, label=name, forms=forms, forms_rank=rank, remote="files")


FOLDER_FORMS = "a folder or glob of images ('photos/*.jpg')"
KINDS = (_kind("image", "an image file", 2), _kind("folder", FOLDER_FORMS, 3), _kind("glob", FOLDER_FORMS, 3))
