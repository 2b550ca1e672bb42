"""Triton Inference Server backend: a uolrps model served by Triton, addressed by URL.

``grpc://HOST:8001/NAME`` or ``http://HOST:8000/NAME`` (``https://``, and ``NAME/VERSION`` too). The model's
metadata comes from the server: its input/output names, types and shapes from the model metadata, and the
uolrps metadata (threshold, input size, colour order, ...) from the ``uolrps.*`` parameters that
``uolrps triton-repo`` writes into config.pbtxt. Batches go as uint8 NHWC, one request per batch of at
most the model's ``max_batch_size`` (the server's dynamic batcher merges requests of many clients).
``tritonclient`` is imported inside the constructor.

Each thread gets its own client (the HTTP client is not thread-safe), so several batches can be in flight:
callers in several threads, and a batch larger than ``max_batch_size``, whose requests are sent together
(at most ``in_flight`` at once).
A server that stops answering mid-run (connection refused, unavailable, model being reloaded) is retried
with a doubling back-off for up to ``retry_s`` seconds, then the call fails with a one-line error; errors
that a retry cannot fix (a refused request) fail at once.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
import time
from dataclasses import dataclass

import numpy as np

from uolrps.core.errors import OptionError, UserError
from uolrps.model.meta import PREFIX, ModelMeta
from uolrps.runtime.backends.base import Backend, Capabilities, check_io

log = logging.getLogger("uolrps.triton")

SCHEMES = {"grpc": ("grpc", 8001, False), "http": ("http", 8000, False), "https": ("http", 443, True)}
URL_RE = re.compile(r"^(?P<scheme>[a-z]+)://(?P<host>\[[^\]]+\]|[^/:]+)(?::(?P<port>\d+))?"
                    r"/(?P<name>[A-Za-z0-9_.-]+)(?:/(?P<version>\d+))?/?$")
FORM = "grpc://HOST:8001/NAME or http://HOST:8000/NAME"


@dataclass(frozen=True)
class TritonTarget:
    protocol: str  # grpc or http
    host: str
    port: int
    ssl: bool
    name: str
    version: str  # "" = the server's choice

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        scheme = "https" if self.ssl else self.protocol
        return f"{scheme}://{self.address}/{self.name}" + (f"/{self.version}" if self.version else "")


def parse_url(url: str) -> TritonTarget:
    m = URL_RE.match(str(url))
    if m is None or m["scheme"] not in SCHEMES:
        raise OptionError(f"model {url!r} is not a Triton model URL: use {FORM}", "model")
    protocol, port, ssl = SCHEMES[m["scheme"]]
    return TritonTarget(protocol, m["host"], int(m["port"] or port), ssl, m["name"], m["version"] or "")


def _message(e: BaseException) -> str:
    text = e.message() if hasattr(e, "message") and callable(e.message) else str(e)
    text = (text or type(e).__name__).strip().splitlines()[0] if (text or "").strip() else type(e).__name__
    return text


def _status(e: BaseException) -> str:
    status = getattr(e, "status", None)
    return str(status() if callable(status) else status or "")


def transient(e: BaseException) -> bool:
    """Whether a retry can fix ``e``: the server is unreachable, restarting, or reloading the model."""
    if isinstance(e, (ConnectionError, TimeoutError, OSError)):
        return True
    status, msg = _status(e), _message(e).lower()
    if status in ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "503", "502", "504"):
        return True
    return any(s in msg for s in ("failed to connect", "connection refused", "is not ready", "unknown model",
                                  "socket closed", "connection reset", "unavailable"))


class TritonBackend(Backend):
    """The :class:`Backend` of a model served by Triton; see the module docstring."""

    def __init__(self, url: str, timeout: float = 30.0, retry_s: float = 30.0, headers: dict | None = None,
                 in_flight: int = 4) -> None:
        self.target = parse_url(url)
        self.timeout, self.retry_s = float(timeout), float(retry_s)
        if int(in_flight) < 1:
            raise OptionError(f"in_flight must be at least 1 request, but got {in_flight}", "in_flight")
        self.in_flight = int(in_flight)
        self._pool = None
        self.headers = dict(headers or {})
        self._lib = importlib.import_module(f"tritonclient.{self.target.protocol}")
        self._local = threading.local()
        self._clients: list = []
        self._lock = threading.Lock()
        self._closed = False
        where = str(self.target)
        client = self._client()
        try:
            live = self._call(client.is_server_live)
        except Exception as e:  # noqa: BLE001 - socket errors (http) and InferenceServerException (grpc)
            raise OptionError(f"cannot reach the Triton server at {self.target.protocol}://{self.target.address} "
                              f"({_message(e)}): start it, or check the host and port in model=URL", "model") from None
        if not live:
            raise UserError(f"the Triton server at {self.target.address} is not live: check its log")
        self._check_ready(client, where)
        metadata, config = self._describe(client, where)
        self.meta, fixed, self.max_batch_size = self._contract(metadata, config, where)
        self._output = self.meta.output_name
        limit = fixed or self.max_batch_size or None  # a fixed batch; else the model's max_batch_size
        # the multi-stream engine keeps in_flight batches in flight
        self.caps = Capabilities(device="server", concurrency=self.in_flight, max_batch=limit,
                                 min_batch=fixed or 1, fixed_batch=fixed is not None)

    # ---- clients --------------------------------------------------------------------------------------
    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            kw = ({"network_timeout": self.timeout, "connection_timeout": min(self.timeout, 10.0)}
                  if self.target.protocol == "http" else {})
            client = self._lib.InferenceServerClient(url=self.target.address, ssl=self.target.ssl, **kw)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def _call(self, fn, *args, **kw):
        if self.target.protocol == "grpc":
            kw["client_timeout"] = self.timeout
        return fn(*args, headers=self.headers or None, **kw)

    # ---- what the server says about the model ---------------------------------------------------------
    def _check_ready(self, client, where: str) -> None:
        try:
            ready = self._call(client.is_model_ready, self.target.name, self.target.version)
        except Exception as e:  # noqa: BLE001
            raise UserError(f"{where}: the server did not say whether the model is ready ({_message(e)})") from None
        if ready:
            return
        index = None
        try:  # may be refused on a server that restricts the repository API
            kw = {"as_json": True} if self.target.protocol == "grpc" else {}
            index = self._call(client.get_model_repository_index, **kw)
            index = index.get("models", []) if isinstance(index, dict) else index
        except Exception:  # noqa: BLE001
            pass
        if index is not None:
            entries = [m for m in index if m.get("name") == self.target.name]
            if not entries:
                names = sorted({m.get("name", "?") for m in index})
                raise OptionError(f"the Triton server at {self.target.address} has no model {self.target.name!r} "
                                  f"(it serves: {', '.join(names) or 'nothing'}): check the name in model=URL", "model")
            state = entries[0].get("state", "") or "UNAVAILABLE"
            reason = entries[0].get("reason", "")
            raise UserError(f"{where}: the model is not ready on the server ({state}"
                            f"{': ' + reason.splitlines()[0] if reason else ''}): check the server log")
        raise OptionError(f"{where}: the server has no ready model {self.target.name!r}"
                          f"{' version ' + self.target.version if self.target.version else ''}: check the name in "
                          "model=URL and the server log", "model")

    def _describe(self, client, where: str) -> tuple[dict, dict]:
        kw = {"as_json": True} if self.target.protocol == "grpc" else {}
        try:
            metadata = self._call(client.get_model_metadata, self.target.name, self.target.version, **kw)
            config = self._call(client.get_model_config, self.target.name, self.target.version, **kw)
        except Exception as e:  # noqa: BLE001
            raise UserError(f"{where}: cannot read the model's metadata and config ({_message(e)})") from None
        return metadata, config.get("config", config)

    def _contract(self, metadata: dict, config: dict, where: str) -> tuple[ModelMeta, int | None, int]:
        """(metadata, the fixed batch size or None, the config's max_batch_size)."""
        inputs, outputs = metadata.get("inputs", []), metadata.get("outputs", [])
        mb = int(config.get("max_batch_size", 0) or 0)
        want = "one UINT8 input of N x H x W x 3 (NHWC) and one FP32 output: serve a model written by `uolrps triton-repo`"
        if len(inputs) != 1 or len(outputs) != 1:
            raise UserError(f"{where}: the model has {len(inputs)} inputs and {len(outputs)} outputs, but a uolrps "
                            f"model has {want}")
        node, out = inputs[0], outputs[0]
        shape = [int(d) for d in node.get("shape", [])]
        if node.get("datatype") != "UINT8" or len(shape) != 4 or shape[3] != 3:
            raise UserError(f"{where}: input {node.get('name')!r} is {node.get('datatype')} {shape}, but a uolrps "
                            f"model has {want}")
        if out.get("datatype") != "FP32" or len(out.get("shape", [])) != 4:
            raise UserError(f"{where}: output {out.get('name')!r} is {out.get('datatype')} {out.get('shape')}, but "
                            f"a uolrps model has {want}")
        params = config.get("parameters", {}) or {}
        props = {k: v.get("string_value", "") for k, v in params.items() if k.startswith(PREFIX)}
        if PREFIX + "format" not in props:
            raise UserError(f"{where}: the model's config has no uolrps.* parameters (the model metadata): write "
                            "its repository entry with `uolrps triton-repo`")
        meta = ModelMeta.from_props(props, source=where)
        check_io(where, meta, {node.get("name"): ("uint8", shape)},
                 {out.get("name"): ("float32", [int(d) for d in out.get("shape", [])])}, noun="the served model",
                 fix=": write its repository entry with `uolrps triton-repo` from the model it serves")
        fixed = None if mb > 0 else (shape[0] if shape[0] > 0 else None)
        return meta, fixed, mb

    # ---- inference (the base class checks, chunks and pads) -------------------------------------------
    def check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.target}: the backend is closed")

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self._infer(batch)

    def infer_chunks(self, chunks: list[np.ndarray]) -> list[np.ndarray]:
        if len(chunks) == 1 or self.in_flight == 1:
            return [self._infer(c) for c in chunks]
        return list(self._executor().map(self._infer, chunks))  # several requests at once, a client per thread

    def _executor(self):
        with self._lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(max_workers=self.in_flight, thread_name_prefix="uolrps-triton")
            return self._pool

    def _request(self, x: np.ndarray) -> np.ndarray:
        lib, client = self._lib, self._client()
        inp = lib.InferInput(self.meta.input_name, list(x.shape), "UINT8")
        inp.set_data_from_numpy(x)
        out = lib.InferRequestedOutput(self._output)
        result = self._call(client.infer, self.target.name, [inp], model_version=self.target.version, outputs=[out])
        hm = result.as_numpy(self._output)
        if hm is None or hm.shape[0] != x.shape[0]:
            raise UserError(f"{self.target}: the server returned {None if hm is None else hm.shape} for a batch of "
                            f"{x.shape[0]}")
        return np.asarray(hm, dtype=np.float32)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        delay, deadline = 0.25, None
        while True:
            try:
                hm = self._request(x)
                if deadline is not None:
                    log.warning("the Triton server at %s answers again", self.target.address)
                return hm
            except UserError:
                raise
            except Exception as e:  # noqa: BLE001 - socket errors and InferenceServerException
                if self._closed:
                    raise UserError(f"{self.target}: the backend was closed during a request") from None
                if not transient(e):
                    raise UserError(f"{self.target}: the server refused the request ({_message(e)})") from None
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.retry_s
                    log.warning("the Triton server at %s does not answer (%s); retrying for up to %.0f s",
                                self.target.address, _message(e), self.retry_s)
                    self._reset_client()
                if now >= deadline:
                    raise UserError(f"the Triton server at {self.target.address} has not answered for "
                                    f"{self.retry_s:.0f} s ({_message(e)}): is it still running?") from None
                time.sleep(min(delay, max(0.0, deadline - now)))
                delay = min(delay * 2, 5.0)

    def _reset_client(self) -> None:
        """Drop this thread's client so the next try opens a fresh connection."""
        client = getattr(self._local, "client", None)
        self._local.client = None
        if client is not None and self.target.protocol == "http":
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass

    def close(self) -> None:
        self._closed = True
        with self._lock:
            clients, self._clients = self._clients, []
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        for c in clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing a dead connection may raise; nothing to save
                pass

    def __repr__(self) -> str:
        return f"TritonBackend({self.target})"
