"""What one client, or all of them, can cost the server: a bounded number of file descriptors and log lines.

- **Header timeout**: a connection that has not finished the headers of its next request within
  :data:`HEADER_TIMEOUT_S` of its first byte (or of connecting) is closed. Idle keep-alive connections are
  closed by uvicorn after its keep-alive timeout.
- **Connection caps**, chosen under the process's file-descriptor limit (read at start,
  :func:`caps_for`): at most ``per_client`` connections per client address and ``total`` in all. When a new
  connection goes over a cap, the oldest connection of that client (or of anyone, for the total) that has
  no request in progress is closed to make room; a connection busy with a request (a viewer's video) is
  never closed for another, and when every one is busy the new connection is closed instead. So a flood
  of idle or half-open connections costs a bounded number of descriptors, and a normal request that
  arrives during it is served.
- **Accept errors** (``EMFILE``: too many open files) are logged once per :data:`LOG_EVERY_S`, with the
  count since the last line, instead of a traceback per attempt.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("uolrps.serve")

HEADER_TIMEOUT_S = 10.0
LOG_EVERY_S = 10.0
FD_RESERVE = 256  # descriptors kept for the run itself (captures, model, outputs, threads)
MAX_TOTAL = 1024
MAX_PER_CLIENT = 128


def caps_for(fd_limit: int) -> tuple[int, int]:
    """(per_client, total) connection caps for a process allowed ``fd_limit`` open files: the total leaves
    :data:`FD_RESERVE` (or half the limit, when it is small) to the run."""
    room = fd_limit - min(FD_RESERVE, fd_limit // 2)
    total = max(8, min(MAX_TOTAL, room))
    return max(4, min(MAX_PER_CLIENT, total // 2)), total


def fd_limit() -> int:
    """The soft limit on open files of this process (RLIMIT_NOFILE); 1024 where it cannot be read."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        return int(soft) if soft > 0 else 1024
    except (ImportError, OSError, ValueError):
        return 1024


class Connections:
    """The open connections, oldest first, in all and per client; the eviction rule of the module docstring."""

    def __init__(self, per_client: int, total: int) -> None:
        self.per_client = per_client
        self.total = total
        self._all: dict = {}  # protocol -> client, insertion-ordered (oldest first)
        self._by_peer: dict = {}  # (address, port) -> protocol: a request's connection, from its ASGI scope
        self._by_client: dict[str, dict] = {}
        self.evicted = 0  # connections closed to make room (tests, logs)

    def __len__(self) -> int:
        return len(self._all)

    def opened(self, proto, client: str) -> bool:
        """Count a new connection; False when it must be closed (every older one is busy)."""
        self._all[proto] = client
        if getattr(proto, "client", None):
            self._by_peer[tuple(proto.client)] = proto
        self._by_client.setdefault(client, {})[proto] = None
        mine = self._by_client[client]
        while len(mine) > self.per_client:
            if not self._evict(mine, proto):
                self.closed(proto)
                return False
        while len(self._all) > self.total:
            if not self._evict(self._all, proto):
                self.closed(proto)
                return False
        return True

    def _evict(self, pool, newcomer) -> bool:
        for proto in pool:
            if proto is not newcomer and proto.idle():
                self.closed(proto)
                self.evicted += 1
                proto.drop()
                return True
        return False

    def transport_of(self, peer) -> object | None:
        """The transport of the connection from ``peer`` (an ASGI scope's ``client``), None if unknown."""
        proto = self._by_peer.get(tuple(peer)) if peer else None
        return None if proto is None else proto.transport

    def closed(self, proto) -> None:
        client = self._all.pop(proto, None)
        peer = getattr(proto, "client", None)
        if peer and self._by_peer.get(tuple(peer)) is proto:
            del self._by_peer[tuple(peer)]
        if client is not None:
            mine = self._by_client.get(client)
            if mine is not None:
                mine.pop(proto, None)
                if not mine:
                    del self._by_client[client]


def limited_protocol(connections: Connections, header_timeout: float = HEADER_TIMEOUT_S):
    """uvicorn's h11 protocol with the header timeout and the connection caps above (a class for
    ``uvicorn.Config(http=...)``)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class LimitedH11Protocol(H11Protocol):
        _header_timer = None
        _header_cycle = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            client = self.client[0] if self.client else "?"
            if not connections.opened(self, client):
                self.drop()
                return
            self._arm_header_timer()

        def connection_lost(self, exc) -> None:
            connections.closed(self)
            self._disarm_header_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self.idle() and self._header_timer is None:
                self._arm_header_timer()  # the first bytes of a next request: its headers are timed too
            super().data_received(data)
            if not self.idle():
                self._disarm_header_timer()

        def idle(self) -> bool:
            """No request in progress (none yet, or the last one answered)."""
            return self.cycle is None or self.cycle.response_complete

        def drop(self) -> None:
            self._disarm_header_timer()
            if not self.transport.is_closing():
                self.transport.abort()

        def _arm_header_timer(self) -> None:
            self._header_cycle = self.cycle
            self._header_timer = self.loop.call_later(header_timeout, self._header_timeout)

        def _disarm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            self._header_timer = None
            if self.cycle is self._header_cycle and self.idle():  # no new request began in time
                self.drop()

    return LimitedH11Protocol


def unsent_bytes(transport) -> int:
    """Bytes written to a connection that its peer has not taken yet: the event loop's buffer plus the
    kernel's send queue (Linux SIOCOUTQ; 0 where it cannot be read)."""
    n = transport.get_write_buffer_size()
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            import fcntl
            import struct
            import termios

            n += struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        except (ImportError, OSError, ValueError, AttributeError):
            pass
    return n


class AcceptErrorLog:
    """A loop exception handler: errors around accept() (and other loop-level errors) are logged once per
    ``every`` seconds with a count, never as a traceback per attempt."""

    def __init__(self, every: float = LOG_EVERY_S) -> None:
        self.every = every
        self._last = float("-inf")
        self._suppressed = 0
        self.count = 0

    def __call__(self, loop, context: dict) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self._last < self.every:
            self._suppressed += 1
            return
        exc = context.get("exception")
        more = f" ({self._suppressed} more like it in the last {self.every:g} s)" if self._suppressed else ""
        log.warning("HTTP server: %s%s%s", context.get("message", "error"), f": {exc}" if exc else "", more)
        self._last, self._suppressed = now, 0
