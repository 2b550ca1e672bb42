"""`uolrps run` with several sources, as a user runs it (subprocesses, real files, loopback HTTP cameras),
and the browser view wired to a real run."""

from __future__ import annotations

import json
import os
import threading
import time

import cv2
import numpy as np
import pytest
from mjpeg_server import MjpegServer, free_port
from test_runtime_cli import frames_of, read_jsonl, uolrps
from test_runtime_streams import direct, moving
from tinymodel import make_tiny_model

from uolrps.runtime.runner import RunConfig, run
from uolrps.serve import start_server


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("m") / "tiny.onnx")


def test_three_streams_one_fails_exit_code_and_summary_say_so(model, tmp_path):
    a, b = moving(tmp_path / "a.avi", n=30), moving(tmp_path / "b.avi", n=20, start=40)
    bad = MjpegServer("silent")
    try:
        out = uolrps("run", "--video", a, "--video", b, "--video", bad.url, "--model", model, "--stall-timeout", "0.5",
                     "--reopen-limit", "2", "--jsonl", tmp_path / "r.jsonl", "--summary-json", tmp_path / "s.json",
                     "--save", tmp_path / "rec" / "{stream}.avi")
    finally:
        bad.close()
    assert out.returncode == 3, out.stderr
    assert "Traceback" not in out.stderr
    assert "error: stream cam2 (http://127.0.0.1:" in out.stderr and "could not be reopened after 2 attempts" in out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("frames 50 | dropped 0 | skipped 0 |")
    assert [ln.split(":")[0] for ln in lines[1:]] == ["a", "b", "cam2"]
    assert lines[3].endswith("failed: " + json.load(open(tmp_path / "s.json"))["streams"]["cam2"]["reason"])
    summary = json.load(open(tmp_path / "s.json"))
    assert summary["failed"] == ["cam2"] and summary["streams"]["a"]["state"] == "ended"
    assert summary["streams"]["a"]["frames"] == 30 and summary["streams"]["cam2"]["frames"] == 0
    records = read_jsonl(tmp_path / "r.jsonl")
    for name, video, n in (("a", a, 30), ("b", b, 20)):
        mine = [r for r in records if r["stream"] == name]
        assert [r["frame"] for r in mine] == list(range(n))  # every frame, in order
        assert all(r["path"] == str(video) and r["latency_ms"] >= 0 for r in mine)
        ref = direct(model, video)
        assert [r["boxes"] for r in mine] == [[[round(float(v), 2) for v in bx] for bx in d.boxes] for d in ref]
        assert frames_of(tmp_path / "rec" / f"{name}.avi")[0] == n
    assert "threshold 0.5 (from model metadata of tiny.onnx" in out.stderr


def test_sources_file_names_options_and_duplicates(model, tmp_path):
    a, b = moving(tmp_path / "a.avi", n=5), moving(tmp_path / "b.avi", n=3)
    listing = tmp_path / "cams.txt"
    listing.write_text(f"# two cameras\nfront={a}\n\n{b} --fps 15 --size 64x48\n")
    out = uolrps("run", "--sources", listing, "--model", model, "--jsonl", tmp_path / "r.jsonl", "--save", tmp_path / "rec")
    assert out.returncode == 0, out.stderr
    records = read_jsonl(tmp_path / "r.jsonl")
    assert sorted({r["stream"] for r in records}) == ["b", "front"]
    assert frames_of(tmp_path / "rec" / "front.mp4")[0] == 5 and frames_of(tmp_path / "rec" / "b.mp4")[0] == 3
    listing.write_text(f"front={a}\nfront={b}\n")
    out = uolrps("run", "--sources", listing, "--model", model)
    assert out.returncode == 2 and out.stderr.strip() == "error: two sources are named 'front': every stream needs its own name"
    listing.write_text(f"front={a} --size big\n")
    out = uolrps("run", "--sources", listing, "--model", model)
    assert out.returncode == 2 and "line 1: --size must be WIDTHxHEIGHT" in out.stderr
    out = uolrps("run", "--video", a, "--video", b, "--model", model, "--save", tmp_path / "one.mp4")
    assert out.returncode == 2 and "with several streams give a folder" in out.stderr


def test_single_network_source_that_does_not_open_is_one_clean_line(model):
    port = free_port()
    out = uolrps("run", "--video", f"http://127.0.0.1:{port}/video.mjpg", "--model", model, "--stall-timeout", "1")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: cannot open HTTP stream http://127.0.0.1:{port}/video.mjpg: check that the server is up and the URL "
        "serves a video stream (MJPEG or a format FFmpeg reads): try it in a player (`ffplay URL`)"]
    out = uolrps("run", "--video", f"rtsp://127.0.0.1:{port}/live", "--model", model, "--stall-timeout", "1")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "cannot open RTSP stream" in out.stderr and "another program" not in out.stderr and "WARN" not in out.stderr
    out = uolrps("run", "--video", "cam9", "--model", model)  # no camera 9 here: our line only, no OpenCV WARN lines
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "error: cannot open camera cam9: check that it exists, is connected and not used by another program "
        "(`ls /dev/video*`, `v4l2-ctl --list-devices`)"]


