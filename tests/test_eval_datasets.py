"""Data set loaders: every format from generated folders, format detection, and named, counted problems."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from evaldata import (SHARED_DATA, make_scenes, voc_xml, write_coco, write_csv, write_cub, write_voc,
                      write_wsol)

from uolrps.core.errors import UserError
from uolrps.eval.datasets import load_dataset
from uolrps.eval.items import load_mask, summarise
from uolrps.core.annotations import check_boxes
from uolrps.eval.detect import detect_format


def _by_name(ds):
    return {it.path.stem: it for it in ds.items}


@pytest.fixture(scope="module")
def scenes():
    return make_scenes(6)


@pytest.mark.parametrize("fmt", ["csv", "voc", "wsol", "coco"])
def test_every_format_gives_the_same_boxes(tmp_path, scenes, fmt):
    path = {"csv": lambda: write_csv(tmp_path, scenes), "voc": lambda: write_voc(tmp_path, scenes),
            "wsol": lambda: write_wsol(tmp_path, scenes), "coco": lambda: write_coco(tmp_path, scenes)}[fmt]()
    found, what = detect_format(path)
    assert found == fmt and what
    ds = load_dataset(path)
    assert ds.format == fmt and ds.description
    # the one thing listed: write_coco's crowd annotation, left out of the boxes on purpose
    assert [p.kind for p in ds.problems] == (["crowd region ignored"] if fmt == "coco" else [])
    got = _by_name(ds)
    assert sorted(got) == [n for n, _, _ in scenes]
    for name, img, boxes in scenes:
        assert got[name].path.is_file()
        np.testing.assert_allclose(got[name].boxes, boxes)
    assert ds.n_boxes == sum(len(b) for _, _, b in scenes)


def test_cub_split_and_single_box(tmp_path, scenes):
    root = write_cub(tmp_path, scenes)
    assert detect_format(root)[0] == "cub"
    test = load_dataset(root)  # default: the test split (is_train 0: odd ids here)
    assert sorted(_by_name(test)) == [n for i, (n, _, _) in enumerate(scenes, start=1) if i % 2]
    train = load_dataset(root, split="train")
    assert len(train.items) + len(test.items) == len(scenes)
    for name, _, boxes in scenes:
        it = _by_name(test).get(name) or _by_name(train)[name]
        np.testing.assert_allclose(it.boxes, boxes[:1])
    with pytest.raises(UserError, match="train and test splits only"):
        load_dataset(root, split="val")


def test_voc_devkit_folders_and_split(tmp_path, scenes):
    root = write_voc(tmp_path, scenes, images="JPEGImages", annotations="Annotations")
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "val.txt").write_text("img00\nimg03\nnope\n")
    ds = load_dataset(root, split="val")
    assert sorted(_by_name(ds)) == ["img00", "img03"]
    assert [p.kind for p in ds.problems] == ["missing annotation"] and "nope.xml" in ds.problems[0].file
    with pytest.raises(UserError, match="ImageSets/Main"):
        load_dataset(root, split="test")


def test_wsol_split_folders_and_masks(tmp_path, scenes):
    meta = write_wsol(tmp_path, scenes, split="val", masks=True)
    write_wsol(tmp_path, scenes[:2], split="test")
    assert "val, test" in detect_format(meta)[1] or "test, val" in detect_format(meta)[1]
    assert len(load_dataset(meta).items) == 2  # test is the default split
    ds = load_dataset(meta, split="val")
    assert ds.has_masks and len(ds.items) == len(scenes)
    for name, img, boxes in scenes:  # mask-only data: boxes are the masks' extents
        it = _by_name(ds)[name]
        np.testing.assert_allclose(it.boxes, [[boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(),
                                               boxes[:, 3].max()]])
        mask, ignore = load_mask(it, img.shape[:2])
        assert ignore is None and mask.sum() > 0
        for x1, y1, x2, y2 in boxes.astype(int):
            assert mask[y1:y2 + 1, x1:x2 + 1].all()
    with pytest.raises(UserError, match="only"):
        load_dataset(meta, split="train")


def test_coco_crowd_left_out_and_polygon_masks(tmp_path, scenes):
    path = write_coco(tmp_path, scenes)
    ds = load_dataset(tmp_path)  # the folder: finds annotations/instances_val.json
    assert "crowd" in ds.description and ds.has_masks
    first = _by_name(ds)["img00"]
    assert len(first.boxes) == len(scenes[0][2])  # the crowd box is not ground truth
    mask, _ = load_mask(first, scenes[0][1].shape[:2])
    x1, y1, x2, y2 = scenes[0][2][0].astype(int)
    assert mask[y1:y2 + 1, x1:x2 + 1].all() and mask.sum() == (x2 - x1 + 1) * (y2 - y1 + 1)
    assert load_dataset(path).n_boxes == ds.n_boxes


def test_problems_are_named_and_counted(tmp_path, scenes):
    root = write_voc(tmp_path, scenes)
    (root / "images" / "img01.jpg").unlink()
    (root / "annotations" / "img02.xml").write_text("")
    (root / "annotations" / "img03.xml").write_text(voc_xml("img03.jpg", (64, 64), []))
    (root / "annotations" / "img04.xml").write_text(voc_xml("img04.jpg", (130, 90), [[10, 10, 500, 40]]))
    (root / "annotations" / "img05.xml").write_text("<annotation><object>")
    ds = load_dataset(root)
    kinds = sorted(p.kind for p in ds.problems)
    assert kinds == ["bad annotation", "box outside image", "empty annotation", "missing image", "no boxes"]
    assert [it.path.stem for it in ds.items] == ["img00"]
    line = summarise(ds.problems)
    for name in ("img01.jpg", "img02.xml", "img03.xml", "img04.jpg", "img05.xml"):
        assert name in line
    assert "1 missing image" in line


def test_nothing_usable_is_an_error_naming_the_files(tmp_path, scenes):
    root = write_csv(tmp_path, scenes[:2])
    shutil.rmtree(root / "images")
    with pytest.raises(UserError, match=r"no usable images.*2 missing image \(img00.jpg, img01.jpg\)"):
        load_dataset(root)


@pytest.mark.parametrize("content, match", [
    ("image,x1,y1,x2\n", "missing y2"),
    ("image,x1,y1,x2,y2\n", "no rows"),
    ("image,x1,y1,x2,y2\na.jpg,1,2,three,4\n", r"boxes.csv:2: column x2 must be a finite number"),
])
def test_bad_csv(tmp_path, content, match):
    (tmp_path / "boxes.csv").write_text(content)
    with pytest.raises(UserError, match=match):
        load_dataset(tmp_path)


@pytest.mark.parametrize("make, match", [
    (lambda p: p / "nothing", "does not exist"),
    (lambda p: (p / "x").mkdir() or p / "x", "cannot tell the format"),
    (lambda p: (p / "a.txt").write_text("hi") and p / "a.txt", "neither a folder"),
])
def test_unknown_inputs(tmp_path, make, match):
    with pytest.raises(UserError, match=match):
        load_dataset(make(tmp_path))


def test_unknown_format_name(tmp_path, scenes):
    with pytest.raises(UserError, match="unknown format 'yolo'"):
        load_dataset(write_csv(tmp_path, scenes[:1]), fmt="yolo")


def test_check_boxes_tolerance_and_errors():
    ok, bad = check_boxes(np.array([[-0.5, 0, 99.9, 49.8]]), (50, 100), "a.jpg")
    assert bad is None and ok.tolist() == [[0, 0, 99, 49]]
    _, bad = check_boxes(np.array([[0, 0, 101.5, 49]]), (50, 100), "a.jpg")
    assert bad.kind == "box outside image" and "100x50" in bad.detail
    _, bad = check_boxes(np.array([[10, 0, 5, 49]]), (50, 100), "a.jpg")
    assert bad.kind == "bad box"


def test_shared_data_formats():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    loc = load_dataset(SHARED_DATA / "imagenet-loc")
    assert (loc.format, len(loc.items), loc.n_boxes) == ("csv", 250, 436)
    rac = load_dataset(SHARED_DATA / "raccoon")
    assert rac.format == "voc" and len(rac.items) == 200 and not rac.problems
    assert all(it.size is not None and it.boxes.min() >= 0 for it in rac.items)


def test_csv_split_column_and_sizes(tmp_path, scenes):
    root = write_csv(tmp_path, scenes[:4], extra_column=False)
    lines = (root / "boxes.csv").read_text().splitlines()
    out = [lines[0] + ",split,width,height"]
    for ln in lines[1:]:
        name = ln.split(",")[0]
        img = dict((n + ".jpg", im) for n, im, _ in scenes)[name]
        out.append(ln + f",{'val' if name < 'img02' else 'test'},{img.shape[1]},{img.shape[0]}")
    (root / "boxes.csv").write_text("\n".join(out) + "\n")
    val = load_dataset(root, split="val")
    assert sorted(_by_name(val)) == ["img00", "img01"]
    assert _by_name(val)["img00"].size == scenes[0][1].shape[:2]
    assert len(load_dataset(root, split="test").items) == 2
    write_csv(tmp_path / "plain", scenes[:1])
    with pytest.raises(UserError, match="no 'split' column"):
        load_dataset(tmp_path / "plain", split="val")


def test_wsol_split_folder_given_directly(tmp_path, scenes):
    meta = write_wsol(tmp_path, scenes[:3], split="val")
    fmt, what = detect_format(meta / "val")
    assert fmt == "wsol" and "image_ids.txt" in what
    assert len(load_dataset(meta / "val").items) == 3


def test_csv_paths_relative_to_the_csv_and_non_finite_sizes(tmp_path):
    import cv2
    import numpy as np
    import pytest

    from uolrps.core.errors import UserError
    from uolrps.eval.datasets import load_dataset

    (tmp_path / "images" / "sub").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "images" / "sub" / "a.jpg"), np.zeros((40, 50, 3), np.uint8))
    (tmp_path / "boxes.csv").write_text("image,x1,y1,x2,y2\nimages/sub/a.jpg,1,2,30,20\n")
    ds = load_dataset(tmp_path)
    assert [it.path.name for it in ds.items] == ["a.jpg"] and not ds.problems
    (tmp_path / "boxes.csv").write_text("image,x1,y1,x2,y2,width,height\nimages/sub/a.jpg,1,2,30,20,nan,40\n")
    with pytest.raises(UserError, match="column width must be a finite number"):
        load_dataset(tmp_path)
