"""Zones: ``--zone STREAM:NAME=x1,y1,x2,y2,x3,y3,...``, a polygon in fractions of the frame (0..1, x to the
right, y down), repeatable. With zones, a stream's events are limited to objects inside one of its zones, and an
object that enters or leaves a zone makes an ``enter`` / ``leave`` event. An object is inside a zone when its
box's centre is (the boundary counts as inside)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from uolrps.core.errors import OptionError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
FORM = "STREAM:NAME=x1,y1,x2,y2,x3,y3[,...] (a polygon of at least 3 points, in fractions 0..1 of the frame)"


@dataclass(frozen=True)
class Zone:
    stream: str
    name: str
    points: tuple[tuple[float, float], ...]  # fractions of the frame (x, y)

    def contains(self, x: float, y: float) -> bool:
        """Is the point (fractions of the frame) inside the polygon or on its boundary (even-odd rule)."""
        pts = self.points
        inside = False
        for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1]):
            # on this edge: collinear and between its ends
            cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)
            if abs(cross) <= 1e-12 and min(x1, x2) - 1e-12 <= x <= max(x1, x2) + 1e-12 \
                    and min(y1, y2) - 1e-12 <= y <= max(y1, y2) + 1e-12:
                return True
            if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
                inside = not inside
        return inside


def _area(points) -> float:
    return 0.5 * abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1])))


def parse_zone(text: str) -> Zone:
    """One ``--zone`` value to a :class:`Zone`; an :class:`OptionError` saying what is wrong otherwise."""
    def bad(why: str) -> OptionError:
        return OptionError(f"zone {text!r}: {why}; the form is {FORM}", "zone")

    head, eq, coords = str(text).partition("=")
    stream, colon, name = head.strip().partition(":")
    if not eq or not colon:
        raise bad("it needs STREAM:NAME= before the points")
    stream, name = stream.strip(), name.strip()
    if not _NAME.fullmatch(stream) or not _NAME.fullmatch(name):
        raise bad("the stream and the zone name must be names (letters, digits, _ or -)")
    try:
        values = [float(v) for v in coords.split(",")]
    except ValueError:
        raise bad("the points must be numbers separated by commas") from None
    if len(values) % 2:
        raise bad(f"{len(values)} numbers do not make x,y pairs")
    if len(values) < 6:
        raise bad(f"{len(values) // 2} point(s) do not make a polygon")
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
        raise bad("every coordinate must be a fraction of the frame, from 0 to 1")
    points = tuple(zip(values[0::2], values[1::2]))
    if _area(points) <= 1e-9:
        raise bad("the polygon has no area (its points are on one line)")
    return Zone(stream, name, points)


def parse_zones(texts, streams) -> dict[str, tuple[Zone, ...]]:
    """Every ``--zone`` value, by stream; a zone of a stream not in ``streams`` (the run's stream names) or a
    zone name given twice for one stream is an :class:`OptionError`."""
    out: dict[str, list[Zone]] = {}
    known = list(streams)
    for text in texts or ():
        zone = parse_zone(text)
        if zone.stream not in known:
            raise OptionError(f"zone {text!r}: there is no stream named {zone.stream!r}; the streams are "
                              f"{', '.join(known) or 'none'} (a sources file names its streams: NAME=SOURCE lines)", "zone")
        if any(z.name == zone.name for z in out.get(zone.stream, [])):
            raise OptionError(f"zone {text!r}: stream {zone.stream} already has a zone named {zone.name!r}", "zone")
        out.setdefault(zone.stream, []).append(zone)
    return {k: tuple(v) for k, v in out.items()}
