"""Output paths, checked before any work and written atomically: a failed command loses nothing already there.

``check_output_path`` runs before the expensive part of a command (a calibration, an export, a video):
suffix, not a folder, a folder we can really write in (probed: root passes ``os.access`` even where the
kernel refuses, /proc for one), and never one of the command's own inputs. ``check_distinct_outputs`` refuses
two outputs of one command that are the same file (through symlinks, hard links, ``./``, ``..``, relative or
absolute, existing or not). ``write_atomic`` writes to a temporary file beside the target and renames it, so
the old file survives any failure.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Mapping

from uolrps.core.checked_io import (OutputError, check_free_space, clean_leftovers, refuse_special, temporary_name,
                                    write_failed)
from uolrps.core.errors import OptionError, UserError, option_error, param_of


def _nearest_existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_output_path(path: str | Path, name: str, suffixes: Iterable[str] = (),
                      inputs: Iterable[str | Path | None] = ()) -> Path:
    """``path`` if a command may write it; else an error naming ``name`` and what to do: an OptionError when
    ``name`` is the caller's parameter (``save``: the library), a UserError when it is a flag (``--save``: a
    CLI's own check) or a label."""
    path = Path(path)
    suffixes = tuple(suffixes)
    refuse_special(path, name)  # a folder, a device, a FIFO, a socket: never written into nor replaced
    if suffixes and path.suffix.lower() not in suffixes:
        raise option_error(f"{name} {str(path)!r} must end in {' or '.join(suffixes)}", name)
    folder = _nearest_existing(path.parent if str(path.parent) else Path("."))
    if not folder.is_dir():
        raise option_error(f"{name} {str(path)!r}: {str(folder)!r} is a file, not a folder", name)
    try:  # a real probe: permissions, read-only mounts, pseudo file systems
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise option_error(f"{name} {str(path)!r}: cannot write in {str(folder)!r} ({e.strerror}): "
                           "choose another place", name) from None
    for other in inputs:
        if other is not None and Path(other).exists() and _identity(Path(other)) == _identity(path):  # hard links too
            raise option_error(f"{name} {str(path)!r} is also an input of this command: choose another output "
                               "file, so the input is not overwritten", name)
    return path


def _identity(path: Path) -> tuple:
    """What makes two paths one file: the real path (symlinks followed, ``..`` and ``./`` gone, relative made
    absolute; the part that does not exist yet stays as written) and, for an existing file, its inode."""
    real = os.path.normcase(os.path.realpath(path))
    try:
        st = os.stat(real)
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", real)


def check_distinct_outputs(outputs: Mapping[str, str | Path | None]) -> None:
    """Refuse, before any work, two outputs of one command that resolve to the same file.

    ``outputs`` maps each output's name to its path: the parameter's name in the library (``jsonl``), the flag
    in a CLI's own check (``--jsonl``), or a label (``the sidecar``); None entries (outputs not asked for) are
    ignored. Raises one error naming both: an OptionError naming the parameters among them (see
    :func:`uolrps.core.errors.param_of`).
    """
    seen: dict[tuple, tuple[str, Path]] = {}
    for name, path in outputs.items():
        if path is None:
            continue
        path = Path(path)
        key = _identity(path)
        if key in seen:
            first_name, first = seen[key]
            same = (f"{str(first)!r}" if str(first) == str(path)
                    else f"{str(first)!r} and {str(path)!r}, both {os.path.realpath(path)!r}")
            message = (f"{first_name} and {name} are the same file ({same}): give each output its own file, or one "
                       "would overwrite the other")
            params = [p for p in (param_of(first_name), param_of(name)) if p]
            raise OptionError(message, *params) if params else UserError(message)
        seen[key] = (name, path)


def write_atomic(path: str | Path, write: Callable[[Path], None], name: str = "output",
                 size: int | None = None) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``; a failure to write is
    an error naming ``name`` as :func:`check_output_path` words it.

    The temporary name is unique to this call (process, thread and a random part), so two writers of the same
    file never write into each other's temporary file: the last rename wins, whole. The file is flushed to
    disk before the rename and the folder after it, so a crash leaves the old file or the new one; a
    temporary file left by a killed writer is removed by the next write of ``path``
    (:func:`uolrps.core.checked_io.clean_leftovers`). Only a regular file (or a new name) is replaced: a device,
    FIFO, socket or folder at ``path`` is refused; a symlink is kept and the file it points to replaced.
    A failure to write (a full disk, an I/O error) is an :class:`uolrps.core.checked_io.OutputError`; with
    ``size`` (bytes, when known in advance) a file that cannot fit is refused before it is begun.
    """
    import secrets
    import threading

    path = Path(path)
    refuse_special(path, name)
    if size is not None:
        check_free_space(path, size, name)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    unique = f"{os.getpid()}-{threading.get_ident()}-{secrets.token_hex(4)}"
    tmp = temporary_name(path, unique)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_leftovers(path)
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        refuse_special(path, name)  # appeared meanwhile
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG):
            raise OutputError(f"{write_failed(name, path, e)}; {_kept(path)}") from None
        raise option_error(f"{name} {str(path)!r}: cannot write ({e.strerror or e})", name) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _kept(path: Path) -> str:
    return "the file there before is unchanged" if path.exists() else "nothing was written"


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder: the rename itself has happened
        pass
    finally:
        os.close(fd)


def write_image(path: str | Path, image, name: str = "output", params: Iterable[int] = ()) -> Path:
    """Encode ``image`` (BGR uint8) by ``path``'s suffix and write it with :func:`write_atomic`: the encoded size
    is known before the write, so a file that cannot fit is refused before it is begun, and a device, FIFO,
    socket or folder at ``path`` is refused, never written into; a write failure is one line and leaves no cut
    image."""
    import cv2

    path = Path(path)
    ok, data = cv2.imencode(path.suffix or ".png", image, list(params))
    if not ok:
        raise option_error(f"{name} {str(path)!r}: OpenCV cannot encode {path.suffix or 'these'} images", name)
    payload = data.tobytes()
    return write_atomic(path, lambda tmp: tmp.write_bytes(payload), name, size=len(payload))
