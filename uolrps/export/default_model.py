"""The default model of ``uolrps run`` without ``--model``: the efflite0 export at 224 x 224 with the shipped w*
(the offline default: bundled weights, nothing downloaded), made once into the cache by the first command that
can make it (an install with PyTorch), or found there.

A runtime-only install (``uolrps[ort,headless]``, a Jetson) cannot make it: it is told in one line how to get
it (``uolrps export`` elsewhere and ``--model``, or a copy into the cache).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

from uolrps.core.errors import UserError

DEFAULT_BACKBONE = "efflite0"
DEFAULT_SIZE = 224


def default_model_path() -> Path:
    """Where the default model is (or will be): ``$UOLRPS_CACHE/models/efflite0-224.onnx``."""
    from uolrps.calib.download import cache_dir

    return cache_dir() / "models" / f"{DEFAULT_BACKBONE}-{DEFAULT_SIZE}.onnx"


def default_model(log: Callable[[str], None] = print, progress: bool = True) -> Path:
    """The default model's path: found in the cache, or exported into it now (once)."""
    path = default_model_path()
    what = f"the default model ({DEFAULT_BACKBONE} at {DEFAULT_SIZE}x{DEFAULT_SIZE} with the shipped w*)"
    if path.is_file():
        log(f"no model given: using {what}, {path}")
        return path
    missing = [m for m in ("torch", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"no model given, and {what} is not in the cache ({path}) and cannot be made in this "
                        f"install (no {' or '.join(missing)}): run `uolrps export -b {DEFAULT_BACKBONE} -o model.onnx` "
                        f"where uolrps[export] is installed, then `uolrps run --model model.onnx ...` here (or copy "
                        f"it to {path})")
    from uolrps.export.onnx_export import export_model

    log(f"no model given: making {what} once into {path}")
    export_model(backbone=DEFAULT_BACKBONE, output=path, size=DEFAULT_SIZE, dynamic_batch=True, progress=progress,
                 log=log)
    return path
