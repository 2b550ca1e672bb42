"""A progress bar on stderr for file sources: the project's one progress display (``uolrps.core.progress``) with
the frame rate beside the count, shown only on a terminal."""

from __future__ import annotations

from uolrps.core.progress import progress


class Progress:
    """``update(fps)`` once per frame, ``close()`` at the end; silent when stderr is not a terminal."""

    def __init__(self, total: int | None, label: str = "run", enabled: bool = True) -> None:
        self._cm = progress(total, label, unit="frames", enabled=enabled, plain=False)
        self._bar = self._cm.__enter__()

    def update(self, fps: float | None = None) -> None:
        self._bar.advance(1, note=f"{fps:.1f} FPS" if fps else "")

    def close(self) -> None:
        if self._cm is not None:
            self._cm.__exit__(None, None, None)
            self._cm = None
