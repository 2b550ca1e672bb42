"""Hand-made events for the publisher tests: real frames with a white object, its box and its record."""

from __future__ import annotations

import time

import cv2
import numpy as np

from uolrps.runtime.events.event import Event


def frame_with_object(box, size=(240, 320), seed: int = 0) -> np.ndarray:
    """A dark noisy frame (H, W = ``size``) with a white rectangle filling inclusive ``box``; read-only."""
    H, W = size
    frame = np.random.default_rng(seed).integers(20, 60, (H, W, 3), dtype=np.uint8)
    x1, y1, x2, y2 = box
    cv2.rectangle(frame, (x1, y1), (x2, y2), (255, 255, 255), -1)
    frame.setflags(write=False)
    return frame


def make_event(seq: int, kind: str = "start", stream: str = "a", track: int = 1, box=(100, 60, 179, 139),
               image: bool = False, frame: int | None = None, size=(240, 320), zone: str | None = None) -> Event:
    frame = seq * 10 if frame is None else frame
    return Event(kind=kind, stream=stream, track=track, id=f"{stream}-{track}-{frame}", seq=seq,
                 start=frame / 25.0, end=frame / 25.0 + 1.5, wall=time.time(), box=tuple(float(v) for v in box),
                 score=0.8, peak=0.95, frame=frame, frame_size=size, zones=(zone,) if zone else (), zone=zone,
                 image=frame_with_object(box, size, seed=seq) if image else None)
