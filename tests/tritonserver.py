"""A real Triton Inference Server on this machine, for the triton tests and benchmarks/bench_triton.py.

The ``nvidia-pytriton`` wheel bundles ``tritonserver`` 2.51 with the Python backend only. It pins numpy < 2,
so it lives in a venv of its own (``$UOLRPS_TRITON_VENV``, default ``~/.cache/uolrps-ci/triton-venv``),
created on first use. The server is started directly (not through PyTriton's Python API), bound to loopback:

- the Python backend's stub must load the same libpython as the venv's interpreter, so ``LD_LIBRARY_PATH``
  holds that interpreter's LIBDIR and the wheel's ``nvidia_pytriton.libs``, and the venv's ``bin`` leads
  ``PATH`` (the stub finds its site-packages through the ``python3`` there);
- a workspace folder of our own holds the backend directory (the stub of this Python version beside the
  backend library), so nothing is written to ``~/.cache/pytriton``;
- startup has a timeout (a stub that cannot load leaves the model "loading" forever), and the server is
  stopped with SIGTERM (a server started from a non-interactive shell ignores SIGINT).

``python tests/tritonserver.py --ensure`` creates the venv (CI runs it before the tests).
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

VENV = Path(os.environ.get("UOLRPS_TRITON_VENV", Path.home() / ".cache" / "uolrps-ci" / "triton-venv"))
REQUIREMENTS = ["nvidia-pytriton==0.7.0", "onnxruntime>=1.17", "numpy<2"]
MIN_GLIBC = (2, 35)
TOKEN_KEY = "triton-access-token"
_ids = itertools.count()


class Unavailable(RuntimeError):
    """The server cannot run here; the message is the precise reason (tests skip with it)."""


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _glibc() -> tuple[int, int] | None:
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
        return tuple(int(x) for x in version.split(".")[:2])  # type: ignore[return-value]
    except (ValueError, OSError, AttributeError):
        return None


def _probe(venv: Path) -> str:
    """The venv's site-packages, or Unavailable when the wheel is not usable there."""
    code = ("import sysconfig, pytriton, onnxruntime, numpy; "
            "print(sysconfig.get_paths()['purelib']); print(sysconfig.get_config_var('LIBDIR'))")
    res = subprocess.run([str(_python(venv)), "-c", code], capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise Unavailable(f"the Triton venv {venv} is incomplete ({res.stderr.strip().splitlines()[-1:]})")
    return res.stdout


def ensure_venv(venv: Path = VENV, create: bool = True, log=print) -> Path:
    """The venv's python, created with ``REQUIREMENTS`` when missing; Unavailable says why it cannot be."""
    glibc = _glibc()
    if glibc is None or glibc < MIN_GLIBC:
        raise Unavailable(f"nvidia-pytriton needs glibc >= {'.'.join(map(str, MIN_GLIBC))}, this system has "
                          f"{'.'.join(map(str, glibc)) if glibc else 'no glibc'}")
    if sys.platform != "linux":
        raise Unavailable("nvidia-pytriton's tritonserver runs on Linux only")
    if _python(venv).exists():
        try:
            _probe(venv)
            return _python(venv)
        except Unavailable:
            if not create:
                raise
    elif not create:
        raise Unavailable(f"no Triton venv at {venv}: run `python tests/tritonserver.py --ensure`")
    log(f"creating the Triton server venv {venv} ({', '.join(REQUIREMENTS)})")
    venv.parent.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [[base, "-m", "venv", "--clear", str(venv)],
             [str(_python(venv)), "-m", "pip", "install", "-q", "--retries", "2", "--timeout", "30",
              *REQUIREMENTS]]
    for argv in steps:
        try:
            res = subprocess.run(argv, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            raise Unavailable(f"{' '.join(argv[:4])} took over 15 minutes") from None
        if res.returncode != 0:
            tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
            raise Unavailable(f"cannot install {' '.join(REQUIREMENTS)} into {venv}: {tail[0]}")
    _probe(venv)
    return _python(venv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TritonServer:
    """``with TritonServer(repo, workspace) as s: s.grpc_url, s.http_url`` (ports chosen free, loopback)."""

    def __init__(self, repository: str | Path, workspace: str | Path, venv: Path = VENV,
                 startup_timeout: float = 90.0, ports: tuple[int, int, int] | None = None,
                 token: str | None = None, restricted: tuple[str, ...] = ("statistics",),
                 models: tuple[str, ...] = ()) -> None:
        self.repository, self.workspace = Path(repository), Path(workspace)
        self.token, self.restricted, self.models = token, tuple(restricted), tuple(models)
        self.venv, self.startup_timeout = venv, startup_timeout
        self.http_port, self.grpc_port, self.metrics_port = ports or (free_port(), free_port(), free_port())
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workspace / "tritonserver.log"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def _layout(self) -> tuple[list[str], dict]:
        python = ensure_venv(self.venv, create=False)
        purelib, libdir = _probe(self.venv).split()
        dist = Path(purelib) / "pytriton" / "tritonserver"
        backends = self.workspace / "backends" / "python"
        backends.mkdir(parents=True, exist_ok=True)
        for f in ("libtriton_python.so", "triton_python_backend_utils.py"):
            if not (backends / f).exists():
                (backends / f).symlink_to(dist / "backends" / "python" / f)
        stub = backends / "triton_python_backend_stub"
        if not stub.exists():
            ver = subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
            src = dist / "python_backend_stubs" / ver / "triton_python_backend_stub"
            if not src.is_file():
                raise Unavailable(f"nvidia-pytriton has no Python backend stub for Python {ver}")
            stub.symlink_to(src)
        env = dict(os.environ)
        libs = [libdir, str(Path(purelib) / "nvidia_pytriton.libs")]
        env["LD_LIBRARY_PATH"] = ":".join(libs + [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p])
        env["PATH"] = f"{python.parent}:{env.get('PATH', '')}"
        env.pop("PYTHONPATH", None)
        argv = [str(dist / "bin" / "tritonserver"), f"--model-repository={self.repository}",
                f"--backend-directory={self.workspace / 'backends'}",
                "--http-address=127.0.0.1", f"--http-port={self.http_port}",
                "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
                "--metrics-address=127.0.0.1", f"--metrics-port={self.metrics_port}",
                f"--backend-config=python,shm-region-prefix-name=uolrps{os.getpid()}x{next(_ids)}",
                "--exit-timeout-secs=5", "--log-verbose=0",
                # a model that fails to load stays in the repository as UNAVAILABLE instead of ending the server
                "--exit-on-error=false", "--strict-readiness=false"]
        if self.token:  # as PyTriton does (it restricts model-repository too): these calls need the token
            rule = f"{','.join(self.restricted)}:{TOKEN_KEY}={self.token}"
            argv += [f"--grpc-restricted-protocol={rule}", f"--http-restricted-api={rule}"]
        return argv, env

    def headers(self, protocol: str = "grpc") -> dict:
        """The access-token header of a restricted call (gRPC prefixes the key with triton-grpc-protocol-)."""
        if not self.token:
            return {}
        return {("triton-grpc-protocol-" if protocol == "grpc" else "") + TOKEN_KEY: self.token}

    def _ready(self) -> bool:
        paths = ["/v2/health/ready"] + [f"/v2/models/{m}/ready" for m in self.models]
        for path in paths:
            try:
                with urllib.request.urlopen(f"http://{self.http_url}{path}", timeout=1) as r:
                    if r.status != 200:
                        return False
            except OSError:
                return False
        return True

    def log_tail(self, n: int = 5) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-n:])

    def start(self) -> "TritonServer":
        argv, env = self._layout()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workspace,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Unavailable(f"tritonserver exited with {self.proc.returncode}: {self.log_tail()}")
            if self._ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise Unavailable(f"tritonserver was not ready within {self.startup_timeout:.0f} s: {self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM (SIGINT is ignored by a server started from a non-interactive shell), SIGKILL after 20 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    if "--ensure" in sys.argv[1:]:
        try:
            print(ensure_venv())
        except Unavailable as e:
            print(f"Triton server venv unavailable: {e}", file=sys.stderr)
            sys.exit(0 if "--optional" in sys.argv[1:] else 1)
