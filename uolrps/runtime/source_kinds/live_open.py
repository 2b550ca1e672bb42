"""How every live kind opens: a :class:`~uolrps.runtime.live.LiveSource` around the kind's capture."""

from __future__ import annotations

from uolrps.core.redact import redact
from uolrps.runtime.capture import log


def open_live(spec, *, loop=False, capture_factory=None, backoff=(0.5, 8.0), reopen_limit=None,
              stall_timeout=None, open_now=True):
    from uolrps.runtime.capture import opencv_capture
    from uolrps.runtime.live import DEFAULT_STALL_TIMEOUT, LiveSource

    if loop:
        log.info("loop has no effect on the live source %s", redact(spec.text))
    return LiveSource(spec, capture_factory=capture_factory or opencv_capture, backoff=backoff,
                      reopen_limit=reopen_limit, open_now=open_now,
                      stall_timeout=DEFAULT_STALL_TIMEOUT if stall_timeout is None else stall_timeout)
