"""The sink protocol: one place a run's results go (JSONL, recordings, windows, progress, the server's viewer
feed, the summary, events...). The run's sinks are listed in ``uolrps.runtime.recording.SINKS`` and fanned out
by :class:`uolrps.runtime.recording.Recorders`; this module holds only the protocol, so that a sink in a module
of its own imports it without importing the list that names it."""

from __future__ import annotations

from pathlib import Path


def run_inputs(config, specs) -> list[Path]:
    """The files a run reads (the model, its sidecar, the sources' files): no output may overwrite one."""
    from uolrps.model.sidecar import sidecar_path
    from uolrps.runtime.source_kinds import kind_of

    model = Path(config.model)
    files = [model, sidecar_path(model)]
    for spec in specs:
        files += kind_of(spec).files(spec)
    return files


class Sink:
    """One place results go. The run's sinks (``SINKS``) are each asked, in order:

    - ``check(config, specs, names, single)`` (a classmethod), before the model loads: refuse a bad output;
    - ``create(config, annotator, labels, single)`` (a classmethod): the sink for this run, or None when the
      run does not ask for it (then it costs nothing per frame);
    - ``open(stream)`` once per stream, before its first result; ``write(name, image, result, fps)`` per
      result (False stops the run: the user closed a window); ``finish()`` after the last result of a run
      that ended normally; ``close()`` on every exit path, Ctrl-C included;
    - ``bind(stats)`` once, before the first result; ``remove(name)`` when the API removes a stream;
    - ``report(stats)`` once, on every exit path, after every sink is closed, the engine stopped and the run's
      statistics are final (the summary is written here, so it tells how the other outputs ended).

    ``stage`` says who calls ``write``: ``"consumer"`` (the default) is the run's consumer loop, in result
    order, one sink after the other; ``"post"`` is the stream's own post-processing step as each result is
    made (a live stream's post thread), before any consumer sink, so that a slow consumer sink (``--save`` on
    a slow disk) never delays it; its ``fps`` is NaN. A post-stage sink must be quick and thread-safe (the
    server's viewer feed only keeps a reference).

    To add a sink: one class here or in its own module, and one line in ``SINKS``.
    """

    close_rank = 1  # closed in this order (the progress bar first)
    stage = "consumer"
    needs_tracks = False  # True: the run tracks (results carry track_ids) whenever this sink exists

    @classmethod
    def check(cls, config, specs, names, single: bool) -> None:
        pass

    @classmethod
    def create(cls, config, annotator, labels: bool, single: bool) -> "Sink | None":
        return None

    def open(self, stream) -> None:
        pass

    def write(self, name: str, image, result, fps: float) -> bool:
        return True

    def finish(self) -> None:
        pass

    def close(self) -> None:
        pass

    def report(self, stats) -> None:
        pass

    def bind(self, stats) -> None:
        """The run's :class:`~uolrps.runtime.stats.RunStats`, before the first result (a sink that adds counters
        to the summary, like the event sink's publishers)."""

    def remove(self, name: str) -> None:
        """Stream ``name`` was removed from the run (through the API): its later results are not written here."""
