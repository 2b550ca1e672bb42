"""The event sink: tracked results to events and states, handed to every publisher the run asked for.

It exists when at least one publisher of :data:`~uolrps.runtime.events.registry.PUBLISHERS` is created for the
run (``--events DIR``, ``--mqtt``, ``--webhook``...); then the run tracks (``needs_tracks``). Per stream an
:class:`~uolrps.runtime.events.builder.EventBuilder` makes the events (in frame order: the sink is written
from the run's consumer thread); a :class:`~uolrps.runtime.events.event.State` goes out when a stream's
``present`` / ``count`` changes and every ``HEARTBEAT_S`` seconds. Publishers queue and send on their own
threads, so nothing here waits on a network or a disk.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time

from uolrps.runtime.events.builder import EventBuilder, EventOptions
from uolrps.runtime.events.event import State
from uolrps.runtime.events import registry
from uolrps.runtime.events.ring import EventRing
from uolrps.runtime.events.zones import parse_zone, parse_zones
from uolrps.runtime.sink import Sink

log = logging.getLogger("uolrps")
HEARTBEAT_S = 30.0


def event_options(config, snapshots: bool) -> EventOptions:
    return EventOptions(min_frames=config.event_min_frames, min_seconds=config.event_min_seconds,
                        min_area=config.event_min_area, max_gap=config.event_max_gap, update_s=config.event_update,
                        snapshots=snapshots)


def stream_names(specs, names) -> list[str]:
    """The names the run's streams will have (a name not given is the engine's default)."""
    from uolrps.runtime.engine import default_name

    return [name if name is not None else default_name(spec, i) for i, (spec, name) in enumerate(zip(specs, names))]


class EventSink(Sink):
    """The sink of events: tracked results -> :class:`~uolrps.runtime.events.event.Event` s and per-stream
    :class:`~uolrps.runtime.events.event.State` s, handed to every publisher the run asked for."""

    needs_tracks = True
    close_rank = 2  # after the recordings: their files are finalised first

    @classmethod
    def check(cls, config, specs, names, single):
        event_options(config, False)
        zones = config.zone
        if zones:
            parse_zones(zones, stream_names(specs, names))
        for publisher in registry.PUBLISHERS:
            publisher.check(config)
        wanted = [p for p in registry.PUBLISHERS if p.create(config) is not None]
        if zones and not wanted:
            from uolrps.core.errors import OptionError

            raise OptionError("zone is given without events=DIR (or another event output): zones only limit events",
                              "zone", "events")
        if wanted:
            from uolrps.runtime.tracking import check_tracking

            check_tracking()  # events are made from tracks

    @classmethod
    def create(cls, config, annotator, labels, single):
        publishers = [p for cls_ in registry.PUBLISHERS if (p := cls_.create(config)) is not None]
        return cls(config, publishers) if publishers else None

    def __init__(self, config, publishers) -> None:
        from uolrps.runtime.events.files import FilesPublisher

        self.publishers = publishers
        self.options = event_options(config, any(isinstance(p, FilesPublisher) for p in publishers))
        self.zones = [parse_zone(t) for t in config.zone]  # checked before the run
        self.builders: dict[str, EventBuilder] = {}
        self._count = itertools.count(1)
        self._states: dict[str, tuple] = {}  # stream -> (present, count, wall of the last state)
        self._lock = threading.RLock()  # the consumer writes while the API may remove a stream
        self._closed = False
        for p in publishers:
            p.start()

    def _seq(self) -> int:
        with self._lock:
            return next(self._count)

    def bind(self, stats) -> None:
        stats.event_counters = self.counters

    def counters(self) -> dict:
        return {p.name: p.counters() for p in self.publishers}

    def open(self, stream):
        zones = [z for z in self.zones if z.stream == stream.name]
        self.builders[stream.name] = EventBuilder(stream.name, self.options, zones, seq=self._seq)
        for p in self.publishers:
            p.stream_added(stream.name)

    def _publish(self, events) -> None:
        for event in events:
            for p in self.publishers:
                p.publish(event)

    def write(self, name, image, result, fps):
        with self._lock:
            return self._write(name, image, result, fps)

    def _write(self, name, image, result, fps):
        builder = self.builders.get(name)
        if builder is None:
            return True
        events = builder.update(result, image)
        if events:
            self._publish(events)
        present_count = (builder.count > 0, builder.count)
        now = time.time()
        last = self._states.get(name)
        if last is None or last[:2] != present_count or now - last[2] >= HEARTBEAT_S:
            self._states[name] = (*present_count, now)
            state = State(name, present_count[0], present_count[1], fps or 0.0, now)  # None: no rate yet (first frame)
            for p in self.publishers:
                p.state(state)
        return True

    def remove(self, name: str) -> None:
        """Stream ``name`` goes away: its objects end, and the publishers hear of it."""
        with self._lock:
            self._remove(name)

    def _remove(self, name: str) -> None:
        builder = self.builders.pop(name, None)
        if builder is None:
            return
        self._publish(builder.close())
        state = State(name, False, 0, 0.0, time.time())
        for p in self.publishers:
            p.state(state)
            p.stream_removed(name)

    def finish(self):
        for name in list(self.builders):
            self.remove(name)

    def close(self):
        if self._closed:
            return
        self._closed = True
        for name in list(self.builders):  # an interrupted run: its objects end too
            self.remove(name)
        errors = []
        for p in self.publishers:
            try:
                p.close()
            except Exception as e:  # noqa: BLE001 - every publisher is closed; the first failure is raised
                errors.append(e)
        if errors:
            raise errors[0]


def find_ring(outputs) -> EventRing | None:
    """The run's :class:`~uolrps.runtime.events.ring.EventRing` (``outputs``: the run's
    :class:`~uolrps.runtime.recording.Recorders`), if its event sink made one (a run that serves and makes
    events)."""
    events = outputs.sink_of(EventSink)
    return None if events is None else next((p for p in events.publishers if isinstance(p, EventRing)), None)
