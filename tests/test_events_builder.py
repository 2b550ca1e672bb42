"""Tracks and events without a model: the tracker (trackers' ByteTrack) on hand-made boxes, the scene-cut test,
zones (hand-worked polygons), bad --zone values, and the event builder on hand-made tracked results
(debounce, gap, area, updates, zone enter / leave, best snapshot, run-wide seq)."""

from __future__ import annotations

import numpy as np
import pytest
from event_recorder import RecordingPublisher

from uolrps.core.errors import OptionError
from uolrps.runtime.events.builder import EventBuilder, EventOptions, box_peak
from uolrps.runtime.events.zones import parse_zone, parse_zones
from uolrps.runtime.result import LocalizationResult
from uolrps.runtime.tracking import CutDetector

H, W = 100, 200


def result(frame, t, boxes, ids, scores=None, heatmap=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores if scores is not None else [0.5] * len(boxes), np.float32)
    hm = heatmap if heatmap is not None else np.zeros((1, 10, 20), np.float32)
    return LocalizationResult(boxes=boxes, scores=scores, heatmap=hm, frame_size=(H, W), frame_index=frame,
                              timestamp=t, track_ids=np.asarray(ids, np.int64))


def kinds(events):
    return [(e.kind, e.track) + ((e.zone,) if e.zone else ()) for e in events]


# ---- the scene-cut test -------------------------------------------------------------------------------------
def test_cut_detector_on_hand_made_frames():
    det = CutDetector(25.0)
    grey = lambda v: np.full((480, 640, 3), v, np.uint8)  # noqa: E731
    assert det(grey(100)) is False  # the first frame is never a cut
    assert det(grey(100)) is False  # difference 0
    assert det(grey(130)) is True  # difference 30 > 25
    assert det(grey(150)) is False  # difference 20
    half = grey(150)
    half[:, :320] = 250  # half the frame changes by 100: mean difference 50
    assert det(half) is True
    off = CutDetector(0)
    assert not any(off(grey(v)) for v in (0, 255, 0))


# ---- the tracker --------------------------------------------------------------------------------------------
def test_tracker_keeps_ids_per_object_and_starts_afresh_after_a_cut():
    pytest.importorskip("trackers", reason="needs the trackers library (pip install 'uolrps[track]')")
    from uolrps.runtime.tracking import Tracker

    tr = Tracker(fps=10)
    frame = np.full((H, W, 3), 80, np.uint8)
    seen = []
    for i in range(8):
        a = [10 + 3 * i, 10, 50 + 3 * i, 50]  # moves right
        b = [150 - 2 * i, 40, 190 - 2 * i, 90]  # moves left
        order = [a, b] if i % 2 else [b, a]  # the input order must not matter
        ids = tr(np.array(order, np.float32), frame)
        seen.append(ids if i % 2 else ids[::-1])
    assert (seen[0] == -1).all()  # not confirmed on its first frame
    later = np.array(seen[1:])
    assert (later[:, 0] == later[0, 0]).all() and (later[:, 1] == later[0, 1]).all()
    assert later[0, 0] != later[0, 1] and (later >= 0).all()
    # a cut (the frame changes completely): the same boxes get new ids, above every earlier one
    cut = np.full((H, W, 3), 200, np.uint8)
    first = tr(np.array([a, b], np.float32), cut)
    again = tr(np.array([a, b], np.float32), cut)
    assert (first == -1).all()
    assert again.min() > later.max() and len(set(again.tolist())) == 2
    # no boxes: an empty int64 array
    none = tr(np.zeros((0, 4), np.float32), cut)
    assert none.dtype == np.int64 and none.shape == (0,)


def test_tracker_apply_sets_track_ids_on_a_result():
    pytest.importorskip("trackers", reason="needs the trackers library (pip install 'uolrps[track]')")
    from uolrps.runtime.tracking import Tracker

    tr = Tracker(fps=10)
    frame = np.full((H, W, 3), 80, np.uint8)
    plain = [LocalizationResult(boxes=np.array([[10 + i, 10, 50 + i, 50]], np.float32),
                                scores=np.array([0.5], np.float32), heatmap=np.zeros((1, 4, 4), np.float32),
                                frame_size=(H, W), frame_index=i) for i in range(3)]
    assert all(p.track_ids is None for p in plain)
    r = [tr.apply(p, frame) for p in plain]
    assert r[0].track_ids.tolist() == [-1] and r[1].track_ids.tolist() == r[2].track_ids.tolist() != [-1]


