"""Who may reach what: the access rules of the HTTP server, checked for every request before any route runs.

- Bound to a loopback address, the server needs no token. Every request must name a loopback host in its
  ``Host`` header (``127.0.0.1``, ``localhost``, ``[::1]``), else 403: a web page on another site cannot
  read or steer the server through DNS rebinding. With a token, POST and DELETE need it.
- Bound to any other address, it refuses to start without a token (the argument, or the environment
  variable :data:`TOKEN_ENV`), and every route except ``/healthz`` (and ``/metrics`` when it is opened
  with ``open_metrics``) needs it: ``Authorization: Bearer <token>``, or the session cookie that
  ``POST /api/login`` sets after one login with the token (what the page does). Else 401.
- Tokens compare as UTF-8 bytes in constant time (HTTP carries header bytes; a non-ASCII token works).
- POST bodies must be ``application/json``, which a cross-site form cannot send without the browser asking
  first; the cookie is ``HttpOnly`` and ``SameSite=Strict``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os

from uolrps.core.errors import OptionError

TOKEN_ENV = "UOLRPS_SERVE_TOKEN"
SESSION_COOKIE = "uolrps_session"
OPEN_PATHS = ("/healthz",)  # beyond loopback: the only route without the token (a health probe has none)
LOGIN_PATH = "/api/login"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1)."""
    h = host.strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def resolve_token(host: str, token: str | None) -> str | None:
    """The token in force: the argument, else the environment; an OptionError naming ``token`` when one is
    needed and absent."""
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    if token is not None and not token.strip():
        raise OptionError(f"the server token is empty: give a non-empty token=TOKEN (or unset {TOKEN_ENV})", "token")
    if token is None and not is_loopback(host):
        raise OptionError(f"serving on {host} (beyond this machine) needs a token for every route but /healthz: "
                          f"give token=TOKEN or set {TOKEN_ENV}, or serve on 127.0.0.1", "token")
    return token


def token_matches(token: str, given: bytes) -> bool:
    """``given`` (the bytes the client sent) is the token's UTF-8 encoding; constant time."""
    return hmac.compare_digest(given, token.encode("utf-8"))


def session_value(token: str) -> str:
    """The session cookie's value: derived from the token (so a new token ends old sessions), not the token."""
    return hmac.new(token.encode("utf-8"), b"uolrps-session-v1", hashlib.sha256).hexdigest()


class Access:
    """The rules above for one server: :meth:`check` a request's method, path and raw headers."""

    def __init__(self, token: str | None, public: bool, open_metrics: bool = False) -> None:
        self.token = token
        self.public = public  # bound beyond loopback
        self.open_metrics = open_metrics
        self._session = session_value(token).encode("ascii") if token is not None else None

    def authorized(self, headers: dict[bytes, bytes]) -> bool:
        """The request carries the token (header) or a session cookie from a login with it."""
        if self.token is None:
            return False
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer " and token_matches(self.token, auth[7:].strip()):
            return True
        for part in headers.get(b"cookie", b"").split(b";"):
            key, _, value = part.strip().partition(b"=")
            if key == SESSION_COOKIE.encode() and hmac.compare_digest(value.strip(), self._session):
                return True
        return False

    def check(self, method: str, path: str, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        """None when the request may go ahead, else the HTTP status (401 or 403) and a one-line reason."""
        if not self.public:
            host = headers.get(b"host", b"").decode("latin-1")
            if not is_loopback(host_name(host)):
                return 403, (f"this server listens on this machine only, and Host {host!r} is not a loopback name "
                             "(a page elsewhere may be trying DNS rebinding): use http://127.0.0.1:PORT")
            if method in ("POST", "DELETE") and path != LOGIN_PATH and self.token is not None \
                    and not self.authorized(headers):
                return 401, "this needs the server's token: send the header 'Authorization: Bearer TOKEN'"
            return None
        if path in OPEN_PATHS or path == LOGIN_PATH or (path == "/metrics" and self.open_metrics):
            return None
        if self.authorized(headers):
            return None
        return 401, ("this server needs its token for every route but /healthz: send 'Authorization: Bearer "
                     "TOKEN', or log in on the page")


def host_name(header: str) -> str:
    """The host of a ``Host`` header: ``[::1]:8080`` -> ``::1``, ``localhost:8080`` -> ``localhost``."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.split(":", 1)[0]
