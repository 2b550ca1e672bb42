"""Issue 8 item 7 and a friction: --write-threshold reaches the twins beside the model and says which files
it wrote; the localizer says where its threshold came from; ``Localizer(...)("photo.jpg")`` works."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import onnx
import pytest
from evaldata import make_scenes, write_voc
from tinymodel import bright_square_frame, make_tiny_model

from uolrps.core.errors import UserError
from uolrps.model.meta import PREFIX
from uolrps.runtime import Localizer
from uolrps.runtime.localizer import threshold_origin


def uolrps(*args, timeout=120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-m", "uolrps.cli.main", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def stored_threshold(path):
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    return json.loads(props[PREFIX + "threshold"]), json.loads(props[PREFIX + "threshold_source"])


def test_write_threshold_updates_the_twins_and_names_them(tmp_path):
    voc = write_voc(tmp_path / "voc", make_scenes(6, seed=3))
    d = tmp_path / "export"
    d.mkdir()
    m = make_tiny_model(d / "model.onnx", threshold=0.5)
    for twin in ("model.fp16.onnx", "model.int8.onnx"):
        (d / twin).write_bytes(m.read_bytes())
    stale = make_tiny_model(d / "model.int8.cpu.onnx", size=(32, 32), grid=(4, 4))  # an older, other export
    stale_bytes = stale.read_bytes()
    res = uolrps("eval", voc, "--model", d / "model.fp16.onnx", "--write-threshold", "-q", "--protocol", "wsol")
    assert res.returncode == 0, res.stderr
    wrote = [line for line in res.stdout.splitlines() if line.startswith("wrote threshold")]
    assert len(wrote) == 1, res.stdout
    for name in ("model.onnx", "model.fp16.onnx", "model.int8.onnx"):
        assert str(d / name) in wrote[0]
        t, source = stored_threshold(d / name)
        assert source.startswith("eval:wsol:voc:6")
        assert t == stored_threshold(d / "model.fp16.onnx")[0]
    assert "model.int8.cpu.onnx" not in wrote[0]
    assert f"left {d / 'model.int8.cpu.onnx'} unchanged" in res.stdout and "input_size" in res.stdout
    assert stale.read_bytes() == stale_bytes


def test_threshold_origin(tmp_path):
    m = make_tiny_model(tmp_path / "m.onnx", threshold=0.4)
    with Localizer(m) as loc:
        assert loc.threshold == pytest.approx(0.4)
        assert loc.threshold_origin == "model metadata of m.onnx (default)"
    with Localizer(m, threshold=0.3) as loc:
        assert loc.threshold == pytest.approx(0.3) and loc.threshold_origin == "given"
    from uolrps.model.threshold import write_threshold

    write_threshold(m, 0.25, "eval:authors:raccoon:200")
    with Localizer(m) as loc:
        assert loc.threshold == pytest.approx(0.25)
        assert loc.threshold_origin == "model metadata of m.onnx (eval:authors:raccoon:200)"
    with Localizer(m) as loc:
        meta = loc.meta
    assert threshold_origin("x.engine", meta, False) == "engine sidecar x.engine.json (eval:authors:raccoon:200)"


def test_localizer_accepts_a_path_and_says_what_it_expects(tmp_path):
    m = make_tiny_model(tmp_path / "m.onnx")
    frame = bright_square_frame()
    assert cv2.imwrite(str(tmp_path / "photo.png"), frame)
    with Localizer(m) as loc:
        want = loc(frame)
        got = loc(str(tmp_path / "photo.png"))
        np.testing.assert_array_equal(got.boxes, want.boxes)
        assert loc(tmp_path / "photo.png").frame_size == frame.shape[:2]
        with pytest.raises(UserError, match="BGR uint8 H x W x 3 array"):
            loc([[1, 2, 3]])
        with pytest.raises(UserError, match="does not exist"):
            loc("missing.jpg")
        with pytest.raises(UserError, match="uint8 H x W x 3 array .*, but got float64 values"):
            loc(frame.astype(np.float64))  # one exception type for every bad frame (issue 19)