# ---- zones --------------------------------------------------------------------------------------------------
def test_zone_contains_hand_worked_cases():
    tri = parse_zone("cam:tri=0,0,1,0,0,1")  # the triangle below the diagonal x + y = 1
    assert tri.contains(0.2, 0.2) and not tri.contains(0.6, 0.6)
    assert tri.contains(0.5, 0.5) and tri.contains(0, 0) and tri.contains(0.5, 0)  # boundary counts
    # an L shape (concave): the square without its bottom-right quarter
    ell = parse_zone("cam:L=0,0,1,0,1,0.5,0.5,0.5,0.5,1,0,1")
    assert ell.contains(0.25, 0.75) and ell.contains(0.75, 0.25) and ell.contains(0.25, 0.25)
    assert not ell.contains(0.75, 0.75) and not ell.contains(0.51, 0.99)
    assert ell.contains(0.75, 0.5)  # on the inner edge


@pytest.mark.parametrize("text, why", [
    ("cam:a=0,0,1,1", "do not make a polygon"),
    ("cam:a=0,0,1,0,1", "do not make x,y pairs"),
    ("cam:a=0,0,1,0,1.5,1", "fraction of the frame"),
    ("cam:a=0,0,1,0,nan,1", "fraction of the frame"),
    ("cam:a=0,0,x,0,1,1", "numbers separated by commas"),
    ("cam:a=0,0,0.5,0.5,1,1", "no area"),
    ("cam=0,0,1,0,1,1", "STREAM:NAME="),
    ("cam:a b=0,0,1,0,1,1", "must be names"),
    ("0,0,1,0,1,1", "STREAM:NAME="),
])
def test_bad_zone_is_one_clear_error(text, why):
    with pytest.raises(OptionError, match="zone") as e:
        parse_zone(text)
    assert why in str(e.value) and "\n" not in str(e.value)


def test_zones_of_unknown_streams_and_twice_named_zones_are_refused():
    ok = parse_zones(["cam:a=0,0,1,0,1,1", "door:b=0,0,1,0,1,1", "cam:b=0,0,1,0,0,1"], ["cam", "door"])
    assert [z.name for z in ok["cam"]] == ["a", "b"] and [z.name for z in ok["door"]] == ["b"]
    with pytest.raises(OptionError, match="no stream named 'yard'; the streams are cam, door"):
        parse_zones(["yard:a=0,0,1,0,1,1"], ["cam", "door"])
    with pytest.raises(OptionError, match="already has a zone named 'a'"):
        parse_zones(["cam:a=0,0,1,0,1,1", "cam:a=0,0,1,0,0,1"], ["cam"])


# ---- the builder --------------------------------------------------------------------------------------------
FPS = 4  # 0.25 s a frame: exact in binary, so the gap comparisons below are exact


def run(builder, sightings, n):
    """``sightings``: {frame: [(track, box, score), ...]}; returns [(frame, events)]."""
    out = []
    for f in range(n):
        got = sightings.get(f, [])
        r = result(f, f / FPS, [b for _, b, _ in got], [t for t, _, _ in got], [s for _, _, s in got])
        out.append((f, builder.update(r, image=np.zeros((H, W, 3), np.uint8))))
    return out


def test_debounce_start_gap_and_end():
    b = EventBuilder("cam", EventOptions(min_frames=3, max_gap=1.0, update_s=0))
    box = [20, 20, 60, 60]
    seen = {f: [(7, box, 0.5)] for f in range(10)}  # track 7 on frames 0..9 (t 0 .. 2.25)
    seen.update({f: seen.get(f, []) + [(8, [100, 10, 140, 50], 0.5)] for f in (0, 1)})  # track 8: a 2-frame flicker
    seen[4] = []  # a one-frame miss (0.25 s < max_gap): the object goes on
    events = [(f, e) for f, evs in run(b, seen, 16) for e in evs]
    assert [(f, e.kind, e.track) for f, e in events] == [(2, "start", 7), (14, "end", 7)]
    start, end = events[0][1], events[1][1]
    # started on its 3rd sighting (frame 2); ended at the first frame more than 1 s after its last sighting
    # (frame 9, t 2.25): frame 13 is t 3.25 (1.0 s: not more), frame 14 is t 3.5
    assert start.start == 0.0 and start.end == 0.5 and start.id == "cam-7-0"
    assert end.start == 0.0 and end.end == 2.25 and end.duration == 2.25 and end.id == start.id
    assert b.count == 0


