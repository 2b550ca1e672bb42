"""End to end: `uolrps run` with two streams and --serve, as a user starts it (a real process, a real model),
steered through the HTTP API while it runs and watched in headless Chromium."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the [serve] extra (fastapi, uvicorn, prometheus-client) is not installed")
pytest.importorskip("onnx", reason="the tiny test model is built with onnx (the [export] extra)")
pytest.importorskip("onnxruntime", reason="the run needs ONNX Runtime (the [ort] or [export] extra)")

from serve_browser import green_box, open_browser, stream_image  # noqa: E402
from serve_client import MjpegReader, request  # noqa: E402
from tinymodel import make_tiny_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SQUARES = {"left": (40, 80, 119, 159), "right": (200, 60, 279, 139)}  # x1, y1, x2, y2 in a 320 x 240 frame


def square_video(path: Path, where: str, frames: int = 20) -> Path:
    """A dark clip with a bright square at one place (the tiny model's heatmap peaks on it), lightly moving."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (320, 240))
    assert writer.isOpened()
    x1, y1, x2, y2 = SQUARES[where]
    for i in range(frames):
        frame = np.full((240, 320, 3), 20, np.uint8)
        cv2.rectangle(frame, (x1 + i % 3, y1), (x2 + i % 3, y2), (255, 255, 255), -1)
        writer.write(frame)
    writer.release()
    return path


class RunProcess:
    """`uolrps run ...` in a subprocess; its stderr is read on a thread, so the pipe never fills."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        env.pop("UOLRPS_SERVE_TOKEN", None)
        code = "import sys; from uolrps.cli.main import main; sys.exit(main())"
        self.proc = subprocess.Popen([sys.executable, "-c", code, "run", *args], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     # Ctrl-C reaches the run even when this test runs with SIGINT ignored
                                     # (``nohup ... &``), which the child would otherwise inherit
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.lines: queue.Queue = queue.Queue()
        self.err: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stderr:
            self.err.append(line)
            self.lines.put(line)

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            m = re.search(pattern, line)
            if m:
                return m
        raise AssertionError(f"no line matching {pattern!r}; stderr so far:\n{''.join(self.err)}")

    def interrupt(self, timeout: float = 30.0) -> tuple[int, str, str]:
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, "".join(self.err)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


def assert_box_over(image: np.ndarray, where: str, what: str) -> None:
    """A box is drawn, centred near the square of that clip (the model sees the square; its grid is coarse)."""
    box = green_box(image)
    assert box is not None, f"{what}: no box drawn"
    x1, _, x2, _ = SQUARES[where]
    centre = (box[0] + box[2]) / 2 / image.shape[1]
    assert abs(centre - (x1 + x2) / 2 / 320) < 0.12, (what, box, image.shape)


@pytest.mark.slow
def test_uolrps_run_with_serve_two_streams_add_remove_and_a_browser(tmp_path):
    model = make_tiny_model(tmp_path / "m.onnx")
    a = square_video(tmp_path / "a.avi", "left")
    b = square_video(tmp_path / "b.avi", "right")
    c = square_video(tmp_path / "c.avi", "right")
    run = RunProcess(["--video", str(a), "--video", str(b), "--model", str(model), "--loop", "--quiet",
                      "--serve", "127.0.0.1:0", "--serve-allow", f"files={tmp_path}",
                      "--jsonl", str(tmp_path / "out.jsonl")], tmp_path)
    driver = None
    try:
        url = run.wait_for_line(r"(http://127\.0\.0\.1:\d+)", 90).group(1)
        status, _, data = request(url, path="/api/streams")
        assert status == 200 and [s["name"] for s in data["streams"]] == ["a", "b"]

        # the video of each stream: real JPEGs with the model's box over the square
        for name, where in (("a", "left"), ("b", "right")):
            viewer = MjpegReader(url, f"/streams/{name}.mjpg")
            (_, image), = viewer.frames(1)
            viewer.close()
            assert image.shape == (240, 320, 3)
            assert_box_over(image, where, f"MJPEG of {name}")

        def frames_of(name):
            return next(s["frames"] for s in request(url, path="/api/streams")[2]["streams"] if s["name"] == name)

        # steer it while it runs
        before = frames_of("a")
        status, _, data = request(url, "POST", "/api/streams", {"name": "c", "source": str(c)})
        assert status == 201 and data["name"] == "c", data
        status, _, data = request(url, "POST", "/api/streams", {"name": "c", "source": str(c)})
        assert status == 409 and "c" in data["error"], data
        status, _, data = request(url, "POST", "/api/streams", {"name": "x", "source": "smb://nas/cam"})
        assert 400 <= status < 500 and data["error"], data
        status, _, data = request(url, "DELETE", "/api/streams/nope")
        assert status == 404 and "nope" in data["error"]
        assert request(url, "DELETE", "/api/streams/b")[0] == 200
        deadline = time.monotonic() + 20
        while request(url, path="/api/streams/c/latest")[0] != 200:
            assert time.monotonic() < deadline, "the added stream gave no result"
            time.sleep(0.1)
        line = request(url, path="/api/streams/c/latest")[2]
        assert line["stream"] == "c" and "latency_ms" in line and line["boxes"]
        names = [s["name"] for s in request(url, path="/api/streams")[2]["streams"]]
        assert "b" not in names and names[0] == "a" and "c" in names
        assert frames_of("a") > before  # the run went on through the bad requests

        # the page in a real browser: a live frame with its box for each stream
        driver = open_browser(tmp_path)
        driver.get(url + "/")
        assert_box_over(stream_image(driver, "a", timeout=30), "left", "page, stream a")
        assert_box_over(stream_image(driver, "c", timeout=30), "right", "page, stream c")
        assert not driver.find_elements("css selector", 'figure[data-stream="b"]')
        driver.quit()
        driver = None

        code, out, err = run.interrupt()
        assert code == 130, err  # Ctrl-C ends a --loop run (docs/run.md)
        assert "frames" in out
        streams = {json.loads(line)["stream"] for line in (tmp_path / "out.jsonl").read_text().splitlines()}
        assert {"a", "b", "c"} <= streams
    finally:
        if driver is not None:
            driver.quit()
        run.kill()


def test_uolrps_run_serve_on_a_port_in_use_is_one_line_error(tmp_path):
    import socket

    model = make_tiny_model(tmp_path / "m.onnx")
    a = square_video(tmp_path / "a.avi", "left", frames=3)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        run = RunProcess(["--video", str(a), "--model", str(model), "--quiet", "--serve", f"127.0.0.1:{port}"],
                         tmp_path)
        try:
            run.proc.wait(timeout=90)
        finally:
            run.kill()
    time.sleep(0.2)  # the stderr thread finishes reading
    errors = [line for line in run.err if line.startswith("error:")]
    assert run.proc.returncode == 2, run.err
    # the server says port=PORT (start_server's parameter); the run calls it serve, the CLI --serve
    assert errors == [f"error: port {port} on 127.0.0.1 is already in use: stop what uses it, or serve on another "
                      "port (--serve PORT)\n"], run.err
    assert "Traceback" not in "".join(run.err)
