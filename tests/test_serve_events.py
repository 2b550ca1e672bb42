"""The HTTP side of events (issue 23): ``GET /api/events`` from the run's ring of recent events, each object's
JPEGs (crop and annotated frame, made off the publishing thread), the Host/token rules on those routes,
``/metrics`` counters per publisher and per stream and type, and track ids drawn on the live boxes.

Real servers on loopback over tests/serve_control.py's StreamControl with a real :class:`EventRing`, and over a
real StreamEngine (tiny ONNX model, ONNX Runtime); events are hand-made (tests/event_samples.py) and published
into the ring as the run's event sink does."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the [serve] extra (fastapi, uvicorn, prometheus-client) is not installed")
pytest.importorskip("uvicorn", reason="the [serve] extra (fastapi, uvicorn, prometheus-client) is not installed")

from event_samples import make_event  # noqa: E402
from serve_client import request, wait_for  # noqa: E402
from serve_control import SyntheticRun  # noqa: E402

from uolrps.runtime.control import EventControl  # noqa: E402
from uolrps.runtime.events.ring import EventRing, crop_of  # noqa: E402
from uolrps.serve import TOKEN_ENV, start_server  # noqa: E402

A = "pattern:320x240@30/80x60"
BOX = (100, 60, 179, 139)  # the white object of every hand-made event's frame


class EventRun(SyntheticRun):
    """The test StreamControl plus :class:`EventControl` over a real ring (as StreamEngine does)."""

    def __init__(self, **ring) -> None:
        super().__init__()
        self.ring = EventRing(**ring)
        self.ring.start()
        self.publishers = {"webhook": {"sent": 5, "dropped": 2, "queued": 1, "failed": 3, "rejected": 1}}

    def events(self, stream=None, since=None, limit=100):
        return self.ring.events(stream, since, limit)

    def event_image(self, event_id, kind):
        return self.ring.image(event_id, kind)

    def event_metrics(self):
        return {"publishers": {**self.publishers, "api": self.ring.counters()}, "events": self.ring.counts()}

    def close(self) -> None:
        super().close()
        self.ring.close()


@pytest.fixture
def served(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    run = EventRun()
    run.add_stream(A, "a")
    run.add_stream(A, "b")
    handle = start_server(run, port=0)
    yield run, handle
    handle.close()
    run.close()


def decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def test_recent_events_in_order_with_since_stream_and_limit(served):
    run, h = served
    assert isinstance(run, EventControl)
    sent = [make_event(0, "start", "a", 1), make_event(1, "start", "b", 4), make_event(2, "update", "a", 1, frame=0),
            make_event(3, "end", "a", 1, frame=0), make_event(4, "enter", "b", 4, frame=10, zone="door")]
    for ev in sent:
        run.ring.publish(ev)
    status, _, data = request(h.url, path="/api/events")
    assert status == 200
    assert [e["seq"] for e in data["events"]] == [0, 1, 2, 3, 4] and data["last"] == 4
    for got, ev in zip(data["events"], sent):
        assert {k: v for k, v in got.items() if k != "images"} == ev.to_record()
        assert got["images"] == {}  # these events carry no frame
    assert [e["seq"] for e in request(h.url, path="/api/events?since=2")[2]["events"]] == [3, 4]
    data = request(h.url, path="/api/events?since=4")[2]
    assert data == {"events": [], "last": 4}  # a poller keeps its place
    assert [e["seq"] for e in request(h.url, path="/api/events?stream=b")[2]["events"]] == [1, 4]
    assert [e["seq"] for e in request(h.url, path="/api/events?stream=a&since=0")[2]["events"]] == [2, 3]
    assert [e["seq"] for e in request(h.url, path="/api/events?limit=2")[2]["events"]] == [3, 4]  # the newest
    assert [e["seq"] for e in request(h.url, path="/api/events?since=0&limit=2")[2]["events"]] == [1, 2]  # the next
    assert request(h.url, path="/api/events?stream=b")[2]["events"][1]["zone"] == "door"


def test_bad_queries_and_unknown_streams(served):
    run, h = served
    run.ring.publish(make_event(0))
    status, _, data = request(h.url, path="/api/events?stream=nope")
    assert status == 404 and "nope" in data["error"] and "'a'" not in data["error"] and "a, b" in data["error"]
    for q in ("limit=0", "limit=5000", "since=x", "limit=-1"):
        status, _, data = request(h.url, path=f"/api/events?{q}")
        assert status == 400 and "error" in data, q
    run.remove_stream("b")  # a removed stream's events stay readable
    run.ring.publish(make_event(1, stream="b"))
    assert [e["stream"] for e in request(h.url, path="/api/events?stream=b")[2]["events"]] == ["b"]


def test_the_ring_is_bounded(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    run = EventRun(size=5)
    run.add_stream(A, "a")
    try:
        with start_server(run, port=0) as h:
            for i in range(12):
                run.ring.publish(make_event(i))
            assert [e["seq"] for e in request(h.url, path="/api/events")[2]["events"]] == [7, 8, 9, 10, 11]
            assert [e["seq"] for e in request(h.url, path="/api/events?since=2")[2]["events"]] == [7, 8, 9, 10, 11]
    finally:
        run.close()


def test_each_object_has_a_crop_and_an_annotated_frame(served):
    run, h = served
    ev = make_event(0, box=BOX, image=True, track=12)
    run.ring.publish(ev)
    wait_for(lambda: run.ring.image(ev.id, "crop") is not None)
    data = request(h.url, path="/api/events")[2]
    urls = data["events"][0]["images"]
    assert urls == {"crop": f"/api/events/{ev.id}/crop.jpg", "frame": f"/api/events/{ev.id}/frame.jpg"}

    status, headers, jpeg = request(h.url, path=urls["crop"])
    assert status == 200 and headers["content-type"] == "image/jpeg"
    crop = decode(jpeg)
    # the crop is the box widened by a tenth each side: 80 x 80 -> 96 x 96, the white object in its middle
    assert crop.shape[:2] == (96, 96)
    assert crop[8:88, 8:88].mean() > 230 and crop[:5].mean() < 90

    frame = decode(request(h.url, path=urls["frame"])[2])
    assert frame.shape[:2] == (240, 320)
    x1, y1, x2, y2 = BOX  # the red outline (draw_boxes, PRED_COLOR) around the object, the track id beside it
    edge = frame[y1 + 20:y2 - 20, x1 - 1:x1 + 2].reshape(-1, 3).mean(0)
    assert edge[2] > 150 and edge[0] < 120, edge
    assert frame[y1 - 20:y1, x1:x1 + 40].reshape(-1, 3)[:, 2].max() > 150  # the "#12" label's red ground

    status, _, data = request(h.url, path="/api/events/a-99-0/crop.jpg")
    assert status == 404 and "not made yet" in data["error"]
    assert request(h.url, path=f"/api/events/{ev.id}/full.jpg")[0] == 404


def test_a_big_frame_is_scaled_down_and_a_later_better_sighting_replaces_the_images(served):
    run, h = served
    big = make_event(0, box=(400, 300, 799, 599), image=True, size=(1080, 1920), frame=0)
    run.ring.publish(big)
    wait_for(lambda: run.ring.image(big.id, "frame") is not None)
    frame = decode(run.ring.image(big.id, "frame"))
    assert frame.shape[:2] == (360, 640)
    assert max(decode(run.ring.image(big.id, "crop")).shape[:2]) == 160
    # an update of the same object with a new best frame: its images follow
    later = make_event(1, "update", box=(1000, 100, 1099, 299), image=True, size=(1080, 1920), frame=0)
    assert later.id == big.id
    object.__setattr__(later, "frame", 30)
    run.ring.publish(later)
    wait_for(lambda: decode(run.ring.image(big.id, "crop")).shape[:2] == (160, 80))


def test_images_are_made_off_the_publishing_thread_and_bounded():
    ring = EventRing(images=3, encode_queue=2)
    # not started: nothing is encoded, publishing stays cheap and keeps the records
    ring.publish(make_event(0, image=True))
    assert ring.counters()["queued"] == 0 and len(ring.events()) == 1
    ring.start()
    try:
        events = [make_event(i, track=i, image=True, frame=i) for i in range(1, 9)]
        for ev in events:
            ring.publish(ev)
        wait_for(lambda: ring.counters()["queued"] == 0)
        c = ring.counters()
        assert c["sent"] == 9
        encoded = 8 - c["dropped"]  # a frame skipped because the encoder fell behind is counted, never encoded
        kept = [ev.id for ev in events if ring.image(ev.id, "crop") is not None]
        assert len(kept) == min(3, encoded) and events[-1].id in kept  # the newest is never the one skipped
    finally:
        ring.close()


def test_crop_of_is_clipped_to_the_frame():
    img = np.arange(10 * 20 * 3, dtype=np.uint8).reshape(10, 20, 3)
    # 10 x 5 box: widened by 1 and 0.5 (rounded out to 1) each side, clipped at the left and the top
    assert crop_of(img, (0, 0, 9, 4)).shape[:2] == (6, 11)
    # 16 x 26 box reaching past the frame: x from floor(13.4) = 13 to the last column 19, y from 2 to row 9
    assert crop_of(img, (15, 5, 30, 30)).shape[:2] == (8, 7)
    # one pixel in the corner: widened by 0.1, rounded out to one more pixel up and left
    assert crop_of(img, (19, 9, 19, 9)).shape[:2] == (2, 2)


def test_a_run_without_events_says_so(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    run = SyntheticRun()  # a plain StreamControl
    run.add_stream(A, "a")
    try:
        with start_server(run, port=0) as h:
            for path in ("/api/events", "/api/events/a-1-0/crop.jpg"):
                status, _, data = request(h.url, path=path)
                assert status == 404 and "--track" in data["error"], path
            status, _, body = request(h.url, path="/metrics")
            assert status == 200 and b"uolrps_events" not in body
    finally:
        run.close()


def test_events_and_their_images_follow_the_host_and_token_rules(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    run = EventRun()
    run.add_stream(A, "a")
    ev = make_event(0, image=True)
    run.ring.publish(ev)
    wait_for(lambda: run.ring.image(ev.id, "crop") is not None)
    paths = ("/api/events", f"/api/events/{ev.id}/crop.jpg", f"/api/events/{ev.id}/frame.jpg")
    try:
        with start_server(run, port=0) as h:  # loopback: a foreign Host name is refused (DNS rebinding)
            for path in paths:
                assert request(h.url, path=path)[0] == 200, path
                status, _, data = request(h.url, path=path, headers={"Host": f"rebind.attacker.example:{h.port}"})
                assert status == 403 and "loopback" in data["error"], path
        with start_server(run, host="0.0.0.0", port=0, token="t0k") as h:  # beyond loopback: the token
            local = f"http://127.0.0.1:{h.port}"
            for path in paths:
                status, headers, _ = request(local, path=path)
                assert status == 401 and headers["www-authenticate"] == "Bearer", path
                assert request(local, path=path, headers={"Authorization": "Bearer t0"})[0] == 401, path
                assert request(local, path=path, headers={"Authorization": "Bearer t0k"})[0] == 200, path
            status, headers, _ = request(local, "POST", "/api/login", {"token": "t0k"})
            cookie = headers["set-cookie"].split(";")[0]
            assert request(local, path=paths[1], headers={"Cookie": cookie})[0] == 200
    finally:
        run.close()


def test_metrics_count_events_per_stream_and_type_and_each_publisher(served):
    run, h = served
    for i, (kind, stream) in enumerate((("start", "a"), ("update", "a"), ("update", "a"), ("start", "b"),
                                        ("end", "a"))):
        run.ring.publish(make_event(i, kind, stream))
    status, _, body = request(h.url, path="/metrics")
    text = body.decode()

    def value(name, **labels):
        sel = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        m = re.search(rf"^{name}\{{{sel}\}} (\S+)$", text, re.M)
        assert m, (name, labels)
        return float(m.group(1))

    assert status == 200
    assert value("uolrps_events_total", stream="a", type="start") == 1
    assert value("uolrps_events_total", stream="a", type="update") == 2
    assert value("uolrps_events_total", stream="a", type="end") == 1
    assert value("uolrps_events_total", stream="b", type="start") == 1
    assert value("uolrps_event_publisher_sent_total", publisher="webhook") == 5
    assert value("uolrps_event_publisher_dropped_total", publisher="webhook") == 2
    assert value("uolrps_event_publisher_failed_total", publisher="webhook") == 3
    assert value("uolrps_event_publisher_queued", publisher="webhook") == 1
    assert value("uolrps_event_publisher_sent_total", publisher="api") == 5


def test_the_page_has_the_events_panel(served):
    _, h = served
    status, _, page = request(h.url, path="/")
    html = page.decode()
    assert status == 200 and 'id="events"' in html and "/api/events" in html and "crop" in html


def test_live_boxes_carry_their_track_ids():
    """The drawing layer writes ``#id`` beside a tracked box: the label's text box grows by its width."""
    from uolrps.core.drawing import Annotator
    from uolrps.runtime.result import LocalizationResult

    frame = np.full((120, 200, 3), 40, np.uint8)
    box = np.array([[60, 50, 150, 100]], np.float32)
    plain = LocalizationResult(boxes=box, scores=np.array([0.5], np.float32), heatmap=np.zeros((1, 4, 4), np.float32),
                               frame_size=(120, 200))
    tracked = LocalizationResult(boxes=box, scores=np.array([0.5], np.float32),
                                 heatmap=np.zeros((1, 4, 4), np.float32), frame_size=(120, 200),
                                 track_ids=np.array([427], np.int64))
    unconfirmed = LocalizationResult(boxes=box, scores=np.array([0.5], np.float32),
                                     heatmap=np.zeros((1, 4, 4), np.float32), frame_size=(120, 200),
                                     track_ids=np.array([-1], np.int64))
    ann = Annotator()

    def label_width(img):  # the filled label above the box: green (PALETTE[0]) pixels in the rows above y1
        band = img[30:48, :]
        cols = np.where(((band[:, :, 1] > 200) & (band[:, :, 2] < 80)).any(axis=0))[0]
        return cols.max() - cols.min() + 1

    w_plain, w_tracked = label_width(ann.annotate(frame, plain)), label_width(ann.annotate(frame, tracked))
    (tw, _), _ = cv2.getTextSize("#427 ", cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    assert abs((w_tracked - w_plain) - tw) <= 2, (w_plain, w_tracked, tw)
    assert label_width(ann.annotate(frame, unconfirmed)) == w_plain


def test_a_real_engine_serves_the_events_of_its_ring(tmp_path, monkeypatch):
    """StreamEngine implements EventControl from the EventRing the run hands it (runner: find_ring)."""
    pytest.importorskip("onnx", reason="the tiny test model is built with onnx (the [export] extra)")
    pytest.importorskip("onnxruntime", reason="a real run needs ONNX Runtime")
    import threading

    from tinymodel import make_tiny_model

    from uolrps.runtime import Localizer
    from uolrps.runtime.engine import StreamEngine
    from uolrps.runtime.events.sink import find_ring

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    video = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (160, 120))
    for i in range(20):
        frame = np.full((120, 160, 3), 20, np.uint8)
        cv2.rectangle(frame, (10 + i, 30), (60 + i, 80), (255, 255, 255), -1)
        w.write(frame)
    w.release()

    from uolrps.core.drawing import Annotator
    from uolrps.runtime.recording import Recorders
    from uolrps.runtime.runner import RunConfig

    # the runner's Recorders of a run that serves and makes events holds the ring; one that only serves does not
    served = dict(source=str(video), model=str(tmp_path / "tiny.onnx"), serve="0", progress=False)
    outputs = Recorders(RunConfig(**served, webhook=("http://127.0.0.1:9/hook",)), Annotator(), False, True)
    try:
        assert isinstance(find_ring(outputs), EventRing)
    finally:
        outputs.close()
    assert find_ring(Recorders(RunConfig(**served), Annotator(), False, True)) is None
    ring = EventRing()
    with Localizer(make_tiny_model(tmp_path / "tiny.onnx")) as loc:
        engine = StreamEngine(loc, loop=True, keep_running=True)
        assert isinstance(engine, EventControl)
        assert engine.events() is None and engine.event_image("x", "crop") is None
        engine.add_source(str(video), "clip")
        consumer = threading.Thread(target=lambda: [None for _ in engine.results()], daemon=True)
        consumer.start()
        handle = start_server(engine, port=0)
        try:
            # a served run without events: no events routes, no event metrics
            assert request(handle.url, path="/api/events")[0] == 404
            assert b"uolrps_event" not in request(handle.url, path="/metrics")[2]
            engine.stats.event_counters = lambda: {"api": ring.counters()}
            engine.event_ring = ring  # what the runner does (find_ring) when it serves a run with events
            ring.start()
            ev = make_event(0, stream="clip", image=True)
            ring.publish(ev)
            wait_for(lambda: ring.image(ev.id, "frame") is not None)
            data = request(handle.url, path="/api/events?stream=clip")[2]
            assert [e["id"] for e in data["events"]] == [ev.id] and data["events"][0]["images"]
            assert request(handle.url, path=data["events"][0]["images"]["frame"])[0] == 200
            assert request(handle.url, path="/api/events?stream=other")[0] == 404
            text = request(handle.url, path="/metrics")[2].decode()
            assert 'uolrps_events_total{stream="clip",type="start"} 1.0' in text
            assert 'uolrps_event_publisher_sent_total{publisher="api"} 1.0' in text
        finally:
            handle.close()
            engine.close()
            consumer.join(10)
            ring.close()


