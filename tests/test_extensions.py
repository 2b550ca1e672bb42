"""Each extension point takes a new kind without an edit to the package: the test registers a small kind of
its own (tests/extension_kinds.py) and runs it end to end, its answer checked against what the built-in
kinds give on the same input (docs/ARCHITECTURE.md, the table "to add ...")."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from evaldata import make_scenes, write_csv
from extension_kinds import (NumpyBackend, detect_tsv, nearest_placement, open_square, recognise_square,
                             square_box, write_numpy_model)
from tinymodel import bright_square_frame, make_tiny_model, tiny_meta

from uolrps.core.errors import NotAllowedError, UserError
from uolrps.runtime import Localizer, RunConfig, run
from uolrps.runtime import source_kinds
from uolrps.runtime.backends import BACKENDS, BackendEntry, ModelOptions
from uolrps.runtime.sources import parse_source


@pytest.fixture
def numpy_backend(monkeypatch):
    monkeypatch.setitem(BACKENDS, "numpy", BackendEntry("numpy", (".npjson",), "extension_kinds:NumpyBackend",
                                                        ("numpy",), "numpy", options=("scale",), what="numpy test"))
    NumpyBackend.calls = []
    return NumpyBackend


@pytest.fixture
def square_kind():
    kind = source_kinds.register(source_kinds.SourceKind(
        "square", live=False, recognise=recognise_square, open=open_square, stream_name=lambda spec: "square",
        forms="square:N (test frames)", forms_rank=50))
    yield kind
    source_kinds.unregister("square")


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---- a backend --------------------------------------------------------------------------------------------
def test_a_registered_backend_runs_end_to_end_like_the_onnx_model(tmp_path, numpy_backend):
    onnx_model = make_tiny_model(tmp_path / "m.onnx")
    np_model = write_numpy_model(tmp_path / "m.npjson", tiny_meta(), fixed_batch=2)
    frames = [bright_square_frame(120, 160, (10 + 9 * i, 20, 60 + 9 * i, 70)) for i in range(5)]
    with Localizer(onnx_model) as ref, Localizer(np_model) as loc:  # backend "auto": the suffix picks it
        assert type(loc.backend) is numpy_backend and loc.max_batch == 2
        np.testing.assert_allclose(loc.heatmaps(frames, batch_size=3), ref.heatmaps(frames), atol=1e-5)
        # the base class chunked 3 + 2 frames to the fixed batch of 2, padding the odd ones
        assert numpy_backend.calls == [2, 2, 2] and len(loc.heatmaps([])) == 0
    folder = tmp_path / "frames"
    folder.mkdir()
    import cv2

    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i}.png"), f)
    for model in (onnx_model, np_model):
        run(RunConfig(source=str(folder), model=model, jsonl=tmp_path / f"{model.suffix[1:]}.jsonl", progress=False),
            say=lambda *_: None)
    got, want = _jsonl(tmp_path / "npjson.jsonl"), _jsonl(tmp_path / "onnx.jsonl")
    assert len(got) == 5 and [r["boxes"] for r in got] == [r["boxes"] for r in want]
    with Localizer(np_model, options=ModelOptions(extra={"scale": 2.0})) as loc:  # its own option, through ModelOptions
        assert loc.backend.scale == 2.0
    with pytest.raises(UserError, match="threads does not apply to the numpy backend"):
        Localizer(np_model, threads=2)


# ---- a source kind ----------------------------------------------------------------------------------------
def test_a_registered_source_kind_runs_end_to_end(tmp_path, square_kind):
    model = make_tiny_model(tmp_path / "m.onnx")
    assert parse_source("square:6").kind == "square"
    with pytest.raises(UserError, match=r"square:N \(test frames\)"):  # listed among the forms
        parse_source("nothing-here")
    out = tmp_path / "r.jsonl"
    stats = run(RunConfig(source="square:6", model=model, jsonl=out, progress=False), say=lambda *_: None)
    rows = _jsonl(out)
    assert len(rows) == 6 and {r["stream"] for r in rows} == {"square"}
    for r in rows:  # the model finds the square each frame drew (IoU against the drawn box)
        (x1, y1, x2, y2), (a1, b1, a2, b2) = r["boxes"][0], square_box(r["frame"])
        inter = max(0, min(x2, a2) - max(x1, a1) + 1) * max(0, min(y2, b2) - max(y1, b1) + 1)
        union = (x2 - x1 + 1) * (y2 - y1 + 1) + (a2 - a1 + 1) * (b2 - b1 + 1) - inter
        assert inter / union > 0.5, (r["frame"], r["boxes"][0])
    assert stats is not None



def test_a_registered_source_kind_is_closed_to_the_api_unless_it_says_what_opens_it(square_kind):
    from uolrps.runtime.source_policy import parse_allow

    with pytest.raises(NotAllowedError, match="not a square source"):  # declared nothing: never from the API
        parse_allow("camera").admit("square:3")
    seen = []
    source_kinds.register(replace(square_kind, remote="camera", admit=lambda spec, folder: seen.append(spec.target)))
    assert parse_allow("camera").admit("square:3").kind == "square" and seen == [3]  # its own check ran
    with pytest.raises(NotAllowedError, match="serve_allow"):
        parse_allow("").admit("square:4")
    assert seen == [3]

# ---- a data set format ------------------------------------------------------------------------------------
def test_a_registered_dataset_format_evaluates_like_the_csv_loader(tmp_path, monkeypatch):
    from uolrps.eval import formats
    from uolrps.eval.evaluate import evaluate

    monkeypatch.setitem(formats.FORMATS, "tsv", formats.DatasetFormat("tsv", "extension_kinds:load_tsv", detect_tsv))
    model = make_tiny_model(tmp_path / "m.onnx")
    root = write_csv(tmp_path / "ds", make_scenes(6), extra_column=False)
    lines = [line.split(",") for line in (root / "boxes.csv").read_text().splitlines()[1:]]
    (root / "images" / "boxes.tsv").write_text("\n".join("\t".join(cells) for cells in lines) + "\n")
    by_tsv = evaluate(root / "images" / "boxes.tsv", model)  # fmt "auto": the format's own detect claims it
    by_csv = evaluate(root / "boxes.csv", model)
    assert by_tsv["format"] == "tsv" and by_tsv["found"].startswith("tab-separated boxes")
    assert by_tsv["n_images"] == by_csv["n_images"] == 6
    assert by_tsv["protocols"] == by_csv["protocols"]


# ---- a sink -----------------------------------------------------------------------------------------------
def test_a_registered_sink_gets_every_result(tmp_path, monkeypatch, square_kind):
    from extension_kinds import CsvSink

    from uolrps.runtime import recording

    monkeypatch.setattr(recording, "SINKS", recording.SINKS + [CsvSink])
    CsvSink.opened = []
    model = make_tiny_model(tmp_path / "m.onnx")
    run(RunConfig(source="square:5", model=model, jsonl=tmp_path / "r.jsonl", progress=False), say=lambda *_: None)
    rows = _jsonl(tmp_path / "r.jsonl")  # the built-in JSONL sink, for reference
    want = [",".join(["square", str(r["frame"])] + [str(int(v)) for v in r["boxes"][0]]) for r in rows]
    assert (tmp_path / "r.csv").read_text().splitlines() == want and CsvSink.opened == ["square"]


# ---- an event publisher -----------------------------------------------------------------------------------
def test_a_registered_event_publisher_gets_the_events_of_the_tracks(tmp_path, monkeypatch, square_kind):
    """A publisher registered in PUBLISHERS turns the run's event sink on (tracking with it) and receives one
    square's start and end, whose track id is the one the JSONL gives its boxes, and the stream's states."""
    pytest.importorskip("trackers", reason="events are made from tracks: the trackers library (uolrps[track])")
    from extension_kinds import ListPublisher

    from uolrps.runtime.events import registry

    monkeypatch.setattr(registry, "PUBLISHERS", registry.PUBLISHERS + [ListPublisher])
    ListPublisher.made = []
    model = make_tiny_model(tmp_path / "m.onnx")
    stats = run(RunConfig(source="square:12", model=model, jsonl=tmp_path / "r.events.jsonl", progress=False),
                say=lambda *_: None)
    rows = _jsonl(tmp_path / "r.events.jsonl")
    ids = {i for r in rows for i in r["ids"] if i >= 0}
    pub = ListPublisher.made[-1]  # (the sink's check asks create too: whether any publisher is wanted)
    assert len(ids) == 1 and pub.added == ["square"] and pub.closed
    assert [(e["type"], e["track"]) for e in pub.events] == [("start", *ids), ("end", *ids)]
    assert pub.states[0]["present"] is False and pub.states[-1] == {**pub.states[-1], "present": False, "count": 0}
    assert any(s["present"] and s["count"] == 1 for s in pub.states)
    assert stats.summary()["events"]["list"]["sent"] == 2


# ---- a map placement --------------------------------------------------------------------------------------
def test_a_registered_placement_places_the_maps_of_run_and_eval(tmp_path, monkeypatch):
    """A placement registered in PLACEMENTS is one a model's metadata may name, Localizer, run and eval use;
    its boxes are worked out here from the 8 x 8 map itself (nearest neighbour: each cell a 20 x 15 block of
    the 160 x 120 frame), not by the package's code."""
    import cv2
    import onnx

    from uolrps.core import boxes
    from uolrps.eval.evaluate import evaluate
    from uolrps.model.onnx_meta import update_meta

    monkeypatch.setitem(boxes.PLACEMENTS, "nearest", nearest_placement)
    path = make_tiny_model(tmp_path / "m.onnx")
    onnx.save(update_meta(onnx.load(str(path)), upsample="nearest"), str(path))  # the model names it
    frames = [bright_square_frame(120, 160, (30 + 11 * i, 25, 95 + 11 * i, 80)) for i in range(4)]
    folder = tmp_path / "frames"
    folder.mkdir()
    with Localizer(path) as loc:
        assert loc.upsample == "nearest"
        for i, f in enumerate(frames):
            cv2.imwrite(str(folder / f"{i}.png"), f)
            m8 = (loc.heatmaps([f])[0, 0] * 255).astype(np.uint8)  # 8 x 8; the blocks keep these values
            cells = (m8 > int(loc.threshold * int(m8.max()))).astype(np.uint8)
            assert cv2.connectedComponents(cells, connectivity=8)[0] == 2  # one region: its box is the answer
            rows, cols = np.nonzero(cells)
            want = [cols.min() * 20, rows.min() * 15, min((cols.max() + 1) * 20, 159), min((rows.max() + 1) * 15, 119)]
            assert loc(f).boxes[0].tolist() == want
    run(RunConfig(source=str(folder), model=path, jsonl=tmp_path / "r.jsonl", progress=False), say=lambda *_: None)
    run(RunConfig(source=str(folder), model=path, jsonl=tmp_path / "a.jsonl", upsample="authors", progress=False),
        say=lambda *_: None)
    with Localizer(path) as loc:
        assert [r["boxes"][0] for r in _jsonl(tmp_path / "r.jsonl")] == [loc(f).boxes[0].tolist() for f in frames]
    assert [r["boxes"] for r in _jsonl(tmp_path / "a.jsonl")] != [r["boxes"] for r in _jsonl(tmp_path / "r.jsonl")]
    root = write_csv(tmp_path / "ds", make_scenes(4), extra_column=False)
    assert evaluate(root / "boxes.csv", path, protocol="authors")["upsample"] == "nearest"


