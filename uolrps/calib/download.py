"""Fetch a backbone's published weights once into a cache folder, with a progress bar and a SHA-256.

The cache is ``$UOLRPS_CACHE`` (read at call time) or the user's cache dir. Each file gets a
``<file>.sha256`` beside it, written after a complete download, so a half-written file is never used.
A file the user put there by hand (offline, as the download error tells them) has no ``.sha256``: it is
accepted once ``check`` (a strict load into the backbone) passes; its SHA-256 is then computed and written
beside it, and travels, like a downloaded file's, into every calibration and model made from it.
Nothing is downloaded unless the user asked for a backbone without ``--weights``.
"""

from __future__ import annotations

import errno
import logging
import os
import urllib.request
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from uolrps.core.checked_io import write_failed
from uolrps.core.digest import sha256_file
from uolrps.core.errors import OptionError, UserError
from uolrps.core.progress import progress as progress_bar

log = logging.getLogger("uolrps.download")


def cache_dir() -> Path:
    env = os.environ.get("UOLRPS_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("uolrps"))


def cache_path(url: str) -> Path:
    """Where the file at ``url`` is (or will be) in the cache."""
    return cache_dir() / Path(urlparse(url).path).name


def is_cached(url: str) -> bool:
    """Whether the file at ``url`` is in the cache (downloaded, or put there by hand)."""
    return cache_path(url).is_file()


def fetch_command(url: str) -> str:
    """The shell command that puts the file at ``url`` where the cache looks for it."""
    return f"curl -L --create-dirs -o {cache_path(url)} {url}"


def cached_weights(url: str, progress: bool = True, timeout: float = 30.0,
                   check: Callable[[Path], None] | None = None) -> tuple[Path, str]:
    """Path and SHA-256 of the file at ``url``, downloading it into the cache on first use.

    A file already at the cache path without its ``.sha256`` (put there by the user) is passed to
    ``check`` (which raises UserError when it is not a checkpoint of the right architecture) and, if it
    passes, hashed, with the hash written beside it.
    """
    name = Path(urlparse(url).path).name
    folder = cache_dir()
    dest = folder / name
    digest_file = dest.with_name(name + ".sha256")
    recorded = _recorded_digest(digest_file) if dest.is_file() else None
    if recorded is not None:
        return dest, recorded
    if dest.is_file():
        return dest, _accept(dest, digest_file, url, check)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the weights cache {folder} ({e.strerror}): set UOLRPS_CACHE") from None
    part = dest.with_name(name + ".part")
    try:
        _download(url, part, progress, timeout)
    except (OSError, ValueError) as e:
        part.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG):
            raise write_failed("the weights cache", part, e, "the partial download was removed") from None
        reason = getattr(e, "reason", None) or e
        raise OptionError(
            f"cannot download {url} ({reason}); offline, fetch that file on another machine and put it at "
            f"{dest} (or pass weights=PATH)", "weights"
        ) from None
    digest = sha256_file(part)
    try:
        with open(part, "rb") as f:  # on disk before it takes the cache name
            os.fsync(f.fileno())
        os.replace(part, dest)
    except OSError as e:
        part.unlink(missing_ok=True)
        raise write_failed("the weights cache", dest, e, "nothing was kept") from None
    _write_digest(digest_file, digest, name)
    return dest, digest


def _recorded_digest(digest_file: Path) -> str | None:
    """The SHA-256 recorded beside a cached file; None when absent or not a SHA-256 (an empty or cut file,
    left by a crash before the digest was written atomically): the file is then hashed again."""
    try:
        words = digest_file.read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return None
    if words and len(words[0]) == 64 and all(c in "0123456789abcdef" for c in words[0]):
        return words[0]
    if digest_file.exists():
        log.warning("%s is not a SHA-256 record: the file beside it is checked and hashed again", digest_file)
    return None


def _write_digest(digest_file: Path, digest: str, name: str) -> None:
    from uolrps.core.paths import write_atomic

    text = f"{digest}  {name}\n"
    write_atomic(digest_file, lambda tmp: tmp.write_text(text, encoding="utf-8"), "the weights cache",
                 size=len(text))


def _accept(dest: Path, digest_file: Path, url: str, check: Callable[[Path], None] | None) -> str:
    """Check a hand-placed cache file, then record its SHA-256 beside it; the file itself is never touched."""
    if check is not None:
        try:
            check(dest)
        except UserError as e:
            raise OptionError(f"{dest} (in the weights cache, without a .sha256, so put there by hand) is not "
                              f"usable: {e}. Replace it with the file from {url}, or pass weights=PATH", "weights") from None
    digest = sha256_file(dest)
    try:
        _write_digest(digest_file, digest, dest.name)
    except UserError as e:
        log.warning("could not write %s (%s): the hash is recomputed on every use", digest_file, e)
    log.warning("accepted %s (put there by hand): sha256 %s, written to %s", dest, digest, digest_file.name)
    return digest


def _download(url: str, dest: Path, progress: bool, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as r, open(dest, "wb") as f:
        total = int(r.headers.get("Content-Length") or 0)
        done = 0
        with progress_bar(total or None, f"downloading {dest.stem}", unit="B", enabled=progress) as bar:
            while True:
                chunk = r.read(1 << 20)
                if not chunk:
                    break
                f.write(chunk)
                done += len(chunk)
                bar.advance(len(chunk))
        if total and done != total:
            raise OSError(f"connection closed after {done} of {total} bytes")
