"""The registry of data set formats: each name, the loader that reads it and, optionally, how to recognise it.

A loader is ``load(path, split=None, images_root=None) -> uolrps.eval.items.Dataset``, given as
``"module:function"`` and imported when that format is read. A format with ``detect`` (``detect(path) ->
description or None``) is recognised by ``fmt="auto"`` before the built-in layouts (``uolrps.eval.detect``).
To add a format: one module with its loader and one line in ``FORMATS`` (or :func:`register` from outside).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class DatasetFormat:
    name: str
    loader: str  # "module:function"
    detect: Callable[[Path], str | None] | None = None

    def load(self, path: Path, split: str | None = None, images_root: Path | None = None):
        module, _, function = self.loader.partition(":")
        return getattr(importlib.import_module(module), function)(path, split=split, images_root=images_root)


FORMATS: dict[str, DatasetFormat] = {
    "csv": DatasetFormat("csv", "uolrps.eval.loaders:load_csv"),
    "voc": DatasetFormat("voc", "uolrps.eval.loaders:load_voc"),
    "cub": DatasetFormat("cub", "uolrps.eval.loaders:load_cub"),
    "wsol": DatasetFormat("wsol", "uolrps.eval.loaders:load_wsol"),
    "coco": DatasetFormat("coco", "uolrps.eval.coco:load_coco"),
}


def register(fmt: DatasetFormat) -> DatasetFormat:
    FORMATS[fmt.name] = fmt
    return fmt


def detect_registered(path: Path) -> tuple[str, str] | None:
    """``(format, description)`` from the first format whose own ``detect`` recognises ``path``."""
    for fmt in FORMATS.values():
        if fmt.detect is not None:
            found = fmt.detect(path)
            if found:
                return fmt.name, found
    return None
