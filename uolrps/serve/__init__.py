"""The browser view and HTTP control of a multi-stream run (needs the ``[serve]`` extra).

``start_server(control, host="127.0.0.1", port=8080, token=None, max_viewers=8) -> ServerHandle`` serves any
:class:`uolrps.runtime.control.StreamControl` from a background thread: a live page, MJPEG video per stream,
a JSON API to list, add and remove streams, Prometheus ``/metrics`` and ``/healthz``. Every request is checked
(``uolrps.serve.auth``: Host on loopback, the token beyond it) and bounded (``uolrps.serve.limits``). See
docs/serve.md, with its threat model.

Nothing here is imported by ``uolrps.runtime``; FastAPI, uvicorn and prometheus-client are imported only when
a server starts.
"""

from __future__ import annotations

from uolrps.core.lazy import lazy_attributes

_API = {
    "start_server": "uolrps.serve.server",
    "ServerHandle": "uolrps.serve.server",
    "TOKEN_ENV": "uolrps.serve.auth",
}

__all__ = sorted(_API)

__getattr__, __dir__ = lazy_attributes(__name__, _API)
