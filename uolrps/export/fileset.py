"""Write several output files as one set: all of them, or none.

Each file is written to a temporary file beside its target and flushed to disk; only when every write has
succeeded are they renamed into place, one after the other (renames on one file system do not fail for
lack of space). If any write fails, every temporary file is removed and the targets are untouched. The
temporary names are those of :func:`uolrps.core.paths.write_atomic` (process, thread, random part), so one left
by a killed export is recognised and removed by the next write of the same target, and named in the log.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

from uolrps.core.checked_io import clean_leftovers, refuse_special, temporary_name, write_failed


def _tmp_for(path: Path) -> Path:
    import secrets
    import threading

    return temporary_name(path, f"{os.getpid()}-{threading.get_ident()}-{secrets.token_hex(4)}")


def write_set(items: Iterable[tuple[str | Path, Callable[[Path], None]]], flag: str = "output") -> list[Path]:
    """``items`` = (target path, ``write(tmp_path)``) pairs; returns the targets once all are in place."""
    pending: list[tuple[Path, Path]] = []
    try:
        for target, write in items:
            target = Path(target)
            refuse_special(target, flag)
            tmp = _tmp_for(target)
            pending.append((tmp, target))
            target.parent.mkdir(parents=True, exist_ok=True)
            clean_leftovers(target)
            write(tmp)
            with open(tmp, "rb") as f:  # on disk before any rename
                os.fsync(f.fileno())
        for tmp, target in pending:
            os.replace(tmp, target)
    except OSError as e:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        where = pending[-1][1] if pending else "?"
        raise write_failed(flag, where, e, "nothing was written") from None
    except BaseException:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        raise
    return [t for _, t in pending]
