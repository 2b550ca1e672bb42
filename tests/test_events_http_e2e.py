"""End to end: `uolrps run --track --webhook URL --serve` as a user starts it (a real process, a real model on
ONNX Runtime, a real video): the object's events reach a loopback webhook receiver signed, the same events are
in GET /api/events with their JPEGs, the ids are in the latest result, /metrics counts them, and Ctrl-C ends
the objects (end events delivered) with the publishers' counters in the summary."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the [serve] extra (fastapi, uvicorn, prometheus-client) is not installed")
pytest.importorskip("onnx", reason="the tiny test model is built with onnx (the [export] extra)")
pytest.importorskip("onnxruntime", reason="the run needs ONNX Runtime (the [ort] or [export] extra)")
pytest.importorskip("trackers", reason="--track needs the [track] extra (trackers)")

sys.path.insert(0, str(Path(__file__).parent))

from serve_client import request, wait_for  # noqa: E402
from test_serve_e2e import RunProcess, square_video  # noqa: E402
from tinymodel import make_tiny_model  # noqa: E402
from webhook_receiver import Receiver  # noqa: E402

SECRET = "e2e-secret"


@pytest.mark.slow
def test_run_with_track_webhook_and_serve(tmp_path, monkeypatch):
    monkeypatch.setenv("UOLRPS_WEBHOOK_SECRET", SECRET)  # RunProcess passes the environment on
    model = make_tiny_model(tmp_path / "m.onnx")
    clip = square_video(tmp_path / "door.avi", "left", frames=60)
    receiver = Receiver()
    summary = tmp_path / "summary.json"
    run = RunProcess(["--video", str(clip), "--model", str(model), "--quiet", "--track",
                      "--webhook", f"http://hook:pw@127.0.0.1:{receiver.port}/hook",
                      "--serve", "127.0.0.1:0", "--jsonl", str(tmp_path / "out.jsonl"),
                      "--summary-json", str(summary)], tmp_path)
    try:
        url = run.wait_for_line(r"(http://127\.0\.0\.1:\d+)", 120).group(1)

        def started():
            status, _, data = request(url, path="/api/events")
            return status == 200 and [e for e in data["events"] if e["type"] == "start"]

        start = wait_for(started, 90)[0]
        assert start["stream"] == "door" and start["track"] >= 0
        # the same event reached the webhook, signed
        wait_for(lambda: any(json.loads(b)["id"] == start["id"] for _, _, b in receiver.requests), 30)
        path, headers, body = next(r for r in receiver.requests if json.loads(r[2])["id"] == start["id"])
        record = json.loads(body)
        assert {k: v for k, v in start.items() if k != "images"} == record
        ts = headers["x-uolrps-timestamp"]
        assert headers["x-uolrps-signature"] == "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + body,
                                                                       hashlib.sha256).hexdigest()
        # its images: the crop shows the bright square of the clip
        wait_for(lambda: request(url, path=f"/api/events/{start['id']}/crop.jpg")[0] == 200, 30)
        jpeg = request(url, path=f"/api/events/{start['id']}/crop.jpg")[2]
        crop = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert crop is not None and crop.mean() > 60
        # the ids are in the results
        latest = request(url, path="/api/streams/door/latest")[2]
        assert "ids" in latest and len(latest["ids"]) == len(latest["boxes"])
        text = request(url, path="/metrics")[2].decode()
        assert re.search(r'uolrps_events_total\{stream="door",type="start"\} [1-9]', text), text
        assert re.search(r'uolrps_event_publisher_sent_total\{publisher="webhook"\} [1-9]', text), text
    finally:
        code, out, err = run.interrupt() if run.proc.poll() is None else (run.proc.returncode, "", "".join(run.err))
        run.kill()
        receiver.stop()
    assert code == 130, err
    assert "pw@" not in err and "hook:pw" not in err
    kinds = [json.loads(b)["type"] for _, _, b in receiver.requests]
    assert kinds[0] == "start" and "end" in kinds  # Ctrl-C ends the objects, their end events are delivered
    got = json.loads(summary.read_text())["events"]
    assert got["webhook"]["sent"] == len(receiver.requests) and got["webhook"]["dropped"] == 0
    assert got["api"]["sent"] == len(receiver.requests)
