"""Tracks and events in real runs: the issue 23 acceptance on raccoon_pan (real video, the real efflite0 model in
ONNX Runtime), two streams in one batch (each its own tracker and its own states), a square moving in a
generated clip with the tiny model, and the output checks of --events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter, defaultdict

import cv2
import numpy as np
import pytest
from conftest import ROOT, shared
from event_recorder import RecordingPublisher
from tinymodel import bright_square_frame, make_tiny_model

pytest.importorskip("trackers", reason="tracking needs the trackers library (pip install 'uolrps[track]')")

CLI = [sys.executable, "-m", "uolrps.cli.main"]
FPS = 30.0


def uolrps(*args, timeout=600):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def segments_of(clip):
    """The photo each frame of raccoon_pan shows (its ground truth)."""
    return [json.loads(line)["source_image"] for line in
            clip.with_suffix("").with_suffix(".gt.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("events")
    model = make_tiny_model(d / "m.onnx")
    video = d / "square.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(40):  # a square that moves right for 20 frames, 20 black frames (it left)
        frame = bright_square_frame(120, 160, (20 + 2 * i, 30, 60 + 2 * i, 70)) if i < 20 else \
            np.zeros((120, 160, 3), np.uint8)
        writer.write(frame)
    writer.release()
    return d, model, video


@pytest.mark.slow
def test_acceptance_raccoon_pan_ids_start_events_and_snapshots(efflite0_model, tmp_path):
    clip = shared("video", "raccoon_pan.mp4")
    seg = segments_of(clip)
    out = uolrps("run", "--video", clip, "--model", efflite0_model, "--events", tmp_path / "ev", "--jsonl",
                 tmp_path / "r.jsonl", "--summary-json", tmp_path / "s.json", "--quiet")
    assert out.returncode == 0, out.stderr
    records = read_jsonl(tmp_path / "r.jsonl")
    assert len(records) == 900 and all(len(r["ids"]) == len(r["boxes"]) for r in records)
    # ids: a segment keeps one id when one confirmed id is on >= 90% of its frames with a box (the main box)
    by_seg = defaultdict(list)
    for r in records:
        if r["boxes"]:
            by_seg[seg[r["frame"]]].append(r["ids"][0])
    kept = [s for s, ids in by_seg.items() if (c := Counter(ids).most_common(1)[0])[0] != -1 and c[1] >= 0.9 * len(ids)]
    assert len(by_seg) == 20 and len(kept) >= 18, {s: Counter(v) for s, v in by_seg.items()}
    # events: 20 +- 3 starts; each event's snapshot (its best frame) is from the photo it started in
    events = read_jsonl(tmp_path / "ev" / "events.jsonl")
    starts = [e for e in events if e["type"] == "start"]
    assert 17 <= len(starts) <= 23, Counter(e["type"] for e in events)
    for e in events:
        first = int(round(e["start"] * FPS))
        assert seg[e["frame"]] == seg[first], e
    last = {e["id"]: e for e in events}  # the snapshot on disk is the object's best: its last event's
    assert len(last) == len(starts)
    for e in last.values():
        snap = cv2.imread(str(tmp_path / "ev" / e["snapshot"]))
        crop = cv2.imread(str(tmp_path / "ev" / e["crop"]))
        x1, y1, x2, y2 = (int(round(v)) for v in e["box"])
        assert snap.shape == (480, 640, 3) and crop.shape[:2] == (y2 - y1 + 1, x2 - x1 + 1)
    assert sum(e["type"] == "end" for e in events) == len(starts)  # every object ended (the file ended)
    files = json.loads((tmp_path / "s.json").read_text())["events"]["files"]
    assert files["sent"] == len(events) and files["dropped"] == 0 and files["queued"] == 0


@pytest.mark.slow
def test_two_streams_in_one_batch_have_their_own_tracks_and_states(efflite0_model, tmp_path, monkeypatch):
    from uolrps.runtime import Localizer
    from uolrps.runtime.events import registry
    from uolrps.runtime.pipeline import localize_streams
    from uolrps.runtime.runner import RunConfig, run
    from uolrps.runtime.sources import open_source
    from uolrps.runtime.tracking import Tracker

    clip = str(shared("video", "raccoon_pan.mp4"))
    n = 60  # a cut at frame 45
    with Localizer(efflite0_model) as loc:
        # the reference: one tracker on the Localizer's results, frame by frame
        src, tracker, ref = open_source(clip), Tracker(FPS), []
        for frame, _ in zip(src, range(n)):
            ref.append(tracker.apply(loc(frame.image, frame.index, frame.timestamp), frame.image).track_ids.tolist())
        src.close()
        got = defaultdict(list)
        for name, r in localize_streams({"a": clip, "b": clip}, localizer=loc, track=True, max_frames=n,
                                        batch_wait_ms=50):
            got[name].append(r.track_ids.tolist())
    assert got["a"] == ref and got["b"] == ref  # a shared tracker would give stream b other ids

    monkeypatch.setattr(RecordingPublisher, "made", [])
    monkeypatch.setattr(registry, "PUBLISHERS", [*registry.PUBLISHERS, RecordingPublisher])
    stats = run(RunConfig(source=(clip, clip), model=efflite0_model, max_frames=n, progress=False,
                          events=tmp_path / "ev", batch_wait_ms=50))
    assert stats.frames == 2 * n and set(stats.event_counters()) == {"files", "recorder"}
    log = RecordingPublisher.made[-1].log  # the run's (the sink's check makes one too)
    names = ["raccoon_pan", "raccoon_pan_2"]
    assert sorted(x[1] for x in log if x[0] == "added") == names == sorted(x[1] for x in log if x[0] == "removed")
    assert log[0] == ("start",) and log[-1] == ("closed",)
    open_now = {s: 0 for s in names}
    states = defaultdict(list)
    for kind, item in (x for x in log if len(x) == 2):
        if kind == "event":
            open_now[item.stream] += {"start": 1, "end": -1}.get(item.kind, 0)
        elif kind == "state":
            states[item.stream].append((item.present, item.count))
            assert item.count == open_now[item.stream] and item.present == (item.count > 0)
    for s in names:
        # each stream: nobody, then photo 1's raccoon, then (after the cut at frame 45) photo 2's as well (photo
        # 1's object ends only after 1 s unseen, past the 60 frames), nobody at the end; a state only on a change
        assert states[s][0] == (False, 0) and (True, 1) in states[s] and states[s][-1] == (False, 0)
        assert all(a != b for a, b in zip(states[s], states[s][1:]))
    events = [x[1] for x in log if x[0] == "event"]
    starts = {s: [e.id for e in events if e.kind == "start" and e.stream == s] for s in names}
    assert len(starts["raccoon_pan"]) == len(starts["raccoon_pan_2"]) == 2  # photo 1 and photo 2
    files = read_jsonl(tmp_path / "ev" / "events.jsonl")
    assert [e["id"] for e in files] == [e.id for e in events]


def test_track_on_a_moving_square_with_the_tiny_model(tiny, tmp_path):
    d, model, video = tiny
    out = uolrps("run", "--video", video, "--model", model, "--track", "--multi", "--jsonl", tmp_path / "r.jsonl",
                 "--quiet", "--events", tmp_path / "ev", "--event-update", "0.5")
    assert out.returncode == 0, out.stderr
    records = read_jsonl(tmp_path / "r.jsonl")
    ids = [r["ids"][0] for r in records[:20] if r["ids"]]
    assert ids[0] == -1 and len(set(ids[1:])) == 1 and ids[1] >= 0  # one square, one id
    events = read_jsonl(tmp_path / "ev" / "events.jsonl")
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("start") == 1 and "update" in kinds
    assert all(e["track"] == ids[1] for e in events)
    # the end: the square is gone after frame 19 (t 1.9); max gap 1 s: ended at its last sighting
    assert events[-1]["end"] == pytest.approx(1.9, abs=0.11)


def test_events_outputs_are_checked_before_any_work(tiny, tmp_path):
    d, model, video = tiny
    fifo_dir = tmp_path / "fifo"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / "events.jsonl")
    a_file = tmp_path / "file"
    a_file.write_text("mine\n")
    for events, needle in ((fifo_dir, "a FIFO"), (a_file, "is not a folder")):
        res = uolrps("run", "--video", video, "--model", model, "--events", events, "--quiet", timeout=120)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and needle in res.stderr, res.stderr
    assert a_file.read_text() == "mine\n"
    # --events beside --jsonl: the same file twice is refused
    res = uolrps("run", "--video", video, "--model", model, "--events", tmp_path / "ev", "--jsonl",
                 tmp_path / "ev" / "events.jsonl", "--quiet", timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_missing_tracking_library_is_one_clear_line(monkeypatch):
    from uolrps.core.errors import UserError
    from uolrps.runtime.tracking import check_tracking

    monkeypatch.setitem(sys.modules, "trackers", None)
    with pytest.raises(UserError, match=r"pip install 'uolrps\[track\]'"):
        check_tracking()


def test_the_latest_line_viewers_and_the_api_get_has_the_ids(tiny):
    from uolrps.runtime import Localizer
    from uolrps.runtime.engine import StreamEngine

    d, model, video = tiny
    with Localizer(model) as loc:
        engine = StreamEngine(loc, track=True)
        try:
            name = engine.add_source(str(video), "sq", open_now=True)
            results = [r for _, _, r in engine.results()]
            line = engine.latest(name).line  # what GET /api/streams/sq/latest returns
        finally:
            engine.close()
    assert all(r.track_ids is not None and len(r.track_ids) == len(r.boxes) for r in results)
    assert line["ids"] == results[-1].track_ids.tolist() and line["frame"] == results[-1].frame_index
