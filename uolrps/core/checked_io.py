"""Checked writes: what every output of every command goes through, so nothing is lost and nothing replaced.

- **Only regular files are written.** A character or block device (``/dev/null``, ``/dev/full``), a FIFO, a
  socket or a folder at an output path is refused before any work (:func:`refuse_special`): an atomic write
  renames over whatever is at the path, so writing "into" a device would replace the device node. This holds
  for ``/dev/stdout`` and ``/dev/stderr`` too (decided: the summary line already goes to stdout, and a JSONL
  stream mixed into it could not be parsed); write to a file and follow it (``tail -f run.jsonl``) instead.
- **Inputs are compared by device and inode** (`core.paths.check_output_path`, with the file identity that
  `check_distinct_outputs` uses), so a hard link of an input is caught like the input itself.
- **Write, flush, fsync and close failures** (ENOSPC, EIO, EDQUOT, EROFS...) become one :class:`OutputError`
  line (:func:`write_failed`): the CLI prints it and exits non-zero; nothing reports "wrote" for a file that
  was not completely written.
- **Line files** (:class:`LineFile`, the JSONL output) keep only whole lines: a line cut by a full disk is
  truncated away, and the error says how many lines the file holds.
- **Temporary files** of :func:`uolrps.core.paths.write_atomic` are named ``.STEM.PID-THREAD-RANDOM.tmp.SUFFIX``
  beside their target; one left by a killed process (``kill -9``, a power cut) is removed by the next write of
  the same target (:func:`clean_leftovers`), and the removal is logged with its name.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
from pathlib import Path

from uolrps.core.errors import UserError, option_error

log = logging.getLogger("uolrps")

_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


class OutputError(UserError):
    """An output could not be completely written (disk full, I/O error, quota, read-only file system): the
    message names the output, the reason and what is left of the file."""


def special_kind(path: str | Path) -> str | None:
    """What non-regular file is at ``path`` ("a character device", "a FIFO"...; symlinks followed), or None
    for a regular file or nothing."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return None


def refuse_special(path: str | Path, name: str) -> None:
    """An error naming ``name`` (see :func:`uolrps.core.errors.option_error`) when ``path`` is not a regular file
    or a new name: devices, FIFOs, sockets and folders are never written into nor replaced."""
    kind = special_kind(path)
    if kind == "a folder":
        raise option_error(f"{name} {str(path)!r} is a folder: give a file name", name)
    if kind is not None:
        raise option_error(f"{name} {str(path)!r} is {kind}, not a regular file: give a file name (outputs are "
                           "written to regular files only, so a device, FIFO or socket is never replaced)", name)


_REASONS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
            errno.EROFS: "the file system is read-only", errno.EIO: "an I/O error", errno.EFBIG: "the file is too large"}


def write_failed(name: str, path: str | Path, e: OSError, left: str = "") -> OutputError:
    """The one line for a write that failed: ``NAME 'PATH': cannot write (the disk is full: No space left on
    device); LEFT``."""
    reason = _REASONS.get(e.errno)
    detail = f"{reason}: {e.strerror}" if reason and e.strerror else (e.strerror or str(e))
    return OutputError(f"{name} {str(path)!r}: cannot write ({detail})" + (f"; {left}" if left else ""))


def free_bytes(folder: str | Path) -> int | None:
    """Bytes an unprivileged writer may still use in ``folder``'s file system (None where unknown)."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def check_free_space(path: str | Path, size: int, name: str) -> None:
    """Refuse a write of ``size`` bytes (known in advance) that cannot fit beside ``path``."""
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = free_bytes(folder)
    if free is not None and size > free:
        raise OutputError(f"{name} {str(path)!r}: {size / 1e6:.1f} MB to write but {free / 1e6:.1f} MB free "
                          "on its disk: free space or choose another place")


def temporary_name(path: Path, unique: str) -> Path:
    """The temporary file beside ``path`` that :func:`uolrps.core.paths.write_atomic` writes first (keeps the
    suffix, for writers that need it)."""
    return path.with_name(f".{path.stem}.{unique}.tmp{path.suffix}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but another user's
        return True
    return True


def clean_leftovers(path: str | Path) -> list[Path]:
    """Remove the temporary files of earlier writes of ``path`` whose process is gone (killed mid-write);
    returns them (each is logged). A temporary file of a live process is left alone."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.stem)}\.(?:(\d+)-\d+-[0-9a-f]+\.)?tmp{re.escape(path.suffix)}")
    removed = []
    try:
        names = os.listdir(path.parent if str(path.parent) else ".")
    except OSError:
        return removed
    for entry in names:
        m = pattern.fullmatch(entry)
        if m is None or (m.group(1) is not None and (int(m.group(1)) == os.getpid() or _alive(int(m.group(1))))):
            continue  # (no process id: the fixed name earlier versions used, ``.STEM.tmp.SUFFIX``)
        leftover = path.with_name(entry)
        try:
            if stat.S_ISREG(os.lstat(leftover).st_mode):
                leftover.unlink()
                removed.append(leftover)
                log.warning("removed %s, left by an earlier write of %s that did not finish", leftover, path.name)
        except OSError:
            pass
    return removed


class LineFile:
    """A text file written line by line that holds only whole lines, whatever happens.

    Each line goes to the kernel in one write (no buffer to lose at Ctrl-C); a write that fails (a full disk)
    is truncated back to the last whole line and raises :class:`OutputError` saying how many lines the file
    holds. ``close`` fsyncs, so a late I/O error (a network file system, a quota) is reported too.
    """

    def __init__(self, path: str | Path, name: str) -> None:
        self.path, self.name = Path(path), name
        self.lines = 0
        self._size = 0
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o666)

    def write(self, line: str) -> None:
        if self._fd is None:
            raise OutputError(f"{self.name} {str(self.path)!r} is closed")
        data = line.encode("utf-8")
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError as e:
            self._fail(e)
        self._size += len(data)
        self.lines += line.count("\n")

    def _fail(self, e: OSError) -> None:
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, self._size)  # only whole lines stay
        except OSError:
            pass
        finally:
            os.close(fd)
        raise write_failed(self.name, self.path, e, f"it holds the first {self.lines} lines, each whole") from None

    def close(self) -> None:
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOTSUP):  # fsync not supported here: nothing to report
                self._fail(e)
                return
        fd, self._fd = self._fd, None
        try:
            os.close(fd)
        except OSError as e:
            raise write_failed(self.name, self.path, e) from None

    @property
    def closed(self) -> bool:
        return self._fd is None
