"""A real MJPEG-over-HTTP (multipart/x-mixed-replace) camera on the loopback interface, for tests.

Modes: ``normal`` (frames every ``period`` s), ``stall`` (``n`` frames per connection, then silence with the
connection held open), ``silent`` (accepts connections and never sends a byte), ``flaky`` (after ``n``
frames the whole server dies, and comes back on the same port ``down_s`` seconds later). Frame ``i`` is a
grey level ``(10 * i) % 250`` with a bright square, so frames differ and a box can be found.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time

import cv2
import numpy as np


def jpeg(i: int, size=(96, 128)) -> bytes:
    H, W = size
    img = np.full((H, W, 3), (10 * i) % 120, np.uint8)
    x = 10 + (3 * i) % (W - 50)
    img[20:60, x:x + 40] = 240
    return cv2.imencode(".jpg", img)[1].tobytes()


class MjpegServer:
    def __init__(self, mode: str = "normal", n: int = 10, period: float = 0.02, down_s: float = 1.0) -> None:
        self.mode, self.n, self.period, self.down_s = mode, n, period, down_s
        self.connections = 0
        self.sent = 0
        self._stop = threading.Event()
        self._server = None
        self.port = None
        self._frames = [jpeg(i) for i in range(25)]
        self._start_server()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def _start_server(self) -> None:
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                outer.connections += 1
                if outer.mode == "silent":
                    while not outer._stop.wait(0.05):
                        pass
                    return
                try:
                    self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n")
                    k = 0
                    while not outer._stop.is_set():
                        if outer.mode == "stall" and k >= outer.n:
                            outer._stop.wait(0.05)
                            continue
                        if outer.mode == "flaky" and outer.sent >= outer.n:
                            threading.Thread(target=outer._die_and_return, daemon=True).start()
                            return
                        jpg = outer._frames[outer.sent % len(outer._frames)]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg)
                                         + jpg + b"\r\n")
                        k += 1
                        outer.sent += 1
                        time.sleep(outer.period)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server(("127.0.0.1", self.port or 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def _die_and_return(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        self.mode = "normal"  # it comes back healthy
        time.sleep(self.down_s)
        if not self._stop.is_set():
            self._start_server()

    def close(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
