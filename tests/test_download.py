"""Published weights are fetched once into the cache, from a real (loopback) HTTP server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading

import pytest

from uolrps.calib.download import cached_weights
from uolrps.core.errors import UserError


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            hits.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root, hits
    httpd.shutdown()


def test_download_once_with_sha256(server, tmp_path, monkeypatch, capsys):
    url, root, hits = server
    payload = bytes(range(256)) * 5000
    (root / "dino_test.pth").write_bytes(payload)
    monkeypatch.setenv("UOLRPS_CACHE", str(tmp_path / "cache"))
    path, digest = cached_weights(f"{url}/dino_test.pth")
    assert path.read_bytes() == payload and path.parent == tmp_path / "cache"
    assert digest == hashlib.sha256(payload).hexdigest()
    assert (tmp_path / "cache" / "dino_test.pth.sha256").read_text().startswith(digest)
    assert "downloading dino_test" in capsys.readouterr().err
    n = len(hits)
    assert cached_weights(f"{url}/dino_test.pth") == (path, digest)
    assert len(hits) == n  # served from the cache


def test_offline_says_which_file_and_where(server, tmp_path, monkeypatch):
    url, _, _ = server
    monkeypatch.setenv("UOLRPS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError) as e:
        cached_weights(f"{url}/missing.pth", progress=False)
    msg = str(e.value)
    assert f"{url}/missing.pth" in msg and str(tmp_path / "cache" / "missing.pth") in msg and "pass weights=PATH" in msg
    assert not list((tmp_path / "cache").glob("missing.pth*"))  # nothing half-written is left
