"""Fetch a backbone's published weights once into a cache folder, with a progress bar and a SHA-256.

The cache is ``$UOLRPS_CACHE`` (read at call time) or the user's cache dir. Each file gets a
``<file>.sha256`` beside it, written after a complete download, so a half-written file is never used.
Nothing is downloaded unless the user asked for a backbone without ``--weights``.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from uolrps.calib.checkpoints import sha256_file
from uolrps.errors import UserError


def cache_dir() -> Path:
    env = os.environ.get("UOLRPS_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("uolrps"))


def cached_weights(url: str, progress: bool = True, timeout: float = 30.0) -> tuple[Path, str]:
    """Path and SHA-256 of the file at ``url``, downloading it into the cache on first use."""
    name = Path(urlparse(url).path).name
    folder = cache_dir()
    dest = folder / name
    digest_file = dest.with_name(name + ".sha256")
    if dest.is_file() and digest_file.is_file():
        return dest, digest_file.read_text().split()[0]
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
        raise UserError(
            f"cannot download {url} ({reason}); offline, fetch that file on another machine and put it at "
            f"{dest} (or pass --weights PATH)"
        ) from None
    digest = sha256_file(part)
    os.replace(part, dest)
    digest_file.write_text(f"{digest}  {name}\n")
    return dest, digest


def _download(url: str, dest: Path, progress: bool, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as r, open(dest, "wb") as f:
        total = int(r.headers.get("Content-Length") or 0)
        done, t0, last = 0, time.monotonic(), 0.0
        while True:
            chunk = r.read(1 << 20)
            if not chunk:
                break
            f.write(chunk)
            done += len(chunk)
            now = time.monotonic()
            if progress and (now - last > 0.2 or (total and done == total)):
                last = now
                rate = done / max(now - t0, 1e-6) / 1e6
                pct = f"{100 * done / total:5.1f}% " if total else ""
                print(f"\rdownloading {dest.stem}: {pct}{done / 1e6:.1f} MB at {rate:.1f} MB/s",
                      end="", file=sys.stderr, flush=True)
        if progress:
            print(file=sys.stderr)
        if total and done != total:
            raise OSError(f"connection closed after {done} of {total} bytes")
