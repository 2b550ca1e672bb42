"""ONNX Runtime says which execution provider actually runs the model, and refuses a provider that did not start."""

from __future__ import annotations

import logging

import pytest

ort = pytest.importorskip("onnxruntime")

from tinymodel import make_tiny_model  # noqa: E402
from uolrps.core.errors import UserError  # noqa: E402
from uolrps.runtime.backends.ort import OrtBackend  # noqa: E402


def test_the_provider_that_runs_is_reported(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="uolrps.ort"):
        b = OrtBackend(make_tiny_model(tmp_path / "m.onnx"), providers="cpu")
    assert b.caps.provider == "cpu" and b.caps.providers == ("cpu",)
    assert "m.onnx: ONNX Runtime" in caplog.text and "runs it on CPUExecutionProvider" in caplog.text


def test_a_gpu_provider_that_does_not_start_is_an_error_naming_the_extra(tmp_path, monkeypatch):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("tests the CPU-only onnxruntime: this one has CUDA")
    path = make_tiny_model(tmp_path / "m.onnx")
    with pytest.raises(UserError, match=r"execution provider cuda is not available .*uolrps\[ort-gpu\]"):
        OrtBackend(path, providers="cuda")
    # a build that lists CUDA but cannot start it (no driver): the session falls back to the CPU, we refuse
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(UserError, match="cuda failed to start for m.onnx .*fell back to CPUExecutionProvider"):
        OrtBackend(path, providers="cuda")


def test_run_says_which_provider_ran(tmp_path, capsys):
    import cv2
    import numpy as np

    from uolrps.cli.main import main

    model = make_tiny_model(tmp_path / "m.onnx")
    frames = tmp_path / "f"
    frames.mkdir()
    cv2.imwrite(str(frames / "a.png"), np.full((48, 64, 3), 100, np.uint8))
    assert main(["run", "--video", str(frames), "--model", str(model), "--providers", "cpu", "--quiet"]) == 0
    assert "ONNX Runtime runs m.onnx on cpu (session providers: cpu)" in capsys.readouterr().err
