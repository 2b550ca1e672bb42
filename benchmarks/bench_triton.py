"""Benchmark of the triton backend against a local Triton server, beside local ONNX Runtime, in one run.

The same exported model runs (a) locally in ONNX Runtime (batch 1, one frame per call) and (b) in a Triton
server on this machine (PyTriton's bundled tritonserver, the model served by `uolrps triton-repo --platform
python`: ONNX Runtime inside Triton's Python backend), reached through `--backend triton` over gRPC by 1, 4
and 8 concurrent streams, each sending one frame per request as `uolrps run` does. For each: requests/s
(= frames/s), client-side latency p50/p95, and the server's average batch (images per model execution,
from its statistics). Frames are decoded and preprocessed beforehand, so only inference and the hop count.
(c) one single-stream `uolrps run` on the clip through the server, with one request in flight at a time
(`--inflight 1`) and with the triton default (4 in flight): end-to-end FPS and the server's average batch.

    python benchmarks/bench_triton.py [MODEL.onnx] [--video PATH] [--streams 1,4,8] [--seconds 8]
                                      [--protocol grpc|http] [--queue-delay-us 1000]

Without MODEL it exports efflite0 (dynamic batch, shipped w*) into a temporary folder (needs torch). The
server's venv is ~/.cache/uolrps-ci/triton-venv (created on first use, see tests/tritonserver.py).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # tests/tritonserver.py: the local server
VIDEO = ROOT.parent / "shared" / "data" / "video" / "raccoon_pan.mp4"


def frames(video: Path, meta, n: int) -> list[np.ndarray]:
    from uolrps.runtime.preprocess import preprocess
    from uolrps.runtime.sources import open_source

    out = []
    with open_source(str(video)) as src:
        for f in src:
            out.append(preprocess(f.image, meta))
            if len(out) >= n:
                break
    if not out:
        raise SystemExit(f"no frames from {video}")
    return out


def drive(backends: list, inputs: list[np.ndarray], seconds: float) -> dict:
    """Each backend in its own thread sends one frame per call for ``seconds``; rate and latencies."""
    lat: list[list[float]] = [[] for _ in backends]
    stop = time.perf_counter() + seconds
    errors: list[BaseException] = []

    def worker(i: int, b) -> None:
        k = i
        try:
            while time.perf_counter() < stop:
                x = inputs[k % len(inputs)][None]
                t0 = time.perf_counter()
                b(x)
                lat[i].append((time.perf_counter() - t0) * 1000.0)
                k += len(backends)
        except BaseException as e:  # noqa: BLE001 - reported after the join
            errors.append(e)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i, b)) for i, b in enumerate(backends)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    all_lat = np.array([v for per in lat for v in per])
    return {"requests": int(all_lat.size), "rate": all_lat.size / wall,
            "p50_ms": float(np.percentile(all_lat, 50)), "p95_ms": float(np.percentile(all_lat, 95))}


def one_run(url: str, video: Path, frames: int, inflight: int | None) -> dict:
    """(c): `uolrps run --video VIDEO --model URL [--inflight N]` for ``frames`` frames."""
    from uolrps.runtime.runner import RunConfig, run

    stats = run(RunConfig(source=str(video), model=url, max_frames=frames, progress=False, inflight=inflight),
                say=lambda text: None)
    return {"fps": stats.fps, "frames": stats.frames}


def average_batch(before: dict, after: dict) -> float:
    """Images per model execution on the server between two :func:`server_stats` readings (NaN: none ran)."""
    execs = after["executions"] - before["executions"]
    return (after["images"] - before["images"]) / execs if execs else float("nan")


def server_stats(server, name: str) -> dict:
    import tritonclient.grpc as g

    with g.InferenceServerClient(server.grpc_url) as c:
        s = c.get_inference_statistics(name, headers=server.headers("grpc"), as_json=True)["model_stats"][0]
    return {"images": int(s.get("inference_count", 0)), "executions": int(s.get("execution_count", 0))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", type=Path)
    ap.add_argument("--video", type=Path, default=VIDEO)
    ap.add_argument("--streams", default="1,4,8")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--frames", type=int, default=120, help="distinct frames cycled through")
    ap.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    ap.add_argument("--queue-delay-us", type=int, default=1000)
    ap.add_argument("--run-frames", type=int, default=300, help="(c): frames of the single-stream `uolrps run`")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)

    from tritonserver import TritonServer, ensure_venv

    from uolrps.export.triton.repo import RepoSettings, write_triton_repo
    from uolrps.runtime.backends import load_backend

    streams = [int(s) for s in args.streams.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-triton-") as tmp:
        tmp = Path(tmp)
        model = args.model
        if model is None:
            from uolrps.export.onnx_export import export_model

            model = tmp / "efflite0.onnx"
            print("exporting efflite0 (dynamic batch) ...", file=sys.stderr)
            export_model(backbone="efflite0", output=model, dynamic_batch=True, progress=False, log=lambda m: None)
        ensure_venv()
        mb = max(8, max(streams))
        write_triton_repo(model, tmp / "repo", RepoSettings(name="m", platform="python", max_batch=mb,
                                                            queue_delay_us=args.queue_delay_us), log=lambda m: None)
        results: dict = {"model": str(model), "protocol": args.protocol, "seconds": args.seconds,
                         "queue_delay_us": args.queue_delay_us, "max_batch_size": mb}
        with load_backend(model, "ort") as ort:
            inputs = frames(args.video, ort.meta, args.frames)
            ort(inputs[0][None])  # warm-up
            results["ort_local"] = drive([ort], inputs, args.seconds)
        with TritonServer(tmp / "repo", tmp / "ws", token="bench", models=("m",)) as server:
            url = f"{args.protocol}://{server.grpc_url if args.protocol == 'grpc' else server.http_url}/m"
            for s in streams:
                backends = [load_backend(url, "triton") for _ in range(s)]
                try:
                    for b in backends:
                        b(inputs[0][None])  # warm-up and connection
                    before = server_stats(server, "m")
                    r = drive(backends, inputs, args.seconds)
                    after = server_stats(server, "m")
                finally:
                    for b in backends:
                        b.close()
                r["avg_server_batch"] = average_batch(before, after)
                results[f"triton_{s}"] = r
            for inflight in (1, None):
                one_run(url, args.video, 20, inflight)  # warm-up
                before = server_stats(server, "m")
                r = one_run(url, args.video, args.run_frames, inflight)
                after = server_stats(server, "m")
                r["avg_server_batch"] = average_batch(before, after)
                results[f"run_inflight_{inflight or 'default'}"] = r
    ort_r = results["ort_local"]
    print(f"model {Path(results['model']).name}, {args.protocol}, {args.seconds:.0f} s each, "
          f"queue delay {args.queue_delay_us} us, max_batch_size {mb}")
    print(f"{'':<22}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'server batch':>14}{'vs local':>10}")
    print(f"{'local ONNX Runtime':<22}{ort_r['rate']:8.1f}{ort_r['p50_ms']:9.2f}{ort_r['p95_ms']:9.2f}"
          f"{'-':>14}{1.0:10.2f}")
    for s in streams:
        r = results[f"triton_{s}"]
        print(f"{f'triton, {s} stream(s)':<22}{r['rate']:8.1f}{r['p50_ms']:9.2f}{r['p95_ms']:9.2f}"
              f"{r['avg_server_batch']:14.2f}{r['rate'] / ort_r['rate']:10.2f}")
    for key, label in (("run_inflight_1", "--inflight 1"), ("run_inflight_default", "default (4 in flight)")):
        r = results[key]
        print(f"(c) one `uolrps run`, one stream, {label}: {r['fps']:.1f} FPS over {r['frames']} frames, server batch "
              f"{r['avg_server_batch']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
