"""Many streams, one model: real video files, image folders and MJPEG-over-HTTP cameras on loopback (normal,
stalling, silent, dying and coming back), batched inference, per-stream state, the StreamControl seam."""

from __future__ import annotations

import time

import numpy as np
import pytest
from mjpeg_server import MjpegServer
from test_runtime_pipeline import no_worker_threads
from test_sources import factory, new_world, write_video
from tinymodel import make_tiny_model

from uolrps.core.errors import UserError
from uolrps.runtime import Localizer
from uolrps.runtime.engine import StreamEngine
from uolrps.runtime.pipeline import localize_stream, localize_streams
from uolrps.runtime.sources import open_source
from uolrps.runtime.capture import Status
from uolrps.runtime.stats import RunStats


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("m") / "tiny.onnx")


def moving(path, n=40, start=0, step=3, size=(120, 160), fps=20.0):
    """A real video: a bright square moving across a dark background (boxes move with it)."""
    import cv2

    H, W = size
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    for i in range(n):
        f = np.full((H, W, 3), 15, np.uint8)
        x = (start + step * i) % (W - 50)
        f[30 + i % 20:70 + i % 20, x:x + 45] = 240
        w.write(f)
    w.release()
    return path


def direct(model, video, **kw):
    with Localizer(model, **kw) as loc:
        return [loc(f.image, f.index, f.timestamp) for f in open_source(str(video))]


def close_boxes(a, b, tol=1.0):
    return a.shape == b.shape and (len(a) == 0 or float(np.abs(a - b).max()) <= tol)


# ---- live sources on loopback --------------------------------------------------------------------------
def test_three_streams_the_healthy_ones_deliver_while_the_bad_one_is_reopened_then_ended(model, tmp_path):
    video = moving(tmp_path / "a.avi", n=40)
    good, bad = MjpegServer("normal", period=0.03), MjpegServer("stall", n=5, period=0.01)
    stats = RunStats()
    got: dict[str, list] = {"file": [], "good": [], "bad": []}
    arrivals: list[float] = []
    try:
        with Localizer(model) as loc, StreamEngine(loc, stall_timeout=1.0, reopen_limit=2, backoff=(0.2, 0.4),
                                                   stats=stats, keep_running=True) as engine:
            engine.add_source(str(video), "file")
            engine.add_source(good.url, "good")
            engine.add_source(bad.url, "bad")
            deadline = time.monotonic() + 30
            for name, frame, r in engine.results():
                got[name].append(r)
                if name == "good":
                    arrivals.append(time.monotonic())
                if stats.streams["bad"].state == "failed" or time.monotonic() > deadline:
                    break
            statuses = {s.name: s for s in engine.statuses()}
    finally:
        good.close()
        bad.close()
    b = stats.streams["bad"]
    assert b.state == "failed" and "could not be reopened after 2 attempts" in b.reason
    assert b.reopened >= 1 and bad.connections >= 2  # it was reopened before it was given up
    assert statuses["bad"].state == "failed" and statuses["bad"].reason == b.reason
    # the file stream: every frame, in order, equal to the Localizer frame by frame
    ref = direct(model, video)
    assert [r.frame_index for r in got["file"]] == list(range(40))
    assert all(close_boxes(r.boxes, d.boxes) for r, d in zip(got["file"], ref))
    # the healthy camera never waited for the bad one: results kept coming while it stalled for 1 s at a time
    # and was reopened (a camera that waited would show gaps of a second or more)
    assert len(got["good"]) >= 30 and max(np.diff(arrivals)) < 0.8
    assert all(r.stream == "good" and r.latency_ms is not None and r.latency_ms >= 0 for r in got["good"])
    assert no_worker_threads()