@pytest.mark.slow
def test_the_page_shows_recent_events_with_their_thumbnails(tmp_path, monkeypatch):
    """In a real headless Chromium: the events panel appears, lists events as they come (newest first) and
    shows each object's crop (the white object: a bright thumbnail)."""
    import time

    from selenium.webdriver.common.by import By

    from serve_browser import open_browser

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    driver = open_browser(tmp_path)  # first: where it skips (no Chromium), no server is left running
    run = EventRun()
    run.add_stream(A, "a")
    handle = start_server(run, port=0)
    try:
        driver.get(handle.url + "/")
        run.ring.publish(make_event(0, "start", track=3, image=True))

        def items():
            return driver.find_elements(By.CSS_SELECTOR, "#evlist li.event")

        deadline = time.monotonic() + 30
        while not items():
            assert time.monotonic() < deadline, "the page listed no event"
            time.sleep(0.1)
        assert driver.find_element(By.ID, "events").is_displayed()
        assert "a #3 start" in items()[0].text
        img = items()[0].find_element(By.CSS_SELECTOR, "img.thumb")
        while not driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img):
            assert time.monotonic() < deadline, "the thumbnail never loaded"
            time.sleep(0.1)
        shot = cv2.imdecode(np.frombuffer(img.screenshot_as_png, np.uint8), cv2.IMREAD_COLOR)
        h, w = shot.shape[:2]
        assert shot[h // 4:3 * h // 4, w // 4:3 * w // 4].mean() > 200  # the white object, cropped
        assert driver.execute_script("return arguments[0].naturalWidth", img) == 96

        run.ring.publish(make_event(1, "end", track=3))  # a later event comes on top, without a reload
        while len(items()) < 2:
            assert time.monotonic() < deadline, "the second event did not appear"
            time.sleep(0.1)
        assert "a #3 end" in items()[0].text and items()[0].get_attribute("data-seq") == "1"
    finally:
        driver.quit()
        handle.close()
        run.close()


def test_the_ring_is_made_for_a_served_run_that_makes_events():
    from uolrps.runtime.runner import RunConfig

    def ring_for(**kw):
        return EventRing.create(RunConfig(source="x.mp4", model="m.onnx", **kw))

    assert ring_for() is None and ring_for(track=True) is None  # not served: nobody reads it
    assert ring_for(serve="0") is None  # served without events: no tracking is turned on for it
    for more in ({"track": True}, {"webhook": ("http://127.0.0.1:9/h",)}, {"events": "ev"}):
        assert isinstance(ring_for(serve="0", **more), EventRing), more
