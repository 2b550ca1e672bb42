"""MJPEG viewers for benchmarks: real HTTP clients of a running server (``uolrps run --serve`` or
``uolrps.serve.start_server``) that read each stream's ``/streams/NAME.mjpg`` and count what they get.

From another benchmark (e.g. RSS over 5000 frames with 2 viewers connected)::

    sys.path.insert(0, str(Path(__file__).parent))
    from viewers import Viewer
    viewers = [Viewer(url, "cam0"), Viewer(url, "cam1", delay=0.2)]   # the second one is slow
    for v in viewers: v.start()
    ...                                                               # run the workload
    for v in viewers: v.stop()
    print([v.summary() for v in viewers])

On its own, against a server that is already running::

    python benchmarks/viewers.py http://127.0.0.1:8080 --streams cam0,cam1 --seconds 20 [--delay 0.2]

It prints, per viewer: frames received, frames per second, MB/s and the largest gap in result sequence
numbers (how many results it skipped at once: a slow viewer must skip rather than fall behind).
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from urllib.parse import urlsplit


class Viewer(threading.Thread):
    """One MJPEG viewer on its own thread; ``delay`` seconds of sleep after each frame makes it slow."""

    def __init__(self, url: str, stream: str, heatmap: bool = False, delay: float = 0.0) -> None:
        super().__init__(name=f"viewer-{stream}", daemon=True)
        self.url, self.stream, self.heatmap, self.delay = url, stream, heatmap, delay
        self.frames = 0
        self.bytes = 0
        self.seqs: list[int] = []
        self.error: str | None = None
        self._halt = threading.Event()
        self._conn: http.client.HTTPConnection | None = None
        self._t0 = self._t1 = 0.0

    def run(self) -> None:
        u = urlsplit(self.url)
        self._t0 = time.monotonic()
        try:
            self._conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
            self._conn.request("GET", f"/streams/{self.stream}.mjpg?heatmap={int(self.heatmap)}")
            resp = self._conn.getresponse()
            if resp.status != 200:
                self.error = f"HTTP {resp.status}: {resp.read()[:200]!r}"
                return
            while not self._halt.is_set():
                length, seq = self._part_header(resp)
                if length is None:
                    break
                self.bytes += len(resp.read(length)) + 2
                resp.read(2)
                self.frames += 1
                if seq is not None:
                    self.seqs.append(seq)
                if self.delay:
                    self._halt.wait(self.delay)
        except (OSError, http.client.HTTPException, ValueError) as e:
            if not self._halt.is_set():
                self.error = f"{type(e).__name__}: {e}"
        finally:
            self._t1 = time.monotonic()

    @staticmethod
    def _part_header(resp) -> tuple[int | None, int | None]:
        line = resp.readline()
        while line in (b"\r\n", b"\n"):
            line = resp.readline()
        if not line.startswith(b"--"):
            return None, None
        length = seq = None
        while (line := resp.readline()) not in (b"\r\n", b"\n", b""):
            key, _, value = line.decode("ascii", "replace").partition(":")
            if key.strip().lower() == "content-length":
                length = int(value)
            elif key.strip().lower() == "x-seq":
                seq = int(value)
        return length, seq

    def stop(self, timeout: float = 5.0) -> None:
        self._halt.set()
        if self._conn is not None and self._conn.sock is not None:
            try:
                self._conn.sock.shutdown(2)
            except OSError:
                pass
        self.join(timeout)

    def summary(self) -> dict:
        seconds = max(1e-9, (self._t1 or time.monotonic()) - self._t0)
        gaps = [b - a for a, b in zip(self.seqs, self.seqs[1:])]
        return {"stream": self.stream, "heatmap": self.heatmap, "delay_s": self.delay, "frames": self.frames,
                "fps": round(self.frames / seconds, 2), "MB_per_s": round(self.bytes / seconds / 1e6, 3),
                "max_seq_gap": max(gaps, default=0), "error": self.error}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", help="the server, e.g. http://127.0.0.1:8080")
    ap.add_argument("--streams", required=True, help="comma-separated stream names, one viewer each")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds of sleep after each frame (a slow viewer)")
    ap.add_argument("--heatmap", action="store_true")
    args = ap.parse_args()
    viewers = [Viewer(args.url, s, args.heatmap, args.delay) for s in args.streams.split(",") if s]
    for v in viewers:
        v.start()
    time.sleep(args.seconds)
    for v in viewers:
        v.stop()
    for v in viewers:
        print(json.dumps(v.summary()))


if __name__ == "__main__":
    main()