def test_a_file_named_0_is_a_file(model, tmp_path):
    moving(tmp_path / "clip.avi", n=4)
    os.rename(tmp_path / "clip.avi", tmp_path / "0")
    out = uolrps("run", "--video", "0", "--model", model, "--jsonl", "r.jsonl", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert len(read_jsonl(tmp_path / "r.jsonl")) == 4


def test_image_folder_paths_indexes_and_saved_images(model, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    sizes = {"a.png": (100, 150), "b.png": (160, 60), "d.png": (80, 80)}  # b is a portrait photo
    for name, (h, w) in sizes.items():
        img = np.full((h, w, 3), 10, np.uint8)
        img[h // 4:h // 2, w // 4:w // 2] = 250
        cv2.imwrite(str(folder / name), img)
    (folder / "c.png").write_bytes(b"broken")
    out = uolrps("run", "--video", folder, "--model", model, "--jsonl", tmp_path / "r.jsonl", "--save", tmp_path / "out")
    assert out.returncode == 0, out.stderr
    records = read_jsonl(tmp_path / "r.jsonl")
    assert [(r["frame"], r["path"]) for r in records] == [(0, str(folder / "a.png")), (1, str(folder / "b.png")),
                                                          (3, str(folder / "d.png"))]
    for name, (h, w) in sizes.items():
        saved = cv2.imread(str(tmp_path / "out" / name))
        assert saved.shape == (h, w, 3)  # same size as the input: nothing stretched
    summary = uolrps("run", "--video", folder, "--model", model, "--summary-json", tmp_path / "s.json", "--quiet")
    assert json.load(open(tmp_path / "s.json"))["streams"]["imgs"]["skipped_files"] == [str(folder / "c.png")]
    assert summary.returncode == 0
    # one video instead: letterboxed into the first image's size, the portrait one keeps its shape
    out = uolrps("run", "--video", folder, "--model", model, "--save", tmp_path / "o.avi")
    assert out.returncode == 0, out.stderr
    cap = cv2.VideoCapture(str(tmp_path / "o.avi"))
    frames = [cap.read()[1] for _ in range(3)]
    portrait = frames[1]
    assert portrait.shape == (100, 150, 3)
    cols = np.where(portrait.max(axis=(0, 2)) > 5)[0]  # the non-black columns: 60 * 100 / 160 = 37.5 wide
    assert 34 <= cols[-1] - cols[0] + 1 <= 46 and portrait[:, :45].max() < 30  # stretched would be 150 wide


def test_browser_view_on_a_real_run_add_and_remove_streams(model, tmp_path):
    pytest.importorskip("fastapi", reason="the [serve] extra (fastapi, uvicorn) is needed for --serve")
    from serve_client import request

    a, b, c = (moving(tmp_path / f"{n}.avi", n=10) for n in "abc")
    seen: dict = {}

    def drive(engine, server):
        def go():
            try:
                url = server.url
                code, _, body = request(url, "GET", "/api/streams")
                seen["before"] = (code, sorted(s["name"] for s in body["streams"]) if isinstance(body, dict) else
                                  sorted(s["name"] for s in body))
                seen["add"] = request(url, "POST", "/api/streams", {"name": "extra", "source": str(c)})[0]
                seen["dup"] = request(url, "POST", "/api/streams", {"name": "extra", "source": str(c)})
                seen["bad"] = request(url, "POST", "/api/streams", {"name": "x", "source": "smb://nope"})
                seen["gone"] = request(url, "DELETE", "/api/streams/nope")[0]
                deadline = time.monotonic() + 30  # b has made a result before it is removed (a loaded machine)
                while time.monotonic() < deadline and request(url, "GET", "/api/streams/b/latest")[0] != 200:
                    time.sleep(0.05)
                seen["del"] = request(url, "DELETE", "/api/streams/b")[0]
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    code, _, latest = request(url, "GET", "/api/streams/extra/latest")
                    if code == 200 and latest.get("frame", -1) >= 0:
                        seen["latest"] = latest
                        break
                    time.sleep(0.1)
                seen["after"] = sorted(s.name for s in engine.statuses())
            finally:
                engine.close()
        threading.Thread(target=go, daemon=True).start()

    stats = run(RunConfig(source=(str(a), str(b)), model=model, serve="127.0.0.1:0", loop=True,
                          serve_allow=f"files={tmp_path}",  # the API may open local files only where allowed
                          jsonl=tmp_path / "r.jsonl", save=tmp_path / "rec"), on_start=drive,
                serve_with=start_server)
    assert seen["before"] == (200, ["a", "b"])
    assert seen["add"] in (200, 201)
    assert 400 <= seen["dup"][0] < 500 and "already exists" in json.dumps(seen["dup"][2])
    assert 400 <= seen["bad"][0] < 500 and "unknown source scheme" in json.dumps(seen["bad"][2])
    assert seen["gone"] == 404 and seen["del"] in (200, 204)
    assert seen["latest"]["stream"] == "extra" and "latency_ms" in seen["latest"]
    assert seen["after"] == ["a", "extra"] and not stats.failed
    assert {r["stream"] for r in read_jsonl(tmp_path / "r.jsonl")} >= {"a", "b", "extra"}
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == ["a.mp4", "b.mp4", "extra.mp4"]


def test_a_stream_added_to_a_one_source_run_records_beside_the_first(model, tmp_path):
    a, c = moving(tmp_path / "a.avi", n=5), moving(tmp_path / "c.avi", n=4)

    def add(engine, server):
        engine.add_stream(str(c), "extra")

    run(RunConfig(source=str(a), model=model, save=tmp_path / "out.avi"), on_start=add)
    assert frames_of(tmp_path / "out.avi")[0] == 5 and frames_of(tmp_path / "out_extra.avi")[0] == 4
