"""The triton backend against a real Triton Inference Server (PyTriton's bundled tritonserver, on the CPU).

One server for the module serves the tiny model through the Python backend (ONNX Runtime inside Triton,
the same .onnx file the local runs use), next to entries that break the contract on purpose.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import ROOT, shared

pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed: pip install 'uolrps[triton]'")
pytest.importorskip("tritonclient.http", reason="tritonclient[http] is not installed: pip install 'uolrps[triton]'")

from tinymodel import make_tiny_model  # noqa: E402
from tritonserver import TritonServer, Unavailable, ensure_venv  # noqa: E402

from uolrps.cli.main import main  # noqa: E402
from uolrps.core.errors import UserError  # noqa: E402
from uolrps.export.triton.repo import RepoSettings, write_triton_repo  # noqa: E402
from uolrps.runtime.backends import load_backend  # noqa: E402

TOKEN = "test-token-123"
MODELS = ("tiny", "tiny_batched", "tiny4", "plain", "nchw")

# a model whose input is float32 NCHW, as a generic classifier's would be
NCHW_CONFIG = """name: "nchw"
backend: "python"
max_batch_size: 4
input [ { name: "input" data_type: TYPE_FP32 dims: [ 3, 64, 64 ] } ]
output [ { name: "heatmap" data_type: TYPE_FP32 dims: [ 1, 8, 8 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
"""
ZEROS_MODEL = """import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            n = pb_utils.get_input_tensor_by_name(r, "input").as_numpy().shape[0]
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("heatmap", np.zeros((n, 1, 8, 8), np.float32))]))
        return out
