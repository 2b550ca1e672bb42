"""Which tracking library: ms per update and id stability of each candidate on raccoon_pan (issue 23).

The boxes come from a run of our model (``uolrps run --video raccoon_pan.mp4 --jsonl BOXES``, optionally
``--multi``); the clip's ground truth (``raccoon_pan.gt.jsonl``) says which photo (segment, 45 frames) each
frame shows. Each candidate that is importable gets the same boxes (confidence 1: they all passed the heatmap
threshold), once with the raw library and once with a tracker reset at scene cuts (what
:mod:`uolrps.runtime.tracking` does; the cut is found on the frames of the video).

Figures per candidate:

- ``ms/update``: median wall time of one tracker update (one frame's boxes), and the 95th percentile;
- ``stable``: the fraction of the 20 segments whose *main* box (the largest, boxes[0]) has one confirmed id on
  at least 90% of the segment's frames with a box (an unconfirmed box, id -1, counts against it);
- ``ids``: distinct confirmed ids on main boxes over the clip (20 if each photo got its own and kept it);
- ``carried``: segments whose majority id is also the previous segment's (the tracker did not see the cut).

    python benchmarks/bench_trackers.py BOXES.jsonl [--video ../shared/data/video/raccoon_pan.mp4]

Candidates: supervision (``sv.ByteTrack``), trackers (``ByteTrackTracker``), norfair (``Tracker``, IoU
distance). Name the CPU with the figures (AMD EPYC here, AVX2 only).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def supervision_tracker(fps):
    import supervision as sv

    if not hasattr(sv, "ByteTrack"):
        raise ImportError(f"supervision {sv.__version__} has no ByteTrack any more (it moved to `trackers`)")
    return _bytetrack(sv.ByteTrack(frame_rate=int(round(fps)), minimum_consecutive_frames=1).update_with_detections)


def _bytetrack(update_detections):
    """An update of boxes -> ids over a tracker that takes and gives supervision Detections."""
    import supervision as sv

    def update(boxes):
        out = update_detections(sv.Detections(xyxy=boxes.astype(np.float32), data={"i": np.arange(len(boxes))}))
        ids = np.full(len(boxes), -1, np.int64)
        ids[out.data["i"]] = out.tracker_id
        return ids

    return update


def trackers_tracker(fps):
    from trackers import ByteTrackTracker

    return _bytetrack(ByteTrackTracker(frame_rate=fps, minimum_consecutive_frames=1).update)


def norfair_tracker(fps):
    from norfair import Detection, Tracker

    t = Tracker(distance_function="iou", distance_threshold=0.9, initialization_delay=0)
    frame = [0]

    def update(boxes):
        frame[0] += 1
        dets = [Detection(points=b.reshape(2, 2), data=(frame[0], i)) for i, b in enumerate(boxes)]
        ids = np.full(len(boxes), -1, np.int64)
        for obj in t.update(detections=dets):
            d = obj.last_detection
            if d is not None and d.data[0] == frame[0] and obj.id is not None:
                ids[d.data[1]] = obj.id
        return ids

    return update


CANDIDATES = {"supervision": supervision_tracker, "trackers": trackers_tracker, "norfair": norfair_tracker}


def cuts_of(video: Path) -> list[bool]:
    """Per frame: a scene cut before it (the same test as uolrps.runtime.tracking.CutDetector)."""
    import cv2

    from uolrps.runtime.tracking import CutDetector

    cap = cv2.VideoCapture(str(video))
    det, out = CutDetector(), []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        out.append(det(frame))
    cap.release()
    return out


def evaluate(ids_main: list[int], segments: list[str]) -> tuple[float, int, int]:
    by_seg: dict[str, list[int]] = {}
    for i, s in zip(ids_main, segments):
        if i is not None:
            by_seg.setdefault(s, []).append(i)
    stable, majors = 0, []
    for s in dict.fromkeys(segments):
        got = by_seg.get(s, [])
        major, n = Counter(got).most_common(1)[0] if got else (-1, 0)
        if major != -1 and got and n >= 0.9 * len(got):
            stable += 1
        majors.append(major)
    carried = sum(1 for a, b in zip(majors, majors[1:]) if a == b and a != -1)
    distinct = len({i for i in ids_main if i is not None and i != -1})
    return stable / len(majors), distinct, carried


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("boxes", type=Path, help="JSONL of `uolrps run --jsonl` on raccoon_pan.mp4")
    ap.add_argument("--video", type=Path, default=ROOT.parent / "shared" / "data" / "video" / "raccoon_pan.mp4")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    records = [json.loads(line) for line in args.boxes.read_text().splitlines()]
    gt = [json.loads(line) for line in args.video.with_suffix(".gt.jsonl").read_text().splitlines()]
    segments = [g["source_image"] for g in gt][:len(records)]
    boxes = [np.asarray(r["boxes"], np.float32).reshape(-1, 4) for r in records]
    cuts = cuts_of(args.video)[:len(records)]
    print(f"{len(records)} frames, {len(set(segments))} segments, {sum(cuts)} cuts found, "
          f"{sum(len(b) for b in boxes) / len(boxes):.2f} boxes per frame")
    for name, make in CANDIDATES.items():
        try:
            make(30.0)
        except ImportError as e:
            print(f"{name:12s} not importable: {e}")
            continue
        for reset in (False, True):
            times, ids_main = [], []
            for _ in range(args.rounds):
                update, ids_main = make(30.0), []
                for b, cut in zip(boxes, cuts):
                    if reset and cut:
                        update = make(30.0)  # the reset (the id offset does not matter for these figures)
                    t0 = time.perf_counter()
                    ids = update(b)
                    times.append((time.perf_counter() - t0) * 1000.0)
                    ids_main.append(int(ids[0]) if len(ids) else None)
            if reset:  # ids restart at each reset: make them distinct per reset
                epoch, out = 0, []
                for i, cut in zip(ids_main, cuts):
                    epoch += bool(cut)
                    out.append(None if i is None else (-1 if i == -1 else epoch * 100000 + i))
                ids_main = out
            stable, distinct, carried = evaluate(ids_main, segments)
            p50, p95 = statistics.median(times), float(np.percentile(times, 95))
            print(f"{name:12s} {'cut reset' if reset else 'raw      '}  ms/update p50 {p50:.3f} p95 {p95:.3f}  "
                  f"stable {stable:.2f}  ids {distinct:3d}  carried {carried}")


if __name__ == "__main__":
    main()
