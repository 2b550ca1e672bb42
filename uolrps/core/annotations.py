"""Ground-truth boxes shared by evaluation and explanations: why a file is left out (:class:`Problem`) and
the check of boxes against their image (:func:`check_boxes`). One home below both users.

Boxes are N x 4 float64, inclusive corners ``x1, y1, x2, y2`` in source-image pixels (0-based).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOX_TOLERANCE = 1.0  # pixels a box may overhang its image (rounding in rescaled annotations); it is clipped


@dataclass(frozen=True)
class Problem:
    """Why a file was left out: ``kind`` is a short category, ``file`` the file at fault."""

    kind: str
    file: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.file}: {self.kind}" + (f" ({self.detail})" if self.detail else "")

    def to_dict(self) -> dict:
        return {"file": self.file, "kind": self.kind, "detail": self.detail}



def check_boxes(boxes: np.ndarray, size: tuple[int, int], file: str) -> tuple[np.ndarray, Problem | None]:
    """Clip boxes that overhang ``size`` = (H, W) by at most BOX_TOLERANCE px; anything worse is a Problem."""
    H, W = size
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not np.isfinite(b).all():
        return b, Problem("bad box", file, "coordinates are not finite numbers")
    inverted = (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
    if inverted.any():
        i = int(np.argmax(inverted))
        return b, Problem("bad box", file, f"box {i + 1} {_fmt(b[i])} has x2 < x1 or y2 < y1")
    t = BOX_TOLERANCE
    outside = (b[:, 0] < -t) | (b[:, 1] < -t) | (b[:, 2] > W - 1 + t) | (b[:, 3] > H - 1 + t)
    if outside.any():
        i = int(np.argmax(outside))
        return b, Problem("box outside image", file, f"box {i + 1} {_fmt(b[i])} is outside the {W}x{H} image")
    out = b.copy()
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, W - 1)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, H - 1)
    return out, None


def _fmt(box) -> str:
    return "(" + ", ".join(f"{v:g}" for v in box) + ")"
