"""The HTTP server's JSON API, token rules, errors and metrics: a real server on loopback over a real run."""

from __future__ import annotations

import socket
import time

import pytest

pytest.importorskip("fastapi", reason="the [serve] extra (fastapi, uvicorn, prometheus-client) is not installed")
pytest.importorskip("uvicorn", reason="the [serve] extra (fastapi, uvicorn, prometheus-client) is not installed")

from serve_client import request, wait_for  # noqa: E402
from serve_control import SyntheticRun, pattern_box  # noqa: E402

from uolrps.core.errors import UserError  # noqa: E402
from uolrps.serve import TOKEN_ENV, start_server  # noqa: E402

A = "pattern:320x240@30/80x60"
B = "pattern:320x240@30/120x90"


@pytest.fixture
def run():
    r = SyntheticRun()
    r.add_stream(A, "a")
    r.add_stream(B, "b")
    yield r
    r.close()


@pytest.fixture
def served(run, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    handle = start_server(run, port=0)
    yield run, handle
    handle.close()


def frames_of(run, name):
    return next(st.frames for st in run.statuses() if st.name == name)


def test_streams_lists_every_stream_with_its_counters(served):
    run, h = served
    wait_for(lambda: frames_of(run, "a") > 2 and frames_of(run, "b") > 2)
    status, _, data = request(h.url, path="/api/streams")
    assert status == 200
    by_name = {s["name"]: s for s in data["streams"]}
    assert list(by_name) == ["a", "b"]
    assert by_name["a"]["source"] == A and by_name["b"]["source"] == B
    for s in by_name.values():
        assert s["state"] == "running"
        assert s["frames"] > 2
        assert set(s["drops"]) == {"capture", "infer", "output"}
        assert s["fps"] > 0 and s["latency_p50_ms"] is not None
    assert data["viewers"] == 0
    assert request(h.url, path="/healthz")[2] == {"status": "ok", "streams": 2}


def test_latest_is_the_jsonl_line_of_the_newest_result(served):
    run, h = served
    wait_for(lambda: run.latest("a") is not None)
    status, _, line = request(h.url, path="/api/streams/a/latest")
    assert status == 200
    assert line["stream"] == "a" and "latency_ms" in line
    assert line["boxes"] == [[float(v) for v in pattern_box(A, line["frame"])]]  # where the object was drawn
    assert line["frame"] <= run.latest("a").result.frame_index


def test_add_and_remove_a_stream_while_the_others_run(served):
    run, h = served
    status, headers, data = request(h.url, "POST", "/api/streams", {"name": "c", "source": A})
    assert status == 201 and data == {"name": "c", "source": A}
    assert headers["location"] == "/api/streams/c/latest"
    wait_for(lambda: request(h.url, path="/api/streams/c/latest")[0] == 200)
    names = [s["name"] for s in request(h.url, path="/api/streams")[2]["streams"]]
    assert names == ["a", "b", "c"]
    status, _, data = request(h.url, "POST", "/api/streams", {"source": B})  # a default name
    assert status == 201 and data["name"] not in ("a", "b", "c")
    before = frames_of(run, "a")
    assert request(h.url, "DELETE", "/api/streams/c")[:3:2] == (200, {"removed": "c"})
    names = [s["name"] for s in request(h.url, path="/api/streams")[2]["streams"]]
    assert "c" not in names and names[:2] == ["a", "b"]
    wait_for(lambda: frames_of(run, "a") > before + 3)  # the run went on


BAD = [  # (method, path, body, headers, status, words in the message)
    ("POST", "/api/streams", {"name": "x", "source": "ftp://nowhere/x"}, {}, 400, "unknown source form"),
    ("POST", "/api/streams", {"name": "a", "source": A}, {}, 409, "already exists"),
    ("POST", "/api/streams", b"{", {"Content-Type": "application/json"}, 400, "not valid JSON"),
    ("POST", "/api/streams", [A], {}, 400, "JSON object"),
    ("POST", "/api/streams", {"name": "x"}, {}, 400, "\"source\""),
    ("POST", "/api/streams", {"source": ""}, {}, 400, "\"source\""),
    ("POST", "/api/streams", {"name": 3, "source": A}, {}, 400, "\"name\""),
    ("POST", "/api/streams", {"source": A, "fps": 3}, {}, 400, "unknown field(s) fps"),
    ("POST", "/api/streams", b'{"source": "x"}', {"Content-Type": "text/plain"}, 415, "application/json"),
    ("DELETE", "/api/streams/nope", None, {}, 404, "no stream named 'nope' (streams: a, b)"),
    ("GET", "/api/streams/nope/latest", None, {}, 404, "no stream named 'nope'"),
    ("GET", "/streams/nope.mjpg", None, {}, 404, "no stream named 'nope'"),
    ("GET", "/streams/nope.jpg", None, {}, 404, "no stream named 'nope'"),
    ("GET", "/streams/a.mjpg?heatmap=maybe", None, {}, 400, "heatmap"),
    ("GET", "/no/such/page", None, {}, 404, "Not Found"),
    ("PUT", "/api/streams", None, {}, 405, "Method Not Allowed"),
]


def test_bad_requests_get_4xx_with_a_message_and_the_run_goes_on(served):
    run, h = served
    for method, path, body, headers, want, words in BAD:
        status, _, data = request(h.url, method, path, body, headers)
        assert status == want, (method, path, body, status, data)
        assert isinstance(data, dict) and words in data["error"], (method, path, data)
        assert "\n" not in data["error"]
    before = frames_of(run, "a")
    wait_for(lambda: frames_of(run, "a") > before + 3)
    assert [s.state for s in run.statuses()] == ["running", "running"]
    assert [s.name for s in run.statuses()] == ["a", "b"]


def test_a_stream_without_a_result_yet_answers_503(served):
    run, h = served
    assert request(h.url, "POST", "/api/streams", {"name": "idle", "source": "stall:"})[0] == 201
    status, headers, data = request(h.url, path="/api/streams/idle/latest")
    assert status == 503 and headers["retry-after"] == "1" and "no result yet" in data["error"]


def test_a_token_guards_adding_and_removing_but_not_watching(run, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with start_server(run, port=0, token="s3cret") as h:
        good = {"Authorization": "Bearer s3cret"}
        for headers in ({}, {"Authorization": "Bearer s3cre"}, {"Authorization": "Bearer s3cret2"},
                        {"Authorization": "s3cret"}, {"Authorization": "Basic s3cret"}):
            status, got, data = request(h.url, "POST", "/api/streams", {"name": "c", "source": A}, headers)
            assert status == 401 and got["www-authenticate"] == "Bearer", headers
            assert "Authorization: Bearer TOKEN" in data["error"]
            assert request(h.url, "DELETE", "/api/streams/a", None, headers)[0] == 401
        assert [s.name for s in run.statuses()] == ["a", "b"]  # nothing changed
        assert request(h.url, "POST", "/api/streams", {"name": "c", "source": A}, good)[0] == 201
        assert request(h.url, "DELETE", "/api/streams/c", None, good)[0] == 200
        assert request(h.url, "DELETE", "/api/streams/c", None, good)[0] == 404  # token first, then the name
        for path in ("/", "/api/streams", "/healthz", "/metrics"):
            assert request(h.url, path=path)[0] == 200, path
        wait_for(lambda: run.latest("a") is not None)
        assert request(h.url, path="/api/streams/a/latest")[0] == 200
        assert request(h.url, path="/streams/a.jpg")[0] == 200


def test_beyond_loopback_it_refuses_to_start_without_a_token(run, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(UserError, match="needs a token") as e:
        start_server(run, host="0.0.0.0", port=0)
    assert "\n" not in str(e.value) and TOKEN_ENV in str(e.value)
    with pytest.raises(UserError, match="empty"):
        start_server(run, host="0.0.0.0", port=0, token="  ")
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    with start_server(run, host="0.0.0.0", port=0) as h:
        assert h.token == "from-env"
        local = f"http://127.0.0.1:{h.port}"
        assert request(local, "POST", "/api/streams", {"source": A})[0] == 401
        assert request(local, "POST", "/api/streams", {"source": A},
                       {"Authorization": "Bearer from-env"})[0] == 201
        # beyond loopback every route but /healthz needs the token, reads included (tests/test_serve_safety.py)
        assert request(local, path="/api/streams")[0] == 401
        assert request(local, path="/api/streams", headers={"Authorization": "Bearer from-env"})[0] == 200
        assert request(local, path="/healthz")[0] == 200


def test_without_a_token_changes_come_only_from_a_loopback_host_name(served):
    run, h = served
    status, _, data = request(h.url, "POST", "/api/streams", {"name": "c", "source": A},
                              {"Host": f"attacker.example:{h.port}"})
    assert status == 403 and "loopback" in data["error"]
    assert request(h.url, "DELETE", "/api/streams/a", None, {"Host": "attacker.example"})[0] == 403
    assert [s.name for s in run.statuses()] == ["a", "b"]
    assert request(h.url, "DELETE", "/api/streams/b", None, {"Host": f"localhost:{h.port}"})[0] == 200


def test_a_port_in_use_is_one_line_error(run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"port {port} on 127.0.0.1 is already in use") as e:
            start_server(run, port=port)
        assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="cannot serve on"):
        start_server(run, host="no-such-host.invalid", port=0, token="t")
    with pytest.raises(UserError, match="0 to 65535"):
        start_server(run, port=70000)


def test_close_releases_the_port(run):
    h = start_server(run, port=0)
    port = h.port
    h.close()
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))  # raises if the server still held it


