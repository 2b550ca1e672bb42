"""Sources by one string: every kind that exists without a camera, real files, a loopback HTTP MJPEG stream,
and a fake capture (the camera we lack) that fails and recovers."""

from __future__ import annotations

import http.server
import socketserver
import threading
import time

import cv2
import numpy as np
import pytest

from uolrps.core.errors import UserError
from uolrps.runtime.sources import open_source, parse_source
from uolrps.runtime.capture import Status


def write_video(path, n=40, fps=25.0, size=(120, 160)):
    """A real video whose frame i is uniformly grey at level 5 * (i % 50) (readable back to the index)."""
    H, W = size
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    assert w.isOpened()
    for i in range(n):
        w.write(np.full((H, W, 3), 5 * (i % 50), np.uint8))
    w.release()
    return path


def level(img) -> int:
    return int(round(float(img.mean()) / 5))


@pytest.fixture
def images(tmp_path):
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    for i, name in enumerate(["b.jpg", "a.png", "sub/c.jpg"]):
        cv2.imwrite(str(d / name), np.full((30 + i, 40, 3), 50 * (i + 1), np.uint8))
    (d / "broken.jpg").write_bytes(b"this is not a jpeg")
    (d / "notes.txt").write_text("ignored")
    return d


# ---- parsing -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,kind,target", [
    ("cam0", "camera", 0), ("0", "camera", 0), ("cam12", "camera", 12),
    ("rtsp://10.0.0.2:8554/live", "rtsp", "rtsp://10.0.0.2:8554/live"),
    ("http://127.0.0.1:8080/video.mjpg", "http", "http://127.0.0.1:8080/video.mjpg"),
    ("HTTPS://cam.example/s", "http", "HTTPS://cam.example/s"),
    ("gst:nvarguscamerasrc ! nvvidconv ! appsink", "gst", "nvarguscamerasrc ! nvvidconv ! appsink"),
])
def test_parse_forms(text, kind, target):
    spec = parse_source(text)
    assert (spec.kind, spec.target) == (kind, target)
    assert spec.live


@pytest.mark.parametrize("text,match", [
    ("", "empty source"), ("ftp://host/x", "unknown source scheme"), ("nothere.mp4", "not an existing file"),
    ("/dev/video99", "camera /dev/video99 does not exist"), ("gst:  ", "empty GStreamer pipeline"),
    ("/dev/v4l/by-id/usb-cam-video-index0", "camera /dev/v4l/by-id/usb-cam-video-index0 does not exist"),
    ("{tmp}/*.jpg", "matches no images"), ("{tmp}/empty", "holds no images"),
])
def test_bad_sources_say_which_forms_exist(tmp_path, text, match):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=match) as e:
        parse_source(text.replace("{tmp}", str(tmp_path)))
    assert "\n" not in str(e.value)
    if match in ("unknown source scheme", "not an existing file"):
        assert "cam0" in str(e.value) and "rtsp://" in str(e.value) and "gst:" in str(e.value)


def test_parse_files(tmp_path, images):
    video = write_video(tmp_path / "v.avi", n=3)
    assert parse_source(str(video)).kind == "video"
    assert parse_source(f"file://{video}").kind == "video"
    assert parse_source(images / "a.png").kind == "image"
    folder = parse_source(images)
    assert folder.kind == "folder" and [p.name for p in folder.target] == ["a.png", "b.jpg", "broken.jpg", "c.jpg"]
    glob = parse_source(f"{images}/*.jpg")
    assert glob.kind == "glob" and [p.name for p in glob.target] == ["b.jpg", "broken.jpg"]
    assert [p.name for p in parse_source(f"{images}/**/*.jpg").target] == ["b.jpg", "broken.jpg", "c.jpg"]
    assert not folder.live


# ---- files ---------------------------------------------------------------------------------------------
def test_video_file_is_lossless_with_source_timestamps(tmp_path):
    src = open_source(str(write_video(tmp_path / "v.avi", n=40, fps=25.0)))
    assert not src.live and src.total == 40 and src.fps == pytest.approx(25.0)
    frames = list(src)
    assert [f.index for f in frames] == list(range(40))
    assert [level(f.image) for f in frames] == list(range(40))
    np.testing.assert_allclose([f.timestamp for f in frames], np.arange(40) / 25.0, atol=1e-6)
    assert src.read().status is Status.END and src.skipped == 0 and src.dropped == 0
    src.close()
    src.close()


def test_video_loop_keeps_counting_frames_and_time(tmp_path):
    with open_source(str(write_video(tmp_path / "v.avi", n=10, fps=10.0)), loop=True) as src:
        frames = [src.read().frame for _ in range(25)]
    assert [f.index for f in frames] == list(range(25))
    assert [level(f.image) for f in frames] == [i % 10 for i in range(25)]
    t = np.array([f.timestamp for f in frames])
    np.testing.assert_allclose(t, np.arange(25) / 10.0, atol=1e-6)


