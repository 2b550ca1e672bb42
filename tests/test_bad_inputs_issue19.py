"""The bad-input rows of issue 19, each one line (or one exception type in the Python API), early."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import numpy as np
import pytest
from tinymodel import make_tiny_model

from uolrps.errors import UserError

CLI = [sys.executable, "-m", "uolrps.cli.main"]


def uolrps(*args, timeout=180, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kw)


def one_line_error(res, needle, code=2):
    assert res.returncode == code, res.stderr
    assert "Traceback" not in res.stderr and needle in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("bad19") / "m.onnx")


class NeverOpens:  # a camera or network source that is down: the edge we have no hardware for
    def isOpened(self):
        return False

    def release(self):
        pass


def test_localize_streams_raises_when_every_stream_failed_and_keeps_the_stats(model, caplog):
    from uolrps.runtime.pipeline import localize_streams
    from uolrps.runtime.stats import RunStats

    stats = RunStats()
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="uolrps"):
        with pytest.raises(UserError, match=r"every stream failed: a \(cam0\) after 0 frames: .*could not be "
                                            r"reopened after 2 attempts.*; b \(cam1\)"):
            list(localize_streams({"a": "cam0", "b": "cam1"}, model, stats=stats, reopen_limit=2,
                                  backoff=(0.01, 0.02), capture_factory=lambda spec: NeverOpens()))
    assert time.monotonic() - t0 < 30
    assert {n: s.state for n, s in stats.streams.items()} == {"a": "failed", "b": "failed"}
    # a source that never opened never "stopped delivering frames"
    assert "stopped delivering" not in caplog.text and "has not delivered a frame yet" in caplog.text
    assert "nan" not in stats.streams["a"].line()