def test_a_server_that_dies_and_comes_back_is_reopened_and_goes_on():
    srv = MjpegServer("flaky", n=10, period=0.01, down_s=0.5)
    try:
        src = open_source(srv.url, stall_timeout=0.5, backoff=(0.4, 0.8), reopen_limit=5, open_now=False)
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 25 and time.monotonic() < deadline:
            r = src.read(timeout=0.2)
            assert r.status in (Status.OK, Status.TIMEOUT), r.message
            if r.status is Status.OK:
                got.append(r.frame)
        src.close()
    finally:
        srv.close()
    assert len(got) == 25 and src.reopened >= 1 and srv.connections >= 2
    assert [f.index for f in got] == sorted({f.index for f in got})


def test_a_source_that_opens_but_never_delivers_is_not_retried_forever():
    class Opens:  # a busy V4L2 device: it opens, and every read fails
        def isOpened(self):
            return True

        def read(self):
            time.sleep(0.002)
            return False, None

        def get(self, prop):
            return 0.0

        def release(self):
            pass

    opens = []
    src = open_source("cam4", capture_factory=lambda spec: opens.append(1) or Opens(), backoff=(0.01, 0.02),
                      reopen_limit=3, stall_timeout=0.2)
    deadline = time.monotonic() + 10
    r = src.read(timeout=0.1)
    while r.status is Status.TIMEOUT and time.monotonic() < deadline:
        r = src.read(timeout=0.1)
    src.close()
    assert r.status is Status.ERROR and "after 3 attempts" in r.message and "delivered no frame" in r.message
    assert len(opens) == 4  # the first open, then 3 failed recoveries


def test_silent_server_one_line_reason_and_http_wording(model):
    srv = MjpegServer("silent")
    try:
        with pytest.raises(UserError) as e:
            open_source(srv.url, stall_timeout=0.5)
    finally:
        srv.close()
    text = str(e.value)
    assert text.startswith("cannot open HTTP stream http://127.0.0.1:") and "another program" not in text
    assert "ffplay" in text and "\n" not in text


# ---- batching, equality with the Localizer, per-stream state -------------------------------------------
@pytest.mark.parametrize("fixed", [False, True], ids=["dynamic", "fixed-batch-4"])
def test_file_streams_are_batched_and_equal_to_the_localizer(tmp_path, fixed):
    model = make_tiny_model(tmp_path / "m.onnx", dynamic_batch=not fixed, batch=4)
    videos = {f"v{i}": moving(tmp_path / f"v{i}.avi", n=30 + 5 * i, start=17 * i) for i in range(3)}
    stats = RunStats()
    out: dict[str, list] = {k: [] for k in videos}
    with Localizer(model) as loc:
        engine = StreamEngine(loc, stats=stats, batch_wait_ms=50)
        for name, v in videos.items():
            engine.add_source(str(v), name)
        try:
            for name, _, r in engine.results():
                out[name].append(r)
        finally:
            engine.close()
        assert max(engine.batches) >= 2  # frames of several streams went through one call
        assert engine.max_batch == (4 if fixed else 32)
    for name, v in videos.items():
        ref = direct(model, v)
        assert [r.frame_index for r in out[name]] == list(range(len(ref)))
        agree = [close_boxes(r.boxes, d.boxes) for r, d in zip(out[name], ref)]
        assert np.mean(agree) >= 0.99
    assert stats.frames == 30 + 35 + 40 and stats.dropped == 0


def test_each_stream_keeps_its_own_smoothing_state(model, tmp_path):
    a, b = moving(tmp_path / "a.avi", n=25, start=0), moving(tmp_path / "b.avi", n=25, start=60, step=-2)
    out: dict[str, list] = {"a": [], "b": []}
    for name, r in localize_streams({"a": str(a), "b": str(b)}, model, smooth=0.6):
        out[name].append(r)
    for name, v in (("a", a), ("b", b)):
        ref = direct(model, v, smooth=0.6)  # this stream alone, frame by frame
        assert len(out[name]) == 25
        for r, d in zip(out[name], ref):
            np.testing.assert_allclose(r.heatmap, d.heatmap, atol=1e-5)


