"""Issue 8 items 2 and 3: a DINO file the user put at the cache path is accepted (strict load, hash written
beside it and recorded in the artifacts), and `export --backbone vits` with nothing says all it needs at once."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import json
import shutil
import threading

import cv2
import numpy as np
import pytest

from uolrps.calib import backbones
from uolrps.cli.main import main
from uolrps.core.errors import UserError

URL = backbones.BACKBONES["vits"].url
NAME = "dino_deitsmall16_pretrain.pth"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("UOLRPS_CACHE", str(d))
    return d


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(3):
        assert cv2.imwrite(str(d / f"{i}.png"), rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))
    return d


@pytest.fixture
def no_download(monkeypatch):
    """A loopback server that has no file: any download attempt fails at once (and is counted)."""
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            hits.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory="/nonexistent"))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/dino/{NAME}"
    monkeypatch.setitem(backbones.BACKBONES, "vits", dataclasses.replace(backbones.BACKBONES["vits"], url=url))
    yield url, hits
    httpd.shutdown()


def test_a_hand_placed_dino_file_is_accepted_and_recorded(cache, images, vits_checkpoint, tmp_path, caplog,
                                                           no_download):
    url, hits = no_download
    cache.mkdir()
    shutil.copy(vits_checkpoint, cache / NAME)
    digest = hashlib.sha256((cache / NAME).read_bytes()).hexdigest()
    out = tmp_path / "w.npz"
    assert main(["calib", str(images), "--backbone", "vits", "--size", "32", "-o", str(out)]) == 0
    assert f"accepted {cache / NAME} (put there by hand): sha256 " in caplog.text
    assert (cache / (NAME + ".sha256")).read_text().split()[0] == digest
    with np.load(out) as z:
        assert json.loads(str(z["meta"]))["weights_sha256"] == digest
    assert hits == []  # nothing was downloaded
    from uolrps.calib.encoder import build_encoder

    assert build_encoder("vits", size=32).info.weights_sha256 == digest  # the second use reads the .sha256


def test_a_hand_placed_file_of_another_architecture_is_refused_and_kept(cache, r50_checkpoint, images, capsys,
                                                                          no_download):
    cache.mkdir()
    shutil.copy(r50_checkpoint, cache / NAME)
    before = (cache / NAME).read_bytes()
    assert main(["calib", str(images), "--backbone", "vits", "--size", "32", "-o", str(images / "w.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "put there by hand" in err[0] and "does not fit backbone 'vits'" in err[0], err
    assert no_download[0] in err[0]
    assert (cache / NAME).read_bytes() == before and not (cache / (NAME + ".sha256")).exists()


def test_export_vits_with_nothing_says_everything_at_once(cache, tmp_path, capsys, no_download, monkeypatch):
    url, hits = no_download
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--backbone", "vits"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    line = err[0]
    for needle in (url, str(cache / NAME), "no default w*", "--weights FILE",
                   "`uolrps calib IMAGES --backbone vits -o wstar.npz`",
                   "`uolrps export --backbone vits --wstar wstar.npz`", f"curl -L --create-dirs -o {cache / NAME} {url}"):
        assert needle in line, (needle, line)
    assert hits == [] and not list(tmp_path.iterdir())  # no download tried, nothing written


def test_export_vits_with_weights_in_place_still_says_how_to_get_wstar(cache, vits_checkpoint, no_download):
    from uolrps.export.onnx_export import export_model

    cache.mkdir()
    shutil.copy(vits_checkpoint, cache / NAME)
    with pytest.raises(UserError) as e:
        export_model(backbone="vits", output=cache / "m.onnx")
    assert f"weights: found at {cache / NAME}" in str(e.value) and "uolrps calib IMAGES --backbone vits" in str(e.value)
