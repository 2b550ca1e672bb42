"""MJPEG video from the server: real JPEGs with the boxes drawn, the heatmap overlay, one encode per frame
however many viewers, the viewer cap, slow viewers that skip frames without holding anything back."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the [serve] extra (fastapi, uvicorn, prometheus-client) is not installed")
pytest.importorskip("uvicorn", reason="the [serve] extra (fastapi, uvicorn, prometheus-client) is not installed")

from conftest import shared  # noqa: E402
from serve_client import MjpegReader, RawViewer, request  # noqa: E402
from serve_control import SyntheticRun, pattern_box  # noqa: E402

from uolrps.serve import TOKEN_ENV, start_server  # noqa: E402

A = "pattern:320x240@30/80x60"
B = "pattern:320x240@30/120x90"


@pytest.fixture
def served(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    run = SyntheticRun()
    run.add_stream(A, "a")
    run.add_stream(B, "b")
    handle = start_server(run, port=0, max_viewers=3)
    yield run, handle
    handle.close()
    run.close()


def frame_of(run, name: str) -> int:
    """The frame index of the newest result of a stream (its per-stream count, unlike ``seq``)."""
    latest = run.latest(name)
    return latest.result.frame_index if latest is not None else -1


def green(image: np.ndarray) -> np.ndarray:
    """Pixels of the box colour (BGR 0, 255, 0) after JPEG compression."""
    b, g, r = (image[..., i].astype(int) for i in range(3))
    return (g > 160) & (b < 110) & (r < 110)


def assert_box_drawn(image, box):
    """The box's four edges are drawn in green (most pixels of each edge), and the scene elsewhere is not."""
    x1, y1, x2, y2 = box
    mask = green(image)
    for edge in (mask[y1, x1:x2 + 1], mask[y2, x1:x2 + 1], mask[y1:y2 + 1, x1], mask[y1:y2 + 1, x2]):
        assert edge.mean() > 0.6, edge.mean()
    assert not mask[y1 + 10:y2 - 10, x1 + 10:x2 - 10].any()  # the white object inside is untouched
    assert mask[:, x2 + 10:].mean() < 0.01  # right of the box: the grey scene


def test_every_part_is_a_jpeg_of_a_new_frame_with_its_box(served):
    run, h = served
    for name, source in (("a", A), ("b", B)):
        viewer = MjpegReader(h.url, f"/streams/{name}.mjpg")
        assert viewer.status == 200 and viewer.boundary
        parts = viewer.frames(6)
        viewer.close()
        seqs = [int(headers["x-seq"]) for headers, _ in parts]
        assert seqs == sorted(set(seqs)), seqs  # every part a newer result
        for headers, image in parts:
            assert image.shape == (240, 320, 3)
            assert_box_drawn(image, pattern_box(source, int(headers["x-frame"])))


def test_the_heatmap_overlay_on_request(served):
    run, h = served
    plain = MjpegReader(h.url, "/streams/a.mjpg").frames(1)[0][1]
    heat = MjpegReader(h.url, "/streams/a.mjpg?heatmap=1").frames(1)[0][1]
    corner_plain = plain[150:, 250:].reshape(-1, 3).mean(0)
    corner_heat = heat[150:, 250:].reshape(-1, 3).mean(0)
    assert abs(corner_plain[0] - corner_plain[2]) < 8  # grey
    assert corner_heat[0] - corner_heat[2] > 30  # a zero heatmap is blue in the JET colour map
    snapshot = request(h.url, path="/streams/a.jpg?heatmap=1")
    assert snapshot[0] == 200 and snapshot[1]["content-type"] == "image/jpeg"


