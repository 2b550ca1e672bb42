"""Issue 19's trial of bad inputs, re-run: every row the issue names plus the clean kinds it lists (missing and
corrupt files, bad ranges, dead network sources, duplicate names, colliding outputs, SIGINT / SIGTERM mid-run).

    PYTHONPATH=. python scripts/trial_bad_inputs.py [--model m.onnx] [--work DIR] [-k PATTERN] [--json out.json]

Runs each case as a new user would (``python -m uolrps.cli.main ...`` in a fresh process, or a small Python API
snippet), in a work folder holding the inputs: ``m.onnx`` (the efflite0 export at the default size: made with
``uolrps export -b efflite0 --dynamic-batch`` unless ``--model`` gives one), the demo data (``uolrps demo-data``),
and files made per case (FIFOs, private device nodes, hard links, corrupt copies, small tmpfs mounts where root
can mount one). Every file in the work folder is fingerprinted (type, inode, size, SHA-256) before and after each
case, and each result is classified:

- **clean** for a bad input: a non-zero exit, exactly one ``error: ...`` line on stderr, no traceback (nor an
  abort, nor a hang), nothing lost or replaced (every file there before is there after, same inode and content;
  a device, FIFO or socket stays one), and nothing left behind but what the case allows;
- for a signal mid-run: no abort and no traceback, and every output written is whole (the JSONL only whole
  lines, the recording readable, the summary valid JSON);
- for a row that is not an error (a note the issue asked for): the note is there.

Prints one row per case and ``N clean of N``; exits 1 when any case is not clean. Needs Linux; root for the
device-node and tmpfs cases (else they are reported as skipped, naming why).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

CLI = [sys.executable, "-m", "uolrps.cli.main"]
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|terminate called|Fatal Python error|Segmentation fault")


@dataclass
class Case:
    name: str
    args: list | None = None  # the uolrps arguments; None for a Python snippet (code)
    code: str | None = None  # a Python API snippet: it prints "error: ..." and exits 2 on UserError
    setup: Callable[[Path], None] | None = None  # makes what the case needs in its folder (cwd)
    kind: str = "error"  # error | signal | note
    allow_new: tuple[str, ...] = ()  # glob patterns (relative to the case folder) a failed command may leave
    signals: tuple = ()  # (delay_s, signal) pairs sent after the first one lands mid-run
    outputs: tuple[str, ...] = ()  # signal cases: the files to validate
    whole: tuple[str, ...] = ()  # error cases: files that, where left, must be whole (JSONL lines, a playable video)
    note: str = ""  # note cases: a regex the output must hold
    absent: str = ""  # note cases: a regex the output must not hold
    timeout: float = 120.0
    env: dict = field(default_factory=dict)


@dataclass
class Result:
    case: Case
    clean: bool
    why: str
    rc: int | None
    seconds: float
    first_error: str = ""


# ---- fingerprints ----------------------------------------------------------------------------------------------

def fingerprint(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            try:
                st = os.lstat(p)
            except OSError:
                continue
            kind = stat.S_IFMT(st.st_mode)
            digest = None
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                digest = h.hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                digest = os.readlink(p)
            out[str(p.relative_to(root))] = (kind, st.st_ino, digest, st.st_rdev)
    return out


def compare(before: dict, after: dict, case_dir: str, allow: tuple[str, ...]) -> list[str]:
    problems = []
    for path, (kind, ino, digest, rdev) in before.items():
        now = after.get(path)
        if now is None:
            problems.append(f"lost {path}")
        elif now[0] != kind or now[3] != rdev:
            problems.append(f"replaced {path} (type changed)")
        elif now[2] != digest and kind != stat.S_IFDIR:
            problems.append(f"changed {path}")
    for path in after.keys() - before.keys():
        rel = os.path.relpath(path, case_dir) if path.startswith(case_dir + os.sep) else None
        if after[path][0] == stat.S_IFDIR:
            continue
        if rel is None or not any(Path(rel).match(p) for p in allow):
            problems.append(f"left {path}")
    return problems


# ---- helpers for setups ----------------------------------------------------------------------------------------

def device_node(path: Path, like: str) -> None:
    """A private character device with the numbers of ``like`` (never the real /dev node)."""
    os.mknod(path, 0o666 | stat.S_IFCHR, os.stat(like).st_rdev)


def small_disk(path: Path, size: str) -> None:
    path.mkdir(exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                         text=True)
    if res.returncode != 0:
        raise SkipCase(f"needs to mount a tmpfs (root): {res.stderr.strip()}")
    MOUNTS.append(path)


class SkipCase(Exception):
    pass


MOUNTS: list[Path] = []
SOCKETS: list[socket.socket] = []


def unix_socket(path: Path) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    SOCKETS.append(s)


def flip_bytes(src: Path, dst: Path, offset_fraction: float = 0.5, n: int = 4096) -> None:
    data = bytearray(src.read_bytes())
    at = int(len(data) * offset_fraction)
    for i in range(at, min(at + n, len(data))):
        data[i] ^= 0x5A
    dst.write_bytes(bytes(data))


def hide_torch(folder: Path) -> dict:
    """A ``sitecustomize`` that hides PyTorch, as in a runtime-only install (``uolrps[ort,headless]``)."""
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None\n")
    return {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}


# ---- the cases -------------------------------------------------------------------------------------------------

def cases(w: Path) -> list[Case]:
    m, clip, imgs = w / "m.onnx", w / "demo" / "clip.mp4", w / "demo" / "images"
    run = ["run", "--video", clip, "--model", m, "-q"]
    dyn = "sitecustomize"
    c: list[Case] = []

    def add(name, args=None, **kw):
        c.append(Case(name, [str(a) for a in args] if args is not None else None, **kw))

    # devices, FIFOs, sockets, folders at output paths (the first row)
    add("summary-json onto a device like /dev/full", run + ["--summary-json", "full"],
        setup=lambda d: device_node(d / "full", "/dev/full"))
    add("summary-json onto a device like /dev/null", run + ["--summary-json", "null"],
        setup=lambda d: device_node(d / "null", "/dev/null"))
    add("jsonl onto a device like /dev/full", run + ["--jsonl", "full"],
        setup=lambda d: device_node(d / "full", "/dev/full"))
    add("jsonl onto a symlink to a device", run + ["--jsonl", "r.jsonl"],
        setup=lambda d: (device_node(d / "null", "/dev/null"), (d / "r.jsonl").symlink_to(d / "null")))
    add("save onto a FIFO", run + ["--save", "f.mp4"], setup=lambda d: os.mkfifo(d / "f.mp4"), timeout=60)
    add("summary-json onto a socket", run + ["--summary-json", "s.json"], setup=lambda d: unix_socket(d / "s.json"))
    add("jsonl onto a folder", run + ["--jsonl", "dir.jsonl"], setup=lambda d: (d / "dir.jsonl").mkdir())
    add("eval --json onto a FIFO", ["eval", w / "csvset", "--model", m, "--json", "f.json"],
        setup=lambda d: os.mkfifo(d / "f.json"), timeout=60)
    add("demo-data with a FIFO at its clip path", ["demo-data", "dd"],
        setup=lambda d: ((d / "dd").mkdir(), os.mkfifo(d / "dd" / "clip.mp4")), timeout=60)
    # full disks
    add("save on a full disk", ["run", "--video", clip, "--model", m, "-q", "--save", "disk/out.mp4"],
        setup=lambda d: small_disk(d / "disk", "200k"), allow_new=("disk/*",))
    add("jsonl on a full disk", ["run", "--video", clip, "--model", m, "-q", "--jsonl", "disk/r.jsonl"],
        setup=lambda d: (small_disk(d / "disk", "8k"), (d / "disk" / "fill").write_bytes(b"\0" * 4096)),
        allow_new=("disk/r.jsonl",))
    add("disk filling mid-run (jsonl + mp4 + summary)",
        ["run", "--video", clip, "--model", m, "-q", "--loop", "--jsonl", "disk/r.jsonl", "--save", "disk/r.mp4",
         "--summary-json", "disk/s.json"], setup=lambda d: small_disk(d / "disk", "4m"),
        allow_new=("disk/r.jsonl", "disk/r.mp4", "disk/s.json"), whole=("disk/r.jsonl", "disk/r.mp4", "disk/s.json"),
        timeout=300)
    add("demo-data on a full disk", ["demo-data", "disk/demo"], setup=lambda d: small_disk(d / "disk", "1m"))
    # inputs overwritten
    add("save onto a hard link of the input video", ["run", "--video", clip, "--model", m, "-q", "--save", "h.mp4"],
        setup=lambda d: os.link(clip, d / "h.mp4"))
    add("save onto the input video itself", ["run", "--video", clip, "--model", m, "-q", "--save", clip])
    add("save onto a symlink to the input", ["run", "--video", clip, "--model", m, "-q", "--save", "s.mp4"],
        setup=lambda d: (d / "s.mp4").symlink_to(clip))
    first = sorted(imgs.iterdir())[0]
    add("save FOLDER holding a hard link of an input image", ["run", "--video", imgs, "--model", m, "-q", "--save", "out"],
        setup=lambda d: ((d / "out").mkdir(), os.link(first, d / "out" / first.name)),
        allow_new=("out/*",))
    add("save FOLDER onto the source folder", ["run", "--video", imgs, "--model", m, "-q", "--save", imgs])
    add("jsonl onto a hard link of the model", run + ["--jsonl", "m.jsonl"], setup=lambda d: os.link(m, d / "m.jsonl"))
    add("calib -o onto the --weights file", ["calib", imgs, "-b", "efflite0", "--weights", "w.npz", "-o", "w.npz"],
        setup=lambda d: shutil.copy(w / "wstar.npz", d / "w.npz"))
    # tracebacks in the trial
    add("export --size 100000", ["export", "-b", "efflite0", "--size", "100000", "-o", "x.onnx"])
    add("export --batch 100000", ["export", "-b", "efflite0", "--batch", "100000", "-o", "x.onnx"])
    add("calib --size 0", ["calib", imgs, "-b", "efflite0", "--size", "0", "-o", "x.npz"])
    add("demo-data into an existing file", ["demo-data", "afile"], setup=lambda d: (d / "afile").write_text("x"))
    add("export without PyTorch (runtime-only install)", ["export", "-b", "efflite0", "-o", "x.onnx"],
        setup=lambda d: CASE_ENV.update(hide_torch(d / dyn)))
    add("calib without PyTorch (runtime-only install)", ["calib", imgs, "-o", "x.npz"],
        setup=lambda d: CASE_ENV.update(hide_torch(d / dyn)))
    # Python API
    api = (f"import sys, numpy as np\nfrom uolrps.core.errors import UserError\n"
           f"from uolrps.runtime import Localizer, localize_streams, RunStats\n")
    for label, frame in (("None", "None"), ("a list", "[[1, 2], [3, 4]]"), ("a gray array", "np.zeros((48, 64), np.uint8)"),
                         ("a float array", "np.zeros((48, 64, 3), np.float32)"),
                         ("an RGBA array", "np.zeros((48, 64, 4), np.uint8)"), ("an empty array", "np.zeros((0, 0, 3), np.uint8)")):
        c.append(Case(f"Localizer(frame) with {label}", code=api + f"loc = Localizer({str(m)!r})\n"
                      f"try:\n    loc({frame})\nexcept UserError as e:\n    print('error:', e, file=sys.stderr); sys.exit(2)\n"))
    c.append(Case("localize_streams with every source failing", code=api +
                  f"try:\n    for r in localize_streams(['missing.mp4', 'http://127.0.0.1:9/x.mjpg'], {str(m)!r}, "
                  "reopen_limit=1, stall_timeout=1):\n        pass\nexcept UserError as e:\n"
                  "    print('error:', str(e).replace(chr(10), ' '), file=sys.stderr); sys.exit(2)\n", timeout=60))
    # late or misleading
    add("eval --caam foo (refused before inference)", ["eval", w / "csvset", "--model", m, "--caam", "foo"], timeout=30)
    add("a folder named x.onnx as the model", ["run", "--video", clip, "--model", "x.onnx"],
        setup=lambda d: (d / "x.onnx").mkdir())
    add("--backend trt with an .onnx model", run + ["--backend", "trt"])
    add("a live source that never opens", ["run", "--video", "http://127.0.0.1:9/stream.mjpg", "--model", m, "-q",
                                           "--reopen-limit", "1"], timeout=60)
    add("run --video cam0 without --model (no camera here)", ["run", "--video", "cam0", "-q"], timeout=180)
    add("calib on 3 images quotes no 5-image figure", ["calib", "few", "-b", "efflite0", "-o", "few.npz"],
        kind="note", setup=lambda d: ((d / "few").mkdir(), [shutil.copy(p, d / "few") for p in sorted(imgs.iterdir())[:3]]),
        note=r"only 3 calibration images", absent=r"5 (random )?images give", allow_new=("few.npz",), timeout=300)
    add("run --size/--fps on a file source says they are ignored", run + ["--size", "320x240", "--fps", "5",
                                                                          "--max-frames", "3"],
        kind="note", note=r"so they are ignored for it")
    add("bench --batch 1,4 on a fixed-batch-1 model notes the calls", ["bench", w / "m1.onnx", "--batch", "1,4",
                                                                       "--warmup", "1", "--iters", "2"],
        kind="note", note=r"fixed batch of 1, so a batch of 4 runs as 4 calls", timeout=300)
    add("doctor does not claim a camera it cannot see", ["doctor"], kind="note", absent=r"cam0 /dev/video0: V4L2 ok",
        note=r"(?i)cam", timeout=120)
    # damaged models
    add("a bit-flipped model", ["run", "--video", clip, "--model", "bad.onnx", "-q"],
        setup=lambda d: flip_bytes(m, d / "bad.onnx", 0.6))
    add("uolrps metadata copied onto another graph", ["run", "--video", clip, "--model", "other.onnx", "-q"],
        setup=lambda d: shutil.copy(w / "other.onnx", d / "other.onnx"))
    # missing and corrupt files
    add("run: a missing video", ["run", "--video", "missing.mp4", "--model", m])
    add("run: a missing model", ["run", "--video", clip, "--model", "missing.onnx"])
    add("run: a corrupt model (random bytes)", ["run", "--video", clip, "--model", "r.onnx"],
        setup=lambda d: (d / "r.onnx").write_bytes(os.urandom(5000)))
    add("run: a truncated model", ["run", "--video", clip, "--model", "t.onnx"],
        setup=lambda d: (d / "t.onnx").write_bytes(m.read_bytes()[: m.stat().st_size // 2]))
    add("run: a corrupt video", ["run", "--video", "r.mp4", "--model", m],
        setup=lambda d: (d / "r.mp4").write_bytes(os.urandom(20000)))
    add("run: an empty image folder", ["run", "--video", "empty", "--model", m], setup=lambda d: (d / "empty").mkdir())
    add("eval: a missing data set", ["eval", "missing", "--model", m])
    add("eval: a corrupt CSV", ["eval", "bad.csv", "--model", m],
        setup=lambda d: (d / "bad.csv").write_text("image,x1\nfoo.jpg,notanumber\n"))
    add("calib: a missing folder", ["calib", "missing", "-b", "efflite0", "-o", "x.npz"])
    add("calib: a folder without images", ["calib", "empty", "-b", "efflite0", "-o", "x.npz"],
        setup=lambda d: (d / "empty").mkdir())
    add("export: a missing --wstar", ["export", "-b", "efflite0", "--wstar", "missing.npz", "-o", "x.onnx"])
    add("export: a corrupt --wstar", ["export", "-b", "efflite0", "--wstar", "r.npz", "-o", "x.onnx"],
        setup=lambda d: (d / "r.npz").write_bytes(os.urandom(3000)))
    add("explain: a missing image", ["explain", "missing.jpg", "--model", m, "--calib", w / "wstar.npz"])
    add("build: a missing model", ["build", "missing.onnx"])
    add("bench: a missing model", ["bench", "missing.onnx"])
    add("triton-repo -o onto a file", ["triton-repo", m, "-o", "afile"], setup=lambda d: (d / "afile").write_text("x"))
    # bad ranges
    add("run --threshold 1.5", run + ["--threshold", "1.5"])
    add("run --threshold abc (not a number)", run + ["--threshold", "abc"])
    add("run --max-frames -5", run + ["--max-frames", "-5"])
    add("run --smooth 2", run + ["--smooth", "2"])
    add("run --segment 0", run + ["--save", "o.mp4", "--segment", "0"])
    add("calib --sampling-ratio 0", ["calib", imgs, "-b", "efflite0", "--sampling-ratio", "0", "-o", "x.npz"])
    add("calib --batch 0", ["calib", imgs, "-b", "efflite0", "--batch", "0", "-o", "x.npz"])
    add("export --int8-images 0", ["export", "-b", "efflite0", "--int8", "--int8-calib", imgs, "--int8-images", "0",
                                   "-o", "x.onnx"])
    add("bench --iters 0", ["bench", m, "--iters", "0"])
    add("eval --n-vis -1", ["eval", w / "csvset", "--model", m, "--save-vis", "vis", "--n-vis", "-1"])
    # dead network sources
    add("run: a dead RTSP source", ["run", "--video", "rtsp://127.0.0.1:9/live", "--model", m, "-q",
                                    "--reopen-limit", "1"], timeout=90)
    add("run: a dead HTTP source among good ones", ["run", "--video", clip, "--video", "http://127.0.0.1:9/x.mjpg",
                                                    "--model", m, "-q", "--reopen-limit", "1"], timeout=90)
    # duplicate names, colliding outputs
    add("run --sources with duplicate names", ["run", "--sources", "s.txt", "--model", m, "-q"],
        setup=lambda d: (d / "s.txt").write_text(f"a={clip}\na={clip}\n"))
    add("run: --jsonl and --summary-json the same file", run + ["--jsonl", "x.json", "--summary-json", "x.json"])
    add("run: --save and --jsonl the same file through a symlink", run + ["--save", "o.mp4", "--jsonl", "l.jsonl"],
        setup=lambda d: (d / "l.jsonl").symlink_to(d / "o.mp4"))
    add("export -o onto its own --wstar", ["export", "-b", "efflite0", "--wstar", "w.npz", "-o", "w.npz"],
        setup=lambda d: shutil.copy(w / "wstar.npz", d / "w.npz"))
    # signals mid-run
    outs = ("r.jsonl", "r.avi", "s.json")
    sig_run = ["run", "--video", clip, "--model", m, "-q", "--loop", "--jsonl", "r.jsonl", "--save", "r.avi",
               "--summary-json", "s.json"]
    add("SIGINT mid-run", sig_run, kind="signal", signals=((0.0, signal.SIGINT),), outputs=outs)
    add("SIGTERM mid-run", sig_run, kind="signal", signals=((0.0, signal.SIGTERM),), outputs=outs)
    add("two SIGTERMs 10 ms apart", sig_run, kind="signal",
        signals=((0.0, signal.SIGTERM), (0.01, signal.SIGTERM)), outputs=outs)
    add("three SIGINTs 50 ms apart", sig_run, kind="signal",
        signals=((0.0, signal.SIGINT), (0.05, signal.SIGINT), (0.05, signal.SIGINT)), outputs=outs)
    add("SIGTERM during export (nothing partial left)", ["export", "-b", "efflite0", "-o", "x.onnx"], kind="signal",
        signals=((0.0, signal.SIGTERM),), outputs=())
    return c


CASE_ENV: dict = {}


# ---- running ---------------------------------------------------------------------------------------------------

def one_error_line(stderr: str) -> tuple[bool, str]:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    return len(lines) == 1, (lines[0] if lines else "")


def validate_outputs(d: Path, names: tuple[str, ...], required: bool = True) -> list[str]:
    import cv2

    problems = []
    for name in names:
        p = d / name
        if not p.exists():
            if required:
                problems.append(f"{name} missing")
            continue
        if name.endswith(".jsonl"):
            text = p.read_text()
            if text and not text.endswith("\n"):
                problems.append(f"{name}: a cut last line")
            for ln in text.splitlines():
                try:
                    json.loads(ln)
                except ValueError:
                    problems.append(f"{name}: a broken line")
                    break
        elif name.endswith(".json"):
            try:
                json.loads(p.read_text())
            except ValueError:
                problems.append(f"{name}: not valid JSON")
        else:
            cap = cv2.VideoCapture(str(p))
            ok = cap.isOpened() and cap.read()[0]
            cap.release()
            if not ok:
                problems.append(f"{name}: unreadable recording")
    return problems


def run_case(case: Case, w: Path, index: int) -> Result:
    d = w / "cases" / f"{index:02d}"
    d.mkdir(parents=True, exist_ok=True)
    CASE_ENV.clear()
    t0 = time.perf_counter()
    try:
        if case.setup:
            case.setup(d)
    except SkipCase as e:
        return Result(case, False, f"skipped: {e}", None, 0.0)
    env = dict(os.environ, **case.env, **CASE_ENV)
    before = fingerprint(w)
    cmd = CLI + case.args if case.args is not None else [sys.executable, "-c", case.code]
    proc = subprocess.Popen(cmd, cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        if case.kind == "signal":
            _send_signals(proc, d, case)
        out, err = proc.communicate(timeout=case.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return Result(case, False, f"hung (killed after {case.timeout:g} s)", None, time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    rc = proc.returncode
    after = fingerprint(w)
    problems = []
    if TRACEBACK.search(err) or rc < 0:
        problems.append("a traceback or an abort" + (f" (signal {-rc})" if rc < 0 else ""))
    ok_line, first = one_error_line(err)
    allow = case.allow_new + case.outputs
    rel = str(d.relative_to(w))
    if case.kind == "signal":  # the outputs asked for, each whole; nothing else left (no temporary file)
        problems += validate_outputs(d, case.outputs)
        problems += compare(before, after, rel, allow)
    elif case.kind == "note":
        text = out + err
        if case.note and not re.search(case.note, text):
            problems.append(f"the note /{case.note}/ is missing")
        if case.absent and re.search(case.absent, text):
            problems.append(f"still says /{case.absent}/")
        problems += [p for p in compare(before, after, rel, allow) if not p.startswith("left")]
    else:
        if rc == 0:
            problems.append("exit 0")
        if not ok_line:
            n = len([ln for ln in err.splitlines() if ln.startswith("error:")])
            problems.append(f"{n} error lines" + (" (a usage box)" if "Usage:" in err else ""))
        problems += compare(before, after, rel, allow)
        problems += validate_outputs(d, case.whole, required=False)
    return Result(case, not problems, "; ".join(problems) or "clean", rc, seconds, first or err.strip()[-200:])


def _send_signals(proc, d: Path, case: Case) -> None:
    """The first signal once the run is under way (its JSONL has lines, or 8 s for export), then the others."""
    deadline = time.monotonic() + 60
    if case.outputs:
        while time.monotonic() < deadline and proc.poll() is None:
            p = d / "r.jsonl"
            if p.exists() and p.stat().st_size > 2000:
                break
            time.sleep(0.05)
    else:
        time.sleep(8.0)
    for delay, sig in case.signals:
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(sig)


# ---- the work folder -------------------------------------------------------------------------------------------

def prepare(w: Path, model: Path | None) -> None:
    import cv2
    import numpy as np

    w.mkdir(parents=True, exist_ok=True)

    def uolrps(*args):
        res = subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True)
        if res.returncode != 0:
            sys.exit(f"preparing the work folder failed: uolrps {' '.join(map(str, args))}\n{res.stderr}")

    if not (w / "m.onnx").exists():
        if model is not None:
            shutil.copy(model, w / "m.onnx")
        else:
            print("exporting the default efflite0 model (about a minute)...", file=sys.stderr)
            uolrps("export", "-b", "efflite0", "--dynamic-batch", "-o", w / "m.onnx")
    if not (w / "m1.onnx").exists():
        uolrps("export", "-b", "efflite0", "--batch", "1", "-o", w / "m1.onnx")
    if not (w / "demo" / "clip.mp4").exists():
        uolrps("demo-data", w / "demo")
    if not (w / "wstar.npz").exists():
        uolrps("calib", w / "demo" / "images", "-b", "efflite0", "--keep-representers", "-o", w / "wstar.npz")
    if not (w / "csvset").exists():
        (w / "csvset" / "images").mkdir(parents=True)
        rows = ["image,x1,y1,x2,y2"]
        for p in sorted((w / "demo" / "images").iterdir()):
            shutil.copy(p, w / "csvset" / "images" / p.name)
            h, wd = cv2.imread(str(p)).shape[:2]
            rows.append(f"images/{p.name},{wd // 4},{h // 4},{3 * wd // 4},{3 * h // 4}")
        (w / "csvset" / "boxes.csv").write_text("\n".join(rows) + "\n")
    if not (w / "other.onnx").exists():  # m.onnx's metadata on another graph (its weights' signs flipped)
        import onnx
        from onnx import numpy_helper

        g = onnx.load(str(w / "m.onnx"))
        for init in g.graph.initializer:
            if init.data_type == onnx.TensorProto.FLOAT and np.prod(init.dims) > 1000:
                init.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(init), init.name))
                break
        onnx.save(g, str(w / "other.onnx"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None, help="Work folder (kept; default: a new temporary one).")
    ap.add_argument("--model", type=Path, default=None, help="The efflite0 export to use as m.onnx.")
    ap.add_argument("-k", default=None, help="Only the cases whose name holds this text.")
    ap.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    a = ap.parse_args()
    w = a.work or Path(tempfile.mkdtemp(prefix="uolrps-trial-"))
    prepare(w.resolve(), a.model)
    w = w.resolve()
    shutil.rmtree(w / "cases", ignore_errors=True)
    todo = [c for c in cases(w) if a.k is None or a.k.lower() in c.name.lower()]
    results = []
    try:
        for i, case in enumerate(todo):
            r = run_case(case, w, i)
            results.append(r)
            mark = "clean" if r.clean else ("SKIP " if r.why.startswith("skipped") else "NOT  ")
            print(f"{i + 1:2d} {mark} {case.name:<58} rc {r.rc!s:>4} {r.seconds:5.1f}s  "
                  f"{r.why if not r.clean else r.first_error[:110]}", flush=True)
            for mnt in MOUNTS:
                subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
            MOUNTS.clear()
            for s in SOCKETS:
                s.close()
            SOCKETS.clear()
    finally:
        for mnt in MOUNTS:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    n_clean = sum(r.clean for r in results)
    print(f"{n_clean} clean of {len(results)} (work folder {w}; Python {sys.version.split()[0]})")
    if a.json:
        a.json.write_text(json.dumps([{"case": r.case.name, "clean": r.clean, "why": r.why, "rc": r.rc,
                                       "seconds": round(r.seconds, 1), "error": r.first_error} for r in results],
                                     indent=1) + "\n")
    return 0 if n_clean == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
