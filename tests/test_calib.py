"""w* against an independent implementation of the formula, class-wise rows, sampling, bad inputs, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from uolrps.calib.encoder import build_encoder
from uolrps.calib.wstar import compute_wstar
from uolrps.calib.means import load_calibration, wstar_from_means
from uolrps.core.errors import UserError


def independent_wstar(paths, enc, size=224) -> np.ndarray:
    """The formula, written plainly: all features in memory, float64, no streaming."""
    feats = []
    for p in paths:
        rgb = cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR)
        with torch.no_grad():
            f = enc(torch.from_numpy(rgb[None]))[0].double()
        feats.append(f.reshape(f.shape[0], -1).T.numpy())
    F = np.concatenate(feats)  # (N P) x C
    v = F.mean(0)
    u = (F / np.maximum(np.linalg.norm(F, axis=1, keepdims=True), 1e-12)).mean(0)  # as F.normalize
    d = v - u * np.linalg.norm(v) / np.linalg.norm(u)
    return d / np.linalg.norm(d)


def write_images(folder: Path, n: int, seed: int = 0, size=(60, 80)) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        p = folder / f"img{i:02d}.{'png' if i % 2 else 'JPG'}"
        cv2.imwrite(str(p), img)
        out.append(p)
    return out


def test_wstar_matches_independent_formula_on_real_images(calib_subset):
    paths = sorted(calib_subset.glob("*.JPEG"))
    enc = build_encoder("efflite0")
    cal = compute_wstar(calib_subset, encoder=enc, sampling_ratio=24 / len(paths), seed=3, batch=7, progress=False)
    pick = np.sort(np.random.default_rng(3).choice(len(paths), size=24, replace=False))  # the seeded sample
    used = [paths[i] for i in pick]
    ref = independent_wstar(used, enc)
    assert cal.n_images == 24
    assert float(cal.w @ ref) >= 0.99999
    assert np.isclose(np.linalg.norm(cal.w), 1.0, atol=1e-6)


def test_wstar_from_means_rows():
    rng = np.random.default_rng(0)
    v, u = rng.random((3, 8)), rng.random((3, 8))
    w = wstar_from_means(v, u)
    assert w.shape == (3, 8)
    for k in range(3):
        d = v[k] - u[k] * np.linalg.norm(v[k]) / np.linalg.norm(u[k])
        np.testing.assert_allclose(w[k], d / np.linalg.norm(d), rtol=1e-12)
    assert wstar_from_means(v[0], u[0]).shape == (8,)


def test_classwise_rows_in_sorted_folder_order(tmp_path):
    for name, seed in [("zebra", 1), ("apple", 2), ("mango", 3)]:
        write_images(tmp_path / name, 3, seed)
    enc = build_encoder("efflite0", size=64)
    cal = compute_wstar(tmp_path, encoder=enc, classwise=True, progress=False)
    assert cal.w.shape == (3, 1280)
    assert cal.meta["classes"] == ["apple", "mango", "zebra"]
    assert list(cal.n_images) == [3, 3, 3]
    single = compute_wstar(tmp_path / "mango", encoder=enc, progress=False)
    np.testing.assert_allclose(cal.w[1], single.w, atol=1e-6)


def test_sampling_is_deterministic_and_sized(tmp_path):
    write_images(tmp_path, 10)
    enc = build_encoder("efflite0", size=64)
    a = compute_wstar(tmp_path, encoder=enc, sampling_ratio=0.5, seed=7, progress=False)
    b = compute_wstar(tmp_path, encoder=enc, sampling_ratio=0.5, seed=7, progress=False)
    c = compute_wstar(tmp_path, encoder=enc, sampling_ratio=0.5, seed=8, progress=False)
    assert a.n_images == 5 and np.array_equal(a.w, b.w) and not np.array_equal(a.w, c.w)


def test_corrupt_image_is_skipped_and_counted(tmp_path):
    write_images(tmp_path, 4)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")
    cal = compute_wstar(tmp_path, encoder=build_encoder("efflite0", size=64), progress=False)
    assert cal.n_images == 4
    assert [Path(p).name for p in cal.skipped] == ["broken.jpg"]
    assert cal.meta["n_skipped"] == 1


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing", "does not exist"),
    (lambda d: d, "no images"),
])
def test_bad_folders(tmp_path, make, message):
    with pytest.raises(UserError, match=message):
        compute_wstar(make(tmp_path), backbone="efflite0", progress=False)


def test_npz_has_no_pickle_and_round_trips(tmp_path):
    write_images(tmp_path / "imgs", 3)
    cal = compute_wstar(tmp_path / "imgs", encoder=build_encoder("efflite0", size=64), progress=False)
    out = cal.save(tmp_path / "w.npz")
    with np.load(out, allow_pickle=False) as z:  # would raise on any object array
        assert set(z.files) == {"w", "v", "u", "n_images", "meta"}
        assert z["w"].dtype == np.float32
        meta = json.loads(str(z["meta"]))
    for key in ("backbone", "weights_sha256", "input_size", "mean", "std", "classes", "sampling_ratio", "version", "date"):
        assert key in meta
    data = load_calibration(out)
    np.testing.assert_array_equal(data["w"], cal.w)


def test_representers_sum_to_wstar(tmp_path):
    write_images(tmp_path, 6)
    cal = compute_wstar(tmp_path, encoder=build_encoder("efflite0", size=96), keep_representers=True,
                        top_k=3, progress=False)
    r = cal.representers
    assert r["rep_r"].shape == (6, 1280) and len(r["rep_paths"]) == 6
    np.testing.assert_allclose(r["rep_r"].astype(np.float64).sum(0), cal.w, atol=1e-5)
    assert r["rep_top_pos"].shape == (6, 3, 2) and (r["rep_top_pos"] < 3).all()
    assert (np.diff(r["rep_top_alpha"], axis=1) <= 0).all()  # strongest first


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uolrps.cli.main", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("args, needle", [
    (["calib", "/nonexistent/folder"], "does not exist"),
    (["calib", ".", "--backbone", "vit_huge"], "known backbones: vits"),
    (["calib", ".", "--sampling-ratio", "0"], "--sampling-ratio"),
])
def test_cli_errors_are_one_line(tmp_path, args, needle):
    res = run_cli(*args, "-o", str(tmp_path / "w.npz"))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert needle in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "w.npz").exists()


def test_cli_bad_checkpoint_keeps_existing_output(tmp_path, r50_checkpoint):
    write_images(tmp_path / "imgs", 2)
    (tmp_path / "w.npz").write_bytes(b"precious")
    res = run_cli("calib", str(tmp_path / "imgs"), "--backbone", "vits", "--weights", str(r50_checkpoint),
                  "-o", str(tmp_path / "w.npz"))
    assert res.returncode == 2 and "Traceback" not in res.stderr and "does not fit backbone 'vits'" in res.stderr
    assert (tmp_path / "w.npz").read_bytes() == b"precious"


def test_cli_writes_calibration(tmp_path):
    write_images(tmp_path / "imgs", 3)
    res = run_cli("calib", str(tmp_path / "imgs"), "--backbone", "efflite0", "--size", "64", "-o", str(tmp_path / "w.npz"))
    assert res.returncode == 0, res.stderr
    assert "images/s" in res.stderr and load_calibration(tmp_path / "w.npz")["w"].shape == (1280,)
