"""A loopback HTTP receiver for the webhook tests (http.server on a thread)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """A loopback HTTP server that records every POST (path, headers, body) and answers the next code of
    ``answers`` (200 once they run out; a float: 200 after that many seconds). ``stop()`` closes the port;
    ``Receiver(port=p)`` opens it again."""

    def __init__(self, port: int = 0, answers=()) -> None:
        self.requests: list[tuple[str, dict, bytes]] = []
        self.answers = list(answers)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                code = receiver.answers.pop(0) if receiver.answers else 200
                if isinstance(code, float):  # a slow endpoint: answer 200 after this many seconds
                    time.sleep(code)
                    code = 200
                text = b"nope" if code >= 300 else b"ok"
                self.send_response(code)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def bodies(self) -> list[dict]:
        return [json.loads(b) for _, _, b in self.requests]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
