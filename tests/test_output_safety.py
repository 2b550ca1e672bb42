"""No command overwrites its own inputs, and a command that fails leaves what was already written intact."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
from tinymodel import bright_square_frame, make_tiny_model


def uolrps(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uolrps.cli.main", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("safety")
    model = make_tiny_model(d / "m.onnx")
    writer = cv2.VideoWriter(str(d / "v.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(5):
        writer.write(bright_square_frame(box=(20 + 5 * i, 20, 80 + 5 * i, 80)))
    writer.release()
    return d, model, d / "v.avi"


def assert_refused(res, needle):
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and needle in res.stderr, res.stderr


def test_run_never_writes_over_its_model_or_source(files, tmp_path):
    d, model, video = files
    before_model, before_video = model.read_bytes(), video.read_bytes()
    assert_refused(uolrps("run", "--video", video, "--model", model, "--jsonl", model), "also an input")
    assert_refused(uolrps("run", "--video", video, "--model", model, "--save", video), "also an input")
    assert model.read_bytes() == before_model and video.read_bytes() == before_video


def test_failed_run_keeps_an_existing_jsonl(files, tmp_path):
    d, model, video = files
    keep = tmp_path / "keep.jsonl"
    keep.write_text('{"frame": 0}\n' * 50)
    assert_refused(uolrps("run", "--video", video, "--model", model, "--jsonl", keep, "--save", "/proc/x.mp4"),
                   "cannot write in")
    assert_refused(uolrps("run", "--video", video, "--model", tmp_path / "missing.onnx", "--jsonl", keep), "missing.onnx")
    assert keep.read_text() == '{"frame": 0}\n' * 50


def test_bad_summary_json_is_refused_before_the_run(files, tmp_path):
    d, model, video = files
    assert_refused(uolrps("run", "--video", video, "--model", model, "--summary-json", "/proc/x.json"), "--summary-json")
    res = uolrps("run", "--video", video, "--model", model, "--summary-json", tmp_path / "s" / "s.json", "-q")
    assert res.returncode == 0, res.stderr
    assert '"frames": 5' in (tmp_path / "s" / "s.json").read_text()


def test_a_source_with_no_readable_frame_is_an_error(files, tmp_path):
    d, model, _ = files
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"not a jpeg")
    (bad / "b.png").write_bytes(b"nor a png")
    res = uolrps("run", "--video", bad, "--model", model, "--jsonl", tmp_path / "o.jsonl", "-q")
    assert_refused(res, "no frame could be read")


def test_export_and_calib_check_outputs_before_working(tmp_path):
    assert_refused(uolrps("export", "--backbone", "efflite0", "-o", "/proc/t.onnx"), "cannot write in")
    (tmp_path / "afile").write_text("x")
    assert_refused(uolrps("export", "--backbone", "efflite0", "-o", tmp_path / "afile" / "t.onnx"), "not a folder")
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    cv2.imwrite(str(imgs / "a.png"), np.zeros((32, 32, 3), np.uint8))
    res = uolrps("calib", imgs, "--backbone", "efflite0", "-o", tmp_path / "w.txt")
    assert_refused(res, "must end in .npz")
    assert "images/s" not in res.stderr  # refused before calibrating


def test_build_refuses_to_replace_its_onnx(files):
    d, model, _ = files
    before = model.read_bytes()
    assert_refused(uolrps("build", model, "-o", model), "must end in .engine")
    assert_refused(uolrps("build", model, "-o", model.with_suffix(".txt")), "must end in .engine")
    assert model.read_bytes() == before
