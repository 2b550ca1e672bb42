"""``run(RunConfig)``: what ``uolrps run`` does: the streaming pipeline plus its outputs and summary.

Inputs are checked before the model loads; outputs are finalised on every exit path. Ctrl-C (SIGINT) ends
the run cleanly: the annotated video is closed (playable), the JSONL file holds whole lines only, and the
returned :class:`RunStats` says ``interrupted``. A second Ctrl-C during that short cleanup is ignored.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from uolrps.errors import UserError
from uolrps.runtime.backends import BACKENDS
from uolrps.runtime.draw import Annotator
from uolrps.runtime.localizer import Localizer
from uolrps.runtime.outputs import FpsMeter, JsonlOutput, Progress, VideoOutput, WindowOutput
from uolrps.runtime.pipeline import localize_stream
from uolrps.runtime.sources import log, open_source, parse_source
from uolrps.runtime.stats import RunStats


@dataclass(frozen=True)
class RunConfig:
    """Every option of ``uolrps run`` (see docs/run.md); validated on creation."""

    source: str
    model: str | Path
    threshold: float | None = None
    multi: bool = False
    smooth: float = 0.0
    show: bool = False
    save: str | Path | None = None
    jsonl: str | Path | None = None
    heatmap: bool = False
    max_frames: int | None = None
    loop: bool = False
    backend: str = "auto"
    providers: str | None = None
    threads: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise UserError(f"--threshold must be in [0, 1] (a fraction of the heatmap maximum), but got {self.threshold}")
        if not 0.0 <= self.smooth < 1.0:
            raise UserError(f"--smooth must be in [0, 1) (0 = off, 0.8 = strong), but got {self.smooth}")
        if self.max_frames is not None and self.max_frames <= 0:
            raise UserError(f"--max-frames must be a positive number of frames, but got {self.max_frames}")
        if self.backend != "auto" and self.backend not in BACKENDS:
            raise UserError(f"--backend must be auto, {' or '.join(BACKENDS)}, but got {self.backend!r}")


def _input_files(config: RunConfig, spec) -> list[Path]:
    """The model, its engine sidecar and the source's files."""
    from uolrps.runtime.sidecar import sidecar_path

    model = Path(config.model)
    files = [model, sidecar_path(model)]
    targets = spec.target if isinstance(spec.target, (list, tuple)) else [spec.target]
    files += [Path(t) for t in targets if isinstance(t, (str, Path)) and spec.kind in ("video", "image", "folder", "glob")]
    return files


@contextlib.contextmanager
def _sigint_ignored():
    """Ignore Ctrl-C while outputs are finalised (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (docker stop, systemd) ends the run like Ctrl-C: outputs are finalised, not cut off."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(config: RunConfig, capture_factory=None, stats: RunStats | None = None) -> RunStats:
    """See :func:`_run`; SIGTERM is handled like Ctrl-C while it runs."""
    with _sigterm_as_interrupt():
        return _run(config, capture_factory, stats)


def _run(config: RunConfig, capture_factory=None, stats: RunStats | None = None) -> RunStats:
    """Run the pipeline with the outputs of ``config``; returns the statistics (``stats.line()`` summarises).

    ``capture_factory`` replaces OpenCV's capture (tests); pass ``stats`` to watch the counters while it runs.
    """
    spec = parse_source(config.source)
    inputs = _input_files(config, spec)  # an output must never overwrite one of these
    if config.save is not None:
        VideoOutput(config.save, inputs=inputs)  # checks the path; opens nothing
    if config.jsonl is not None:
        JsonlOutput(config.jsonl, inputs=inputs)
    stats = stats if stats is not None else RunStats()
    closers: list = []
    try:
        loc = Localizer(config.model, threshold=config.threshold, backend=config.backend, multi=config.multi,
                        smooth=config.smooth, providers=config.providers, threads=config.threads)
        closers.append(loc)
        src = open_source(spec, loop=config.loop, capture_factory=capture_factory)
        closers.append(src)
        multi_class = len(loc.meta.classes) > 1
        video = VideoOutput(config.save, fps=src.fps, inputs=inputs) if config.save is not None else None
        jsonl = JsonlOutput(config.jsonl, labels=multi_class, inputs=inputs) if config.jsonl is not None else None
        window = WindowOutput() if config.show else None
        total = None if (src.live or config.loop) else src.total
        if config.max_frames is not None:
            total = config.max_frames if total is None else min(total, config.max_frames)
        progress = Progress(total, label=Path(str(spec.text)).name or "run",
                            enabled=config.progress and not src.live and not config.show)
        closers.extend(o for o in (video, jsonl, window, progress) if o is not None)
        annotator = Annotator(heatmap=config.heatmap, classes=loc.meta.classes)
        meter = FpsMeter()
        stream = localize_stream(src, localizer=loc, max_frames=config.max_frames, with_frames=True, stats=stats)
        with contextlib.closing(stream):
            for image, result in stream:
                fps = meter.tick()
                if jsonl is not None:
                    jsonl.write(result)
                if video is not None:
                    video.write(annotator.annotate(image, result))
                if window is not None and not window.show(annotator.annotate(image, result, fps)):
                    break
                progress.update(fps)
        if jsonl is not None:
            jsonl.finish()
    except KeyboardInterrupt:
        stats.interrupted = True
    finally:
        with _sigint_ignored():
            for closer in reversed(closers):
                try:
                    closer.close()
                except Exception as e:  # one failing output must not leave the others unfinalised
                    log.warning("closing %r failed: %s", closer, e)
    return stats
