"""The streaming Python API: ``localize_stream`` (one source) and ``localize_streams`` (many sources, one model).

Both run on :class:`uolrps.runtime.engine.StreamEngine`: per stream a capture/feeder thread and a post
thread (with its own smoothing state), one inference thread batched across streams. Files are processed
losslessly and in order, and give exactly what calling the :class:`Localizer` frame by frame gives (one
file alone runs at batch 1); live sources keep the newest frame (drops are counted per stage). Every exit
path (end of the sources, ``max_frames``, a stage raising, the consumer stopping, Ctrl-C) stops and joins
every thread; an exception in a worker is re-raised in the consumer's thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Mapping

from uolrps.core.errors import UserError
from uolrps.core.options import check_max_frames
from uolrps.runtime.capture import Source
from uolrps.runtime.engine import StreamEngine
from uolrps.runtime.live import DEFAULT_STALL_TIMEOUT
from uolrps.runtime.localizer import Localizer
from uolrps.runtime.result import LocalizationResult
from uolrps.runtime.sources import parse_source
from uolrps.runtime.stats import RunStats


def _check(max_frames, localizer, model) -> None:
    check_max_frames(max_frames)
    if localizer is None and model is None:
        raise TypeError("a model path or a localizer is needed")


def localize_stream(source: str | Path | Source, model: str | Path | None = None, *,
                    localizer: Localizer | None = None, threshold: float | None = None, backend: str = "auto",
                    multi: bool = False, smooth: float = 0.0, providers: str | None = None,
                    max_frames: int | None = None, loop: bool = False, capture_factory=None,
                    with_frames: bool = False, stats: RunStats | None = None,
                    queue_size: int = 4, track: bool = False, **engine_options) -> Iterator[LocalizationResult]:
    """Localize every frame of ``source`` (one string, see :func:`uolrps.runtime.sources.parse_source`, or an
    open :class:`Source`, which stays yours to close).

    Give ``model`` (a path; the localizer is created and closed here) or a ready ``localizer``. Yields
    :class:`LocalizationResult` in frame order, or ``(frame_bgr, result)`` with ``with_frames``. Pass a
    :class:`RunStats` to read the counters and per-stage latencies afterwards. ``track``: every result gets
    ``track_ids`` (a track id per box, see :mod:`uolrps.runtime.tracking`; needs ``uolrps[track]``).
    """
    _check(max_frames, localizer, model)
    if not isinstance(source, Source):
        parse_source(source)  # bad sources fail before the model loads
    for _, frame, result in _run([(None, source)], model, localizer, dict(
            threshold=threshold, backend=backend, multi=multi, smooth=smooth, providers=providers),
            dict(max_frames=max_frames, loop=loop, capture_factory=capture_factory, stats=stats,
                 queue_size=queue_size, track=track, **engine_options), open_now=True):
        yield (frame, result) if with_frames else result


def localize_streams(sources: Iterable[str | Path] | Mapping[str, str | Path], model: str | Path | None = None, *,
                     localizer: Localizer | None = None, threshold: float | None = None, backend: str = "auto",
                     multi: bool = False, smooth: float = 0.0, providers: str | None = None,
                     threads: int | None = None, max_frames: int | None = None, loop: bool = False,
                     batch_wait_ms: float = 5.0, stall_timeout: float = DEFAULT_STALL_TIMEOUT,
                     reopen_limit: int | None = 10, with_frames: bool = False, stats: RunStats | None = None,
                     capture_factory=None, track: bool = False,
                     **engine_options) -> Iterator[tuple[str, LocalizationResult]]:
    """Localize many sources with one model, batched across streams; yields ``(stream_name, result)`` (or
    ``(stream_name, frame_bgr, result)`` with ``with_frames``) as results are produced.

    ``sources``: a list of source strings (named ``cam0, cam1, ...`` or by file stem) or a mapping
    ``{name: source}``. A live source that is down is retried with a growing backoff and ends after
    ``reopen_limit`` failed recoveries while the others go on; ``stats.failed`` lists the streams that
    ended in failure, ``stats.streams`` has each stream's record; when every stream failed without a single
    result, the iteration ends with a UserError naming each one's reason. The inference stage waits at most ``batch_wait_ms`` for slower streams.
    ``track``: every result gets ``track_ids``, a track id per box that stays with its object across the frames
    of its stream (one tracker per stream, see :mod:`uolrps.runtime.tracking`; needs ``uolrps[track]``).
    """
    _check(max_frames, localizer, model)
    named = list(sources.items()) if isinstance(sources, Mapping) else [(None, s) for s in sources]
    if not named:
        raise UserError("no source given")
    for _, s in named:
        if not isinstance(s, Source):
            parse_source(s)  # bad sources fail before the model loads
    for name, frame, result in _run(named, model, localizer, dict(
            threshold=threshold, backend=backend, multi=multi, smooth=smooth, providers=providers, threads=threads),
            dict(max_frames=max_frames, loop=loop, batch_wait_ms=batch_wait_ms, stall_timeout=stall_timeout,
                 reopen_limit=reopen_limit, stats=stats, capture_factory=capture_factory, track=track,
                 **engine_options),
            open_now=len(named) == 1):
        yield (name, frame, result) if with_frames else (name, result)


def _raise_if_all_failed(stats: RunStats) -> None:
    """Every stream ended in failure without a single result: a UserError naming each one's reason (else the
    caller would get nothing at all, and no word why). Streams that delivered results before they failed are in
    ``stats.failed``, and every stream's record stays in ``stats.streams`` for a caller that passed ``stats``."""
    streams = list(stats.streams.values())
    if streams and all(s.state == "failed" and s.frames == 0 for s in streams):
        reasons = "; ".join(f"{s.name} ({s.source}) after {s.frames} frames: {s.reason or 'failed'}" for s in streams)
        raise UserError(f"every stream failed: {reasons}")


def _run(named: list, model, localizer: Localizer | None, loc_options: dict, engine_options: dict, open_now: bool):
    own = localizer is None
    loc = localizer or Localizer(model, **loc_options)
    engine = None
    try:
        labels = len(loc.meta.classes) > 1
        engine = StreamEngine(loc, labels=labels, **engine_options)
        for name, src in named:
            engine.add_source(src, name, open_now=open_now)
        yield from engine.results()
        _raise_if_all_failed(engine.stats)
    finally:
        if engine is not None:
            engine.close()
        if own:
            loc.close()
