"""Headless Chromium (Debian's chromium + chromium-driver) driven by Selenium, for the browser-view tests."""

from __future__ import annotations

import shutil
import time

import cv2
import numpy as np
import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000")


def chromium_paths() -> tuple[str, str]:
    """(browser, driver) executables, or skip naming exactly what is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver)) if p is None)
        pytest.skip(f"{missing} not found on PATH (Debian: apt-get install chromium chromium-driver; "
                    ".ci/run installs them)")
    return browser, driver


def open_browser(tmp_path):
    """A fresh headless Chromium with its own profile folder; the caller quits it."""
    pytest.importorskip("selenium", reason="selenium is not installed (it is in the [dev] extra)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def stream_image(driver, name: str, timeout: float = 45.0) -> np.ndarray:
    """A screenshot (BGR) of the live <img> of stream ``name`` once the browser has decoded a frame of it."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while True:
        figs = driver.find_elements(By.CSS_SELECTOR, f'figure[data-stream="{name}"] img.live')
        if figs and driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", figs[0]):
            png = figs[0].screenshot_as_png
            return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        if time.monotonic() > deadline:
            raise AssertionError(f"the page showed no frame of stream {name!r} within {timeout} s")
        time.sleep(0.1)


def caption(driver, name: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'figure[data-stream="{name}"] figcaption').text


def green_box(image: np.ndarray) -> tuple[int, int, int, int] | None:
    """The bounding box of the box-coloured (green) pixels of a screenshot, or None when there are none."""
    b, g, r = (image[..., i].astype(int) for i in range(3))
    ys, xs = np.nonzero((g > 160) & (b < 110) & (r < 110))
    if len(xs) < 20:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
