"""Localizer and LocalizationResult, with real ONNX Runtime sessions of the tiny contract model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tinymodel import bright_square_frame, make_tiny_model

from uolrps.core.errors import UserError
from uolrps.runtime import LocalizationResult, Localizer
from uolrps.core.boxes import heatmap_to_boxes


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("m") / "tiny.onnx", threshold=0.4)


@pytest.fixture(scope="module")
def fixed_model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("m") / "tiny1.onnx", dynamic_batch=False, threshold=0.4)


def two_squares(h=240, w=320):
    f = bright_square_frame(h, w, box=(20, 20, 119, 139))  # large
    f[160:220, 240:300] = 255  # small, far away
    return f


def test_box_covers_the_bright_object_and_default_threshold_comes_from_the_model(model):
    with Localizer(model) as loc:
        assert loc.threshold == pytest.approx(0.4)
        frame = bright_square_frame(120, 160, box=(40, 30, 100, 90))
        r = loc(frame, frame_index=7, timestamp=1.5)
    assert isinstance(r, LocalizationResult) and len(r) == 1
    x1, y1, x2, y2 = r.box
    assert x1 <= 40 and y1 <= 30 and x2 >= 100 and y2 >= 90  # encloses the object
    assert x2 - x1 < 100 and y2 - y1 < 90  # but not the whole frame
    assert r.frame_index == 7 and r.timestamp == 1.5 and r.frame_size == (120, 160)
    assert set(r.timings) == {"pre", "infer", "post"} and all(v >= 0 for v in r.timings.values())
    assert r.heatmap.shape == (1, 8, 8) and 0.0 < r.scores[0] <= 1.0


def test_result_equals_the_protocol_applied_to_the_heatmap(model):
    frame = two_squares()
    with Localizer(model, threshold=0.3) as loc:
        r = loc(frame)
        hm = loc.heatmaps([frame])[0, 0]
    boxes, scores, _ = heatmap_to_boxes(hm, frame.shape[:2], 0.3)
    np.testing.assert_array_equal(r.boxes, boxes)
    np.testing.assert_array_equal(r.scores, scores)


def test_multi_returns_every_region_largest_first_and_single_the_largest(model):
    frame = two_squares()
    with Localizer(model, threshold=0.5, multi=True, min_area=0.0) as loc:
        multi = loc(frame)
    with Localizer(model, threshold=0.5) as loc:
        single = loc(frame)
    assert len(multi) == 2 and len(single) == 1
    areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in multi.boxes]
    assert areas[0] > areas[1]
    np.testing.assert_array_equal(multi.boxes[0], single.boxes[0])
    assert multi.boxes[1][0] > 200  # the small square on the right
    with Localizer(model, threshold=0.5, multi=True, min_area=0.2) as loc:  # neither is 20% of the frame: the largest stays
        assert len(loc(frame)) == 1


def test_no_contour_gives_zero_boxes(model):
    with Localizer(model) as loc:
        r = loc(np.zeros((48, 64, 3), np.uint8))  # a constant map is all zeros: nothing above the threshold
    assert r.boxes.shape == (0, 4) and r.scores.shape == (0,) and r.box is None
    assert r.to_record()["boxes"] == []


def test_heatmaps_batches_frames_of_any_size_and_matches_single_calls(model, fixed_model):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (rng.integers(40, 200), rng.integers(40, 200), 3), dtype=np.uint8) for _ in range(7)]
    with Localizer(model) as dyn, Localizer(fixed_model) as fixed:
        a = dyn.heatmaps(frames, batch_size=3)
        b = fixed.heatmaps(frames)
        c = np.stack([dyn(f).heatmap for f in frames])
        assert a.shape == (7, 1, 8, 8) and a.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=1e-6)
        np.testing.assert_allclose(a, c, atol=1e-6)
        assert dyn.heatmaps([]).shape == (0, 1, 8, 8)


def test_smooth_is_an_exponential_moving_average_in_call_order(model):
    a = 0.6
    f1 = bright_square_frame(64, 64, box=(0, 0, 31, 31))
    f2 = bright_square_frame(64, 64, box=(32, 32, 63, 63))
    with Localizer(model, smooth=a) as loc, Localizer(model) as raw:
        h1, h2 = raw(f1).heatmap, raw(f2).heatmap
        r1, r2, r3 = loc(f1), loc(f2), loc(f2)
        np.testing.assert_allclose(r1.heatmap, h1, atol=1e-6)
        np.testing.assert_allclose(r2.heatmap, a * h1 + (1 - a) * h2, atol=1e-6)
        np.testing.assert_allclose(r3.heatmap, a * (a * h1 + (1 - a) * h2) + (1 - a) * h2, atol=1e-6)
        assert r1.heatmap is not r2.heatmap and not np.shares_memory(r2.heatmap, r3.heatmap)
        loc.reset()
        np.testing.assert_allclose(loc(f2).heatmap, h2, atol=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    ({"threshold": 1.5}, "threshold must be in"), ({"threshold": -0.1}, "threshold must be in"),
    ({"smooth": 1.0}, "smooth must be in"), ({"smooth": -0.5}, "smooth must be in"),
    ({"min_area": 2.0}, "min_area"), ({"backend": "tvm"}, "unknown backend"),
])
def test_bad_options_are_user_errors(model, kwargs, match):
    with pytest.raises(UserError, match=match):
        Localizer(model, **kwargs)


@pytest.mark.parametrize("bad,detail", [
    (np.zeros((10, 10), np.uint8), "gray"), (np.zeros((10, 10, 3), np.float32), "float32 values"),
    (np.zeros((10, 10, 4), np.uint8), "4-channel"), (np.zeros((0, 0, 3), np.uint8), "an empty array"),
    (np.zeros((0,), np.uint8), "an empty array"), (None, "NoneType"), ([[1, 2, 3]], "list"),
], ids=["gray", "float", "rgba", "empty", "empty1d", "none", "list"])
def test_bad_frames_are_one_user_error(model, bad, detail):
    """docs/run.md: a bad frame is a UserError, whatever is wrong with it (issue 19: ValueError, cv2.error)."""
    with Localizer(model) as loc:
        with pytest.raises(UserError, match="a frame must be a BGR uint8 H x W x 3 array") as e:
            loc(bad)
        assert detail in str(e.value)
        with pytest.raises(UserError, match="a frame must be"):
            loc.heatmaps([np.zeros((10, 10, 3), np.uint8), bad])


# ---- the result dataclass ------------------------------------------------------------------------------
def make(**kw):
    base = dict(boxes=np.array([[1, 2, 30, 40]], np.float32), scores=np.array([0.5], np.float32),
                heatmap=np.zeros((1, 4, 4), np.float32), frame_size=(50, 60))
    base.update(kw)
    return LocalizationResult(**base)


@pytest.mark.parametrize("kw,match", [
    ({}, None),
    ({"boxes": np.zeros((0, 4), np.float32), "scores": np.zeros(0, np.float32)}, None),
    ({"boxes": np.array([[1, 2, 30, 40]], np.float64)}, r"boxes must be a float32 np.ndarray with shape \(_, 4\), but got shape \(1, 4\) float64"),
    ({"boxes": np.zeros((1, 5), np.float32)}, r"but got shape \(1, 5\)"),
    ({"scores": np.zeros(2, np.float32)}, r"scores must be a float32 np.ndarray with shape \(1,\)"),
    ({"boxes": np.array([[1, 2, 60, 40]], np.float32)}, "x1 <= x2 <= 59"),
    ({"boxes": np.array([[30, 2, 1, 40]], np.float32)}, "x1 <= x2"),
    ({"heatmap": np.zeros((4, 4), np.float32)}, r"heatmap must be an np.ndarray with shape \(C, h, w\)"),
    ({"frame_size": (0, 10)}, "frame_size"),
    ({"frame_index": -1}, "frame_index"),
    ({"timestamp": float("nan")}, "timestamp"),
    ({"labels": np.zeros(3, np.int32)}, "labels"),
])
def test_result_validates_itself(kw, match):
    if match is None:
        r = make(**kw)
        assert r.labels.shape == (len(r.boxes),)
    else:
        with pytest.raises(ValueError, match=match):
            make(**kw)


def test_record_is_the_jsonl_line_format():
    r = make(frame_index=3, timestamp=0.1, timings={"capture": 1.23456, "pre": 0.5, "infer": 2.0, "post": 0.25})
    rec = json.loads(json.dumps(r.to_record()))
    assert list(rec) == ["frame", "t", "boxes", "scores", "ms"]
    assert rec == {"frame": 3, "t": 0.1, "boxes": [[1.0, 2.0, 30.0, 40.0]], "scores": [0.5],
                   "ms": {"capture": 1.235, "pre": 0.5, "infer": 2.0, "post": 0.25}}
    assert list(make().to_record(labels=True)) == ["frame", "t", "boxes", "scores", "labels", "ms"]


def test_heatmaps_pads_a_partial_batch_of_a_fixed_batch_model(tmp_path):
    from tinymodel import bright_square_frame, make_tiny_model

    from uolrps.runtime import Localizer

    frames = [bright_square_frame(box=(10 + 5 * i, 20, 60 + 5 * i, 70)) for i in range(6)]
    dyn = Localizer(make_tiny_model(tmp_path / "dyn.onnx"))
    fixed4 = Localizer(make_tiny_model(tmp_path / "fixed4.onnx", dynamic_batch=False, batch=4))
    assert fixed4.backend.input_spec.shape[0] == 4
    got = fixed4.heatmaps(frames)  # one whole batch of 4, then 2 frames padded to 4
    assert got.shape == (6, 1, 8, 8)
    np.testing.assert_allclose(got, dyn.heatmaps(frames), atol=1e-6)


def test_blas_is_limited_to_one_thread_when_the_runtime_is_used_from_python(tmp_path):
    """The CLI sets OPENBLAS_NUM_THREADS before numpy loads; from Python the Localizer sets the limit."""
    import os
    import subprocess
    import sys

    from tinymodel import make_tiny_model

    model = make_tiny_model(tmp_path / "m.onnx")
    code = ("import numpy, threadpoolctl\n"
            "before = max(i['num_threads'] for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas')\n"
            "from uolrps.runtime import Localizer\n"
            f"Localizer({str(model)!r})\n"
            "after = max(i['num_threads'] for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas')\n"
            "print(before, after)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                            "UOLRPS_BLAS_THREADS")}
    env["OPENBLAS_NUM_THREADS"] = "2"  # what numpy would take on a 2-core machine, whatever this one has
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "1"]


def test_onnx_runtime_workers_do_not_spin_by_default(tmp_path):
    """uolrps's CPU default (measured in benchmarks/bench_threads.py): ONNX Runtime's thread count, no spinning."""
    from tinymodel import make_tiny_model

    from uolrps.runtime.backends.ort import OrtBackend

    backend = OrtBackend(make_tiny_model(tmp_path / "m.onnx"))
    options = backend._session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == 0  # 0 = ONNX Runtime chooses the count (one per core)
    assert OrtBackend(tmp_path / "m.onnx", threads=1)._session.get_session_options().intra_op_num_threads == 1