@pytest.mark.slow
def test_real_efflite0_file_stream_among_several_within_1px(efflite0_model):
    from conftest import shared

    clip = shared("video", "raccoon_pan.mp4")
    n = 120
    out: dict[str, list] = {}
    for name, r in localize_streams({"s0": str(clip), "s1": str(clip), "s2": str(clip)}, efflite0_model,
                                    max_frames=n, batch_wait_ms=50):
        out.setdefault(name, []).append(r)
    with Localizer(efflite0_model) as loc:
        src = open_source(str(clip))
        ref = [loc(f.image, f.index, f.timestamp) for f, _ in zip(src, range(n))]
        src.close()
    for name in ("s0", "s1", "s2"):
        assert len(out[name]) == n
        assert np.mean([close_boxes(r.boxes, d.boxes) for r, d in zip(out[name], ref)]) >= 0.99


# ---- the StreamControl seam ----------------------------------------------------------------------------
def test_control_statuses_latest_add_and_remove(model, tmp_path):
    from uolrps.runtime.control import StreamControl

    from uolrps.runtime.capture import opencv_capture

    video = moving(tmp_path / "a.avi", n=20)
    camera = factory([None], new_world(), period=0.01)

    def captures(spec):  # the camera we lack is a fake; the file is read by OpenCV
        return camera(spec) if spec.kind == "camera" else opencv_capture(spec)

    with Localizer(model) as loc, StreamEngine(loc, keep_running=True, capture_factory=captures) as engine:
        assert isinstance(engine, StreamControl)
        assert engine.add_stream("cam0") == "cam0"
        with pytest.raises(UserError, match="already exists"):
            engine.add_stream(str(video), "cam0")
        with pytest.raises(UserError, match="unknown source scheme"):
            engine.add_stream("smb://x")
        with pytest.raises(UserError, match="bare identifier"):
            engine.add_stream(str(video), "front door")
        name = engine.add_stream(str(video))
        assert name == "a"
        results = engine.results()
        first = engine.wait_latest("cam0", 0, timeout=5.0)
        assert first is not None and first.seq >= 1 and first.line["stream"] == "cam0"
        assert not first.frame.flags.writeable and first.frame.shape == (24, 32, 3)
        newer = engine.wait_latest("cam0", first.seq, timeout=5.0)
        assert newer is not None and newer.seq > first.seq
        for _ in range(20):
            next(results)
        s = {x.name: x for x in engine.statuses()}
        assert list(s) == ["cam0", "a"] and s["cam0"].state == "running" and s["cam0"].frames > 0
        assert set(s["cam0"].drops) == {"capture", "infer", "post", "output"}
        engine.remove_stream("cam0")
        assert [x.name for x in engine.statuses()] == ["a"]
        with pytest.raises(KeyError):
            engine.remove_stream("cam0")
        with pytest.raises(KeyError):
            engine.latest("nope")
        last = -1
        while last < 19:  # the file's results, to its last frame
            name, _, r = next(results)
            last = r.frame_index if name == "a" else last
        deadline = time.monotonic() + 10
        while engine.statuses()[0].state != "ended" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.statuses()[0].state == "ended" and engine.statuses()[0].reason == "end of the source"
        assert engine.statuses()[0].frames == 20
    assert no_worker_threads()


def test_localize_streams_names_and_api(model, tmp_path):
    a, b = moving(tmp_path / "front.avi", n=6), moving(tmp_path / "back.avi", n=4)
    pairs = list(localize_streams([str(a), str(b)], model))
    assert sorted({n for n, _ in pairs}) == ["back", "front"]
    assert [r.frame_index for n, r in pairs if n == "front"] == list(range(6))
    with pytest.raises(UserError, match="no source"):
        list(localize_streams([], model))
    with pytest.raises(UserError, match="not an existing file"):
        list(localize_streams({"x": str(tmp_path / "absent.mp4")}, model))


def test_live_fps_is_frames_per_second_of_wall_time(model):
    world = new_world()
    src = open_source("cam0", capture_factory=factory([10, "down"], world, period=0.001), backoff=(0.3, 0.3),
                      reopen_limit=1)
    stats = RunStats()
    loc = Localizer(model)
    t0 = time.perf_counter()
    results = list(localize_stream(src, localizer=loc, stats=stats))
    wall = time.perf_counter() - t0
    src.close()
    assert 1 <= len(results) <= 10 and wall > 0.3  # the source went down and was given up after 0.3 s
    assert stats.fps == pytest.approx(len(results) / wall, rel=0.25)


