"""Test-side HTTP helpers: plain requests and an MJPEG (multipart/x-mixed-replace) reader, on http.client."""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from urllib.parse import urlsplit

import cv2
import numpy as np


def wait_for(predicate, timeout=5.0):
    """The first true value of ``predicate()``, polled every 50 ms; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def request(url: str, method: str = "GET", path: str = "/", body=None, headers: dict | None = None,
            timeout: float = 10.0):
    """(status, headers, parsed JSON or bytes) of one request; ``body`` dicts/lists are sent as JSON."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    hdrs = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        ctype = resp.getheader("Content-Type", "")
        out = json.loads(data) if ctype.startswith("application/json") else data
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, out
    finally:
        conn.close()


class MjpegReader:
    """Reads the parts of one MJPEG response: :meth:`next` -> (headers, jpeg bytes)."""

    def __init__(self, url: str, path: str, timeout: float = 10.0) -> None:
        u = urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        self.conn.request("GET", path)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        ctype = self.resp.getheader("Content-Type", "")
        m = re.match(r"multipart/x-mixed-replace;\s*boundary=(\S+)$", ctype)
        self.boundary = m.group(1).encode() if m else None

    def next(self) -> tuple[dict, bytes] | None:
        """The next part, or None at the end of the response."""
        line = self.resp.readline()
        while line in (b"\r\n", b"\n"):
            line = self.resp.readline()
        if not line:
            return None
        assert line.rstrip(b"\r\n") == b"--" + self.boundary, line
        headers = {}
        while True:
            line = self.resp.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            key, _, value = line.decode("ascii").partition(":")
            headers[key.strip().lower()] = value.strip()
        body = self.resp.read(int(headers["content-length"]))
        assert self.resp.read(2) == b"\r\n"
        return headers, body

    def frames(self, n: int) -> list[tuple[dict, np.ndarray]]:
        out = []
        for _ in range(n):
            part = self.next()
            assert part is not None, "the MJPEG response ended early"
            headers, jpeg = part
            assert headers["content-type"] == "image/jpeg"
            image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert image is not None, "a part is not a decodable JPEG"
            out.append((headers, image))
        return out

    def close(self) -> None:
        self.resp.close()  # the response holds the socket too
        self.conn.close()


class RawViewer:
    """A viewer on a bare socket with a tiny receive buffer, that can stop reading (a slow or stuck client)."""

    FRAME = re.compile(rb"X-Frame: (\d+)\r\n")

    def __init__(self, url: str, path: str, rcvbuf: int = 4096) -> None:
        u = urlsplit(url)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: the window
        self.sock.settimeout(10)
        self.sock.connect((u.hostname, u.port))
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n\r\n".encode())
        self.buf = b""

    def read_frames(self, seconds: float, stop_at: int | None = None) -> list[int]:
        """Read for up to ``seconds`` (or until a frame index >= stop_at); the X-Frame of every part seen."""
        seqs: list[int] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data, end = self.buf + chunk, 0
            for m in self.FRAME.finditer(data):
                seqs.append(int(m.group(1)))
                end = m.end()
            self.buf = data[end:][-200:]  # keeps a part header split across two reads
            if stop_at is not None and seqs and seqs[-1] >= stop_at:
                break
        return seqs

    def close(self) -> None:
        self.sock.close()
