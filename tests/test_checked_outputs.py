"""Fault injection for outputs (issue 19): device nodes, FIFOs, hard links, a full disk (a small tmpfs), leftover
temporary files and signals during cleanup. Each test failed on e9d5215: the device was replaced, the input
overwritten, the disk-full run a traceback with a cut JSONL line and no summary, the second SIGTERM an abort."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from tinymodel import bright_square_frame, make_tiny_model

from uolrps.core.paths import write_atomic

CLI = [sys.executable, "-m", "uolrps.cli.main"]


def uolrps(*args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("checked")
    model = make_tiny_model(d / "m.onnx")
    writer = cv2.VideoWriter(str(d / "v.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(30):
        writer.write(bright_square_frame(box=(20 + 2 * i, 20, 80 + 2 * i, 80)))
    writer.release()
    return d, model, d / "v.avi"


def one_line_error(res, needle, code=2):
    assert res.returncode == code, res.stderr
    assert "Traceback" not in res.stderr and needle in res.stderr, res.stderr
    assert len([line for line in res.stderr.splitlines() if line.startswith("error:")]) == 1, res.stderr


@contextlib.contextmanager
def small_disk(path, size="3m"):
    """A tmpfs of ``size`` at ``path`` (root only); skips naming what it needs where it cannot mount."""
    path.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                         text=True)
    if res.returncode != 0:
        pytest.skip(f"needs to mount a tmpfs (root, CAP_SYS_ADMIN): {res.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


# --- device nodes, FIFOs, sockets, folders are refused, never replaced ---------------------------------------

def private_device(tmp_path, like: str):
    """A character device node with the numbers of ``like`` (/dev/null, /dev/full) in ``tmp_path``: the test
    never points a command at the real node, which the code before this fix replaced with a regular file."""
    node = tmp_path / Path(like).name
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.stat(like).st_rdev)
    except (OSError, AttributeError) as e:
        pytest.skip(f"needs to make a device node (root, mknod): {e}")
    return node


@pytest.mark.parametrize("flag,name", [("--summary-json", "s.json"), ("--jsonl", "r.jsonl"), ("--save", "r.mp4")])
@pytest.mark.parametrize("device", ["/dev/full", "/dev/null"])
def test_a_device_at_an_output_path_is_refused_and_stays_a_device(files, tmp_path, flag, name, device):
    d, model, video = files
    node = private_device(tmp_path, device)
    link = tmp_path / name  # the suffix the flag asks for, pointing at the device
    link.symlink_to(node)
    for target in (node, link):
        res = uolrps("run", "--video", video, "--model", model, "-q", flag, target)
        one_line_error(res, "is a character device")
        assert stat.S_ISCHR(os.stat(node).st_mode) and link.is_symlink()


def test_a_fifo_or_socket_at_an_output_path_is_refused(files, tmp_path):
    import socket

    d, model, video = files
    fifo = tmp_path / "f.jsonl"
    os.mkfifo(fifo)
    one_line_error(uolrps("run", "--video", video, "--model", model, "--jsonl", fifo), "is a FIFO")
    sock_path = tmp_path / "s.json"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock_path))
        one_line_error(uolrps("run", "--video", video, "--model", model, "--summary-json", sock_path), "is a socket")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and stat.S_ISSOCK(os.stat(sock_path).st_mode)


def test_write_atomic_never_replaces_a_special_file_and_keeps_a_symlink(tmp_path):
    fifo = tmp_path / "x.json"
    os.mkfifo(fifo)
    with pytest.raises(Exception, match="is a FIFO"):
        write_atomic(fifo, lambda tmp: tmp.write_text("{}"), "--json")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_atomic(link, lambda tmp: tmp.write_text("new"), "--json")
    assert link.is_symlink() and real.read_text() == "new"


# --- inputs are compared by device and inode -------------------------------------------------------------------

def test_save_onto_a_hard_link_of_the_input_is_refused(files, tmp_path):
    d, model, video = files
    link = tmp_path / "link.avi"
    os.link(video, link)
    before = video.read_bytes()
    one_line_error(uolrps("run", "--video", video, "--model", model, "--save", link), "also an input")
    jlink = tmp_path / "m.jsonl"
    os.link(model, jlink)
    one_line_error(uolrps("run", "--video", video, "--model", model, "--jsonl", jlink), "also an input")
    assert video.read_bytes() == before


# --- a full disk ------------------------------------------------------------------------------------------------

def test_line_file_keeps_whole_lines_on_a_full_disk(tmp_path):
    from uolrps.core.checked_io import LineFile, OutputError

    with small_disk(tmp_path / "disk", "64k") as disk:
        f = LineFile(disk / "a.jsonl", "jsonl")
        line = json.dumps({"frame": 0, "pad": "x" * 900}) + "\n"
        with pytest.raises(OutputError, match=r"jsonl .*the disk is full.*first (\d+) lines") as e:
            for _ in range(10_000):
                f.write(line)
        text = (disk / "a.jsonl").read_text()
        assert text.endswith("\n") and len(text.splitlines()) == f.lines > 0
        assert f"first {f.lines} lines" in str(e.value)
        assert all(json.loads(x) for x in text.splitlines())


def test_write_atomic_on_a_full_disk_is_one_line_and_keeps_the_old_file(tmp_path):
    from uolrps.core.checked_io import OutputError

    with small_disk(tmp_path / "disk", "64k") as disk:
        target = disk / "s.json"
        target.write_text("old")
        with pytest.raises(OutputError, match="the disk is full.*unchanged"):
            write_atomic(target, lambda tmp: tmp.write_bytes(b"x" * 200_000), "--summary-json")
        assert target.read_text() == "old" and sorted(os.listdir(disk)) == ["s.json"]


def test_the_disk_filling_mid_run_ends_with_one_line_whole_jsonl_a_playable_video_and_a_summary(files, tmp_path):
    d, model, video = files
    with small_disk(tmp_path / "disk", "3m") as disk:
        jsonl, out, summary = disk / "r.jsonl", disk / "r.avi", disk / "s.json"
        res = uolrps("run", "--video", video, "--model", model, "--loop", "--max-frames", "100000", "-q",
                     "--jsonl", jsonl, "--save", out, "--summary-json", summary)
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr and "wrote" not in res.stderr
        errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "nearly full" in errors[0], res.stderr
        text = jsonl.read_text()
        assert text.endswith("\n") and [json.loads(x)["frame"] for x in text.splitlines()] == \
            list(range(len(text.splitlines())))
        if out.exists():  # closed before the disk was full: playable
            cap = cv2.VideoCapture(str(out))
            assert cap.isOpened() and cap.read()[0]
            cap.release()
        s = json.loads(summary.read_text())
        assert s["frames"] > 30 and "nearly full" in s["output_error"]


# --- temporary files left by a killed writer -------------------------------------------------------------------

def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_leftover_temporary_file_of_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    from uolrps.core.checked_io import clean_leftovers

    target = tmp_path / "m.onnx"
    leftover = tmp_path / f".m.{dead_pid()}-1-0a1b2c3d.tmp.onnx"
    leftover.write_bytes(b"half a model")
    live = tmp_path / f".m.{os.getppid()}-1-0a1b2c3d.tmp.onnx"  # a writer still running: left alone
    live.write_bytes(b"being written")
    other = tmp_path / ".n.123-1-0a1b2c3d.tmp.onnx"  # another target's
    other.write_bytes(b"x")
    legacy = tmp_path / ".m.tmp.onnx"  # the fixed name of earlier versions' export (issue 19: nothing cleaned it)
    legacy.write_bytes(b"half")
    write_atomic(target, lambda tmp: tmp.write_bytes(b"model"), "output")
    assert target.read_bytes() == b"model"
    assert not leftover.exists() and not legacy.exists() and live.exists() and other.exists()
    assert clean_leftovers(target) == []


def test_kill_9_during_atomic_writes_leaves_the_old_file_or_the_new_one_and_the_next_run_cleans(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    script = ("import sys, time\nfrom uolrps.core.paths import write_atomic\n"
              "def w(tmp):\n    f = open(tmp, 'wb')\n    for i in range(1000):\n        f.write(b'y' * 100000)\n"
              "        f.flush()\n        time.sleep(0.001)\n    f.close()\n"
              f"write_atomic({str(target)!r}, w, 'output')\n")
    rng = np.random.default_rng(19)
    for delay in rng.uniform(0.3, 1.2, size=3):
        p = subprocess.Popen([sys.executable, "-c", script])
        time.sleep(delay)
        p.kill()
        p.wait()
        assert target.read_bytes() in (b"old", b"y" * 100_000_000)
    write_atomic(target, lambda tmp: tmp.write_bytes(b"new"), "output")
    assert sorted(os.listdir(tmp_path)) == ["out.bin"] and target.read_bytes() == b"new"


# --- signals during cleanup --------------------------------------------------------------------------------------

def start_run(files, tmp_path, tag, *more):
    d, model, video = files
    paths = tmp_path / f"{tag}.jsonl", tmp_path / f"{tag}.avi", tmp_path / f"{tag}.json"
    proc = subprocess.Popen(CLI + ["run", "--video", str(video), "--model", str(model), "--loop", "-q",
                                   "--jsonl", str(paths[0]), "--save", str(paths[1]), "--summary-json",
                                   str(paths[2]), *more],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not paths[0].exists() or paths[0].read_text().count("\n") < 20):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    return proc, paths


def assert_all_valid(proc, paths):
    jsonl, video, summary = paths
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, stderr)
    assert "Traceback" not in stderr and "terminate called" not in stderr, stderr
    text = jsonl.read_text()
    assert text.endswith("\n")
    n = len([json.loads(x) for x in text.splitlines()])
    cap = cv2.VideoCapture(str(video))
    assert cap.isOpened() and cap.read()[0]
    frames = 1
    while cap.read()[0]:
        frames += 1
    cap.release()
    assert n - 1 <= frames <= n
    s = json.loads(summary.read_text())
    assert s["interrupted"] is True and s["frames"] >= n
    assert [p for p in os.listdir(jsonl.parent) if p.startswith(".")] == []  # no temporary file left


@pytest.mark.slow
def test_two_sigterms_10_ms_apart_leave_jsonl_recording_and_summary_valid_10_of_10(files, tmp_path):
    for i in range(10):
        proc, paths = start_run(files, tmp_path, f"t{i}")
        try:
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.010)
            proc.send_signal(signal.SIGTERM)
            assert_all_valid(proc, paths)
        finally:
            if proc.poll() is None:
                proc.kill()


@pytest.mark.slow
@pytest.mark.parametrize("gap", [0.0, 0.05, 0.1])
def test_three_sigints_during_cleanup_never_lose_an_output(files, tmp_path, gap):
    proc, paths = start_run(files, tmp_path, "i")
    try:
        for _ in range(3):
            proc.send_signal(signal.SIGINT)
            time.sleep(gap)
        assert_all_valid(proc, paths)
    finally:
        if proc.poll() is None:
            proc.kill()


# --- recordings that survive kill -9 -----------------------------------------------------------------------------

def frames_in(path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.isOpened() and cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_kill_9_during_a_segmented_recording_loses_only_the_last_segment(files, tmp_path):
    d, model, video = files
    out = tmp_path / "rec.mp4"
    proc = subprocess.Popen(CLI + ["run", "--video", str(video), "--model", str(model), "--loop", "-q",
                                   "--save", str(out), "--segment", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (tmp_path / "rec_003.mp4").exists():
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    segments = sorted(tmp_path.glob("rec_*.mp4"))
    assert len(segments) >= 4 and not out.exists()
    for seg in segments[:-1]:  # every closed segment: 1 s at the source's 10 fps, playable
        assert frames_in(seg) == 10, seg


def test_segment_must_be_positive(files):
    d, model, video = files
    one_line_error(uolrps("run", "--video", video, "--model", model, "--save", "x.mp4", "--segment", "0"),
                   "--segment must be a positive number of seconds")


def test_kill_9_during_an_avi_recording_leaves_it_playable(files, tmp_path):
    d, model, video = files
    out = tmp_path / "rec.avi"
    proc = subprocess.Popen(CLI + ["run", "--video", str(video), "--model", str(model), "--loop", "-q",
                                   "--save", str(out), "--jsonl", str(tmp_path / "r.jsonl")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (out.exists() and out.stat().st_size > 600_000):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    assert frames_in(out) > 10  # what FFmpeg had written out before the kill plays


def test_image_folder_output_on_a_full_disk_leaves_no_cut_image(tmp_path):
    from uolrps.core.checked_io import OutputError

    from uolrps.runtime.outputs import ImageFolderOutput

    with small_disk(tmp_path / "disk", "256k") as disk:
        out = ImageFolderOutput(disk / "imgs")
        noise = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
        with pytest.raises(OutputError, match="the disk is full"):
            for i in range(100):
                out.write(noise, f"/x/{i}.png")
        for f in (disk / "imgs").iterdir():
            assert cv2.imread(str(f)) is not None, f


def test_a_write_of_known_size_that_cannot_fit_is_refused_before_it_begins(tmp_path):
    from uolrps.core.checked_io import OutputError

    with small_disk(tmp_path / "disk", "64k") as disk:
        calls = []
        with pytest.raises(OutputError, match=r"s.json'?: 0.2 MB to write but 0.1 MB free"):
            write_atomic(disk / "s.json", lambda tmp: calls.append(tmp), "--summary-json", size=200_000)
        assert calls == [] and os.listdir(disk) == []


# --- kill -9 during export and calib: the output is whole or absent, and the next run cleans ---------------------

@pytest.mark.slow
@pytest.mark.parametrize("command", ["export", "calib"])
def test_kill_9_while_export_or_calib_writes_leaves_no_partial_output_and_the_next_run_cleans(tmp_path, command):
    pytest.importorskip("torch")
    images = tmp_path / "imgs"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        cv2.imwrite(str(images / f"{i}.png"), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    out = tmp_path / ("e.onnx" if command == "export" else "w.npz")
    args = (["export", "-b", "efflite0", "--size", "64", "-o", str(out)] if command == "export" else
            ["calib", str(images), "-b", "efflite0", "--size", "64", "-o", str(out)])
    proc = subprocess.Popen(CLI + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    leftover = []
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None and not leftover:
            leftover = [p for p in tmp_path.iterdir() if p.name.startswith(f".{out.stem}.") and ".tmp" in p.name]
            time.sleep(0.002)
        proc.kill()  # in the middle of the write, when the temporary file was seen
    finally:
        proc.wait()
    if not leftover:
        pytest.skip(f"the {command} finished before its temporary file was seen (nothing to kill mid-write)")
    if out.exists():  # the kill came after the rename (a small file is renamed within ms): it must be whole
        if command == "export":
            import onnx

            onnx.checker.check_model(onnx.load(str(out)))
        else:
            with np.load(out, allow_pickle=False) as z:
                assert {"w", "v", "u", "n_images", "meta"} <= set(z.files) and np.isfinite(z["w"]).all()
    left = [p for p in tmp_path.iterdir() if p.name.startswith(f".{out.stem}.") and ".tmp" in p.name]
    res = uolrps(*args, timeout=900)
    assert res.returncode == 0, res.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftover stays
    for p in left:  # one the kill left is removed and named by the next run
        assert "removed" in res.stderr and p.name in res.stderr


@pytest.mark.slow
def test_kill_9_during_a_live_recording_leaves_every_segment_but_the_last_playable(files, tmp_path):
    from mjpeg_server import MjpegServer

    d, model, video = files
    out = tmp_path / "live.mp4"
    srv = MjpegServer("normal", period=0.02)
    try:
        proc = subprocess.Popen(CLI + ["run", "--video", srv.url, "--model", str(model), "-q", "--save", str(out),
                                       "--segment", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not (tmp_path / "live_003.mp4").exists():
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.05)
        finally:
            proc.kill()  # a power cut, as far as the files can tell
            proc.wait()
    finally:
        srv.close()
    segments = sorted(tmp_path.glob("live_*.mp4"))
    assert len(segments) >= 4
    for seg in segments[:-1]:
        cap = cv2.VideoCapture(str(seg))
        fps = cap.get(cv2.CAP_PROP_FPS)
        cap.release()
        n = frames_in(seg)
        assert fps > 0 and fps <= n <= fps + 10, (seg, n, fps)  # one second of real time, playable
