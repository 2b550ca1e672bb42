"""Issue 8 item 1: two outputs of one command that are the same file are refused before any work.

Each case runs the real command line and checks the refusal (one line, exit 2) and that nothing was written
or changed. On the code before the fix, `run --jsonl x --save x` exited 0 with video and JSON interleaved.
"""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import pytest
from tinymodel import bright_square_frame, make_tiny_model

from uolrps.core.errors import UserError
from uolrps.core.paths import check_distinct_outputs


def uolrps(*args, cwd=None, timeout=120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-m", "uolrps.cli.main", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=env)


def assert_refused(res):
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "same file" in lines[0], res.stderr
    return lines[0]


def snapshot(folder):
    return {p: (p.is_symlink(), p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("same")
    model = make_tiny_model(d / "m.onnx")
    writer = cv2.VideoWriter(str(d / "v.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(5):
        writer.write(bright_square_frame(box=(20 + 5 * i, 20, 80 + 5 * i, 80)))
    writer.release()
    return model, d / "v.avi"


def test_run_jsonl_and_save_to_one_file(files, tmp_path):
    model, video = files
    line = assert_refused(uolrps("run", "--video", video, "--model", model, "--jsonl", "same.mp4",
                                 "--save", "same.mp4", "-q", cwd=tmp_path))
    assert "--save" in line and "--jsonl" in line
    assert list(tmp_path.iterdir()) == []


def test_run_summary_through_a_symlink_keeps_the_jsonl(files, tmp_path):
    model, video = files
    (tmp_path / "s.jsonl").write_text('{"frame": 0}\n' * 3)
    (tmp_path / "link.jsonl").symlink_to("s.jsonl")
    before = snapshot(tmp_path)
    assert_refused(uolrps("run", "--video", video, "--model", model, "--jsonl", "s.jsonl",
                          "--summary-json", "link.jsonl", "-q", cwd=tmp_path))
    assert snapshot(tmp_path) == before


def test_run_relative_dot_and_absolute_paths_of_a_new_file(files, tmp_path):
    model, video = files
    assert_refused(uolrps("run", "--video", video, "--model", model, "--jsonl", "./out/../out/r.jsonl",
                          "--summary-json", tmp_path / "out" / "r.jsonl", "-q", cwd=tmp_path))
    assert list(tmp_path.iterdir()) == []
    res = uolrps("run", "--video", video, "--model", model, "--jsonl", "a.jsonl", "--summary-json", "b.json",
                 "-q", cwd=tmp_path)  # distinct files still work
    assert res.returncode == 0, res.stderr
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 5 and "frames" in (tmp_path / "b.json").read_text()


def test_eval_json_and_save_vis_to_one_path(files, tmp_path):
    model, _ = files
    m = tmp_path / "m.onnx"
    m.write_bytes(model.read_bytes())
    before = snapshot(tmp_path)
    assert_refused(uolrps("eval", tmp_path, "--model", m, "--json", "r.json", "--save-vis", f"{tmp_path}/r.json",
                          "--write-threshold", "-q", cwd=tmp_path))
    assert snapshot(tmp_path) == before


def test_eval_write_threshold_twin_is_also_the_json(files, tmp_path):
    model, _ = files
    m = tmp_path / "m.onnx"
    m.write_bytes(model.read_bytes())
    (tmp_path / "m.fp16.onnx").write_bytes(model.read_bytes())
    (tmp_path / "r.json").symlink_to("m.fp16.onnx")
    before = snapshot(tmp_path)
    assert_refused(uolrps("eval", tmp_path, "--model", m, "--json", "r.json", "--write-threshold", "-q", cwd=tmp_path))
    assert snapshot(tmp_path) == before


def test_export_fp16_twin_symlinked_to_the_model(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"an earlier export")
    (tmp_path / "model.fp16.onnx").symlink_to("model.onnx")
    before = snapshot(tmp_path)
    line = assert_refused(uolrps("export", "--backbone", "efflite0", "-o", "model.onnx", "--fp16", cwd=tmp_path))
    assert "FP16 twin" in line
    assert snapshot(tmp_path) == before


def test_build_timing_cache_is_the_sidecar(files, tmp_path):
    model, _ = files
    assert_refused(uolrps("build", model, "-o", tmp_path / "m.engine", "--timing-cache", tmp_path / "m.engine.json"))
    assert list(tmp_path.iterdir()) == []


def test_hard_links_are_one_file(tmp_path):
    (tmp_path / "a.json").write_text("keep")
    os.link(tmp_path / "a.json", tmp_path / "b.json")
    with pytest.raises(UserError, match="--x and --y are the same file"):
        check_distinct_outputs({"--x": tmp_path / "a.json", "--y": tmp_path / "b.json"})
    check_distinct_outputs({"--x": tmp_path / "a.json", "--y": tmp_path / "c.json", "--z": None})


def test_export_int8_twin_symlinked_to_the_fp16_twin(tmp_path):
    (tmp_path / "model.fp16.onnx").write_bytes(b"an earlier export")
    (tmp_path / "model.int8.onnx").symlink_to("model.fp16.onnx")
    before = snapshot(tmp_path)
    line = assert_refused(uolrps("export", "--backbone", "efflite0", "-o", "model.onnx", "--fp16", "--int8",
                                 cwd=tmp_path))
    assert "FP16 twin" in line and "INT8 twin" in line
    assert snapshot(tmp_path) == before