# ---- an export variant --------------------------------------------------------------------------------------
def _rounded_to_fp16(build):
    """The test's variant: the FP32 graph with every float weight rounded to the nearest FP16 value (kept
    FP32), as a look at what FP16 weights alone cost."""
    import onnx
    from onnx import numpy_helper

    from uolrps.model.onnx_meta import set_meta

    model = onnx.ModelProto()
    model.CopyFrom(build.made["fp32"])
    for t in model.graph.initializer:
        if t.data_type == onnx.TensorProto.FLOAT:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16).astype(np.float32), t.name))
    set_meta(model, build.meta.replace(precision="fp32", extra={**build.meta.extra, "weights": "rounded to fp16"}))
    return model


@pytest.mark.slow
def test_a_registered_export_variant_is_made_gated_and_written_with_the_others(tmp_path):
    import onnx
    from onnx import numpy_helper

    from uolrps.export import variants
    from uolrps.export.onnx_export import export_model
    from uolrps.export.verify import gate_twin
    from uolrps.model.files import ModelFiles, Variant
    from uolrps.model.onnx_meta import read_onnx_meta

    def gate(build, model):
        return gate_twin(build.made["fp32"].SerializeToString(), model.SerializeToString(), build.images,
                         label="fp16-rounded twin")

    def refuse(build, model):
        raise UserError("fp16-rounded twin: refused by the test's gate")

    out = tmp_path / "model.onnx"
    variants.register(variants.Twin("fp16w", "output (FP16-rounded twin)", None, _rounded_to_fp16, gate),
                      Variant("fp16w", ".fp16w"))
    try:
        res = export_model("efflite0", out, size=64, progress=False, log=lambda m: None, variants=("fp16w",))
        twin = tmp_path / "model.fp16w.onnx"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model.fp16w.onnx", "model.onnx"]
        assert twin in ModelFiles.of(out).onnx_files() and set(res.variants) == {out, twin}
        assert res.variants[twin].share >= 0.95  # its gate's verdict
        ref, got = onnx.load(str(out)), onnx.load(str(twin))
        for a, b in zip(ref.graph.initializer, got.graph.initializer):  # rounded here, independently
            w = numpy_helper.to_array(a)
            want = w.astype(np.float16).astype(np.float32) if w.dtype == np.float32 else w
            np.testing.assert_array_equal(numpy_helper.to_array(b), want)
        meta = read_onnx_meta(twin)[0]  # its own metadata, its digest checked
        assert meta.input_size == read_onnx_meta(out)[0].input_size and meta.extra["weights"] == "rounded to fp16"
        with pytest.raises(UserError, match="variants: no variant 'nope'"):
            export_model("efflite0", tmp_path / "x.onnx", size=64, progress=False, log=lambda m: None,
                         variants=("nope",))
        variants.unregister("fp16w")  # the same variant with a gate that refuses: nothing is written
        variants.register(variants.Twin("fp16w", "output (FP16-rounded twin)", None, _rounded_to_fp16, refuse),
                          Variant("fp16w", ".fp16w"))
        other = tmp_path / "other" / "model.onnx"
        with pytest.raises(UserError, match="refused by the test's gate"):
            export_model("efflite0", other, size=64, progress=False, log=lambda m: None, variants=("fp16w",))
        assert not other.parent.exists() or list(other.parent.iterdir()) == []
    finally:
        variants.unregister("fp16w")
