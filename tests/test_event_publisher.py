"""The queueing of event publishers: bounded, the oldest dropped and counted exactly, retried after failures,
never blocking the caller. The other end is a real loopback TCP server that can be stopped and restarted."""

from __future__ import annotations

import socket
import threading
import time

from uolrps.runtime.events.publisher import QueuedPublisher


class Receiver:
    """A loopback TCP server that reads newline-terminated items and acknowledges each with b"ok\\n"."""

    def __init__(self, port: int = 0) -> None:
        self.items: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                f = conn.makefile("rb")
                for line in f:
                    if self.stopped:
                        return
                    self.items.append(line.strip())
                    conn.sendall(b"ok\n")

    def stop(self) -> None:
        self.stopped = True
        self.sock.close()


class LinePublisher(QueuedPublisher):
    name = "lines"

    def __init__(self, port: int, **kw) -> None:
        super().__init__(**kw)
        self.port = port
        self.conn = None

    def connect(self) -> None:
        self.conn = socket.create_connection(("127.0.0.1", self.port), timeout=1.0)
        self.reader = self.conn.makefile("rb")

    def send(self, item) -> None:
        self.conn.sendall(f"{item}\n".encode())
        if self.reader.readline() != b"ok\n":
            raise OSError("no acknowledgement")

    def disconnect(self) -> None:
        self.conn.close()


def wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_all_items_arrive_in_order():
    rx = Receiver()
    pub = LinePublisher(rx.port, limit=100, backoff=(0.05, 0.2))
    pub.start()
    for i in range(50):
        pub.publish(i)
    pub.close(timeout=10)
    assert [int(x) for x in rx.items] == list(range(50))
    assert pub.counters() == {"sent": 50, "dropped": 0, "queued": 0, "failed": 0}
    rx.stop()


def test_down_then_up_keeps_the_newest_within_the_bound_and_counts_the_rest():
    # nothing listens: every try fails, items queue up to the bound and the oldest go
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    pub = LinePublisher(port, limit=10, backoff=(0.05, 0.1))
    pub.start()
    t0 = time.perf_counter()
    for i in range(25):
        pub.publish(i)  # never blocks
    assert time.perf_counter() - t0 < 0.5
    assert wait_for(lambda: pub.failed >= 2)
    rx = Receiver(port)  # the other end comes back
    assert wait_for(lambda: len(rx.items) == 10)
    pub.close(timeout=5)
    assert [int(x) for x in rx.items] == list(range(15, 25))  # the 10 newest, in order
    c = pub.counters()
    assert c["sent"] == 10 and c["dropped"] == 15 and c["queued"] == 0
    rx.stop()


def test_close_counts_what_could_not_be_sent():
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    pub = LinePublisher(port, limit=100, backoff=(0.05, 0.1))
    pub.start()
    for i in range(7):
        pub.publish(i)
    pub.close(timeout=0.3)
    assert pub.counters()["sent"] == 0 and pub.counters()["dropped"] == 7


def test_a_state_needs_a_measured_rate_or_zero():
    import pytest

    from uolrps.runtime.events.event import State

    assert State("cam0", True, 1, 0.0, 1.0).to_record()["fps"] == 0.0
    for bad in (None, float("nan"), -1.0):
        with pytest.raises(ValueError, match="fps must be a number"):
            State("cam0", True, 1, bad, 1.0)
