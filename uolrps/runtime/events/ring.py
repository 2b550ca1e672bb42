"""The HTTP API's memory of recent events: a bounded ring of event records and small JPEGs of each object.

:class:`EventRing` is a publisher (one line in the registry) made when the run serves (``--serve``) and makes
events (``--track``, or any event output). It keeps the last ``size`` events' records, counts events per stream
and type (for ``/metrics``), and for the last ``images`` objects two JPEGs of the best sighting so far: the
crop around its box (longer side at most ``crop_side`` pixels) and the whole frame with the box drawn and the
track id beside it (at most ``frame_side``). The JPEGs are made on the ring's own thread, never on the thread
that publishes (a bounded queue of frames to encode; when it is full the oldest is skipped and counted under
``dropped``).

The engine (:class:`uolrps.runtime.engine.StreamEngine`) answers the server's
:meth:`~uolrps.runtime.control.StreamControl.events` and ``event_image`` from it; the run hands it over with
:func:`uolrps.runtime.events.sink.find_ring`.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque

from uolrps.runtime.events.publisher import Publisher, log

DEFAULT_SIZE = 500  # event records kept
DEFAULT_IMAGES = 64  # objects whose JPEGs are kept
CROP_SIDE = 160
FRAME_SIDE = 640
QUALITY = 80
ENCODE_QUEUE = 4  # frames waiting for their JPEGs (each a whole frame: a 1080p one is 6 MB)
IMAGE_KINDS = ("crop", "frame")


def wanted(config) -> bool:
    """The ring is made when the run serves and makes events: with ``--track`` or an event output (events
    folder, MQTT, webhooks), which turn tracking on."""
    if getattr(config, "serve", None) is None:
        return False
    return any(getattr(config, f, None) for f in ("track", "events", "mqtt", "webhook"))


def crop_of(image, box, margin: float = 0.1):
    """The part of ``image`` inside ``box`` (inclusive corners, pixels), widened by ``margin`` of its size each
    side (rounded outwards) and clipped to the frame; at least one pixel."""
    H, W = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1 + 1) * margin, (y2 - y1 + 1) * margin
    a = min(max(math.floor(x1 - mx), 0), W - 1)
    b = min(max(math.floor(y1 - my), 0), H - 1)
    c = min(max(math.ceil(x2 + mx), a), W - 1)
    d = min(max(math.ceil(y2 + my), b), H - 1)
    return image[b:d + 1, a:c + 1]


class EventRing(Publisher):
    """See the module docstring. Thread-safe: ``publish`` from the run, the getters from the server."""

    name = "api"

    @classmethod
    def create(cls, config) -> "EventRing | None":
        return cls() if wanted(config) else None

    def __init__(self, size: int = DEFAULT_SIZE, images: int = DEFAULT_IMAGES, crop_side: int = CROP_SIDE,
                 frame_side: int = FRAME_SIDE, quality: int = QUALITY, encode_queue: int = ENCODE_QUEUE) -> None:
        if size < 1 or images < 0 or encode_queue < 1:
            raise ValueError("size and encode_queue must be at least 1, images at least 0")
        self.size, self.images, self.encode_queue = int(size), int(images), int(encode_queue)
        self.crop_side, self.frame_side, self.quality = int(crop_side), int(frame_side), int(quality)
        self._records: deque = deque(maxlen=self.size)  # (seq, record), in the order published
        self._counts: dict[tuple[str, str], int] = {}
        self._jpegs: OrderedDict[str, dict] = OrderedDict()  # object id -> {"at": frame, "crop": JPEG, "frame": JPEG}
        self._todo: deque = deque()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._stop = False
        self._thread: threading.Thread | None = None
        self._busy = 0  # 1 while a frame is being encoded (counted as queued)
        self.received = 0
        self.skipped = 0  # frames not encoded because the encoder fell behind
        self.failed = 0

    # ---- the publisher ----------------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._thread is None and self.images > 0:
                self._thread = threading.Thread(target=self._encode_loop, name="uolrps-event-images", daemon=True)
                self._thread.start()

    def publish(self, event) -> None:
        rec = event.to_record()
        with self._cond:
            self._records.append((int(event.seq), rec))
            key = (event.stream, event.kind)
            self._counts[key] = self._counts.get(key, 0) + 1
            self.received += 1
            if event.image is None or self.images == 0 or self._thread is None:
                return
            have = self._jpegs.get(event.id)
            if have is not None and have["at"] == event.frame:
                return  # this sighting is encoded already (an update with the same best frame)
            if any(job[0] == event.id and job[3] == event.frame for job in self._todo):
                return
            if len(self._todo) >= self.encode_queue:
                self._todo.popleft()
                self.skipped += 1
            self._todo.append((event.id, event.image, tuple(event.box), event.frame, event.track))
            self._cond.notify()

    def counters(self) -> dict:
        with self._lock:
            return {"sent": self.received, "dropped": self.skipped, "queued": len(self._todo) + self._busy,
                    "failed": self.failed}

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._todo.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    # ---- what the server reads --------------------------------------------------------------------------
    def events(self, stream: str | None = None, since: int | None = None, limit: int = 100) -> list[dict]:
        """Records (each with ``"images"``: the kinds of JPEG kept for its object) in the order they were made:
        with ``since``, the first ``limit`` with ``seq > since``; without, the newest ``limit``."""
        with self._lock:
            rows = [(s, r) for s, r in self._records
                    if (stream is None or r["stream"] == stream) and (since is None or s > since)]
            rows = rows[:limit] if since is not None else rows[-limit:] if limit > 0 else []
            have = {r["id"] for _, r in rows if r["id"] in self._jpegs}
        return [{**r, "images": list(IMAGE_KINDS) if r["id"] in have else []} for _, r in rows]

    def image(self, event_id: str, kind: str) -> bytes | None:
        """The JPEG ``kind`` (``crop`` or ``frame``) of the object ``event_id``; None when it has none (not made
        yet, or already forgotten)."""
        if kind not in IMAGE_KINDS:
            raise ValueError(f"image kind must be one of {', '.join(IMAGE_KINDS)}, but got {kind!r}")
        with self._lock:
            got = self._jpegs.get(event_id)
            return None if got is None else got[kind]

    def counts(self) -> dict[tuple[str, str], int]:
        """Events published per (stream, type), since the start of the run."""
        with self._lock:
            return dict(self._counts)

    # ---- the encoder ------------------------------------------------------------------------------------
    def _encode_loop(self) -> None:
        while True:
            with self._cond:
                while not self._todo and not self._stop:
                    self._cond.wait(0.5)
                if self._stop:
                    return
                job = self._todo.popleft()
                self._busy = 1
            try:
                crop, frame = self._encode(*job[1:])
            except Exception as e:  # noqa: BLE001 - a bad frame must not end the encoder
                with self._lock:
                    self.failed += 1
                    self._busy = 0
                log.warning("event images: %s", e)
                continue
            with self._lock:
                self._busy = 0
                self._jpegs[job[0]] = {"at": job[3], "crop": crop, "frame": frame}
                self._jpegs.move_to_end(job[0])
                while len(self._jpegs) > self.images:
                    self._jpegs.popitem(last=False)

    def _encode(self, image, box, frame_index, track) -> tuple[bytes, bytes]:
        import cv2

        from uolrps.core.drawing import PRED_COLOR, draw_boxes, fit

        params = [int(cv2.IMWRITE_JPEG_QUALITY), self.quality]
        crop, _ = fit(crop_of(image, box), self.crop_side)
        ok1, crop_jpeg = cv2.imencode(".jpg", crop, params)
        small, s = fit(image, self.frame_side)
        drawn = draw_boxes(small, [[v * s for v in box]], PRED_COLOR, f"#{int(track)}")
        ok2, frame_jpeg = cv2.imencode(".jpg", drawn, params)
        if not (ok1 and ok2):
            raise ValueError(f"JPEG encoding failed for a frame of shape {image.shape}")
        return crop_jpeg.tobytes(), frame_jpeg.tobytes()
