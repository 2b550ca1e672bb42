"""The one progress display of uolrps: calibration, evaluation, downloads and file runs all use it.

``with progress(total, "calib", unit="images") as bar: bar.advance(n)``

- on a terminal (stderr is a TTY): a rich progress bar (count, rate, time left) that rewrites itself;
- elsewhere (a log file, CI, a pipe): at most one plain line per ``PLAIN_STEP`` of the work (and one at
  the end), never carriage returns, so a log of 3000 calibration images holds about ten lines;
- ``enabled=False`` (or ``plain=False`` when not on a terminal): nothing at all.

Extra text (e.g. the current FPS) goes through ``bar.advance(n, note="30.2 FPS")``. This module imports
only the standard library at import time (rich is imported when a terminal bar is shown), so the runtime
can use it.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import IO, Iterator

PLAIN_STEP = 0.1  # plain-line mode: a line each time another tenth of the total is done
PLAIN_EVERY_S = 30.0  # ... or, when the total is unknown, every 30 s


def _human(n: float, unit: str) -> str:
    if unit == "B":
        for u in ("B", "KiB", "MiB", "GiB"):
            if abs(n) < 1024 or u == "GiB":
                return f"{n:.0f} {u}" if u == "B" else f"{n:.1f} {u}"
            n /= 1024
    return f"{int(n)}"


class Bar:
    """What :func:`progress` yields: ``advance(n=1, note="")``."""

    def __init__(self, total: int | None, label: str, unit: str, mode: str, stream: IO[str]) -> None:
        self.total = total if total and total > 0 else None
        self.label, self.unit, self.mode, self.stream = label, unit, mode, stream
        self.done = 0
        self.note = ""
        self._t0 = time.monotonic()
        self._next_step = 1  # plain lines: the next tenth (an int, so no float drift repeats a line)
        self._next_time = self._t0 + PLAIN_EVERY_S
        self._rich = self._task = None
        if mode == "rich":
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn,
                                       TransferSpeedColumn, DownloadColumn)

            cols = ([TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn()]
                    if unit == "B" else
                    [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                     TextColumn("{task.fields[rate]}")])
            self._rich = Progress(*cols, TextColumn("{task.fields[note]}"), TimeRemainingColumn(),
                                  console=Console(file=stream), transient=False)
            self._task = self._rich.add_task(label, total=self.total, rate="", note="")
            self._rich.start()

    def rate(self) -> float:
        el = time.monotonic() - self._t0
        return self.done / el if el > 0 else 0.0

    def line(self) -> str:
        """The plain-text state, e.g. ``calib 300/3000 images (10%), 21.4 images/s``."""
        of = f"/{_human(self.total, self.unit)}" if self.total else ""
        unit = "" if self.unit == "B" else f" {self.unit}"
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        r = self.rate()
        speed = f", {_human(r, self.unit)}/s" if self.unit == "B" else f", {r:.1f} {self.unit}/s"
        note = f", {self.note}" if self.note else ""
        return f"{self.label} {_human(self.done, self.unit)}{of}{unit}{pct}{speed}{note}"

    def advance(self, n: int = 1, note: str | None = None) -> None:
        self.done += n
        if note is not None:
            self.note = note
        if self.mode == "rich":
            self._rich.update(self._task, advance=n, note=self.note,
                              rate=f"{self.rate():.1f} {self.unit}/s")
        elif self.mode == "plain":
            if self.total:
                steps = round(1 / PLAIN_STEP)
                if self.done * steps >= self._next_step * self.total and self.done < self.total:
                    self._print()
                    while self._next_step * self.total <= self.done * steps:
                        self._next_step += 1
            elif time.monotonic() >= self._next_time:
                self._print()
                self._next_time = time.monotonic() + PLAIN_EVERY_S

    def _print(self) -> None:
        print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if self.mode == "rich":
            self._rich.stop()
        elif self.mode == "plain" and self.done:
            self._print()


def _mode(enabled: bool, plain: bool, stream: IO[str]) -> str:
    if not enabled:
        return "off"
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if not tty:
        return "plain" if plain else "off"
    try:
        import rich.progress  # noqa: F401
    except ImportError:
        return "plain"
    return "rich"


@contextmanager
def progress(total: int | None, label: str, *, unit: str = "items", enabled: bool = True, plain: bool = True,
             stream: IO[str] | None = None) -> Iterator[Bar]:
    """A progress display for ``total`` units of work (None: unknown) on ``stream`` (default: stderr);
    ``unit="B"`` shows byte sizes; ``plain=False``: nothing when the stream is not a terminal."""
    out = sys.stderr if stream is None else stream
    bar = Bar(total, label, unit, _mode(enabled, plain, out), out)
    try:
        yield bar
    finally:
        bar.close()
