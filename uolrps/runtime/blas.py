"""One BLAS thread for the runtime, whether it runs from the CLI or from Python.

The runtime's only BLAS call (heatmap upsampling, ~2 MFLOP a frame) is many times slower in a
multi-threaded BLAS competing with the inference threads. The CLI sets ``OPENBLAS_NUM_THREADS=1`` before
numpy loads; from Python numpy is already loaded, so :func:`limit_blas_threads` sets the limit on the
loaded BLAS library (with threadpoolctl) the first time a :class:`~uolrps.runtime.Localizer` is created.
Set ``UOLRPS_BLAS_THREADS`` (a number, or ``keep``) to choose otherwise.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("uolrps.runtime")
_done = False


def limit_blas_threads() -> int | None:
    """Limit the process's BLAS to ``UOLRPS_BLAS_THREADS`` threads (default 1), once; returns the limit set."""
    global _done
    if _done:
        return None
    _done = True
    want = os.environ.get("UOLRPS_BLAS_THREADS", "1").strip().lower()
    if want == "keep":
        return None
    try:
        n = max(1, int(want))
    except ValueError:
        log.warning("UOLRPS_BLAS_THREADS=%r is not a number or 'keep': using 1", want)
        n = 1
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the BLAS keeps its own default; the CLI still sets OPENBLAS_NUM_THREADS
        log.debug("threadpoolctl is not installed: BLAS threads left as they are")
        return None
    threadpool_limits(limits=n, user_api="blas")
    return n
