"""Start and stop the HTTP server (uvicorn) on a background thread of the calling process."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import threading
import time

from uolrps.core.errors import OptionError, UserError
from uolrps.runtime.control import StreamControl
from uolrps.serve.auth import is_loopback, resolve_token
from uolrps.serve.limits import HEADER_TIMEOUT_S, AcceptErrorLog, Connections, caps_for, fd_limit, limited_protocol

log = logging.getLogger(__name__)

DEFAULT_MAX_VIEWERS = 8
SNDBUF = 256 * 1024  # per connection: a viewer that stops reading holds about one frame, not seconds of video
# connections accepted in one turn of the event loop before the caps can close any (uvicorn's default, 2048,
# took every descriptor of a 1024 limit in one burst)
ACCEPT_BACKLOG = 128
# a connection whose peer takes nothing for this long (no acks, or a receive window that stays shut) is dropped
# by the kernel (Linux TCP_USER_TIMEOUT); a slow viewer that takes something in time skips frames and stays
STALL_TIMEOUT_S = 60.0


class ServerHandle:
    """A running server: ``url``, ``host``, ``port``, the ``token`` in force; :meth:`close` stops it."""

    def __init__(self, url: str, host: str, port: int, token: str | None, state, server, thread) -> None:
        self.url = url
        self.host = host
        self.port = port
        self.token = token
        self._state = state
        self._server = server
        self._thread = thread

    @property
    def viewers(self) -> int:
        """Live MJPEG viewers connected now."""
        return self._state.viewers

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving: viewers' responses end, the port is released; safe to call twice."""
        self._state.closing.set()
        self._state.hubs.close()  # wakes the viewers, whose responses then end
        loop = self._state.loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._abort_stuck)
            except RuntimeError:  # the loop closed meanwhile
                pass
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)

    def _abort_stuck(self) -> None:
        """On the loop: drop connections that still hold unsent data (viewers that stopped reading)."""
        for conn in list(getattr(self._server.server_state, "connections", ())):
            transport = getattr(conn, "transport", None)
            if transport is not None and transport.get_write_buffer_size() > 0:
                transport.abort()

    def __enter__(self) -> "ServerHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ServerHandle({self.url!r})"


def start_server(control: StreamControl, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
                 max_viewers: int = DEFAULT_MAX_VIEWERS, jpeg_quality: int = 80, open_metrics: bool = False,
                 header_timeout: float = HEADER_TIMEOUT_S,
                 max_connections: tuple[int, int] | None = None) -> ServerHandle:
    """Serve ``control`` over HTTP from a background thread and return once it accepts connections.

    ``port=0`` picks a free port (see ``handle.port``). Beyond loopback a token is required (the argument
    or ``UOLRPS_SERVE_TOKEN``) on every route but ``/healthz`` (and ``/metrics`` with ``open_metrics``); see
    :mod:`uolrps.serve.auth`. ``header_timeout`` and ``max_connections`` (per client, in all; default: chosen
    under the file-descriptor limit) bound what idle clients cost (:mod:`uolrps.serve.limits`). Raises
    UserError for a port in use, an address that cannot be bound, a missing token, or a missing ``[serve]``
    extra.
    """
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise UserError(f"the port must be a number from 0 to 65535, but got {port!r}")
    if max_viewers < 1:
        raise UserError(f"max_viewers must be at least 1, but got {max_viewers}")
    if not 1 <= jpeg_quality <= 100:
        raise UserError(f"jpeg_quality must be from 1 to 100, but got {jpeg_quality}")
    token = resolve_token(host, token)
    try:
        import uvicorn

        from uolrps.serve.app import ServerState, build_app
    except ImportError as e:
        raise UserError(f"the browser view needs the [serve] extra ({e.name} is missing): "
                        "pip install 'uolrps[serve]'") from None

    limit = fd_limit()
    per_client, total = max_connections or caps_for(limit)
    connections = Connections(per_client, total)
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    state = ServerState(control, token, max_viewers, jpeg_quality, public=not is_loopback(host),
                        open_metrics=open_metrics)
    state.connections = connections
    config = uvicorn.Config(build_app(state), log_config=None, log_level="warning", access_log=False,
                            lifespan="off", ws="none", timeout_graceful_shutdown=2, backlog=ACCEPT_BACKLOG,
                            http=limited_protocol(connections, header_timeout))
    server = uvicorn.Server(config)
    failure: list[BaseException] = []
    accept_errors = AcceptErrorLog()

    async def main() -> None:
        state.loop = asyncio.get_running_loop()
        state.loop.set_exception_handler(accept_errors)
        await server.serve(sockets=[sock])

    def serve() -> None:
        try:
            asyncio.run(main())
        except BaseException as e:  # SystemExit included: uvicorn exits on startup failures
            failure.append(e)
        finally:
            sock.close()

    thread = threading.Thread(target=serve, name="uolrps-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10.0
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        server.should_exit = True
        thread.join(2.0)
        state.hubs.close()
        why = f" ({failure[0]!r})" if failure else ""
        raise UserError(f"the HTTP server on {host}:{bound} did not start{why}")
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}"
    log.info("serving the live view on %s%s (at most %d connections, %d per client, under a limit of %d open "
             "files)", url, "" if is_loopback(host) else " (every route but /healthz needs the token)", total,
             per_client, limit)
    return ServerHandle(url, host, bound, token, state, server, thread)


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or a one-line UserError saying why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UserError(f"cannot serve on {host!r}: {e.strerror}; give an address of this machine, "
                        "e.g. 127.0.0.1 or 0.0.0.0") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)  # accepted sockets inherit these
        if hasattr(socket, "TCP_USER_TIMEOUT") and family in (socket.AF_INET, socket.AF_INET6):
            # a vanished or frozen viewer (no acks, or a zero window) is cut off instead of holding its slot
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(STALL_TIMEOUT_S * 1000))
        sock.bind(addr)
        sock.listen(ACCEPT_BACKLOG)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise OptionError(f"port {port} on {host} is already in use: stop what uses it, or serve on another "
                              "port (port=PORT)", "port") from None
        raise UserError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None
    sock.setblocking(False)
    return sock
