"""Evaluation data sets: ``load_dataset`` picks the format (``uolrps.eval.detect``) and its loader (the
registry ``uolrps.eval.formats``); the data model lives in ``uolrps.eval.items``.
"""

from __future__ import annotations

from pathlib import Path

from uolrps.core.errors import UserError
from uolrps.eval.detect import detect_format
from uolrps.eval.formats import FORMATS, detect_registered
from uolrps.eval.items import Dataset, summarise


def load_dataset(path: str | Path, fmt: str = "auto", split: str | None = None,
                 images_root: str | Path | None = None) -> Dataset:
    """Load a data set in ``fmt`` (``auto`` detects it); refuses one with no usable image."""
    path = Path(path)
    found = ""
    if fmt == "auto":
        fmt, found = (path.exists() and detect_registered(path)) or detect_format(path)
    elif fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}: use one of auto, {', '.join(FORMATS)}")
    elif not path.exists():
        raise UserError(f"data set {path} does not exist")
    ds: Dataset = FORMATS[fmt].load(path, split=split, images_root=None if images_root is None else Path(images_root))
    if found:
        ds.description = f"{found}; {ds.description}" if ds.description else found
    if not ds.items:
        raise UserError(f"no usable images in {path} ({fmt}): {summarise(ds.problems)}")
    return ds
