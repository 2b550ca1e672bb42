"""What checking the model digest costs at load (issue 19): the digest of the graph and weights against the
ONNX Runtime session's own creation time, on the same file, interleaved rounds.

    python benchmarks/bench_digest.py MODEL.onnx [ROUNDS]
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path


def main() -> None:
    import onnxruntime as ort

    from uolrps.model.onnx_meta import graph_digest

    path = Path(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    digest_s, session_s = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        graph_digest(path.read_bytes())
        digest_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        session_s.append(time.perf_counter() - t)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine()) if Path("/proc/cpuinfo").exists() \
        else platform.machine()
    best_d, best_s = min(digest_s), min(session_s)
    print(f"{path.name} ({path.stat().st_size / 1e6:.1f} MB) on {cpu}: digest {best_d * 1e3:.1f} ms, "
          f"ONNX Runtime session {best_s * 1e3:.1f} ms (best of {rounds}); the check adds "
          f"{100 * best_d / best_s:.1f}% to the load")


if __name__ == "__main__":
    main()
