"""The live page in a real headless Chromium: each stream's picture shows a live frame with its box drawn,
the counters update without a reload, streams added and removed appear and vanish, the heatmap toggles."""

from __future__ import annotations

import re
import time

import pytest

pytest.importorskip("fastapi", reason="the [serve] extra (fastapi, uvicorn, prometheus-client) is not installed")

from serve_browser import caption, green_box, open_browser, stream_image  # noqa: E402
from serve_client import request  # noqa: E402
from serve_control import PATTERN, SyntheticRun  # noqa: E402

from uolrps.serve import TOKEN_ENV, start_server  # noqa: E402

SOURCES = {"a": "pattern:320x240@30/80x60", "b": "pattern:320x240@30/160x120"}


def box_width_share(source: str) -> float:
    """The drawn box's share of the frame width: its width plus the line's anti-aliased fringe."""
    W, _, _, bw, _ = (int(v) for v in PATTERN.match(source).groups())
    return (bw + 2) / W


def assert_shows_its_box(driver, name: str, source: str):
    image = stream_image(driver, name)
    box = green_box(image)
    assert box is not None, f"stream {name}: no box drawn in the picture the browser shows"
    share = (box[2] - box[0] + 1) / image.shape[1]
    assert abs(share - box_width_share(source)) < 0.04, (name, share, box_width_share(source))
    return box


def frames_in(text: str) -> int:
    return int(re.search(r"(\d+) frames", text).group(1))


def wait_until(predicate, timeout=10.0, what="the page to change"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.slow
def test_the_page_shows_every_stream_live_with_its_box(tmp_path, monkeypatch):
    from selenium.webdriver.common.by import By

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    driver = open_browser(tmp_path)  # first: where it skips (no Chromium), no server is left running
    run = SyntheticRun()
    for name, source in SOURCES.items():
        run.add_stream(source, name)
    handle = start_server(run, port=0)
    try:
        driver.get(handle.url + "/")
        assert driver.title == "uolrps live"
        first = {name: assert_shows_its_box(driver, name, src) for name, src in SOURCES.items()}
        wait_until(lambda: green_box(stream_image(driver, "a"))[0] != first["a"][0], 30, "the box to move (live)")

        text = caption(driver, "a")
        assert "running" in text and "FPS" in text and "latency p50" in text and "dropped" in text
        wait_until(lambda: frames_in(caption(driver, "a")) > frames_in(text), 30, "the counters to update")

        # a stream added through the API appears without a reload, with its box; a removed one vanishes
        assert request(handle.url, "POST", "/api/streams", {"name": "c", "source": SOURCES["a"]})[0] == 201
        assert_shows_its_box(driver, "c", SOURCES["a"])
        assert request(handle.url, "DELETE", "/api/streams/b")[0] == 200
        wait_until(lambda: not driver.find_elements(By.CSS_SELECTOR, 'figure[data-stream="b"]'), 30,
                   "the removed stream's picture to go")

        # the heatmap overlay on request: the grey scene turns blue (JET of a zero heatmap)
        driver.find_element(By.ID, "heatmap").click()

        def bluish():
            corner = stream_image(driver, "a")[-40:, -40:].reshape(-1, 3).mean(0)
            return corner[0] - corner[2] > 30
        wait_until(bluish, 30, "the heatmap overlay")
        driver.find_element(By.ID, "heatmap").click()

        # more streams than a browser's connections allow MJPEG for: one JPEG after another, still live
        for name in ("d", "e", "f"):
            assert request(handle.url, "POST", "/api/streams", {"name": name, "source": SOURCES["b"]})[0] == 201
        for name in ("a", "c", "d", "e", "f"):
            assert_shows_its_box(driver, name, SOURCES["b" if name in "def" else "a"])
        src = driver.find_element(By.CSS_SELECTOR, 'figure[data-stream="f"] img.live').get_attribute("src")
        assert "/streams/f.jpg" in src
        before = green_box(stream_image(driver, "f"))[0]
        wait_until(lambda: green_box(stream_image(driver, "f"))[0] != before, 30, "snapshots to stay live")
    finally:
        driver.quit()
        handle.close()
        run.close()
