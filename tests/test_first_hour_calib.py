"""Issue 8 item 4: --base merges calibrations exactly (checked against one calibration of the union of the
images), and `uolrps calib` prints its stability measure and warns below the measured minimum set size."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import shared

from uolrps.calib.stability import MIN_IMAGES
from uolrps.calib.wstar import compute_wstar
from uolrps.calib.means import load_calibration
from uolrps.cli.main import main
from uolrps.core.errors import UserError

SIZE = 64  # the merge is exact at any size; small keeps the test fast


@pytest.fixture(scope="module")
def folders(tmp_path_factory, calib_subset):
    photos = sorted(calib_subset.iterdir())[:11]
    root = tmp_path_factory.mktemp("merge")
    for name, part in (("a", photos[:6]), ("b", photos[6:]), ("union", photos)):
        (root / name).mkdir()
        for p in part:
            shutil.copy(p, root / name / p.name)
    return root


@pytest.mark.slow
def test_base_merge_equals_the_union(folders, tmp_path):
    compute_wstar(folders / "a", backbone="efflite0", size=SIZE, progress=False).save(tmp_path / "a.npz")
    merged = compute_wstar(folders / "b", backbone="efflite0", size=SIZE, progress=False, base=[tmp_path / "a.npz"])
    union = compute_wstar(folders / "union", backbone="efflite0", size=SIZE, progress=False)
    assert int(merged.n_images) == int(union.n_images) == 11
    np.testing.assert_allclose(merged.v, union.v, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(merged.u, union.u, rtol=1e-5, atol=1e-7)
    assert float(merged.w @ union.w) > 1 - 1e-6
    only_b = compute_wstar(folders / "b", backbone="efflite0", size=SIZE, progress=False)
    assert float(only_b.w @ union.w) < 1 - 1e-4  # the merge changed something
    assert merged.meta["n_own_images"] == 5 and merged.meta["bases"][0]["n_images"] == 6
    path = merged.save(tmp_path / "m.npz")  # a merged file serves as a base again
    assert int(load_calibration(path)["n_images"]) == 11


@pytest.mark.slow
def test_bases_that_cannot_merge_are_refused_before_any_work(folders, tmp_path):
    compute_wstar(folders / "a", backbone="efflite0", size=SIZE, progress=False).save(tmp_path / "a.npz")
    with pytest.raises(UserError, match="input_size"):
        compute_wstar(folders / "b", backbone="efflite0", size=SIZE + 32, progress=False, base=[tmp_path / "a.npz"])
    data = load_calibration(tmp_path / "a.npz")
    np.savez(tmp_path / "w_only.npz", w=data["w"], meta=np.array(json.dumps(data["meta"])))
    with pytest.raises(UserError, match="lacks v, u, n_images"):
        compute_wstar(folders / "b", backbone="efflite0", size=SIZE, progress=False, base=[tmp_path / "w_only.npz"])
    with pytest.raises(UserError, match="keep_representers cannot be combined with base"):
        compute_wstar(folders / "b", backbone="efflite0", size=SIZE, progress=False, base=[tmp_path / "a.npz"],
                      keep_representers=True)


def calib_cli(capsys, images, n_total, *extra):
    ratio = n_total / 3000
    assert main(["calib", str(images), "--backbone", "efflite0", "--size", "32", "--sampling-ratio", f"{ratio!r}",
                 *map(str, extra)]) == 0
    return capsys.readouterr()


@pytest.mark.slow
def test_warning_fires_below_the_measured_minimum_and_not_above(capsys, tmp_path):
    images = shared("imagenet-calib")
    assert len(list(images.rglob("*.JPEG"))) == 3000
    below = calib_cli(capsys, images, MIN_IMAGES - 1, "-o", tmp_path / "below.npz")
    assert f"from {MIN_IMAGES - 1} images" in below.out
    assert f"warning: only {MIN_IMAGES - 1} calibration images: fewer than {MIN_IMAGES}" in below.err
    assert "stability: split-half cosine 0." in below.err
    above = calib_cli(capsys, images, MIN_IMAGES, "-o", tmp_path / "above.npz")
    assert f"from {MIN_IMAGES} images" in above.out
    assert "warning" not in above.err and "stability: split-half cosine 0." in above.err
    meta = load_calibration(tmp_path / "above.npz")["meta"]
    assert 0 < meta["split_half_cosine"] <= 1


@pytest.mark.slow
def test_few_own_images_on_a_large_base_do_not_warn(folders, capsys, tmp_path):
    assert main(["calib", str(folders / "union"), "--backbone", "efflite0", "--size", str(SIZE),
                 "-o", str(tmp_path / "u.npz")]) == 0
    assert "warning: only 11 calibration images" in capsys.readouterr().err
    big = load_calibration(tmp_path / "u.npz")
    arrays = {k: big[k] for k in ("w", "v", "u")}
    np.savez(tmp_path / "big.npz", **arrays, n_images=np.int64(MIN_IMAGES), meta=np.array(json.dumps(big["meta"])))
    assert main(["calib", str(folders / "a"), "--backbone", "efflite0", "--size", str(SIZE), "--base",
                 str(tmp_path / "big.npz"), "-o", str(tmp_path / "m.npz")]) == 0
    err = capsys.readouterr().err
    assert "warning" not in err and f"merged with --base: {MIN_IMAGES + 6} images in all" in err


def test_base_default_is_the_shipped_calibration_and_can_serve(tmp_path, monkeypatch):
    from uolrps.calib.merge import load_bases, resolve_base
    from uolrps.calib.means import DEFAULT_WSTAR_DIR

    assert resolve_base("default", "efflite0") == DEFAULT_WSTAR_DIR / "efflite0.npz"
    (base,) = load_bases(["default"], "efflite0")  # it holds v, u and n_images, so it can be merged
    assert base.n_images >= MIN_IMAGES and base.v.shape == base.u.shape == (1280,)
    with pytest.raises(UserError, match="ships no calibration"):
        resolve_base("default", "vits")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default").write_bytes(b"x")  # a file of that name is the user's file
    assert resolve_base("default", "efflite0") == tmp_path / "default" or str(resolve_base("default", "efflite0")) == "default"


@pytest.mark.slow
def test_export_calib_images_prints_the_same_warning(folders, tmp_path):
    from uolrps.export.onnx_export import export_model

    lines = []
    export_model(backbone="efflite0", output=tmp_path / "m.onnx", calib_images=folders / "a", size=SIZE,
                 progress=False, log=lines.append)
    assert any(m.startswith("stability: split-half cosine") for m in lines), lines
    assert f"warning: only 6 calibration images: fewer than {MIN_IMAGES}" in "\n".join(lines)