def test_metrics_are_prometheus_text_with_per_stream_counters(served):
    from prometheus_client.parser import text_string_to_metric_families

    run, h = served
    wait_for(lambda: frames_of(run, "a") > 2 and frames_of(run, "b") > 2)
    before = {st.name: st.frames for st in run.statuses()}
    status, headers, body = request(h.url, path="/metrics")
    after = {st.name: st.frames for st in run.statuses()}
    assert status == 200 and headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    for name in ("a", "b"):
        frames = samples[("uolrps_stream_frames_total", (("stream", name),))]
        assert before[name] <= frames <= after[name]
        for stage in ("capture", "infer", "output"):
            assert samples[("uolrps_stream_drops_total", (("stage", stage), ("stream", name)))] == 0
        assert samples[("uolrps_stream_state", (("state", "running"), ("stream", name)))] == 1
        assert samples[("uolrps_stream_state", (("state", "failed"), ("stream", name)))] == 0
        assert samples[("uolrps_stream_fps", (("stream", name),))] > 0
        p50 = samples[("uolrps_stream_latency_seconds", (("quantile", "0.5"), ("stream", name)))]
        p95 = samples[("uolrps_stream_latency_seconds", (("quantile", "0.95"), ("stream", name)))]
        assert 0 <= p50 <= p95 < 1
    assert samples[("uolrps_serve_viewers", ())] == 0


def test_importing_the_package_or_the_runtime_loads_no_web_library():
    import json
    import subprocess
    import sys

    code = ("import sys, json, uolrps.serve, uolrps.runtime, uolrps.runtime.control; "
            "print(json.dumps(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'prometheus_client', "
            "'uolrps.serve.server', 'uolrps.serve.app') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_without_the_serve_extra_the_error_names_it():
    import subprocess
    import sys

    code = ("import sys; sys.modules['uvicorn'] = None\n"  # as if uvicorn were not installed
            "from uolrps.core.errors import UserError\nfrom uolrps.serve import start_server\n"
            "try:\n    start_server(object(), port=0)\nexcept UserError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("the browser view needs the [serve] extra (uvicorn is missing): "
                                  "pip install 'uolrps[serve]'")
