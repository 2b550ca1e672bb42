"""Soak test for the OpenVINO backend under the multi-stream engine: many short runs, each a fresh model with
two inference calls in flight (the engine's threads), on real images; a run that does not finish within
``--timeout`` seconds is a hang (its threads' stacks are printed and the soak stops).

    python scripts/soak_openvino.py --model M.onnx --images ../shared/data/imagenet-loc/images --runs 300

``--no-lock`` replaces the backend's dispatch lock by a no-op, to see whether the hang comes back without it.
Run it under load (other work on the machine): the hang seen in the test suite needed contention.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import sys
import threading
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--no-lock", action="store_true")
    a = ap.parse_args()

    import uolrps.runtime.backends.openvino as ovb
    from uolrps.runtime.backends import ModelOptions
    from uolrps.runtime.localizer import Localizer
    from uolrps.runtime.pipeline import localize_streams

    if a.no_lock:
        ovb._DISPATCH = contextlib.nullcontext()
    images = sorted(p for p in Path(a.images).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[: a.frames]
    folder = str(Path(a.images))
    t0 = time.perf_counter()
    for i in range(a.runs):
        done = threading.Event()
        out: dict = {}

        def one():
            try:
                loc = Localizer(a.model, options=ModelOptions("openvino"))
                try:
                    n = sum(1 for _ in localize_streams([folder], localizer=loc, max_frames=len(images), inflight=2))
                finally:
                    loc.close()
                out["n"] = n
            except BaseException as e:  # noqa: BLE001
                out["error"] = e
            finally:
                done.set()

        t = threading.Thread(target=one, daemon=True)
        t.start()
        if not done.wait(a.timeout):
            print(f"run {i + 1}: HANG (no result within {a.timeout:g} s); stacks:", flush=True)
            faulthandler.dump_traceback(all_threads=True)
            print(f"hangs 1 in {i + 1} runs ({'no lock' if a.no_lock else 'lock'})", flush=True)
            return 1
        if "error" in out:
            raise out["error"]
        if (i + 1) % 25 == 0:
            print(f"{i + 1} runs, {time.perf_counter() - t0:.0f} s, no hang", flush=True)
    print(f"hangs 0 in {a.runs} runs ({'no lock' if a.no_lock else 'lock'}), {a.frames} frames each, "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
