"""Events: what happened to the tracked objects of each stream, and where that is told.

A tracked result (``--track``: every box has a track id) goes to the event sink, which turns tracks into
:class:`~uolrps.runtime.events.event.Event` s (start / update / end, zone enter / leave) and per-stream
:class:`~uolrps.runtime.events.event.State` s, and hands them to every *publisher* the run asked for (files
under ``--events DIR``, MQTT, webhooks, the HTTP API's ring of recent events). A publisher never blocks the
run: it queues (bounded, the oldest dropped and counted) and sends from its own thread
(:class:`~uolrps.runtime.events.publisher.QueuedPublisher`).

To add a publisher: one module with a :class:`~uolrps.runtime.events.publisher.Publisher` subclass and one line
in :data:`uolrps.runtime.events.registry.PUBLISHERS`.
"""

from uolrps.runtime.events.event import EVENT_KINDS, Event, State
from uolrps.runtime.events.publisher import Publisher, QueuedPublisher

__all__ = ["EVENT_KINDS", "Event", "Publisher", "QueuedPublisher", "State"]
