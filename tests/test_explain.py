"""Representer explanations: the decomposition identity on synthetic features, foreground positions, the end
to end explanation with the tiny model and a numpy feature extractor, bad inputs, and (torch) the real
calib -> export -> explain chain through the CLI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from tinymodel import bright_square_frame, make_tiny_model

from uolrps.cli.main import main
from uolrps.core.errors import UserError
from uolrps.core.drawing import explain_grid
from uolrps.explain.representers import (box_positions, explain, foreground_feature, load_representers,
                                         projection_map)
from uolrps.core.images import read_rgb, resize


def decompose(feats: np.ndarray, top_k: int = 3):
    """The issue's formulas written out: w* = normalize(v - s u) = sum_i r_i, r_i = sum_p alpha_ip n_ip."""
    N, C, h, w = feats.shape
    f = feats.reshape(N, C, -1).astype(np.float64)
    norm = np.linalg.norm(f, axis=1)  # N x P
    n = f / np.maximum(norm[:, None], 1e-12)
    v, u = f.mean(axis=(0, 2)), n.mean(axis=(0, 2))
    s = np.linalg.norm(v) / np.linalg.norm(u)
    c = 1.0 / np.linalg.norm(v - s * u)
    alpha = c * (norm - s) / (N * h * w)
    r = np.einsum("np,ncp->nc", alpha, n)
    wstar = (v - s * u) * c
    top = np.argsort(-alpha, axis=1)[:, :top_k]
    return dict(w=wstar.astype(np.float32), v=v.astype(np.float32), u=u.astype(np.float32), n_images=np.int64(N),
                rep_r=r.astype(np.float32), rep_top_pos=np.stack([top // w, top % w], -1).astype(np.int32),
                rep_top_alpha=np.take_along_axis(alpha, top, 1).astype(np.float32), rep_scale=np.float64(s),
                rep_c=np.float64(c))


def numpy_features(images_rgb: list, size=(64, 64), grid=(8, 8)) -> np.ndarray:
    """A small deterministic 'backbone': per grid cell, ReLU'd colour and brightness statistics (C = 5)."""
    out = []
    for im in images_rgb:
        x = resize(im, size).astype(np.float64) / 255.0
        cells = x.reshape(grid[0], size[0] // grid[0], grid[1], size[1] // grid[1], 3).mean(axis=(1, 3))
        b = cells.mean(axis=-1)
        out.append(np.stack([cells[..., 0], cells[..., 1], cells[..., 2], b ** 2, np.maximum(0.6 - b, 0) + 0.05]))
    return np.array(out, dtype=np.float32)


def test_identity_on_synthetic_features():
    rng = np.random.default_rng(0)
    feats = np.maximum(rng.normal(size=(20, 16, 5, 6)), 0) + 0.01
    d = decompose(feats)
    np.testing.assert_allclose(d["rep_r"].astype(np.float64).sum(0), d["w"], atol=1e-6)
    assert np.linalg.norm(d["w"]) == pytest.approx(1.0, abs=1e-6)
    test = np.maximum(rng.normal(size=(16, 5, 6)), 0) + 0.01
    for positions in (np.array([[0, 0]]), box_positions((0, 0, 100, 40), (50, 120), (5, 6))):
        m = foreground_feature(test, positions)
        values = d["rep_r"].astype(np.float64) @ m
        assert values.sum() == pytest.approx(float(d["w"].astype(np.float64) @ m), abs=1e-4)
    hm = projection_map(test, d["w"])
    assert hm.shape == (5, 6) and hm.min() == 0 and hm.max() == pytest.approx(1.0)


def test_box_positions_follow_aligned_corners():
    pos = box_positions((0, 0, 63, 63), (64, 64), (8, 8))
    assert len(pos) == 64
    # on a 71 x 141 frame, grid points sit at y = 10 i, x = 20 j
    assert box_positions((20, 10, 40, 10), (71, 141), (8, 8)).tolist() == [[1, 1], [1, 2]]
    assert box_positions((21, 11, 39, 19), (71, 141), (8, 8)).tolist() == [[1, 1]]  # nearest to the centre
    assert box_positions((0, 0, 5, 5), (10, 10), (1, 1)).tolist() == [[0, 0]]


def _calibration(tmp_path, n=10, meta_extra=None):
    rng = np.random.default_rng(2)
    paths, rgbs = [], []
    for i in range(n):
        x1, y1 = int(rng.integers(0, 60)), int(rng.integers(0, 40))
        frame = bright_square_frame(80, 100, (x1, y1, x1 + 30, y1 + 30), value=int(rng.integers(120, 255)))
        frame[..., i % 3] //= 2  # some colour variety
        p = tmp_path / "calib" / f"c{i:02d}.jpg"
        p.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(p), frame)
        paths.append(str(p))
        rgbs.append(read_rgb(p))
    d = decompose(numpy_features(rgbs))
    meta = {"backbone": "tiny", "input_size": [64, 64], "grid": [8, 8], **(meta_extra or {})}
    npz = tmp_path / "cal.npz"
    np.savez(npz, rep_paths=np.array(paths), meta=np.array(json.dumps(meta)), **d)
    return npz, d


def test_explain_end_to_end_with_numpy_features(tmp_path):
    model = make_tiny_model(tmp_path / "tiny.onnx")
    npz, d = _calibration(tmp_path)
    img = tmp_path / "test.png"
    cv2.imwrite(str(img), bright_square_frame(120, 160, (40, 30, 100, 90)))
    exp = explain(img, model, npz, k=3, features_fn=numpy_features)
    x1, y1, x2, y2 = exp.box
    assert exp.box_source.startswith("model") and x1 <= 45 and y1 <= 35 and x2 >= 95 and y2 >= 85
    assert exp.identity_error <= 1e-4 and abs(exp.score) > 1e-3
    f = numpy_features([read_rgb(img)])[0]
    want = d["rep_r"].astype(np.float64) @ foreground_feature(f, exp.positions)
    np.testing.assert_allclose(exp.values, want)
    assert len(exp.positive) == min(3, (want > 0).sum()) and len(exp.negative) == min(3, (want < 0).sum())
    assert list(exp.values[exp.positive]) == sorted(want[want > 0], reverse=True)[:3]
    assert list(exp.values[exp.negative]) == sorted(want[want < 0])[:3]
    js = exp.to_json()
    assert js["identity_ok"] and js["n_calibration_images"] == 10 and js["model_matches_calibration"]
    assert js["positive"][0]["path"].endswith(".jpg") and len(js["positive"][0]["patches"]) == 3
    grid = explain_grid(exp, cv2.imread(str(img)))
    assert grid.ndim == 3 and grid.shape[0] > 300 and grid.shape[1] >= 3 * 150
    user = explain(img, model, npz, box=(0, 0, 30, 20), features_fn=numpy_features)
    assert user.box_source == "--box" and len(user.positions) < len(exp.positions) and user.identity_error <= 1e-4


def test_explain_refuses_bad_inputs(tmp_path):
    model = make_tiny_model(tmp_path / "tiny.onnx")
    npz, d = _calibration(tmp_path, n=4)
    img = tmp_path / "t.png"
    cv2.imwrite(str(img), bright_square_frame())
    flat = tmp_path / "flat.png"
    cv2.imwrite(str(flat), np.full((50, 50, 3), 30, np.uint8))
    bare = tmp_path / "bare.npz"
    np.savez(bare, w=d["w"], meta=np.array("{}"))
    wide = tmp_path / "wide.npz"
    np.savez(wide, **{**d, "w": np.stack([d["w"], d["w"]])}, rep_paths=np.array(["a"] * 4), meta=np.array("{}"))
    (tmp_path / "o").mkdir()
    other, _ = _calibration(tmp_path / "o", n=4, meta_extra={"backbone": "vits"})
    cases = [
        (dict(calib_npz=bare), "--keep-representers"),
        (dict(calib_npz=wide), "class-wise"),
        (dict(calib_npz=tmp_path / "none.npz"), "does not exist"),
        (dict(calib_npz=other), "backbone"),
        (dict(box=(0, 0, 500, 10)), "outside"),
        (dict(image=flat), "pass a region with box x1"),
        (dict(image=tmp_path / "nope.jpg"), "cannot read image"),
        (dict(features_fn=lambda ims: numpy_features(ims)[:, :3]), "channels"),
        (dict(k=0), "k must be at least 1"),
    ]
    for kw, match in cases:
        args = dict(image=img, model=model, calib_npz=npz, features_fn=numpy_features) | kw
        with pytest.raises(UserError, match=match):
            explain(**args)
    assert load_representers(npz).r.shape == (4, 5)


def test_cli_box_parsing_and_errors(tmp_path, capsys):
    img = tmp_path / "t.png"
    cv2.imwrite(str(img), bright_square_frame())
    model = make_tiny_model(tmp_path / "tiny.onnx")
    for args, match in [(["--box", "1,2,3"], "four numbers"), (["--box", "a,b,c,d"], "four numbers"), ([], "does not exist")]:
        code = main(["explain", str(img), "--model", str(model), "--calib", str(tmp_path / "c.npz"), *args])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and match in err


def test_cli_real_chain_calib_export_explain(tmp_path, capsys):
    """The lead's calib (--keep-representers) and export with EfficientNet-Lite0 at 128 px, then explain."""
    pytest.importorskip("torch")
    try:
        from uolrps.calib.backbones.efflite import bundled_weights_path

        bundled_weights_path()
    except Exception as e:  # the weights package is an optional extra
        pytest.skip(f"EfficientNet-Lite0 weights not installed ({e})")
    rng = np.random.default_rng(4)
    for i in range(6):
        x1, y1 = int(rng.integers(0, 80)), int(rng.integers(0, 60))
        frame = bright_square_frame(128, 160, (x1, y1, x1 + 60, y1 + 50))
        frame[..., i % 3] = 40
        (tmp_path / "cal").mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / "cal" / f"{i}.jpg"), frame)
    npz, onnx_path, out = tmp_path / "c.npz", tmp_path / "m.onnx", tmp_path / "x.png"
    assert main(["calib", str(tmp_path / "cal"), "-b", "efflite0", "--size", "128", "--keep-representers",
                 "-o", str(npz)]) == 0
    assert main(["export", "-b", "efflite0", "--size", "128", "--wstar", str(npz), "-o", str(onnx_path)]) == 0
    capsys.readouterr()
    assert main(["explain", str(tmp_path / "cal" / "0.jpg"), "--model", str(onnx_path), "--calib", str(npz),
                 "-k", "2", "-o", str(out), "--json"]) == 0
    js = json.loads(capsys.readouterr().out)
    assert js["identity_ok"] and js["identity_error"] <= 1e-4 and js["model_matches_calibration"]
    assert js["n_calibration_images"] == 6 and len(js["positive"]) + len(js["negative"]) >= 2
    assert cv2.imread(str(out)) is not None
