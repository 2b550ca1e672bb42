"""The bad-input rows of issue 19, each one line (or one exception type in the Python API), early."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import numpy as np
import pytest
from tinymodel import make_tiny_model

from uolrps.core.errors import UserError

CLI = [sys.executable, "-m", "uolrps.cli.main"]


def uolrps(*args, timeout=180, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kw)


def one_line_error(res, needle, code=2):
    assert res.returncode == code, res.stderr
    assert "Traceback" not in res.stderr and needle in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("bad19") / "m.onnx")


class NeverOpens:  # a camera or network source that is down: the edge we have no hardware for
    def isOpened(self):
        return False

    def release(self):
        pass


def test_localize_streams_raises_when_every_stream_failed_and_keeps_the_stats(model, caplog):
    from uolrps.runtime.pipeline import localize_streams
    from uolrps.runtime.stats import RunStats

    stats = RunStats()
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="uolrps"):
        with pytest.raises(UserError, match=r"every stream failed: a \(cam0\) after 0 frames: .*could not be "
                                            r"reopened after 2 attempts.*; b \(cam1\)"):
            list(localize_streams({"a": "cam0", "b": "cam1"}, model, stats=stats, reopen_limit=2,
                                  backoff=(0.01, 0.02), capture_factory=lambda spec: NeverOpens()))
    assert time.monotonic() - t0 < 30
    assert {n: s.state for n, s in stats.streams.items()} == {"a": "failed", "b": "failed"}
    # a source that never opened never "stopped delivering frames"
    assert "stopped delivering" not in caplog.text and "has not delivered a frame yet" in caplog.text
    assert "nan" not in stats.streams["a"].line()


def test_export_size_is_bounded_before_any_work():
    t0 = time.monotonic()
    one_line_error(uolrps("export", "-b", "efflite0", "--size", "100000", "-o", "never.onnx"),
                   "--size must be a number of pixels from 1 to 1024, but got 100000")
    assert time.monotonic() - t0 < 60


def test_calib_size_is_bounded(tmp_path):
    from uolrps.calib.wstar import compute_wstar

    with pytest.raises(UserError, match="size must be a number of pixels from 1 to 1024"):
        compute_wstar(tmp_path, backbone="efflite0", size=5000)


def test_demo_data_into_an_existing_file_is_one_line(tmp_path):
    f = tmp_path / "taken"
    f.write_text("keep")
    one_line_error(uolrps("demo-data", f), "is a file: give a folder for the demo data")
    assert f.read_text() == "keep"


@pytest.mark.parametrize("command", [["export", "-b", "efflite0"], ["calib", "imgs"]])
def test_export_and_calib_without_torch_name_the_extra(command, tmp_path):
    code = ("import sys; sys.modules['torch'] = None\n"  # a runtime-only install: torch cannot be imported
            "from uolrps.cli.main import main\n"
            f"sys.exit(main({command!r}))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    one_line_error(res, "pip install 'uolrps[export]'")
    assert "needs torch" in res.stderr


def test_eval_caam_with_an_unknown_backbone_is_refused_before_the_data_set_is_read(model, tmp_path):
    one_line_error(uolrps("eval", tmp_path / "absent.csv", "--model", model, "--caam", "foo"),
                   "unknown backbone 'foo'")


def test_a_folder_named_like_a_model_is_said_to_be_a_folder(tmp_path):
    (tmp_path / "x.onnx").mkdir()
    one_line_error(uolrps("run", "--video", "cam0", "--model", tmp_path / "x.onnx"), "is a folder, not a model file")


def test_backend_trt_with_an_onnx_model_says_to_build_an_engine(model):
    one_line_error(uolrps("run", "--video", "cam0", "--model", model, "--backend", "trt"),
                   f"--backend trt runs TensorRT engines, but m.onnx is an ONNX model: build an engine from it with "
                   f"`uolrps build {model}`")


def test_bench_marks_a_batch_the_model_cannot_take_in_one_call(tmp_path):
    fixed = make_tiny_model(tmp_path / "f.onnx", dynamic_batch=False, batch=1)
    res = uolrps("bench", fixed, "--batch", "1,4", "--warmup", "1", "--iters", "2", "--backends", "ort:cpu")
    assert res.returncode == 0, res.stderr
    assert "* batch 4: the model has a fixed batch of 1, so a batch of 4 runs as 4 calls of 1" in res.stdout
    rows = [line for line in res.stdout.splitlines() if line.startswith("f.onnx ort:cpu  ")]
    assert len(rows) == 2 and " 4* " in rows[1] and "*" not in rows[0]


def test_doctor_does_not_claim_a_camera_it_cannot_see():
    import glob

    from uolrps.bench.doctor import _check_cameras

    check = _check_cameras(True)
    if glob.glob("/dev/video*"):
        assert check.ok and "/dev/video" in check.detail
    else:
        assert check.ok is False and "no camera here" in check.detail


@pytest.mark.parametrize("n", [1, 2, 4])
def test_calib_on_fewer_than_5_images_does_not_quote_the_5_image_figure(n):
    from uolrps.calib.stability import MEASURED, report

    line, warning = report(n, None if n < 2 else 0.9)
    assert f"{n} random images give" not in line and "below what we measured" in line
    assert f"{MEASURED[5][0]:.3f}" in line and warning is not None


def test_camera_options_on_a_file_source_are_said_to_be_ignored(model, tmp_path):
    import cv2
    from tinymodel import bright_square_frame

    video = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for _ in range(3):
        w.write(bright_square_frame())
    w.release()
    res = uolrps("run", "--video", video, "--model", model, "--size", "640x480", "--fps", "15", "-q")
    assert res.returncode == 0, res.stderr
    assert "the capture options size, fps apply to cameras" in res.stderr
    assert "is a file, so they are ignored for it" in res.stderr


def test_run_without_model_in_a_runtime_only_install_says_how_to_get_one(tmp_path):
    code = ("import sys; sys.modules['torch'] = None\n"
            "from uolrps.cli.main import main\n"
            "sys.exit(main(['run', '--video', 'cam0']))")
    env = {**__import__("os").environ, "UOLRPS_CACHE": str(tmp_path / "cache")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    one_line_error(res, "no model given, and the default model (efflite0 at 224x224 with the shipped w*) is not "
                        "in the cache")
    assert "uolrps export -b efflite0 -o model.onnx" in res.stderr and "uolrps run --model model.onnx" in res.stderr


def test_run_without_model_uses_the_default_model_in_the_cache_and_says_so(tmp_path, monkeypatch):
    import os

    import cv2
    from tinymodel import bright_square_frame

    from uolrps.export.default_model import default_model_path

    monkeypatch.setenv("UOLRPS_CACHE", str(tmp_path / "cache"))
    cached = default_model_path()
    cached.parent.mkdir(parents=True)
    make_tiny_model(cached)  # stands in for the efflite0 export (made by the slow test below)
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), bright_square_frame())
    res = uolrps("run", "--video", image, "--jsonl", tmp_path / "r.jsonl", "-q", env=dict(os.environ))
    assert res.returncode == 0, res.stderr
    assert f"no model given: using the default model (efflite0 at 224x224 with the shipped w*), {cached}" in res.stderr
    assert (tmp_path / "r.jsonl").read_text().count("\n") == 1


@pytest.mark.slow
def test_run_without_model_makes_the_default_model_once(tmp_path, monkeypatch):
    import os

    import cv2
    from tinymodel import bright_square_frame

    pytest.importorskip("torch")
    monkeypatch.setenv("UOLRPS_CACHE", str(tmp_path / "cache"))
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), bright_square_frame())
    res = uolrps("run", "--video", image, "-q", timeout=900, env=dict(os.environ))
    assert res.returncode == 0, res.stderr
    assert "making the default model" in res.stderr
    res = uolrps("run", "--video", image, "-q", env=dict(os.environ))
    assert res.returncode == 0 and "using the default model" in res.stderr and "making" not in res.stderr