def test_each_frame_is_encoded_once_however_many_viewers(served):
    from prometheus_client.parser import text_string_to_metric_families

    run, h = served
    frames_before = frame_of(run, "a")
    viewers = [MjpegReader(h.url, "/streams/a.mjpg") for _ in range(3)]
    got = [[int(hd["x-frame"]) for hd, _ in v.frames(15)] for v in viewers]
    frames_after = frame_of(run, "a")
    status, _, data = request(h.url, path="/api/streams")
    assert data["viewers"] == 3
    body = request(h.url, path="/metrics")[2].decode()
    for v in viewers:
        v.close()
    encoded = {tuple(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(body)
               for s in f.samples if s.name == "uolrps_serve_frames_encoded_total"}
    n = encoded[(("heatmap", "0"), ("stream", "a"))]
    assert n >= max(len(set(g)) for g in got)
    assert n <= frames_after - frames_before + 2, (n, frames_before, frames_after)  # not 3 per frame
    assert set(got[0]) & set(got[1]) & set(got[2])  # the viewers were shown the same frames


def test_the_viewer_cap_answers_503_and_frees_slots(served):
    run, h = served
    viewers = [MjpegReader(h.url, p) for p in ("/streams/a.mjpg", "/streams/b.mjpg", "/streams/a.mjpg?heatmap=1")]
    for v in viewers:
        assert v.status == 200 and v.next() is not None
    status, headers, data = request(h.url, path="/streams/b.mjpg")
    assert status == 503 and "the limit is 3" in data["error"] and headers["retry-after"]
    assert request(h.url, path="/api/streams/a/latest")[0] == 200  # the API is not capped
    viewers.pop().close()
    deadline = time.monotonic() + 5
    while request(h.url, path="/api/streams")[2]["viewers"] > 2:
        assert time.monotonic() < deadline, "a closed viewer kept its slot"
        time.sleep(0.05)
    again = MjpegReader(h.url, "/streams/b.mjpg")
    assert again.status == 200 and again.next() is not None
    for v in viewers + [again]:
        v.close()


def test_a_stuck_viewer_holds_back_neither_the_run_nor_other_viewers_and_then_skips(served):
    run, h = served
    stuck = RawViewer(h.url, "/streams/a.mjpg")
    first = stuck.read_frames(2.0, stop_at=0)
    assert first
    fast = MjpegReader(h.url, "/streams/a.mjpg")
    seq0 = frame_of(run, "a")
    t0 = time.monotonic()
    seen = [int(hd["x-frame"]) for hd, _ in fast.frames(30)]  # about a second at 30 FPS; `stuck` reads nothing
    elapsed = time.monotonic() - t0
    seq1 = frame_of(run, "a")
    assert seq1 - seq0 >= 0.6 * 30 * elapsed  # the run kept its pace
    assert seen[-1] >= seq1 - 8  # the other viewer got fresh frames (within a quarter second)
    assert max(run.publish_s) < 0.5  # publishing a result never waited on a viewer (that would be seconds)
    time.sleep(1.0)
    target = frame_of(run, "a")
    resumed = stuck.read_frames(5.0, stop_at=target)
    stuck.close()
    fast.close()
    assert resumed and resumed[-1] >= target, "the stuck viewer did not catch up with the newest frame"
    gaps = np.diff(sorted(set(first + resumed)))
    assert gaps.max() > 5, "the stuck viewer was sent a backlog instead of the newest frame"
    assert len(resumed) < (target - first[-1]) / 2  # it skipped most of what it missed


def test_removing_a_stream_ends_its_viewers(served):
    run, h = served
    viewer = MjpegReader(h.url, "/streams/b.mjpg")
    assert viewer.next() is not None
    assert request(h.url, "DELETE", "/api/streams/b")[0] == 200
    deadline = time.monotonic() + 5
    while viewer.next() is not None:
        assert time.monotonic() < deadline, "the viewer of a removed stream was kept open"
    viewer.close()
    assert request(h.url, path="/streams/b.mjpg")[0] == 404
    metrics = request(h.url, path="/metrics")[2].decode()
    assert 'stream="a"' in metrics and 'stream="b"' not in metrics  # its series went with it


def test_closing_the_server_ends_open_viewers(served):
    run, h = served
    viewer = MjpegReader(h.url, "/streams/a.mjpg")
    assert viewer.next() is not None
    t0 = time.monotonic()
    h.close()
    while viewer.next() is not None:
        assert time.monotonic() - t0 < 5, "a viewer kept the server from closing"
    viewer.close()


def test_frames_of_a_real_video(served):
    video = shared("video", "raccoon_pan.mp4")
    run, h = served
    assert request(h.url, "POST", "/api/streams", {"name": "raccoon", "source": f"video:{video}"})[0] == 201
    viewer = MjpegReader(h.url, "/streams/raccoon.mjpg")
    (headers, image), = viewer.frames(1)
    viewer.close()
    H, W = image.shape[:2]
    assert (H, W) == (480, 640)
    x1, y1, x2, y2 = W // 4, H // 4, W - W // 4 - 1, H - H // 4 - 1
    mask = green(image)
    assert mask[y2, x1:x2 + 1].mean() > 0.6 and mask[y1:y2 + 1, x1].mean() > 0.6


def test_a_vanished_viewer_gives_its_slot_back_and_does_not_delay_closing(monkeypatch, caplog):
    import uolrps.serve.server as server

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.setattr(server, "STALL_TIMEOUT_S", 1.0)
    run = SyntheticRun()
    run.add_stream(A, "a")
    h = start_server(run, port=0, max_viewers=1)
    try:
        frozen = RawViewer(h.url, "/streams/a.mjpg")  # reads one part, then never again, never closes
        assert frozen.read_frames(2.0, stop_at=0)
        assert request(h.url, path="/streams/a.mjpg")[0] == 503  # the one slot is taken
        deadline = time.monotonic() + 10
        while request(h.url, path="/api/streams")[2]["viewers"]:
            assert time.monotonic() < deadline, "a frozen viewer kept its slot"
            time.sleep(0.2)
        frozen3 = RawViewer(h.url, "/streams/a.mjpg")  # the slot is free again
        assert frozen3.read_frames(2.0, stop_at=0)
        time.sleep(0.5)  # it stops reading: its connection holds unsent data when the server closes
        t0 = time.monotonic()
        with caplog.at_level("ERROR"):
            h.close()
        assert time.monotonic() - t0 < 2.0
        assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
        frozen.close()
        frozen3.close()
    finally:
        h.close()
        run.close()


def test_a_stream_removed_and_added_again_under_its_name_is_shown_anew(served):
    run, h = served
    slow = "pattern:320x240@5/80x60"  # 5 FPS: its seq, restarting at 1, stays below the old one's for seconds
    viewer = MjpegReader(h.url, "/streams/b.mjpg")
    while int(viewer.next()[0]["x-seq"]) < 40:
        pass
    assert request(h.url, "DELETE", "/api/streams/b")[0] == 200
    assert request(h.url, "POST", "/api/streams", {"name": "b", "source": slow})[0] == 201  # at once
    viewer.close()
    t0 = time.monotonic()
    again = MjpegReader(h.url, "/streams/b.mjpg")
    (headers, image), = again.frames(1)
    again.close()
    assert time.monotonic() - t0 < 3.0, "the view waited for the new stream's seq to pass the old one's"
    assert_box_drawn(image, pattern_box(slow, int(headers["x-frame"])))  # the new stream's box


def test_a_stream_replaced_behind_the_servers_back_is_shown_anew(served):
    """Removed and added again by the run's owner (not through the API): the seq restarts, the view follows."""
    run, h = served
    slow = "pattern:320x240@5/80x60"
    viewer = MjpegReader(h.url, "/streams/b.mjpg")
    while int(viewer.next()[0]["x-seq"]) < 40:
        pass
    run.remove_stream("b")
    run.add_stream(slow, "b")
    deadline = time.monotonic() + 3.0
    while True:
        assert time.monotonic() < deadline, "the view kept waiting for the new stream's seq to pass the old one's"
        part = viewer.next()
        if part is None:  # the server saw the removal: a new viewer
            viewer.close()
            viewer = MjpegReader(h.url, "/streams/b.mjpg")
            continue
        image = cv2.imdecode(np.frombuffer(part[1], np.uint8), cv2.IMREAD_COLOR)
        box = pattern_box(slow, int(part[0]["x-frame"]))
        if green(image)[box[1], box[0]:box[2] + 1].mean() > 0.6:
            break
    viewer.close()
