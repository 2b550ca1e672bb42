"""What tracking and events cost (issue 23): `uolrps run` on raccoon_pan with and without `--track --events DIR`.

Two measurements, interleaved rounds (plain, events, plain, events...), medians:

1. **Whole runs** (subprocesses): FPS from the summary JSON, and process CPU time (user + system of the child)
   per frame. The events run's CPU includes one-time costs (importing the tracking library: about 2-4 s of CPU
   here), spread over the clip's frames.
2. **Per frame, steady state** (in this process, no model): the clip's frames with the boxes of a plain run's
   JSONL go through the tracker and the event sink (with its files publisher writing events.jsonl and the
   snapshots from its own thread); CPU time (all threads) minus that of reading the same frames alone.

    python benchmarks/bench_events.py --model MODEL.onnx [--rounds 3] [--video CLIP] [--no-files] [-- EXTRA RUN ARGS]

Both runs write the JSONL. Arguments after ``--`` are added to the events run (e.g. ``-- --mqtt
mqtt://127.0.0.1``; the steady-state measurement then includes the MQTT publisher too). ``--no-files``: the
events run without ``--events DIR`` (no events.jsonl, no JPEG snapshots), i.e. tracking, events and the
publishers after ``--`` (the issue's "tracking, events and an MQTT sink"). Name the CPU with the figures
(AMD EPYC here, AVX2 only).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_placement import cpu_name  # this folder is on sys.path when a benchmark runs as a script

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "video" / "raccoon_pan.mp4"


def one_run(video, model, extra, workdir: Path, tag: str) -> tuple[float, float, int]:
    """(fps, CPU ms per frame, frames) of one `uolrps run`."""
    summary = workdir / f"{tag}.json"
    cmd = [sys.executable, "-m", "uolrps.cli.main", "run", "--video", str(video), "--model", str(model), "--quiet",
           "--summary-json", str(summary), *extra]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    s = json.loads(summary.read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return s["fps"], cpu * 1000.0 / max(1, s["frames"]), s["frames"]


def steady(video, boxes_jsonl: Path, workdir: Path, n: int, files: bool = True, mqtt: str | None = None
           ) -> tuple[float, float]:
    """(CPU ms per frame of reading alone, of reading + tracking + events) over the first ``n`` frames."""
    import cv2

    from uolrps.runtime.events.sink import EventSink
    from uolrps.runtime.result import LocalizationResult
    from uolrps.runtime.runner import RunConfig
    from uolrps.runtime.tracking import Tracker

    records = [json.loads(line) for line in boxes_jsonl.read_text().splitlines()][:n]
    hm = np.zeros((1, 15, 20), np.float32)

    def results():
        cap = cv2.VideoCapture(str(video))
        for rec in records:
            ok, frame = cap.read()
            if not ok:
                break
            frame.setflags(write=False)
            yield frame, LocalizationResult(boxes=np.asarray(rec["boxes"], np.float32).reshape(-1, 4),
                                            scores=np.asarray(rec["scores"], np.float32), heatmap=hm,
                                            frame_size=frame.shape[:2], frame_index=rec["frame"], timestamp=rec["t"],
                                            stream="raccoon_pan")
        cap.release()

    t0 = time.process_time()
    for _ in results():
        pass
    base = time.process_time() - t0

    class _Stream:
        name = "raccoon_pan"

    out = Path(tempfile.mkdtemp(dir=workdir))
    sink = EventSink.create(RunConfig(source=str(video), model="m.onnx", events=out if files else None, mqtt=mqtt),
                            None, False, True)
    sink.open(_Stream())
    tracker = Tracker(30.0)
    t0 = time.process_time()
    for frame, r in results():
        r = tracker.apply(r, frame)
        sink.write("raccoon_pan", frame, r, 30.0)
    sink.finish()
    sink.close()  # the files publisher's thread finishes its writing: its CPU time is counted
    full = time.process_time() - t0
    return base * 1000.0 / len(records), full * 1000.0 / len(records)


def main() -> None:
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="the model (needed for the whole runs)")
    ap.add_argument("--video", default=str(CLIP))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=900, help="frames for the steady-state measurement")
    ap.add_argument("--boxes", type=Path, help="a plain run's JSONL: only the steady-state measurement, on it")
    ap.add_argument("--no-files", action="store_true", help="the events run without --events DIR (no events.jsonl, "
                    "no JPEG snapshots): tracking and the publishers given after -- (e.g. --mqtt URL) only")
    args = ap.parse_args(argv)
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores visible; clip {args.video}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        plain, events = [], []
        for k in range(0 if args.boxes else args.rounds):
            plain.append(one_run(args.video, args.model, ["--jsonl", str(work / "boxes.jsonl")], work, f"p{k}"))
            files = [] if args.no_files else ["--events", str(work / f"ev{k}")]  # both runs write the JSONL too
            events.append(one_run(args.video, args.model, ["--jsonl", str(work / "ev.jsonl"), "--track", *files, *extra],
                                  work, f"e{k}"))
            print(f"round {k + 1}: plain {plain[-1][0]:.1f} FPS {plain[-1][1]:.1f} CPU ms/frame | events "
                  f"{events[-1][0]:.1f} FPS {events[-1][1]:.1f} CPU ms/frame", flush=True)
        if plain:
            fp, fe = statistics.median(p[0] for p in plain), statistics.median(e[0] for e in events)
            cp, ce = statistics.median(p[1] for p in plain), statistics.median(e[1] for e in events)
            what = " ".join(["--track"] + ([] if args.no_files else ["--events DIR"]) + extra)
            print(f"whole runs, medians of {args.rounds}: FPS plain {fp:.1f}, with {what} {fe:.1f} (ratio {fe / fp:.3f}); CPU ms/frame {cp:.2f} -> {ce:.2f} (added "
                  f"{ce - cp:+.2f}, one-time costs included)")
        base, full = [], []
        for _ in range(args.rounds):
            mqtt = extra[extra.index("--mqtt") + 1] if "--mqtt" in extra else None
            b, f = steady(args.video, args.boxes or work / "boxes.jsonl", work, args.frames, not args.no_files, mqtt)
            base.append(b)
            full.append(f)
        b, f = statistics.median(base), statistics.median(full)
        pubs = ", ".join((["files"] if not args.no_files else []) + (["mqtt"] if mqtt else [])) or "none"
        print(f"steady state, medians of {args.rounds}: reading {b:.3f} CPU ms/frame, + tracking and events "
              f"(publishers: {pubs}) {f:.3f}: added {f - b:.3f} CPU ms/frame")


if __name__ == "__main__":
    main()
