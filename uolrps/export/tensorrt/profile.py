"""`uolrps build` settings and the optimisation profile of a dynamic batch axis (no TensorRT needed)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from uolrps.core.errors import OptionError, UserError

DEFAULT_MAX_BATCH = 8


@dataclass(frozen=True)
class BuildSettings:
    workspace_gib: float = 2.0
    timing_cache: Path | None = None
    dla_core: int | None = None
    min_batch: int | None = None
    opt_batch: int | None = None
    max_batch: int | None = None

    def __post_init__(self) -> None:
        w = self.workspace_gib
        if not isinstance(w, (int, float)) or not math.isfinite(w) or not 0 < w <= 1024:
            raise OptionError(f"workspace_gib must be a number of GiB in (0, 1024], but got {w}", "workspace_gib")
        if self.dla_core is not None and (not isinstance(self.dla_core, int) or self.dla_core < 0):
            raise OptionError(f"dla_core must be a DLA core number (0, 1, ...), but got {self.dla_core}", "dla_core")
        for name, v in (("min_batch", self.min_batch), ("opt_batch", self.opt_batch), ("max_batch", self.max_batch)):
            if v is not None and (not isinstance(v, int) or v < 1):
                raise OptionError(f"{name} must be a positive int, but got {v}", name)

    @property
    def workspace_bytes(self) -> int:
        return int(self.workspace_gib * (1 << 30))


@dataclass(frozen=True)
class BatchProfile:
    min: int
    opt: int
    max: int

    def shapes(self, shape: tuple) -> tuple[tuple, tuple, tuple]:
        rest = tuple(shape[1:])
        return (self.min, *rest), (self.opt, *rest), (self.max, *rest)


def batch_profile(input_shape: tuple, settings: BuildSettings, source: str = "the model") -> BatchProfile | None:
    """The min/opt/max batch of a dynamic batch axis (None for a fixed batch); other axes must be static."""
    if len(input_shape) != 4 or any(d is None for d in input_shape[1:]):
        shown = "x".join("?" if d is None else str(d) for d in input_shape)
        raise UserError(f"{source}: input shape {shown} must be N x H x W x 3 with only N dynamic: "
                        "re-export it with `uolrps export` (a fixed --size)")
    asked = {"min_batch": settings.min_batch, "opt_batch": settings.opt_batch, "max_batch": settings.max_batch}
    fixed = input_shape[0]
    if fixed is not None:
        wrong = [f"{k} {v}" for k, v in asked.items() if v is not None and v != fixed]
        if wrong:
            raise OptionError(f"{source} has a fixed batch of {fixed}, so {', '.join(wrong)} cannot apply: "
                              "export with --dynamic-batch for a batch range",
                              *(k for k, v in asked.items() if v is not None and v != fixed))
        return None
    lo = settings.min_batch or 1
    opt = settings.opt_batch or lo
    hi = settings.max_batch or max(DEFAULT_MAX_BATCH, lo, opt)
    if not lo <= opt <= hi:
        raise OptionError(f"the batch profile needs min_batch <= opt_batch <= max_batch, but got {lo}, {opt}, {hi}",
                          "min_batch", "opt_batch", "max_batch")
    return BatchProfile(lo, opt, hi)
