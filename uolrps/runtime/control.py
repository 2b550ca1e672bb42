"""The seam between a running multi-stream runtime and whoever watches or steers it (the HTTP server).

The runtime implements :class:`StreamControl`; ``uolrps.serve`` uses nothing else of the runtime. Everything
here is plain data and a ``typing.Protocol``: numpy only, no OpenCV, no inference backend.

Contract, for implementers:

- :meth:`StreamControl.statuses` returns one :class:`StreamStatus` per stream known to the run, including
  streams that have ended or failed (until removed), in a stable order (the order they were added).
- :meth:`StreamControl.latest` returns the newest :class:`Latest` of a stream, ``None`` before its first
  result, and raises ``KeyError`` for a name the run does not know.
- :meth:`StreamControl.wait_latest` blocks up to ``timeout`` seconds for a result with ``seq > after_seq``
  and returns the newest such one (never an older one: a slow caller skips results), or ``None`` on
  timeout; ``KeyError`` for an unknown name. It must be safe to call from many threads at once and must
  never slow the inference thread (the runtime only publishes a reference; the caller does the work).
- :meth:`StreamControl.add_stream` starts a new stream while the run goes on and returns its name (given or
  defaulted); ``uolrps.core.errors.UserError`` for a source form that cannot be used or a duplicate name. It is
  the path of remote callers (the HTTP API): an implementation holds the source to its policy of what a
  remote caller may open (:mod:`uolrps.runtime.source_policy`) and raises ``uolrps.core.errors.NotAllowedError``
  for one it may not.
- :attr:`StreamStatus.source` and ``reason`` leave the process: they carry no credentials
  (:func:`uolrps.core.redact.redact`).
- :meth:`StreamControl.remove_stream` stops a stream and forgets it; ``KeyError`` for an unknown name.

A run that makes events (``--track``, event outputs) also implements :class:`EventControl`: the server shows
recent events and their images only for a control that does (checked with ``isinstance``), so a plain
:class:`StreamControl` stays enough to be served.

``Latest.frame`` is shared, read-only data: nobody may modify it (draw on a copy, as
``uolrps.core.drawing.Annotator`` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from uolrps.runtime.result import LocalizationResult

STATES = ("opening", "running", "reopening", "ended", "failed")


@dataclass(frozen=True)
class StreamStatus:
    """One stream's state and counters, as a snapshot.

    - ``state``: one of :data:`STATES`; ``reason``: one line when ``ended`` or ``failed``, else ``None``.
    - ``frames``: results produced so far; ``drops``: frames dropped per stage (``{"capture": n, ...}``).
    - ``reopens``: times the source was reopened; ``fps``: results per second of wall time over a recent
      window; ``latency_p50_ms`` / ``latency_p95_ms``: capture-to-result latency, ``None`` before any result.
    """

    name: str
    source: str
    state: str
    reason: str | None
    frames: int
    drops: dict[str, int]
    reopens: int
    fps: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None


class Latest:
    """The newest result of one stream.

    - ``seq``: grows with every new result of this stream (compare with ``>`` to see that one is new).
    - ``frame``: the BGR uint8 frame the result is for (read-only; never modified by anyone).
    - ``result``: the :class:`~uolrps.runtime.result.LocalizationResult`.
    - ``line``: the JSONL line of this result as a dict (with ``"stream"`` and ``"latency_ms"``), made from
      ``result`` the first time someone reads it (``labels``: with the class labels), so a result nobody asks
      about costs no record; or given ready-made.
    - ``placement``: how the run places the heatmap on the frame (a name of ``uolrps.core.boxes.PLACEMENTS``,
      the one its boxes come from), so that a viewer's heatmap overlay matches the boxes; None: the authors'.
    """

    __slots__ = ("seq", "frame", "result", "labels", "_line", "placement")

    def __init__(self, seq: int, frame: np.ndarray, result: "LocalizationResult", line: dict | None = None,
                 labels: bool = False, placement: str | None = None) -> None:
        self.seq, self.frame, self.result, self.labels, self._line = seq, frame, result, labels, line
        self.placement = placement

    @property
    def line(self) -> dict:
        if self._line is None:  # two readers at once may both build it: the same dict, harmless
            self._line = self.result.to_record(labels=self.labels)
        return self._line

    def __repr__(self) -> str:
        return f"Latest(seq={self.seq}, frame={self.result.frame_index})"


@runtime_checkable
class StreamControl(Protocol):
    """What a multi-stream run offers to a viewer or controller (see the module docstring for the contract)."""

    def statuses(self) -> list[StreamStatus]: ...

    def latest(self, name: str) -> Latest | None: ...

    def wait_latest(self, name: str, after_seq: int, timeout: float) -> Latest | None: ...

    def add_stream(self, source: str, name: str | None = None) -> str: ...

    def remove_stream(self, name: str) -> None: ...


@runtime_checkable
class EventControl(Protocol):
    """What a run that makes events offers the server besides :class:`StreamControl` (all three answer at once,
    from memory, and are safe from many threads):

    - :meth:`events`: recent event records (``Event.to_record()`` plus ``"images"``: the kinds of JPEG kept for
      the object, of ``"crop"`` and ``"frame"``), oldest first: with ``since``, the first ``limit`` with
      ``seq > since``, else the newest ``limit``; only stream ``stream``'s when given. None when this run keeps
      no events (it was not started to make them).
    - :meth:`event_image`: the JPEG ``kind`` (``"crop"`` or ``"frame"``) of the object with event id
      ``event_id``, or None when there is none (not made yet, or forgotten).
    - :meth:`event_metrics`: ``{"publishers": {name: {"sent", "dropped", "queued", "failed", ...}},
      "events": {(stream, type): count}}``.
    """

    def events(self, stream: str | None = None, since: int | None = None, limit: int = 100) -> list[dict] | None: ...

    def event_image(self, event_id: str, kind: str) -> bytes | None: ...

    def event_metrics(self) -> dict: ...
