"""The one progress display: a rewriting bar on a terminal, a few plain lines in a log, nothing when off."""

from __future__ import annotations

import io

from uolrps.core.progress import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_line_per_tenth_and_no_carriage_returns():
    log = io.StringIO()
    with progress(3000, "calib", unit="images", stream=log) as bar:
        for _ in range(3000 // 32 + 1):
            bar.advance(min(32, 3000 - bar.done))
    text = log.getvalue()
    lines = text.splitlines()
    assert "\r" not in text
    assert len(lines) == 10  # 10%, 20%, ... 90% and the final line
    assert lines[0].startswith("calib ") and "/3000 images (1" in lines[0]
    assert lines[-1].startswith("calib 3000/3000 images (100%), ") and lines[-1].endswith(" images/s")


def test_no_line_twice_at_a_tenth_float_steps_would_repeat():
    log = io.StringIO()
    with progress(250, "sweep", unit="images", stream=log) as bar:
        for _ in range(250):
            bar.advance(1)
    pcts = [line.split("(")[1].split("%")[0] for line in log.getvalue().splitlines()]
    assert pcts == ["10", "20", "30", "40", "50", "60", "70", "80", "90", "100"]  # 75/250 once, not 76/250 again


def test_bytes_of_unknown_total_and_off():
    log = io.StringIO()
    with progress(None, "downloading x", unit="B", stream=log) as bar:
        bar.advance(3 * 1024 * 1024)
    assert log.getvalue() == "downloading x 3.0 MiB, " + log.getvalue().split(", ", 1)[1]
    assert log.getvalue().strip().endswith("/s")
    quiet = io.StringIO()
    with progress(10, "x", enabled=False, stream=quiet) as bar:
        bar.advance(10)
    with progress(10, "x", plain=False, stream=quiet) as bar:  # the run's bar: terminals only
        bar.advance(10)
    assert quiet.getvalue() == ""


def test_a_terminal_gets_the_rich_bar():
    tty = Terminal()
    with progress(50, "eval", unit="images", stream=tty) as bar:
        bar.advance(20, note="3.0 FPS")
        bar.advance(30)
    out = tty.getvalue()
    assert bar.mode == "rich" and "50/50" in out and "eval" in out and "3.0 FPS" in out
