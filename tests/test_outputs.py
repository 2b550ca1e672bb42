"""Outputs: the JSONL line format, the annotated video (size, rate, frame count), overlays on a copy, the
window refusal on a headless OpenCV, and the run summary."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from uolrps.core.errors import OptionError, UserError
from uolrps.core.drawing import Annotator
from uolrps.runtime.outputs import meter as outputs_meter
from uolrps.runtime.outputs import FpsMeter, JsonlOutput, Progress, VideoOutput, WindowOutput
from uolrps.runtime.result import LocalizationResult
from uolrps.runtime.stats import RunStats


def result(i=0, boxes=((10, 20, 60, 80),), size=(120, 160)):
    b = np.array(boxes, np.float32).reshape(-1, 4)
    hm = np.zeros((1, 4, 4), np.float32)
    hm[0, 1:3, 0:2] = 1.0
    return LocalizationResult(boxes=b, scores=np.full(len(b), 0.75, np.float32), heatmap=hm, frame_size=size,
                              frame_index=i, timestamp=i / 30, timings={"capture": 1.0, "pre": 0.2, "infer": 5.0, "post": 0.4})


def test_jsonl_lines_are_flushed_and_valid(tmp_path):
    out = JsonlOutput(tmp_path / "r.jsonl")
    for i in range(3):
        out.write(result(i, boxes=() if i == 1 else ((10, 20, 60, 80),)))
    lines = (tmp_path / "r.jsonl").read_text().splitlines()  # readable before close: flushed line by line
    assert len(lines) == 3 and out.lines == 3
    out.close()
    out.close()
    recs = [json.loads(line) for line in lines]
    assert recs[0] == {"frame": 0, "t": 0.0, "boxes": [[10.0, 20.0, 60.0, 80.0]], "scores": [0.75],
                       "ms": {"capture": 1.0, "pre": 0.2, "infer": 5.0, "post": 0.4}}
    assert recs[1]["boxes"] == [] and recs[1]["scores"] == [] and recs[2]["t"] == pytest.approx(2 / 30, abs=1e-4)
    assert lines[0].startswith('{"frame": 0, "t": 0.0, "boxes": [[')


def test_jsonl_labels_for_multi_class_models(tmp_path):
    out = JsonlOutput(tmp_path / "r.jsonl", labels=True)
    out.write(result())
    out.close()
    assert json.loads((tmp_path / "r.jsonl").read_text())["labels"] == [0]


@pytest.mark.parametrize("name,fps", [("out.mp4", 25.0), ("out.avi", 12.5)])
def test_video_has_the_source_size_rate_and_every_frame(tmp_path, name, fps):
    out = VideoOutput(tmp_path / name, fps=fps)
    rng = np.random.default_rng(0)
    for i in range(17):
        out.write(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    out.write(np.zeros((60, 80, 3), np.uint8))  # another size is resized to the first frame's
    out.close()
    cap = cv2.VideoCapture(str(tmp_path / name))
    assert cap.isOpened()
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (160, 120)
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(fps, rel=1e-3)
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 18 and out.frames == 18


@pytest.mark.parametrize("path,match", [("out.gif", "must end in .mp4"), ("afile/out.mp4", "is a file, not a folder"),
                                        (".", "is a folder"), ("/proc/x/out.mp4", "cannot write in")])
def test_bad_video_paths_are_user_errors(tmp_path, path, match):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match=match):
        VideoOutput(tmp_path / path)


def test_bad_jsonl_path_is_a_user_error(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        JsonlOutput(tmp_path / "afile" / "r.jsonl")


def test_outputs_create_missing_folders_and_never_overwrite_inputs(tmp_path):
    out = JsonlOutput(tmp_path / "new" / "deeper" / "r.jsonl")
    out.finish()
    out.close()
    assert (tmp_path / "new" / "deeper" / "r.jsonl").read_text() == ""
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model")
    with pytest.raises(UserError, match="also an input"):
        JsonlOutput(model, inputs=[model])
    assert model.read_bytes() == b"model"


def test_overlays_are_drawn_on_a_copy():
    frame = np.full((120, 160, 3), 40, np.uint8)
    before = frame.copy()
    r = result()
    plain = Annotator().annotate(frame, r)
    np.testing.assert_array_equal(frame, before)  # the caller's frame is untouched
    assert plain is not frame and not np.shares_memory(plain, frame)
    assert (plain[20:81, 10] != 40).any() and (plain[100:, 100:] == 40).all()  # a box edge, and nothing far away
    hot = Annotator(heatmap=True).annotate(frame, r)
    np.testing.assert_array_equal(frame, before)
    assert not np.array_equal(hot[60:100, 0:5], plain[60:100, 0:5])  # the hot region of the heatmap is coloured
    with_fps = Annotator().annotate(frame, r, fps=29.9)
    assert not np.array_equal(with_fps[:15, :60], plain[:15, :60])
    empty = Annotator().annotate(frame, result(boxes=()))
    np.testing.assert_array_equal(empty, frame)
    with pytest.raises(ValueError, match="but the result is for"):
        Annotator().annotate(frame[:60], r)


def test_window_needs_a_gui_build():
    try:
        cv2.namedWindow("probe")
        cv2.destroyWindow("probe")
        pytest.skip("this OpenCV has GUI support; the refusal path is for headless builds")
    except cv2.error:
        pass
    # the Python API names RunConfig's parameters; `uolrps run` words them with its flags
    with pytest.raises(OptionError, match=r"^show needs OpenCV with GUI support.*uolrps\[opencv\].*use serve or save$") as e:
        WindowOutput()
    assert e.value.reworded({"show": "--show", "serve": "--serve", "save": "--save"}).startswith("--show needs OpenCV")
    assert e.value.reworded({"show": "--show", "serve": "--serve", "save": "--save"}).endswith("use --serve or --save")


def test_progress_is_silent_when_stderr_is_not_a_terminal(capsys):
    p = Progress(10)
    for _ in range(10):
        p.update(5.0)
    p.close()
    assert capsys.readouterr().err == ""


def test_fps_meter(monkeypatch):
    clock = iter(np.arange(0.0, 10.0, 0.04))  # a frame every 40 ms: 25 FPS by definition
    monkeypatch.setattr(outputs_meter.time, "monotonic", lambda: float(next(clock)))
    m = FpsMeter(window=5)
    assert m.tick() is None  # one frame: no rate yet
    values = [m.tick() for _ in range(10)]
    assert values == pytest.approx([25.0] * 10)


def test_heatmap_overlay_is_upsampled_like_the_boxes_map():
    from uolrps.core.boxes import map8

    hm = np.zeros((1, 4, 5), np.float32)
    hm[0, 1:3, 2:4] = 1.0
    hm[0, 0, 0] = 0.4
    frame = np.zeros((37, 61, 3), np.uint8)
    r = LocalizationResult(boxes=np.zeros((0, 4), np.float32), scores=np.zeros(0, np.float32), heatmap=hm,
                           frame_size=(37, 61))
    got = Annotator(heatmap=True, alpha=1.0).annotate(frame, r)
    expected = cv2.applyColorMap(map8(hm[0], (37, 61))[0], cv2.COLORMAP_JET)  # the map the boxes come from
    np.testing.assert_array_equal(got, expected)


def test_live_recording_is_written_by_timestamp(tmp_path):
    out = VideoOutput(tmp_path / "live.avi", fps=10.0, by_time=True)
    img = np.zeros((48, 64, 3), np.uint8)
    for t in (5.0, 5.1, 5.12, 5.6, 5.7):  # 5.12 comes sooner than 10 FPS allows; 5.1 -> 5.6 is a gap of 5 frames
        out.write(img, t)
    out.close()
    # frames at 0.0, 0.1, (0.12 left out), 0.6 fills 0.2 .. 0.6, 0.7: round(0.7 * 10) + 1 frames in all
    assert out.frames == 8
    cap = cv2.VideoCapture(str(tmp_path / "live.avi"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 8 and cap.get(cv2.CAP_PROP_FPS) == 10.0


def test_summary_counts_and_percentiles():
    s = RunStats()
    s.start()
    for i in range(100):
        s.add({"capture": 1.0, "pre": 0.1, "infer": float(i), "post": 0.5})
    p50, p95 = s.percentiles("infer")
    assert p50 == pytest.approx(49.5) and p95 == pytest.approx(94.05)
    summary = s.summary()
    assert summary["frames"] == 100 and summary["ms"]["post"] == {"p50": 0.5, "p95": 0.5}
    line = s.line()
    assert line.startswith("frames 100 | dropped 0 | skipped 0 |") and "infer p50 49.50 / p95 94.05 ms" in line
    assert RunStats().summary()["frames"] == 0
