"""A progress bar on stderr for file sources."""

from __future__ import annotations

import sys
import time


class Progress:
    """A progress bar on stderr for files (rich when available); silent when stderr is not a terminal."""

    def __init__(self, total: int | None, label: str = "run", enabled: bool = True) -> None:
        self.total = total
        self.enabled = enabled and sys.stderr.isatty()
        self._rich = None
        self._task = None
        self._count = 0
        self._last = 0.0
        if not self.enabled:
            return
        try:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, \
                TimeRemainingColumn

            self._rich = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[fps]}"), TimeRemainingColumn(),
                                      console=Console(stderr=True), transient=True)
            self._task = self._rich.add_task(label, total=total, fps="")
            self._rich.start()
        except ImportError:
            self._rich = None

    def update(self, fps: float | None = None) -> None:
        if not self.enabled:
            return
        self._count += 1
        now = time.monotonic()
        text = f"{fps:.1f} FPS" if fps else ""
        if self._rich is not None:
            self._rich.update(self._task, advance=1, fps=text)
        elif now - self._last > 0.25:
            of = f"/{self.total}" if self.total else ""
            sys.stderr.write(f"\r{self._count}{of} frames {text}   ")
            sys.stderr.flush()
            self._last = now

    def close(self) -> None:
        if not self.enabled:
            return
        self.enabled = False
        if self._rich is not None:
            self._rich.stop()
        else:
            sys.stderr.write("\n")