def test_the_failure_count_resets_after_a_healthy_period():
    """A camera that drops out now and then but runs well in between is reopened every time; one that only
    ever delivers a frame or two between drop-outs ends after --reopen-limit."""
    def run_until(plan_frames, want_reopens):
        world = new_world()
        src = open_source("cam0", capture_factory=factory([plan_frames], world, period=0.01), backoff=(0.01, 0.02),
                          reopen_limit=1, stall_timeout=0.15)
        deadline = time.monotonic() + 10
        r = src.read(timeout=0.1)
        while r.status in (Status.OK, Status.TIMEOUT) and src.reopened < want_reopens and time.monotonic() < deadline:
            r = src.read(timeout=0.1)
        src.close()
        return r, src.reopened

    r, reopened = run_until(30, 3)  # 30 frames at 10 ms: 0.3 s healthy, longer than the 0.15 s stall timeout
    assert r.status is not Status.ERROR and reopened >= 3
    r, reopened = run_until(2, 3)  # 2 frames, then nothing: never healthy
    assert r.status is Status.ERROR and "after 1 attempts" in r.message and reopened <= 1


# ---- several batches in flight (a remote server) ----------------------------------------------------------
class _RemoteLike:
    """A backend whose calls take a round trip of varying length (as a network server's do) and may overlap:
    the real ONNX Runtime backend behind a sleep. Counts the calls that were in flight at once."""

    def __init__(self, inner, concurrency: int, seed: int = 0):
        import threading

        import dataclasses

        self.inner, self.meta = inner, inner.meta
        self.caps = dataclasses.replace(inner.caps, concurrency=concurrency)
        self._lock, self.now, self.most = threading.Lock(), 0, 0
        self._rng = np.random.default_rng(seed)

    @property
    def input_spec(self):
        return self.inner.input_spec

    def __call__(self, batch):
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
            delay = float(self._rng.uniform(0.002, 0.03))  # later calls often return first
        try:
            time.sleep(delay)
            return self.inner(batch)
        finally:
            with self._lock:
                self.now -= 1

    def close(self):
        self.inner.close()


def test_several_batches_in_flight_keep_each_streams_frames_in_order(model, tmp_path):
    videos = [moving(tmp_path / "a.avi", n=30), moving(tmp_path / "b.avi", n=25, start=40, step=-2)]
    expected = {v.stem: direct(model, v, smooth=0.5) for v in videos}  # smoothing: an average over frames in order
    with Localizer(model, smooth=0.5) as loc:
        loc.backend = remote = _RemoteLike(loc.backend, concurrency=3)
        with StreamEngine(loc, batch_wait_ms=0) as engine:
            assert engine.inflight == 3  # the backend's own concurrency is the default
            for v in videos:
                engine.add_source(str(v))
            got: dict[str, list] = {"a": [], "b": []}
            for name, _, r in engine.results():
                got[name].append(r)
    assert remote.most == 3 and engine.max_in_flight == 3  # three calls overlapped
    for name, rs in got.items():
        assert [r.frame_index for r in rs] == list(range(len(expected[name])))  # every frame, in order
        assert all(close_boxes(r.boxes, e.boxes) for r, e in zip(rs, expected[name]))
    import os

    with Localizer(model) as loc:  # ONNX Runtime on the CPU at its default threads: two calls at once
        with StreamEngine(loc) as engine:
            assert engine.inflight == (2 if len(os.sched_getaffinity(0)) >= 2 else 1)
    with Localizer(model, threads=1) as loc:  # threads given: the caller bounds the CPU inference takes
        with StreamEngine(loc) as engine:
            assert engine.inflight == 1
        with pytest.raises(UserError, match=r"^inflight must be between 1 and 64, but got 0$"):
            StreamEngine(loc, inflight=0)
