"""The threaded pipeline: same results as the Localizer frame by frame, clean shutdown on every exit path."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from test_sources import factory, new_world, write_video
from tinymodel import make_tiny_model

from uolrps.runtime import Localizer, localize_stream
from uolrps.runtime.runner import RunConfig, run
from uolrps.runtime.sources import open_source
from uolrps.runtime.stats import RunStats


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("m") / "tiny.onnx")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A real video with a bright square moving across a dark background."""
    import cv2

    path = tmp_path_factory.mktemp("v") / "moving.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (160, 120))
    for i in range(30):
        f = np.full((120, 160, 3), 15, np.uint8)
        f[30 + i % 20:70 + i % 20, 10 + 3 * i:60 + 3 * i] = 240
        w.write(f)
    w.release()
    return path


def no_worker_threads(timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [t for t in threading.enumerate() if t.name.startswith(("uolrps-", "capture "))]:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("smooth", [0.0, 0.5])
def test_stream_equals_the_localizer_frame_by_frame(model, clip, smooth):
    stats = RunStats()
    streamed = list(localize_stream(str(clip), model, smooth=smooth, stats=stats))
    with Localizer(model, smooth=smooth) as loc:
        direct = [loc(f.image, f.index, f.timestamp) for f in open_source(str(clip))]
    assert len(streamed) == len(direct) == 30 and stats.frames == 30
    for s, d in zip(streamed, direct):
        assert (s.frame_index, s.timestamp) == (d.frame_index, d.timestamp)
        np.testing.assert_array_equal(s.boxes, d.boxes)
        np.testing.assert_array_equal(s.scores, d.scores)
        np.testing.assert_array_equal(s.heatmap, d.heatmap)
        assert set(s.timings) == {"capture", "pre", "infer", "post"}
    assert [r.frame_index for r in streamed] == list(range(30))
    # the square moves right: so does the box
    assert streamed[-1].boxes[0, 0] > streamed[0].boxes[0, 0] + 40
    assert no_worker_threads()


def test_max_frames_and_frames_with_results(model, clip):
    out = list(localize_stream(str(clip), model, max_frames=7, with_frames=True))
    assert len(out) == 7
    image, r = out[3]
    assert image.shape == (120, 160, 3) and r.frame_index == 3 and r.frame_size == (120, 160)


class Failing(Localizer):
    def __init__(self, *a, stage="infer", at=5, exc=RuntimeError, **kw):
        super().__init__(*a, **kw)
        self.stage, self.at, self.exc, self.calls = stage, at, exc, 0

    def _maybe_fail(self):
        self.calls += 1
        if self.calls == self.at:
            raise self.exc(f"{self.stage} broke at call {self.at}")

    def preprocess(self, frame):
        if self.stage == "pre":
            self._maybe_fail()
        return super().preprocess(frame)

    def infer(self, images):
        if self.stage == "infer":
            self._maybe_fail()
        return super().infer(images)

    def postprocessor(self):  # each stream's post-processing (with its own smoothing state) comes from here
        post, outer = super().postprocessor(), self

        def failing(*a, **kw):
            if outer.stage == "post":
                outer._maybe_fail()
            return post(*a, **kw)
        return failing


@pytest.mark.parametrize("stage", ["pre", "infer", "post"])
def test_a_stage_that_raises_stops_everything_and_the_error_reaches_the_caller(model, tmp_path, stage):
    video = write_video(tmp_path / "long.avi", n=200)
    loc = Failing(model, stage=stage, at=5)
    got = []
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=f"{stage} broke at call 5"):
        for r in localize_stream(str(video), localizer=loc, queue_size=2):
            got.append(r)
    assert time.monotonic() - t0 < 10
    # frames before the failure arrive in order; a worker's failure stops the stream at once (fail fast)
    assert [r.frame_index for r in got] == list(range(len(got))) and len(got) <= 4
    if stage == "post":
        assert len(got) == 4
    assert no_worker_threads()
    loc.close()


def test_the_consumer_stopping_early_shuts_the_workers_down(model, tmp_path):
    video = write_video(tmp_path / "long.avi", n=200)
    stream = localize_stream(str(video), model, queue_size=2)
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.close()
    assert no_worker_threads()

    def consume_then_raise():
        for i, _ in enumerate(localize_stream(str(video), model, queue_size=2)):
            if i == 2:
                raise KeyboardInterrupt  # what Ctrl-C does in the consumer's thread

    with pytest.raises(KeyboardInterrupt):
        consume_then_raise()
    assert no_worker_threads()


def test_live_source_through_the_pipeline_counts_drops_and_survives_a_failure(model):
    world = new_world()
    src = open_source("cam0", capture_factory=factory([15, "down", None], world, period=0.001), backoff=(0.01, 0.02))
    stats = RunStats()
    results = list(localize_stream(src, localizer=Localizer(model), max_frames=40, stats=stats))
    src.close()
    assert len(results) == 40 and stats.frames == 40
    assert stats.reopened == 1 and world["opens"] == 3
    idx = [r.frame_index for r in results]
    assert idx == sorted(set(idx))
    assert stats.dropped >= idx[-1] + 1 - 40  # every gap in the frame indices is a counted drop
    assert no_worker_threads()


def test_run_writes_every_output_for_an_image_folder_of_mixed_sizes(model, tmp_path):
    import cv2

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, (h, w) in enumerate([(100, 150), (80, 80), (120, 90)]):
        img = np.full((h, w, 3), 10, np.uint8)
        img[h // 4:h // 2, w // 4:w // 2] = 250
        cv2.imwrite(str(folder / f"{i}.png"), img)
    cfg = RunConfig(source=str(folder), model=model, save=tmp_path / "o.avi", jsonl=tmp_path / "o.jsonl", heatmap=True)
    stats = run(cfg)
    assert stats.frames == 3 and not stats.interrupted
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 3
    cap = cv2.VideoCapture(str(tmp_path / "o.avi"))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (150, 100)
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
