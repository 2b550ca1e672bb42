"""Write several output files as one set: all of them, or none.

Each file is written to a temporary file beside its target and flushed to disk; only when every write has
succeeded are they renamed into place, one after the other (renames on one file system do not fail for
lack of space). If any write fails, every temporary file is removed and the targets are untouched.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

from uolrps.core.errors import UserError


def _tmp_for(path: Path) -> Path:
    return path.with_name(f".{path.stem}.tmp{path.suffix}")  # keeps the suffix, for writers that need it


def write_set(items: Iterable[tuple[str | Path, Callable[[Path], None]]], flag: str = "output") -> list[Path]:
    """``items`` = (target path, ``write(tmp_path)``) pairs; returns the targets once all are in place."""
    pending: list[tuple[Path, Path]] = []
    try:
        for target, write in items:
            target = Path(target)
            tmp = _tmp_for(target)
            pending.append((tmp, target))
            target.parent.mkdir(parents=True, exist_ok=True)
            write(tmp)
            with open(tmp, "rb") as f:  # on disk before any rename
                os.fsync(f.fileno())
        for tmp, target in pending:
            os.replace(tmp, target)
    except OSError as e:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        where = pending[-1][1] if pending else "?"
        raise UserError(f"{flag} {str(where)!r}: cannot write ({e.strerror or e}); nothing was written") from None
    except BaseException:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        raise
    return [t for _, t in pending]
