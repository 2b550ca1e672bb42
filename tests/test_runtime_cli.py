"""`uolrps run` and `uolrps demo-data` as a user runs them: in a subprocess, with real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from conftest import ROOT, shared
from tinymodel import make_tiny_model

from uolrps.runtime import Localizer
from uolrps.runtime.sources import open_source

CLI = [sys.executable, "-m", "uolrps.cli.main"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("m") / "tiny.onnx")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    out = subprocess.run(CLI + ["demo-data", str(root), "--frames", "45"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "wrote 5 images" in out.stdout
    return root


def uolrps(*args, timeout=300, cwd=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=env)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def frames_of(path):
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    n = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        n += 1
    return n, (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), cap.get(cv2.CAP_PROP_FPS)


def assert_equal_to_localizer(records, source, model, **kw):
    with Localizer(model, **kw) as loc:
        direct = [loc(f.image, f.index, f.timestamp) for f in open_source(str(source))]
    assert len(records) == len(direct)
    for rec, r in zip(records, direct):
        assert rec["frame"] == r.frame_index
        assert rec["boxes"] == [[round(float(v), 2) for v in b] for b in r.boxes]
        assert rec["scores"] == [round(float(v), 4) for v in r.scores]


def test_demo_data_writes_photos_and_a_clip(demo):
    images = sorted(p.name for p in (demo / "images").iterdir())
    assert images == ["astronaut.jpg", "camera.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg"]
    n, size, fps = frames_of(demo / "clip.mp4")
    assert (n, size, fps) == (45, (640.0, 480.0), 30.0)


def test_run_on_a_clip_writes_jsonl_and_video_equal_to_the_localizer(demo, model, tmp_path):
    out = uolrps("run", "--video", demo / "clip.mp4", "--model", model, "--jsonl", tmp_path / "r.jsonl",
                 "--save", tmp_path / "r.mp4", "--heatmap", "--smooth", "0.3")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("frames 45 | dropped 0 | skipped 0 |") and "infer p50" in out.stdout
    records = read_jsonl(tmp_path / "r.jsonl")
    assert [r["frame"] for r in records] == list(range(45))
    np.testing.assert_allclose([r["t"] for r in records], np.arange(45) / 30.0, atol=1e-3)
    assert all(set(r["ms"]) == {"capture", "pre", "infer", "post"} for r in records)
    assert_equal_to_localizer(records, demo / "clip.mp4", model, smooth=0.3)
    assert frames_of(tmp_path / "r.mp4") == (45, (640.0, 480.0), 30.0)


def test_run_with_four_calls_in_flight_keeps_order_and_smoothing(demo, model, tmp_path):
    """--inflight 4: up to four frames of one clip in inference at once (that they overlap and still come out in
    order is shown with slow calls in test_runtime_streams.py); the smoothing (an average over the frames in
    order) and the boxes still equal the Localizer called frame by frame."""
    out = uolrps("run", "--video", demo / "clip.mp4", "--model", model, "--jsonl", tmp_path / "r.jsonl",
                 "--smooth", "0.5", "--inflight", "4", "--threads", "1")
    assert out.returncode == 0, out.stderr
    assert_equal_to_localizer(read_jsonl(tmp_path / "r.jsonl"), demo / "clip.mp4", model, smooth=0.5)


def test_run_on_images_folder_glob_and_max_frames(demo, model, tmp_path):
    out = uolrps("run", "--video", demo / "images", "--model", model, "--jsonl", tmp_path / "a.jsonl")
    assert out.returncode == 0, out.stderr
    assert len(read_jsonl(tmp_path / "a.jsonl")) == 5
    out = uolrps("run", "--video", f"{demo}/images/c*.jpg", "--model", model, "--jsonl", tmp_path / "b.jsonl",
                 "--multi", "--threshold", "0.3")
    assert out.returncode == 0, out.stderr
    assert len(read_jsonl(tmp_path / "b.jsonl")) == 3  # camera, chelsea, coffee
    out = uolrps("run", "--video", demo / "clip.mp4", "--model", model, "--max-frames", "4", "--loop",
                 "--jsonl", tmp_path / "c.jsonl")
    assert out.returncode == 0 and len(read_jsonl(tmp_path / "c.jsonl")) == 4


@pytest.mark.parametrize("args,message", [
    (["--video", "{clip}", "--model", "{tmp}/absent.onnx"], "error: model file '{tmp}/absent.onnx' does not exist"),
    (["--video", "{tmp}/absent.mp4", "--model", "{model}"], "error: source '{tmp}/absent.mp4' is not an existing file"),
    (["--video", "smb://x", "--model", "{model}"], "error: unknown source scheme in 'smb://x': use cam0"),
    (["--video", "{clip}", "--model", "{model}", "--threshold", "2"], "error: --threshold must be in [0, 1]"),
    (["--video", "{clip}", "--model", "{model}", "--smooth", "1"], "error: --smooth must be in [0, 1)"),
    (["--video", "{clip}", "--model", "{model}", "--max-frames", "0"], "error: --max-frames must be a positive"),
    (["--video", "{clip}", "--model", "{model}", "--inflight", "0"], "error: --inflight must be between 1 and 64, but got 0"),
    (["--video", "{clip}", "--model", "{model}", "--save", "{tmp}/x.gif"], "error: --save '{tmp}/x.gif' must end in .mp4"),
    (["--video", "{clip}", "--model", "{model}", "--backend", "trt"], "error: --backend trt runs TensorRT engines, but tiny.onnx is an ONNX model: build an engine"),
    (["--video", "{clip}", "--model", "{model}", "--providers", "gpu"], "error: unknown execution provider gpu"),
])
def test_clear_errors_exit_2_without_traceback(demo, model, tmp_path, args, message):
    fill = {"{clip}": str(demo / "clip.mp4"), "{tmp}": str(tmp_path), "{model}": str(model)}
    for k, v in fill.items():
        args = [a.replace(k, v) for a in args]
        message = message.replace(k, v)
    out = uolrps("run", *args)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_mid_file_leaves_a_playable_video_and_valid_jsonl(demo, model, tmp_path, sig):
    jsonl, video = tmp_path / "s.jsonl", tmp_path / "s.mp4"
    proc = subprocess.Popen(CLI + ["run", "--video", str(demo / "clip.mp4"), "--model", str(model), "--loop",
                                   "--jsonl", str(jsonl), "--save", str(video)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # Ctrl-C reaches the run whatever this test's caller does with it (``nohup ... &``
                            # starts everything with SIGINT ignored, which a child would inherit)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not jsonl.exists() or jsonl.read_text().count("\n") < 60):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stdout and "Traceback" not in stderr
    text = jsonl.read_text()
    assert text.endswith("\n")
    records = [json.loads(line) for line in text.splitlines()]  # every line whole and valid
    assert len(records) >= 60 and [r["frame"] for r in records] == list(range(len(records)))
    n, size, fps = frames_of(video)
    assert size == (640.0, 480.0) and fps == 30.0
    # finalised: every written frame decodes (Ctrl-C may land between a frame's JSONL line and its video frame)
    assert len(records) - 1 <= n <= len(records)


def test_acceptance_raccoon_pan_every_frame_and_equal_to_the_localizer(model, tmp_path):
    clip = shared("video", "raccoon_pan.mp4")
    out = uolrps("run", "--video", clip, "--model", model, "--jsonl", tmp_path / "r.jsonl", "--quiet")
    assert out.returncode == 0, out.stderr
    records = read_jsonl(tmp_path / "r.jsonl")
    assert len(records) == 900
    assert_equal_to_localizer(records, clip, model)


@pytest.mark.slow
def test_real_efflite0_model_boxes_equal_to_the_localizer(efflite0_model, tmp_path):
    clip = shared("video", "raccoon_pan.mp4")
    out = uolrps("run", "--video", clip, "--model", efflite0_model, "--jsonl", tmp_path / "r.jsonl",
                 "--max-frames", "60")
    assert out.returncode == 0, out.stderr
    records = read_jsonl(tmp_path / "r.jsonl")
    with Localizer(efflite0_model) as loc:
        src = open_source(str(clip))
        direct = [loc(f.image, f.index, f.timestamp) for f, _ in zip(src, range(60))]
        src.close()
    assert len(records) == 60
    for rec, r in zip(records, direct):
        assert rec["boxes"] == [[round(float(v), 2) for v in b] for b in r.boxes]
    # the raccoon is found: the mean IoU with the clip's ground truth is far above chance
    gt = [json.loads(line)["boxes"][0] for line in clip.with_suffix("").with_suffix(".gt.jsonl").read_text().splitlines()[:60]]

    def iou(a, b):
        ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = ix * iy
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    assert np.mean([iou(r["boxes"][0], g) for r, g in zip(records, gt)]) > 0.3
