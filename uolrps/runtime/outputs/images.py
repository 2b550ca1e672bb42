"""``--save FOLDER`` for image sources: one annotated image per input image, same name, original size.

The images keep their paths relative to the source folder (or their file names for a glob or a single
image), so a folder of mixed sizes comes out unchanged in shape. An output file may never be one of the
inputs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from uolrps.core.checked_io import refuse_special, write_failed
from uolrps.core.errors import OptionError


def _same_file(a: Path, b: str | Path) -> bool:
    """One file under two names (a hard link of the input image in the output folder): device and inode."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (the usual case: a new output file)
        return False


class ImageFolderOutput:
    def __init__(self, folder: str | Path, root: str | Path | None = None, inputs=()) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise OptionError(f"save {str(self.folder)!r} is a file: give a folder for the annotated images "
                              "(or a .mp4/.avi name for one video)", "save")
        self.root = Path(root) if root is not None else None
        self._inputs = {Path(p).resolve() for p in inputs if p is not None and Path(p).exists()}
        if self.folder.exists() and self.folder.resolve() in {p for p in self._inputs}:
            raise OptionError(f"save {str(self.folder)!r} is the source folder: choose another folder, so the "
                              "images are not overwritten", "save")
        self.frames = 0

    def target(self, path: str | Path) -> Path:
        p = Path(path)
        if self.root is not None:
            try:
                return self.folder / p.resolve().relative_to(self.root.resolve())
            except ValueError:
                pass
        return self.folder / p.name

    def write(self, image: np.ndarray, path: str | Path) -> None:
        import cv2

        out = self.target(path)
        if out.resolve() in self._inputs or out.resolve() == Path(path).resolve() or _same_file(out, path):
            raise OptionError(f"save {str(self.folder)!r}: {str(out)!r} would overwrite an input image: "
                              "choose another folder", "save")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OptionError(f"save {str(self.folder)!r}: cannot write ({e.strerror})", "save") from None
        ok, data = cv2.imencode(out.suffix or ".png", image)
        if not ok:
            raise OptionError(f"save: OpenCV cannot encode {out.suffix} images", "save")
        try:
            refuse_special(out, "save")
            with open(out, "wb") as f:
                f.write(data.tobytes())
        except OSError as e:
            out.unlink(missing_ok=True)  # never a cut image
            raise write_failed("save", out, e, f"{self.frames} images were written before it") from None
        self.frames += 1

    def close(self) -> None:
        pass
