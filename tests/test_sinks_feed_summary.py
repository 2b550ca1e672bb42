"""The summary and the server's viewer feed are sinks of the run (issue 18 item 4): the summary is written
after every other output is closed and says how they ended; viewers get a live stream's fresh results while
a slow consumer sink holds the run's consumer; no per-frame JSON record is built when no sink wants one."""

from __future__ import annotations

import json
import threading
import time

import cv2
import pytest
from mjpeg_server import MjpegServer
from tinymodel import bright_square_frame, make_tiny_model

from uolrps.core.checked_io import OutputError
from uolrps.runtime import RunConfig, run
from uolrps.runtime import recording
from uolrps.runtime.result import LocalizationResult
from uolrps.runtime.sink import Sink


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("m") / "tiny.onnx")


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(6):
        cv2.imwrite(str(d / f"{i}.png"), bright_square_frame(120, 160, (10 + 8 * i, 20, 60 + 8 * i, 70)))
    return d


class _FakeServer:
    url = "http://127.0.0.1:0/"

    def close(self):
        pass


def serve_with(control, **_):
    return _FakeServer()


def quiet(*_):
    pass


def close_when_ended(engine, server):
    """A served run goes on after its streams end (the server stays up): end it once they have."""
    def wait():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(s.state == "ended" for s in engine.statuses()):
            time.sleep(0.02)
        engine.close()

    threading.Thread(target=wait, daemon=True).start()


# ---- no per-frame record when no sink wants it ------------------------------------------------------------
def test_no_json_record_is_built_unless_a_sink_wants_one(model, folder, tmp_path, monkeypatch):
    calls = []
    real = LocalizationResult.to_record

    def counted(self, *a, **k):
        calls.append(self.frame_index)
        return real(self, *a, **k)

    monkeypatch.setattr(LocalizationResult, "to_record", counted)
    stats = run(RunConfig(source=str(folder), model=model, progress=False), say=quiet)
    assert stats.frames == 6 and calls == []  # nothing asked for a record
    run(RunConfig(source=str(folder), model=model, progress=False, serve="0"), say=quiet, serve_with=serve_with,
        on_start=close_when_ended)
    assert calls == []  # a viewer feed keeps references; a record is made only when a viewer reads one
    run(RunConfig(source=str(folder), model=model, progress=False, jsonl=tmp_path / "r.jsonl"), say=quiet)
    assert sorted(calls) == list(range(6))  # the JSONL sink: one record per result


# ---- the summary ------------------------------------------------------------------------------------------
class _FailingSink(Sink):
    """Checks that the summary is not there yet when it is closed, then fails like a full disk."""

    seen_summary_at_close: list[bool] = []

    @classmethod
    def create(cls, config, annotator, labels, single):
        return cls(config.summary_json)

    def __init__(self, path):
        self.path = path

    def close(self):
        _FailingSink.seen_summary_at_close.append(self.path.exists())
        raise OutputError("test-sink 'x': the disk is full; 3 lines kept")


def test_the_summary_is_written_last_and_tells_how_the_other_outputs_ended(model, folder, tmp_path, monkeypatch):
    summary = tmp_path / "s.json"
    stats = run(RunConfig(source=str(folder), model=model, progress=False, summary_json=summary), say=quiet)
    got = json.loads(summary.read_text())
    assert got["frames"] == stats.frames == 6 and got["interrupted"] is False and "output_error" not in got
    assert got == json.loads(json.dumps(stats.summary()))  # the returned statistics, as they ended
    monkeypatch.setattr(recording, "SINKS", [_FailingSink] + recording.SINKS)
    _FailingSink.seen_summary_at_close = []
    summary.unlink()
    stats = run(RunConfig(source=str(folder), model=model, progress=False, summary_json=summary), say=quiet)
    assert _FailingSink.seen_summary_at_close == [False]  # closed before the summary was written
    got = json.loads(summary.read_text())
    assert got["output_error"] == stats.output_error == "test-sink 'x': the disk is full; 3 lines kept"


def test_a_summary_that_cannot_be_written_is_the_runs_output_error_and_leaves_the_old_file(model, folder, tmp_path,
                                                                                            monkeypatch):
    from uolrps.runtime import summary as summary_module

    target = tmp_path / "s.json"
    target.write_text("old")

    def full(path, write, name, size=None):
        raise OutputError(f"{name} {str(path)!r}: the disk is full; unchanged")

    monkeypatch.setattr(summary_module, "write_atomic", full)
    stats = run(RunConfig(source=str(folder), model=model, progress=False, summary_json=target), say=quiet)
    assert stats.output_error.startswith("--summary-json") and target.read_text() == "old"


# ---- the viewer feed ----------------------------------------------------------------------------------------
class _SlowSink(Sink):
    """A consumer sink that takes 0.25 s a result (a slow disk under --save)."""

    written: list[int] = []

    @classmethod
    def create(cls, config, annotator, labels, single):
        return cls()

    def write(self, name, image, result, fps):
        _SlowSink.written.append(result.frame_index)
        time.sleep(0.25)
        return True


def test_viewers_get_a_live_streams_fresh_results_while_a_slow_sink_holds_the_consumer(model, monkeypatch):
    monkeypatch.setattr(recording, "SINKS", recording.SINKS + [_SlowSink])
    _SlowSink.written = []
    camera = MjpegServer("normal", n=100000, period=0.03)
    seen: list[int] = []

    def watch(engine, server):
        def loop():
            seq, end = 0, time.monotonic() + 2.0
            name = engine.statuses()[0].name
            while time.monotonic() < end:
                got = engine.wait_latest(name, seq, 0.5)
                if got is not None:
                    seq = got.seq
                    seen.append(got.result.frame_index)
                    assert got.line["frame"] == got.result.frame_index  # made on demand, the JSONL record
            engine.close()  # ends the run

        threading.Thread(target=loop, daemon=True).start()

    try:
        run(RunConfig(source=camera.url, model=model, progress=False, serve="0"), say=quiet, serve_with=serve_with,
            on_start=watch)
    finally:
        camera.close()
    # the consumer wrote ~8 results in 2 s; viewers saw the stream's own pace (33 frames a second, fewer under
    # load), each newer than the last
    assert len(_SlowSink.written) <= 10 and len(seen) >= 3 * len(_SlowSink.written), (len(seen), _SlowSink.written)
    assert seen == sorted(set(seen))
