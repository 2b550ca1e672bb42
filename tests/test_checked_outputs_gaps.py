"""The writers issue 19 found outside the checked output layer, now through it: ``demo-data``, ``eval --save-vis``,
the Triton repository writer, the weights cache's digest files and ``write_image`` (explain, save-vis).

Each test failed on e634ddc: a FIFO at an output path hung the command (OpenCV opened it for writing and
waited for a reader), a full disk left a cut clip with exit 0 and "wrote", a save-vis image that could not be
written was "cannot write FILE" with no reason, the Triton writer began a repository that could not fit, and an
empty ``.sha256`` in the weights cache was an IndexError traceback. Full disks are small tmpfs mounts (root);
without one the test skips saying so. FIFOs and sockets are made in the test's own folder.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from test_checked_outputs import one_line_error, small_disk, uolrps
from tinymodel import make_tiny_model

from uolrps.core.checked_io import OutputError


def no_temporaries(folder: Path) -> None:
    left = [p for p in folder.rglob("*") if ".tmp" in p.name]
    assert left == [], left


# --- demo-data -------------------------------------------------------------------------------------------------

def test_demo_data_refuses_a_fifo_at_its_clip_path_before_any_work(tmp_path):
    (tmp_path / "d").mkdir()
    fifo = tmp_path / "d" / "clip.mp4"
    os.mkfifo(fifo)
    res = uolrps("demo-data", tmp_path / "d", timeout=60)  # before: OpenCV opened the FIFO and waited forever
    one_line_error(res, "is a FIFO")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert not (tmp_path / "d" / "images").exists() or list((tmp_path / "d" / "images").iterdir()) == []


def test_demo_data_on_a_full_disk_is_one_line_and_leaves_nothing_cut(tmp_path):
    with small_disk(tmp_path / "disk", "1m") as disk:  # the images fit (~320 KB), the clip (~830 KB) does not
        res = uolrps("demo-data", disk / "demo", timeout=120)
        assert res.returncode != 0 and "wrote" not in res.stdout, (res.stdout, res.stderr)
        one_line_error(res, "the disk is full", code=res.returncode)
        assert not (disk / "demo" / "clip.mp4").exists()  # before: a cut clip, exit 0, "wrote"
        assert list((disk / "demo" / "images").glob("*.jpg")) == []  # one set: all of it or none
        no_temporaries(disk)


# --- eval --save-vis -------------------------------------------------------------------------------------------

def vis_case(tmp_path, n=3):
    """Items, heatmaps and sizes for ``save_cases``: noisy 400 x 400 images (large PNGs)."""
    rng = np.random.default_rng(0)
    items, maps = [], []
    for i in range(n):
        path = tmp_path / f"img{i}.png"
        cv2.imwrite(str(path), rng.integers(0, 255, (400, 400, 3), dtype=np.uint8))
        items.append(SimpleNamespace(path=path, boxes=np.array([[50.0, 50.0, 200.0, 200.0]])))
        m = np.zeros((8, 8), np.float32)
        m[2:5, 2:5] = 1.0
        maps.append(m)
    return items, np.stack(maps), [(400, 400)] * n


def test_save_vis_on_a_full_disk_is_one_output_error_and_leaves_no_cut_image(tmp_path):
    from uolrps.eval.vis import save_cases

    items, maps, sizes = vis_case(tmp_path)
    with small_disk(tmp_path / "disk", "256k") as disk:
        with pytest.raises(OutputError, match="save_vis .*(the disk is full|MB to write but)"):
            save_cases(disk / "vis", items, maps, sizes, 0.5, n=3)  # before: "cannot write FILE", no reason
        for f in (disk / "vis").iterdir():
            assert cv2.imread(str(f)) is not None, f  # every image there is whole
        no_temporaries(disk)


def test_save_vis_refuses_a_fifo_at_a_case_path(tmp_path):
    items, maps, sizes = vis_case(tmp_path, n=1)
    (tmp_path / "vis").mkdir()
    fifo = tmp_path / "vis" / "worst_01_img0.png"
    os.mkfifo(fifo)
    np.save(tmp_path / "maps.npy", maps)
    code = ("import sys, numpy as np; from types import SimpleNamespace as S; from pathlib import Path\n"
            "from uolrps.eval.vis import save_cases\n"
            f"items = [S(path=Path({str(items[0].path)!r}), boxes=np.array([[50., 50., 200., 200.]]))]\n"
            f"try:\n    save_cases({str(tmp_path / 'vis')!r}, items, np.load({str(tmp_path / 'maps.npy')!r}), "
            "[(400, 400)], 0.5, n=1)\n"
            "except Exception as e:\n    print(type(e).__name__, e); sys.exit(2)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "is a FIFO" in res.stdout, (res.stdout, res.stderr)  # before: hung on the FIFO
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


# --- write_image (explain -o, save-vis) --------------------------------------------------------------------------

def test_write_image_checks_the_encoded_size_before_the_write_and_refuses_a_socket(tmp_path):
    import socket

    from uolrps.core.paths import write_image

    noise = np.random.default_rng(1).integers(0, 255, (600, 600, 3), dtype=np.uint8)  # ~1 MB as PNG
    encoded = len(cv2.imencode(".png", noise)[1])
    with small_disk(tmp_path / "disk", "256k") as disk:
        with pytest.raises(OutputError, match=rf"-o '.*a.png': {encoded / 1e6:.1f} MB to write but"):
            write_image(disk / "a.png", noise, "-o")
        assert os.listdir(disk) == []  # refused before it was begun: no temporary file either
    sock = tmp_path / "s.png"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock))
        with pytest.raises(Exception, match="is a socket"):
            write_image(sock, noise[:10, :10], "-o")
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    out = write_image(tmp_path / "ok.png", noise, "-o")
    assert np.array_equal(cv2.imread(str(out)), noise)


# --- the Triton repository writer --------------------------------------------------------------------------------

def test_triton_repo_that_cannot_fit_is_refused_before_it_is_begun_and_keeps_the_old_entry(tmp_path):
    from uolrps.export.triton.repo import write_triton_repo

    model = make_tiny_model(tmp_path / "m.onnx")
    need = model.stat().st_size
    with small_disk(tmp_path / "disk", "1m") as disk:
        write_triton_repo(model, disk / "repo", log=lambda m: None)  # the old entry
        old = (disk / "repo" / "m" / "1" / "model.onnx").read_bytes()
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "filler").write_bytes(b"\0" * max(0, free - need // 2))  # leaves about half the model's size
        with pytest.raises(OutputError, match="MB to write but"):  # before: begun, then "cannot write"
            write_triton_repo(model, disk / "repo", force=True, log=lambda m: None)
        assert (disk / "repo" / "m" / "1" / "model.onnx").read_bytes() == old
        assert sorted(p.name for p in (disk / "repo").iterdir()) == ["m"]  # no staging folder left


def test_triton_repo_force_replaces_an_entry_and_names_a_killed_writers_staging_folder(tmp_path, caplog):
    from uolrps.export.triton.repo import write_triton_repo

    model = make_tiny_model(tmp_path / "m.onnx")
    repo = tmp_path / "repo"
    write_triton_repo(model, repo, log=lambda m: None)
    (repo / ".m.tmp" / "1").mkdir(parents=True)  # what a kill -9 while staging leaves
    (repo / "m" / "stale.txt").write_text("from the old entry")
    with caplog.at_level(logging.WARNING, logger="uolrps"):
        write_triton_repo(model, repo, force=True, log=lambda m: None)
    assert any(".m.tmp" in r.getMessage() and "did not finish" in r.getMessage() for r in caplog.records)
    assert sorted(p.name for p in repo.iterdir()) == ["m"] and not (repo / "m" / "stale.txt").exists()
    assert (repo / "m" / "1" / "model.onnx").read_bytes() == model.read_bytes()


# --- the weights cache's digest file -----------------------------------------------------------------------------

def test_a_cut_digest_file_in_the_weights_cache_is_hashed_again_not_a_traceback(tmp_path, monkeypatch):
    import hashlib

    from uolrps.calib.download import cached_weights

    monkeypatch.setenv("UOLRPS_CACHE", str(tmp_path))
    (tmp_path / "w.pth").write_bytes(b"weights")
    (tmp_path / "w.pth.sha256").write_text("")  # cut by a crash while it was written in place (before)
    path, digest = cached_weights("https://example.invalid/w.pth", progress=False)  # before: IndexError
    assert digest == hashlib.sha256(b"weights").hexdigest() and path == tmp_path / "w.pth"
    assert (tmp_path / "w.pth.sha256").read_text().split()[0] == digest
    no_temporaries(tmp_path)


# --- run --save FOLDER for image sources ---------------------------------------------------------------------------

def test_save_folder_refuses_a_hard_link_of_an_input_image_and_keeps_it(tmp_path):
    from test_checked_outputs import one_line_error
    from tinymodel import bright_square_frame

    model = make_tiny_model(tmp_path / "m.onnx")
    (tmp_path / "photos").mkdir()
    (tmp_path / "out").mkdir()
    cv2.imwrite(str(tmp_path / "photos" / "a.png"), bright_square_frame())
    before = (tmp_path / "photos" / "a.png").read_bytes()
    os.link(tmp_path / "photos" / "a.png", tmp_path / "out" / "a.png")  # the same file in the output folder
    res = uolrps("run", "--video", tmp_path / "photos", "--model", model, "-q", "--save", tmp_path / "out")
    one_line_error(res, "would overwrite an input image")  # before: exit 0, the input overwritten with boxes
    assert (tmp_path / "photos" / "a.png").read_bytes() == before
