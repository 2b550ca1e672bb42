"""``/metrics``: the run's per-stream counters in the Prometheus text format, read fresh at every scrape.

A custom collector on a private registry (never prometheus-client's global one, so two servers in one
process do not mix): each scrape asks the run for its statuses and the server for its viewers.
"""

from __future__ import annotations

from typing import Callable

from uolrps.runtime.control import STATES, StreamControl


def metrics_text(control: StreamControl, viewers: Callable[[], int],
                 encoded: Callable[[], dict[tuple[str, bool], int]],
                 events: Callable[[], dict] | None = None) -> tuple[bytes, str]:
    """The body and content type of one scrape; ``events``: the run's
    :meth:`~uolrps.runtime.control.EventControl.event_metrics`, when it makes events."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(control, viewers, encoded))
    if events is not None:
        registry.register(_EventCollector(events))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Collector:
    def __init__(self, control, viewers, encoded) -> None:
        self.control = control
        self.viewers = viewers
        self.encoded = encoded

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        frames = CounterMetricFamily("uolrps_stream_frames", "Results produced per stream", labels=["stream"])
        drops = CounterMetricFamily("uolrps_stream_drops", "Frames dropped per stream and stage",
                                    labels=["stream", "stage"])
        reopens = CounterMetricFamily("uolrps_stream_reopens", "Times a stream's source was reopened",
                                      labels=["stream"])
        fps = GaugeMetricFamily("uolrps_stream_fps", "Results per second over a recent window", labels=["stream"])
        latency = GaugeMetricFamily("uolrps_stream_latency_seconds",
                                    "Capture-to-result latency over a recent window", labels=["stream", "quantile"])
        state = GaugeMetricFamily("uolrps_stream_state", "1 for the stream's current state, 0 for the others",
                                  labels=["stream", "state"])
        statuses = self.control.statuses()
        for st in statuses:
            frames.add_metric([st.name], st.frames)
            for stage, n in sorted(st.drops.items()):
                drops.add_metric([st.name, stage], n)
            reopens.add_metric([st.name], st.reopens)
            fps.add_metric([st.name], st.fps)
            for q, ms in (("0.5", st.latency_p50_ms), ("0.95", st.latency_p95_ms)):
                if ms is not None:
                    latency.add_metric([st.name, q], ms / 1000.0)
            for s in STATES:
                state.add_metric([st.name, s], 1.0 if st.state == s else 0.0)
        viewers = GaugeMetricFamily("uolrps_serve_viewers", "Live MJPEG viewers connected now")
        viewers.add_metric([], self.viewers())
        encoded = CounterMetricFamily("uolrps_serve_frames_encoded", "Frames drawn and encoded as JPEG for viewers",
                                      labels=["stream", "heatmap"])
        names = {st.name for st in statuses}
        for (name, heat), n in sorted(self.encoded().items()):
            if name in names:  # a removed stream's series go with it
                encoded.add_metric([name, "1" if heat else "0"], n)
        yield from (frames, drops, reopens, fps, latency, state, viewers, encoded)


PUBLISHER_COUNTERS = (("sent", "delivered"), ("dropped", "dropped (the queue was full, or left at exit)"),
                      ("failed", "failed tries (retried) and events refused by the other end"))


class _EventCollector:
    """Events made per stream and type, and each publisher's counters (``RunStats.event_counters``)."""

    def __init__(self, events) -> None:
        self.events = events

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        got = self.events()
        made = CounterMetricFamily("uolrps_events", "Events made per stream and type", labels=["stream", "type"])
        for (stream, kind), n in sorted(got.get("events", {}).items()):
            made.add_metric([stream, kind], n)
        yield made
        publishers = sorted(got.get("publishers", {}).items())
        for key, what in PUBLISHER_COUNTERS:
            family = CounterMetricFamily(f"uolrps_event_publisher_{key}", f"Events {what}, per publisher",
                                         labels=["publisher"])
            for name, counters in publishers:
                family.add_metric([name], counters.get(key, 0))
            yield family
        queued = GaugeMetricFamily("uolrps_event_publisher_queued", "Events waiting to be sent now, per publisher",
                                   labels=["publisher"])
        for name, counters in publishers:
            queued.add_metric([name], counters.get("queued", 0))
        yield queued