def test_a_file_that_is_not_a_video_is_refused(tmp_path):
    bad = tmp_path / "clip.mp4"
    bad.write_text("not a video")
    with pytest.raises(UserError, match="cannot open video file"):
        open_source(str(bad))


def test_folder_skips_and_counts_unreadable_images(images):
    with open_source(str(images)) as src:
        frames = list(src)
        assert src.skipped == 1 and src.total == 4
    assert [f.image.shape[0] for f in frames] == [31, 30, 32]  # a.png, b.jpg, sub/c.jpg (broken.jpg skipped)
    # the index is the position in the listing (a.png, b.jpg, broken.jpg, sub/c.jpg): the skipped file keeps
    # its number, so later images do not shift; every frame carries its file, the skipped one is reported
    assert [f.index for f in frames] == [0, 1, 3] and [f.timestamp for f in frames] == [0.0, 1.0, 3.0]
    assert [f.path for f in frames] == [str(images / "a.png"), str(images / "b.jpg"), str(images / "sub" / "c.jpg")]
    assert src.skipped_files == [str(images / "broken.jpg")]


def test_single_image_and_glob_and_loop(images):
    assert [f.image.shape for f in open_source(str(images / "a.png"))] == [(31, 40, 3)]
    assert len(list(open_source(f"{images}/*.png"))) == 1
    with open_source(str(images / "a.png"), loop=True) as src:
        assert [src.read().frame.index for _ in range(3)] == [0, 1, 2]
    broken = open_source(str(images / "broken.jpg"), loop=True)
    assert broken.read().status is Status.ERROR


# ---- live sources through a fake capture (a camera we lack) ---------------------------------------------
class FakeCamera:
    """A capture with OpenCV's interface: ``fail_after`` good reads per opening, then failed reads."""

    def __init__(self, world, fail_after=None, period=0.002):
        self.world, self.fail_after, self.period, self.reads = world, fail_after, period, 0

    def isOpened(self):
        return True

    def get(self, prop):
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self):
        time.sleep(self.period)
        if self.fail_after is not None and self.reads >= self.fail_after:
            return False, None
        self.reads += 1
        self.world["produced"] += 1
        return True, np.full((24, 32, 3), self.world["produced"] % 256, np.uint8)

    def release(self):
        self.world["released"] += 1


class ClosedCapture(FakeCamera):
    def isOpened(self):
        return False


def factory(plan, world, period=0.002):
    """Each opening takes the next entry of ``plan``: an int (fail after that many frames), None (never
    fails), or "down" (the device does not open)."""
    def open_capture(spec):
        world["opens"] += 1
        step = plan[min(world["opens"] - 1, len(plan) - 1)]
        return ClosedCapture(world) if step == "down" else FakeCamera(world, step, period)
    return open_capture


def new_world():
    return {"produced": 0, "opens": 0, "released": 0}


def test_fake_camera_that_fails_is_reopened_with_backoff_and_the_run_goes_on():
    world = new_world()
    src = open_source("cam0", capture_factory=factory([5, "down", "down", None], world), backoff=(0.01, 0.04))
    try:
        got = []
        deadline = time.monotonic() + 10
        while len(got) < 12 and time.monotonic() < deadline:
            r = src.read(timeout=0.5)
            if r.status is Status.OK:
                got.append(r.frame)
            else:
                assert r.status is Status.TIMEOUT
        assert len(got) == 12
        assert src.reopened == 1 and world["opens"] == 4  # failed, down, down, up again
        assert src.skipped >= 3  # the failed reads that triggered the reopening
        idx = [f.index for f in got]
        assert idx == sorted(set(idx))  # never the same frame twice, always forward
        ts = [f.timestamp for f in got]
        assert ts == sorted(ts)
    finally:
        src.close()
    assert world["released"] >= 4  # every capture released, the last one at close


def test_giving_up_after_reopen_limit_is_an_error_status():
    world = new_world()
    src = open_source("cam1", capture_factory=factory([2, "down"], world), backoff=(0.01, 0.01), reopen_limit=3)
    statuses = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = src.read(timeout=0.2)
        statuses.append(r.status)
        if r.status is Status.ERROR:
            assert "could not be reopened after 3 attempts" in r.message
            break
    src.close()
    assert statuses.count(Status.OK) == 2 and statuses[-1] is Status.ERROR


