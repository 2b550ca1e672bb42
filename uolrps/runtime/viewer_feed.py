"""What the server's viewers see, as a sink: each stream's newest result (:class:`uolrps.runtime.control.Latest`),
which ``StreamControl.latest`` / ``wait_latest`` hand to the page, the MJPEG feed and the API.

Where it runs: it is a ``"post"``-stage sink (see :class:`uolrps.runtime.sink.Sink`): it is written by the
stream's own post-processing step as each result is made, not by the run's consumer loop. A live stream
post-processes in a thread of its own, so viewers get its freshest frame even when the consumer is held up by
a slow ``--save`` (a full disk, a slow encoder); a file source is post-processed by the consumer, in order,
so there the page follows the file at the rate it is processed (it is lossless: nothing to skip).

Per result it only keeps a reference (frame, result) and wakes the waiting viewers: the JSON record of a
result (``Latest.line``) is made only when a viewer asks for it. A run without ``serve`` has no feed at
all (``create`` returns None) and keeps nothing per frame.
"""

from __future__ import annotations

import threading

from uolrps.runtime.control import Latest
from uolrps.runtime.sink import Sink


class _Slot:
    def __init__(self) -> None:
        self.seq = 0
        self.latest: Latest | None = None
        self.cond = threading.Condition()


class ViewerFeed(Sink):
    """The newest result of each stream, for the server's viewers (``serve``)."""

    stage = "post"

    @classmethod
    def create(cls, config, annotator, labels, single):
        return cls(labels, annotator.placement if annotator is not None else None) \
            if config.serve is not None else None

    def __init__(self, labels: bool = False, placement: str | None = None) -> None:
        self.labels = labels
        self.placement = placement  # the run's map placement, handed to viewers with each result
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()

    def _slot(self, name: str, new: bool = False) -> _Slot:
        with self._lock:
            slot = self._slots.get(name)
            if slot is None or new:
                slot = self._slots[name] = _Slot()
            return slot

    def open(self, stream) -> None:
        self._slot(stream.name, new=True)  # a stream added again under an old name starts afresh

    def write(self, name, image, result, fps) -> bool:
        slot = self._slot(name)
        with slot.cond:
            slot.seq += 1
            slot.latest = Latest(slot.seq, image, result, labels=self.labels, placement=self.placement)
            slot.cond.notify_all()
        return True

    def latest(self, name: str) -> Latest | None:
        with self._lock:
            slot = self._slots.get(name)
        return None if slot is None else slot.latest

    def wait_latest(self, name: str, after_seq: int, timeout: float, ended=lambda: False) -> Latest | None:
        """Up to ``timeout`` seconds for a result of ``name`` with ``seq > after_seq`` (the newest one), or None;
        returns at once with what there is when ``ended()`` (the stream has no more results coming)."""
        slot = self._slot(name)
        with slot.cond:
            slot.cond.wait_for(lambda: (slot.latest is not None and slot.latest.seq > after_seq) or ended(), timeout)
            latest = slot.latest
        return latest if latest is not None and latest.seq > after_seq else None
