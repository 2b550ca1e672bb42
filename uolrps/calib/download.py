"""Fetch a backbone's published weights once into a cache folder, with a progress bar and a SHA-256.

The cache is ``$UOLRPS_CACHE`` (read at call time) or the user's cache dir. Each file gets a
``<file>.sha256`` beside it, written after a complete download, so a half-written file is never used.
A file the user put there by hand (offline, as the download error tells them) has no ``.sha256``: it is
accepted once ``check`` (a strict load into the backbone) passes; its SHA-256 is then computed and written
beside it, and travels, like a downloaded file's, into every calibration and model made from it.
Nothing is downloaded unless the user asked for a backbone without ``--weights``.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

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
    if dest.is_file() and digest_file.is_file():
        return dest, digest_file.read_text().split()[0]
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
        reason = getattr(e, "reason", None) or e
        raise OptionError(
            f"cannot download {url} ({reason}); offline, fetch that file on another machine and put it at "
            f"{dest} (or pass weights=PATH)", "weights"
        ) from None
    digest = sha256_file(part)
    os.replace(part, dest)
    digest_file.write_text(f"{digest}  {name}\n")
    return dest, digest


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
        digest_file.write_text(f"{digest}  {dest.name}\n")
    except OSError as e:
        log.warning("could not write %s (%s): the hash is recomputed on every use", digest_file, e.strerror)
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