def test_live_source_keeps_only_the_newest_frame_and_counts_drops():
    world = new_world()
    src = open_source("0", capture_factory=factory([None], world, period=0.001))
    try:
        got = []
        for _ in range(5):
            time.sleep(0.05)  # a slow consumer
            r = src.read(timeout=1.0)
            assert r.status is Status.OK
            got.append(r.frame.index)
        assert src.dropped > 0
        assert got == sorted(set(got)) and got[-1] - got[0] >= 4
    finally:
        src.close()
    # every frame the capture produced was either delivered, dropped, or is the one still waiting in the slot
    assert world["produced"] - (len(got) + src.dropped) in (0, 1)


def test_a_camera_that_does_not_open_is_a_user_error():
    with pytest.raises(UserError, match="cannot open camera cam3"):
        open_source("cam3", capture_factory=factory(["down"], new_world()))


def test_gstreamer_without_support_is_refused_clearly():
    if "GStreamer:                   YES" in cv2.getBuildInformation() or "GStreamer: YES" in cv2.getBuildInformation():
        pytest.skip("this OpenCV has GStreamer; the refusal path is for builds without it")
    with pytest.raises(UserError, match="no GStreamer support"):
        open_source("gst:videotestsrc ! appsink")


# ---- a real network stream: HTTP multipart MJPEG on the loopback interface -----------------------------
@pytest.fixture
def mjpeg_server():
    frames = [cv2.imencode(".jpg", np.full((48, 64, 3), 20 * i, np.uint8))[1].tobytes() for i in range(12)]
    stop = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            i = 0
            try:
                while not stop.is_set():
                    jpg = frames[i % len(frames)]
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg)
                                     + jpg + b"\r\n")
                    i += 1
                    time.sleep(0.01)
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg"
    stop.set()
    server.shutdown()
    server.server_close()


def test_http_mjpeg_stream_on_loopback(mjpeg_server):
    probe = cv2.VideoCapture(mjpeg_server, cv2.CAP_FFMPEG)
    readable = probe.isOpened() and probe.read()[0]
    probe.release()
    if not readable:
        pytest.skip("this OpenCV build cannot read an HTTP multipart MJPEG stream through FFmpeg")
    with open_source(mjpeg_server) as src:
        assert src.live and src.spec.kind == "http"
        got = []
        deadline = time.monotonic() + 10
        while len(got) < 8 and time.monotonic() < deadline:
            r = src.read(timeout=1.0)
            if r.status is Status.OK:
                got.append(r.frame)
    assert len(got) == 8
    assert all(f.image.shape == (48, 64, 3) for f in got)
    assert len({int(f.image.mean()) for f in got}) > 1  # real, changing content
    assert [f.index for f in got] == sorted({f.index for f in got})


# ---- capture options reach OpenCV (a recorder stands in for cv2.VideoCapture: the camera we lack) --------
def test_camera_and_rtsp_options_are_applied_when_opening(monkeypatch):
    import os

    from uolrps.runtime import capture as capture_module
    from uolrps.runtime.capture import CaptureOptions, opencv_capture

    calls = []

    class Recorder:
        def __init__(self, target, api, params=None):
            calls.append(("open", target, api, params, os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")))

        def isOpened(self):
            return True

        def set(self, prop, value):
            calls.append(("set", prop, value))
            return True

    monkeypatch.setattr(cv2, "VideoCapture", Recorder)
    monkeypatch.delenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", raising=False)
    opts = CaptureOptions(size=(1280, 720), fps=15.0, fourcc="MJPG")
    opencv_capture(parse_source("cam2", opts))
    sets = [c[1:] for c in calls if c[0] == "set"]
    assert sets.index((cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))) < sets.index((cv2.CAP_PROP_FRAME_WIDTH, 1280))
    assert (cv2.CAP_PROP_FRAME_HEIGHT, 720) in sets and (cv2.CAP_PROP_FPS, 15.0) in sets
    calls.clear()
    opencv_capture(parse_source("rtsp://10.0.0.2/live", CaptureOptions(timeout_s=2.0)))
    _, target, api, params, env = calls[0]
    assert api == cv2.CAP_FFMPEG and env == "rtsp_transport;tcp"  # RTSP over TCP unless told otherwise
    assert params == [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 2000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 2000]
    calls.clear()
    opencv_capture(parse_source("rtsp://10.0.0.2/live", CaptureOptions(rtsp_transport="udp")))
    assert calls[0][4] == "rtsp_transport;udp" and "OPENCV_FFMPEG_CAPTURE_OPTIONS" not in os.environ
    assert capture_module.log is not None


def test_a_file_named_like_a_camera_number(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_video(tmp_path / "clip.avi", n=2).rename(tmp_path / "0")
    assert parse_source("0").kind == "video"  # an existing file wins over camera 0
    assert parse_source("cam0").kind == "camera" and parse_source("1").kind == "camera"