def test_min_seconds_and_min_area():
    b = EventBuilder("cam", EventOptions(min_frames=1, min_seconds=1.0, max_gap=0.5, update_s=0))
    big, small = [0, 0, 99, 49], [0, 0, 9, 9]  # a quarter of the 200 x 100 frame; 100 px = 0.5%
    events = run(b, {f: [(1, big, 0.5)] for f in range(6)}, 6)
    assert [(f, e.kind) for f, evs in events for e in evs] == [(4, "start")]  # t 1.0 - 0.0 >= 1.0
    b = EventBuilder("cam", EventOptions(min_frames=1, min_area=0.01, update_s=0))
    events = run(b, {f: [(1, small, 0.5), (2, big, 0.5)] for f in range(3)}, 3)
    assert [(e.kind, e.track) for _, evs in events for e in evs] == [("start", 2)]


def test_updates_every_n_seconds_with_the_best_box_so_far():
    b = EventBuilder("cam", EventOptions(min_frames=3, update_s=1.0, max_gap=1.0))
    scores = [0.3, 0.4, 0.35, 0.9, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
    seen = {f: [(3, [10 + f, 10, 50 + f, 50], s)] for f, s in enumerate(scores)}
    events = [(f, e) for f, evs in run(b, seen, len(scores)) for e in evs]
    # start on frame 2 (t 0.5): next update at t 1.5 (frame 6), then t 2.5 (frame 10)
    assert [(f, e.kind) for f, e in events] == [(2, "start"), (6, "update"), (10, "update")]
    assert events[0][1].frame == 1 and events[0][1].score == pytest.approx(0.4)  # best so far at the start
    assert events[1][1].frame == 3 and events[1][1].box == (13.0, 10.0, 53.0, 50.0)
    # the end, at close, keeps the best frame (the snapshot's)
    end = b.close()
    assert [e.kind for e in end] == ["end"] and end[0].frame == 3


def test_zone_enter_and_leave_and_events_limited_to_zones():
    zones = parse_zones(["cam:left=0,0,0.5,0,0.5,1,0,1", "cam:right=0.5,0,1,0,1,1,0.5,1"], ["cam"])["cam"]
    b = EventBuilder("cam", EventOptions(min_frames=2, update_s=0, max_gap=0.5), zones)
    # box centre x (pixels, frame width 200): 40, 60, 80 (left half), 120, 140 (right half)
    xs = [40, 60, 80, 120, 140]
    seen = {f: [(1, [x - 10, 20, x + 9, 59], 0.5)] for f, x in enumerate(xs)}
    events = [e for _, evs in run(b, seen, 5) for e in evs]
    assert kinds(events) == [("start", 1), ("enter", 1, "left"), ("leave", 1, "left"), ("enter", 1, "right")]
    assert events[0].zones == ("left",) and events[-1].zones == ("right",)
    assert kinds(b.close()) == [("leave", 1, "right"), ("end", 1)]
    # a zone only on the left: an object on the right makes no event at all
    only = parse_zones(["cam:left=0,0,0.5,0,0.5,1,0,1"], ["cam"])["cam"]
    b = EventBuilder("cam", EventOptions(min_frames=1, update_s=0), only)
    assert [e for _, evs in run(b, {f: [(5, [150, 20, 190, 60], 0.5)] for f in range(5)}, 5) for e in evs] == []


def test_unconfirmed_boxes_are_ignored_and_seq_is_run_wide():
    counter = iter(range(1, 100))
    seq = lambda: next(counter)  # noqa: E731
    a = EventBuilder("a", EventOptions(min_frames=1, update_s=0), seq=seq)
    b = EventBuilder("b", EventOptions(min_frames=1, update_s=0), seq=seq)
    ea = a.update(result(0, 0.0, [[0, 0, 9, 9], [20, 20, 39, 39]], [-1, 4]))
    eb = b.update(result(0, 0.0, [[0, 0, 9, 9]], [4]))
    assert [(e.stream, e.track, e.seq) for e in ea + eb] == [("a", 4, 1), ("b", 4, 2)]
    assert ea[0].id == "a-4-0" and eb[0].id == "b-4-0"


def test_snapshot_paths_are_decided_with_the_event():
    b = EventBuilder("door", EventOptions(min_frames=1, update_s=0, snapshots=True))
    e = b.update(result(5, 1.0, [[0, 0, 9, 9]], [2]), image=np.zeros((H, W, 3), np.uint8))[0]
    assert (e.snapshot, e.crop) == ("door/door-2-5.jpg", "door/door-2-5-crop.jpg")
    rec = e.to_record()
    assert rec["snapshot"] == e.snapshot and "image" not in rec
    b = EventBuilder("door", EventOptions(min_frames=1, update_s=0))
    assert b.update(result(5, 1.0, [[0, 0, 9, 9]], [2]))[0].snapshot is None


def test_box_peak_is_the_map_maximum_under_the_box():
    hm = np.zeros((1, 10, 20), np.float32)  # a 20 x 10 grid on the 200 x 100 frame: 10 px a cell
    hm[0, 2, 3] = 0.7  # the cell of pixels x 30..39, y 20..29
    hm[0, 8, 15] = 0.9
    assert box_peak(hm, 0, [25, 15, 45, 35], (H, W)) == pytest.approx(0.7)
    assert box_peak(hm, 0, [0, 0, 199, 99], (H, W)) == pytest.approx(0.9)
    assert box_peak(hm, 0, [100, 0, 140, 40], (H, W)) == 0.0


# ---- the sink -----------------------------------------------------------------------------------------------
def test_event_sink_states_per_stream_removal_and_close(monkeypatch):
    from uolrps.runtime.events import sink as sink_module
    from uolrps.runtime.runner import RunConfig
    from uolrps.runtime.stats import RunStats

    monkeypatch.setattr(sink_module.registry, "PUBLISHERS", [RecordingPublisher])
    sink = sink_module.EventSink.create(RunConfig(source=("a.mp4", "b.mp4"), model="m.onnx", event_min_frames=2),
                                        None, False, False)
    assert sink is not None and sink.needs_tracks
    stats = RunStats()
    sink.bind(stats)
    pub = sink.publishers[0]
    brief = {"event": lambda e: ("event", e.stream, e.kind), "state": lambda s: ("state", s.stream, s.present, s.count)}

    class S:
        def __init__(self, name):
            self.name = name

    sink.open(S("a"))
    sink.open(S("b"))
    box = [[10, 10, 60, 60]]
    for f in range(3):  # a: an object from frame 0; b: nothing
        sink.write("a", None, result(f, f / 4, box, [1]), 4.0)
        sink.write("b", None, result(f, f / 4, [], []), 4.0)
    sink.remove("a")  # through the API: its object ends, publishers hear of it
    sink.write("a", None, result(3, 0.75, box, [1]), 4.0)  # a late result of a removed stream: ignored
    sink.finish()
    sink.close()
    sink.close()  # twice: harmless
    assert [brief[x[0]](x[1]) if x[0] in brief else x for x in pub.log] == [
        ("start",), ("added", "a"), ("added", "b"),
        ("state", "a", False, 0), ("state", "b", False, 0),
        ("event", "a", "start"), ("state", "a", True, 1),
        ("event", "a", "end"), ("state", "a", False, 0), ("removed", "a"),
        ("state", "b", False, 0), ("removed", "b"),
        ("closed",),
    ]
    assert stats.event_counters() == {"recorder": {"sent": len(pub.log), "dropped": 0, "queued": 0, "failed": 0}}


def test_files_publisher_full_disk_is_one_error_and_keeps_whole_lines(tmp_path):
    import json
    import os
    import time

    import cv2

    from uolrps.core.checked_io import LineFile, OutputError
    from uolrps.runtime.events.files import FilesPublisher

    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full (Linux) to stand for a full disk")
    b = EventBuilder("cam", EventOptions(min_frames=1, update_s=0, snapshots=True))
    image = np.full((H, W, 3), 90, np.uint8)
    first = b.update(result(0, 0.0, [[10, 10, 59, 49]], [1]), image)
    pub = FilesPublisher(tmp_path / "ev")
    pub.start()
    for e in first:
        pub.publish(e)
    deadline = time.monotonic() + 10
    while pub.counters()["sent"] < len(first) and time.monotonic() < deadline:
        time.sleep(0.01)
    lines = (tmp_path / "ev" / "events.jsonl").read_text().splitlines()
    assert [json.loads(x)["type"] for x in lines] == ["start"]
    crop = cv2.imread(str(tmp_path / "ev" / "cam" / "cam-1-0-crop.jpg"))
    assert crop.shape == (40, 50, 3)  # the box's 50 x 40 pixels
    pub.lines.close()
    pub.lines = LineFile("/dev/full", "events")  # the disk fills up
    for e in b.close():
        pub.publish(e)
    with pytest.raises(OutputError, match="events") as err:
        pub.close()
    assert "\n" not in str(err.value)
    assert (tmp_path / "ev" / "events.jsonl").read_text().splitlines() == lines  # what was written stays whole
