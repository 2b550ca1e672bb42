"""Who may change the run: the token rules of the HTTP server.

- Bound to a loopback address, the server needs no token; if one is given, it is required all the same.
- Bound to any other address, it refuses to start without a token (the argument, or the environment
  variable :data:`TOKEN_ENV`).
- Only the mutating endpoints (POST, DELETE) check it: ``Authorization: Bearer <token>``, compared in
  constant time. The page, the video and the read-only endpoints stay open.
- Without a token (loopback only), a mutating request must still name a loopback host in its ``Host``
  header, so a web page on another site cannot reach the server through DNS rebinding; and POST bodies
  must be ``application/json``, which a cross-site form cannot send without the browser asking first.
"""

from __future__ import annotations

import hmac
import ipaddress
import os

from uolrps.core.errors import OptionError

TOKEN_ENV = "UOLRPS_SERVE_TOKEN"


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
        raise OptionError(f"serving on {host} (beyond this machine) needs a token for adding and removing streams: "
                          f"give token=TOKEN or set {TOKEN_ENV}, or serve on 127.0.0.1", "token")
    return token


def check_mutation(token: str | None, authorization: str | None, host_header: str | None) -> tuple[int, str] | None:
    """None when this POST/DELETE may go ahead, else the HTTP status (401 or 403) and a one-line reason."""
    if token is not None:
        given = ""
        if authorization and authorization[:7].lower() == "bearer ":
            given = authorization[7:].strip()
        if not hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8")):
            return 401, "this needs the server's token: send the header 'Authorization: Bearer TOKEN'"
        return None
    if not is_loopback(_host_name(host_header or "")):
        return 403, (f"this server has no token, so it accepts changes only from this machine (Host {host_header!r} "
                "is not a loopback name): use http://127.0.0.1:PORT, or start it with a token")
    return None


def _host_name(header: str) -> str:
    """The host of a ``Host`` header: ``[::1]:8080`` -> ``::1``, ``localhost:8080`` -> ``localhost``."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.split(":", 1)[0]
