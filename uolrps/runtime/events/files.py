"""``--events DIR``: every event as one JSON line in ``DIR/events.jsonl`` and each object's best snapshot, the
annotated frame ``DIR/<stream>/<id>.jpg`` and the crop ``DIR/<stream>/<id>-crop.jpg`` (rewritten, whole, when a
later event of the object has a better one). Written from the publisher's own thread (a
:class:`~uolrps.runtime.events.publisher.QueuedPublisher`), through the checked output layer: a special file or
an input at an output path is refused before any work; a write that fails (a full disk) stops the writing,
keeps the whole lines already written and is reported as one line when the run ends."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from uolrps.core.checked_io import LineFile, OutputError, refuse_special
from uolrps.core.errors import OptionError
from uolrps.core.paths import check_output_path, write_atomic
from uolrps.runtime.events.publisher import QueuedPublisher

log = logging.getLogger("uolrps")
NAME = "events"


def _inputs(config) -> list:
    given = (config.source,) if isinstance(config.source, (str, Path)) else tuple(config.source)
    return [config.model, config.sources_file, *given]


class FilesPublisher(QueuedPublisher):
    name = "files"

    @classmethod
    def check(cls, config) -> None:
        if getattr(config, "events", None) is None:
            return
        folder = Path(config.events)
        if folder.exists() and not folder.is_dir():
            raise OptionError(f"events {str(folder)!r} is not a folder: give a folder for events.jsonl and the "
                              "snapshots", "events")
        check_output_path(folder / "events.jsonl", "events", inputs=_inputs(config))

    @classmethod
    def create(cls, config) -> "FilesPublisher | None":
        if getattr(config, "events", None) is None:
            return None
        return cls(config.events, inputs=_inputs(config))

    def __init__(self, folder, inputs=(), limit: int = 500) -> None:  # each queued event may hold a frame
        super().__init__(limit=limit)
        self.folder = Path(folder)
        self.inputs = [Path(p) for p in inputs if p is not None]
        self.lines: LineFile | None = None
        self.error: OutputError | None = None
        self.snapshots = 0
        self._written: dict[str, int] = {}  # object id -> the frame of its snapshot on disk

    def start(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OptionError(f"events {str(self.folder)!r}: cannot make the folder ({e.strerror})", "events") from None
        path = check_output_path(self.folder / "events.jsonl", "events", inputs=self.inputs)
        self.lines = LineFile(path, "events")
        super().start()

    def send(self, event) -> None:
        if self.error is not None:
            return  # the first failure stopped the writing (reported at close)
        try:
            self._write(event)
        except OutputError as e:
            self.error = e
            log.warning("%s", e)
        except OSError as e:  # a snapshot that cannot be written: one line, the writing stops
            self.error = OutputError(f"events {str(self.folder)!r}: {e.strerror or e}")
            log.warning("%s", self.error)

    def _write(self, event) -> None:
        if event.snapshot is not None and event.image is not None and self._written.get(event.id) != event.frame:
            self._snapshot(event)
            self._written[event.id] = event.frame
        self.lines.write(json.dumps(event.to_record()) + "\n")

    def _snapshot(self, event) -> None:
        import cv2

        x1, y1, x2, y2 = (int(round(v)) for v in event.box)
        frame = event.image.copy()
        cv2.rectangle(frame, (x1, y1), (x2, y2), (0, 220, 0), 2)
        cv2.putText(frame, f"{event.stream} #{event.track} {event.score:.2f}", (x1 + 3, max(14, y1 - 5)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 220, 0), 1, cv2.LINE_AA)
        for rel, image in ((event.snapshot, frame), (event.crop, event.image[y1:y2 + 1, x1:x2 + 1])):
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
            if not ok:
                raise OutputError(f"events: OpenCV cannot encode the snapshot {rel}")
            path = self.folder / rel
            refuse_special(path, "events")
            if path.exists() and any(p.exists() and os.path.samefile(p, path) for p in self.inputs):
                raise OutputError(f"events: {str(path)!r} is also an input of this run: choose another folder")
            payload = data.tobytes()
            write_atomic(path, lambda tmp: tmp.write_bytes(payload), "events", size=len(payload))
        self.snapshots += 1

    def counters(self) -> dict:
        out = super().counters()
        out["snapshots"] = self.snapshots
        return out

    def close(self, timeout: float = 5.0) -> None:
        super().close(timeout)
        if self.lines is not None:
            try:
                self.lines.close()
            except OutputError as e:
                self.error = self.error or e
        if self.error is not None:
            raise self.error