"""
BROKEN_MODEL = """class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError("this model cannot load")
"""


def _write_entry(repo: Path, name: str, config: str, model_py: str) -> None:
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "config.pbtxt").write_text(config)
    (repo / name / "1" / "model.py").write_text(model_py)


@pytest.fixture(scope="module")
def triton(tmp_path_factory):
    try:
        ensure_venv()
    except Unavailable as e:
        pytest.skip(f"no Triton server on this machine: {e}")
    root = tmp_path_factory.mktemp("triton")
    model = make_tiny_model(root / "tiny.onnx")
    repo = root / "repo"
    quiet = dict(log=lambda m: None)
    write_triton_repo(model, repo, RepoSettings(platform="python", queue_delay_us=500), **quiet)
    write_triton_repo(model, repo, RepoSettings(name="tiny_batched", platform="python", queue_delay_us=20000,
                                                preferred=(4,)), **quiet)
    write_triton_repo(make_tiny_model(root / "tiny4.onnx", dynamic_batch=False, batch=4), repo,
                      RepoSettings(platform="python"), **quiet)  # max_batch_size 0, dims [4, ...]
    write_triton_repo(model, repo, RepoSettings(name="plain", platform="python"), **quiet)
    plain = repo / "plain" / "config.pbtxt"  # the same model without its uolrps.* parameters
    plain.write_text(plain.read_text().split("parameters {")[0])
    _write_entry(repo, "nchw", NCHW_CONFIG, ZEROS_MODEL)
    _write_entry(repo, "broken", NCHW_CONFIG.replace('"nchw"', '"broken"'), BROKEN_MODEL)
    server = TritonServer(repo, root / "ws", token=TOKEN, models=MODELS)
    try:
        server.start()
    except Unavailable as e:
        pytest.skip(f"the Triton server did not start here: {e}")
    try:
        yield SimpleNamespace(server=server, model=model, root=root,
                              grpc=f"grpc://{server.grpc_url}", http=f"http://{server.http_url}")
    finally:
        server.stop()


def _jsonl_boxes(path: Path) -> list:
    return [json.loads(line)["boxes"] for line in path.read_text().splitlines()]


def _stats(server, model: str) -> dict:
    import tritonclient.grpc as g

    with g.InferenceServerClient(server.grpc_url) as c:
        s = c.get_inference_statistics(model, headers=server.headers("grpc"), as_json=True)["model_stats"][0]
    return {"requests": int(s["inference_stats"]["success"].get("count", 0)),
            "images": int(s.get("inference_count", 0)), "executions": int(s.get("execution_count", 0))}


# ---- acceptance: the same boxes as the local ONNX Runtime run -------------------------------------------
@pytest.mark.slow
def test_run_over_grpc_writes_the_same_boxes_as_local_onnxruntime(triton, tmp_path):
    video = shared("video", "raccoon_pan.mp4")
    local, remote = tmp_path / "ort.jsonl", tmp_path / "triton.jsonl"
    frames = ["--max-frames", "300"]
    assert main(["run", "--video", str(video), "--model", str(triton.model), "--jsonl", str(local), "-q", *frames]) == 0
    assert main(["run", "--video", str(video), "--backend", "triton", "--model", f"{triton.grpc}/tiny",
                 "--jsonl", str(remote), "-q", *frames]) == 0
    a, b = _jsonl_boxes(local), _jsonl_boxes(remote)
    assert len(a) == len(b) == 300
    assert len({json.dumps(x) for x in a}) > 10  # the boxes move with the camera pan
    assert a == b


def test_http_heatmaps_equal_onnxruntime_on_batches_larger_than_max_batch(triton):
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (27, 64, 64, 3), dtype=np.uint8)  # max_batch_size is 8: four requests at once
    with load_backend(triton.model) as ort, load_backend(f"{triton.http}/tiny") as remote:
        assert remote.meta == ort.meta  # read from the server's config parameters
        assert remote.max_batch_size == 8 and remote.input_spec.shape == (None, 64, 64, 3)
        np.testing.assert_allclose(remote(batch), ort(batch), rtol=0, atol=1e-6)
        assert remote(batch[:0]).shape == (0, 1, 8, 8)
        with pytest.raises(ValueError, match="must be uint8"):
            remote(batch.astype(np.float32))
        with pytest.raises(ValueError, match=r"must have shape \(N, 64, 64, 3\)"):
            remote(batch[:, :32])
        with load_backend(f"{triton.grpc}/tiny4") as four:  # a fixed batch of 4: padded requests of exactly 4
            assert four.max_batch_size == 0 and four.input_spec.shape == (4, 64, 64, 3)
            np.testing.assert_allclose(four(batch[:6]), ort(batch[:6]), rtol=0, atol=1e-6)
            np.testing.assert_allclose(four(batch[:1]), ort(batch[:1]), rtol=0, atol=1e-6)
    from uolrps.runtime import Localizer

    with Localizer(f"{triton.http}/tiny") as loc:  # the multi-stream engine batches up to the server's max
        assert loc.max_batch == 8


# ---- acceptance: four clients, one frame per request, batched by the server -----------------------------
@pytest.mark.slow
def test_four_run_processes_are_batched_by_the_server(triton, tmp_path):
    video = shared("video", "raccoon_pan.mp4")
    before = _stats(triton.server, "tiny_batched")
    argv = [sys.executable, "-m", "uolrps.cli.main", "run", "--video", str(video), "--max-frames", "150",
            "--model", f"{triton.grpc}/tiny_batched", "-q"]
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(4)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [o[1][-300:] for o in outs]
    after = _stats(triton.server, "tiny_batched")
    requests = after["requests"] - before["requests"]
    images = after["images"] - before["images"]
    executions = after["executions"] - before["executions"]
    assert requests == images == 4 * 150  # each client sent one frame per request
    assert images / executions > 1.0, f"{images} images in {executions} executions: the server did not batch"
    print(f"4 clients: {requests} requests of one image, {executions} executions, server batch {images / executions:.2f}")
    # the Prometheus endpoint (docs/triton.md) carries the same counters
    import urllib.request

    text = urllib.request.urlopen(triton.server.metrics_url, timeout=10).read().decode()
    series = {line.split("{")[0]: float(line.split()[-1]) for line in text.splitlines()
              if line.startswith("nv_inference_") and 'model="tiny_batched"' in line and "reason=" not in line}
    assert series["nv_inference_count"] == after["images"]
    assert series["nv_inference_exec_count"] == after["executions"]


@pytest.mark.slow
def test_one_run_process_keeps_several_requests_in_flight(triton, tmp_path):
    """One `uolrps run`, one stream: its inference stage keeps 4 requests in flight (the triton backend's
    default), so the server sees them together and batches them; the results still come out in frame order."""
    video = shared("video", "raccoon_pan.mp4")
    local, remote = tmp_path / "ort.jsonl", tmp_path / "triton.jsonl"
    frames = ["--max-frames", "120", "-q"]
    assert main(["run", "--video", str(video), "--model", str(triton.model), "--jsonl", str(local), *frames]) == 0
    before = _stats(triton.server, "tiny_batched")
    assert main(["run", "--video", str(video), "--model", f"{triton.grpc}/tiny_batched", "--jsonl", str(remote),
                 *frames]) == 0
    after = _stats(triton.server, "tiny_batched")
    requests, images = after["requests"] - before["requests"], after["images"] - before["images"]
    executions = after["executions"] - before["executions"]
    assert requests == images == 120  # one frame per request (one stream)
    assert images / executions > 1.5, f"{images} images in {executions} executions: one request at a time"
    lines = [json.loads(x) for x in remote.read_text().splitlines()]
    assert [x["frame"] for x in lines] == list(range(120))  # in order, whichever request came back first
    assert _jsonl_boxes(remote) == _jsonl_boxes(local)
    # --inflight 1: one request at a time, so the server has nothing to batch
    before = _stats(triton.server, "tiny_batched")
    assert main(["run", "--video", str(video), "--model", f"{triton.grpc}/tiny_batched", "--inflight", "1",
                 "--jsonl", str(remote), *frames[:2], "-q"]) == 0
    after = _stats(triton.server, "tiny_batched")
    assert after["executions"] - before["executions"] == after["images"] - before["images"] == 120


def test_statistics_need_the_access_token(triton):
    import tritonclient.grpc as g
    from tritonclient.utils import InferenceServerException

    with g.InferenceServerClient(triton.server.grpc_url) as c, pytest.raises(InferenceServerException):
        c.get_inference_statistics("tiny")


# ---- bad input: one line, exit 2 ---------------------------------------------------------------------------
@pytest.mark.parametrize("model, expected", [
    ("{grpc}/nope", "has no model 'nope' (it serves: broken, nchw, plain, tiny, tiny4, tiny_batched)"),
    ("{http}/nope", "has no model 'nope'"),
    ("{grpc}/nchw", "input 'input' is FP32 [-1, 3, 64, 64], but a uolrps model has one UINT8 input"),
    ("{http}/nchw", "input 'input' is FP32 [-1, 3, 64, 64], but a uolrps model has one UINT8 input"),
    ("{grpc}/plain", "has no uolrps.* parameters"),
    ("{grpc}/broken", "the model is not ready on the server (UNAVAILABLE"),
    ("grpc://127.0.0.1:{free}/tiny", "cannot reach the Triton server at grpc://127.0.0.1:"),
    ("http://127.0.0.1:{free}/tiny", "cannot reach the Triton server at http://127.0.0.1:"),
])
def test_bad_servers_and_models_are_one_line_errors(triton, tmp_path, capsys, model, expected):
    from tritonserver import free_port

    video = shared("video", "raccoon_pan.mp4")
    url = model.format(grpc=triton.grpc, http=triton.http, free=free_port())
    out = tmp_path / "out.jsonl"
    assert main(["run", "--video", str(video), "--model", url, "--jsonl", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    assert expected in err
    assert not out.exists()


# ---- a server that goes away mid-run -------------------------------------------------------------------------
@pytest.mark.slow
def test_a_run_outlives_a_server_restart_and_a_dead_server_ends_with_one_line(triton, tmp_path):
    import os
    import time

    video = shared("video", "raccoon_pan.mp4")
    repo = tmp_path / "repo"
    shutil.copytree(triton.server.repository / "tiny", repo / "tiny")
    own = TritonServer(repo, tmp_path / "ws", models=("tiny",)).start()
    again = TritonServer(repo, tmp_path / "ws2", ports=(own.http_port, own.grpc_port, own.metrics_port),
                         models=("tiny",))
    out, reference = tmp_path / "run.jsonl", tmp_path / "ort.jsonl"
    argv = [sys.executable, "-m", "uolrps.cli.main", "run", "--video", str(video), "--max-frames", "400", "-q"]
    try:
        run = subprocess.Popen([*argv, "--model", f"grpc://{own.grpc_url}/tiny", "--jsonl", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
        deadline = time.monotonic() + 60
        while (not out.exists() or len(out.read_text().splitlines()) < 20) and time.monotonic() < deadline:
            time.sleep(0.05)
        own.stop()  # mid-run: the backend retries with back-off while the server is down
        time.sleep(1.0)
        again.start()
        _, err = run.communicate(timeout=180)
        assert run.returncode == 0, err[-500:]
        assert "does not answer" in err and "answers again" in err
        assert main([*argv[3:], "--model", str(triton.model), "--jsonl", str(reference)]) == 0
        assert _jsonl_boxes(out) == _jsonl_boxes(reference)  # every frame, none lost or repeated
        with load_backend(f"grpc://{again.grpc_url}/tiny", retry_s=1.0) as b:
            again.stop()
            with pytest.raises(UserError, match=r"has not answered for 1 s .*is it still running\?"):
                b(np.zeros((1, 64, 64, 3), np.uint8))
    finally:
        own.stop()
        again.stop()


# ---- uolrps eval through the server ---------------------------------------------------------------------------
def test_eval_over_triton_gives_the_local_result(triton, tmp_path, capsys):
    from evaldata import make_scenes, write_csv

    csv = write_csv(tmp_path / "ds", make_scenes(6))
    local, remote = tmp_path / "ort.json", tmp_path / "triton.json"
    assert main(["eval", str(csv), "--model", str(triton.model), "--json", str(local), "-q"]) == 0
    assert main(["eval", str(csv), "--model", f"{triton.http}/tiny", "--json", str(remote), "-q"]) == 0
    a, b = json.loads(local.read_text()), json.loads(remote.read_text())
    assert a["n_images"] == b["n_images"] == 6
    for key in ("gt_known_loc", "gt_known_loc_threshold", "corloc", "threshold", "protocols"):
        assert key in a and a[key] == b[key], key


# ---- uolrps bench on a served model ---------------------------------------------------------------------------
def test_bench_measures_a_served_model(triton, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", f"{triton.grpc}/tiny", "--batch", "1,4", "--warmup", "2", "--iters", "5",
                 "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["backend"], r["batch"]) for r in rows] == [("triton", 1), ("triton", 4)]
    assert all(r["label"] == f"{triton.grpc}/tiny triton" and r["infer"]["images_per_s"] > 0 for r in rows)


def test_which_failures_are_retried(triton):
    """Real exceptions of both clients: an unreachable server is retried, a refused request is not."""
    import tritonclient.grpc as g
    import tritonclient.http as h
    from tritonserver import free_port

    from uolrps.runtime.backends.triton import transient

    caught = []
    for lib in (g, h):
        dead = lib.InferenceServerClient(f"127.0.0.1:{free_port()}")
        with pytest.raises(Exception) as e:
            dead.is_server_live()
        caught.append(e.value)
    assert all(transient(e) for e in caught), [repr(e) for e in caught]
    x = np.zeros((1, 32, 32, 3), np.uint8)  # the model takes 64 x 64
    for lib, url in ((g, triton.server.grpc_url), (h, triton.server.http_url)):
        inp = lib.InferInput("image", list(x.shape), "UINT8")
        inp.set_data_from_numpy(x)
        with lib.InferenceServerClient(url) as c, pytest.raises(Exception) as e:
            c.infer("tiny", [inp])
        assert not transient(e.value), repr(e.value)
