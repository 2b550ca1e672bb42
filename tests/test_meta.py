"""Model metadata: what a newer uolrps wrote survives this version's read and rewrite."""

from __future__ import annotations

import json

import onnx

from tinymodel import make_tiny_model, tiny_meta
from uolrps.model.threshold import write_threshold
from uolrps.model.meta import PREFIX, ModelMeta
from uolrps.model.sidecar import Sidecar, read_sidecar, update_sidecar_meta, write_sidecar

# what a newer version might add: a field this version does not know, and its own entry in uolrps.extra
NEWER = {PREFIX + "calibration_drift": json.dumps({"cosine": 0.97, "n": 3000}),
         PREFIX + "anchor": json.dumps("centre")}


def _newer_props(meta: ModelMeta) -> dict:
    props = meta.to_props()
    props[PREFIX + "extra"] = json.dumps({"dilated": False, "note": "kept"})
    props.update(NEWER)
    return props


def test_unknown_keys_survive_a_read_and_rewrite():
    props = _newer_props(tiny_meta())
    meta = ModelMeta.from_props(props)
    assert meta.extra == {"dilated": False, "note": "kept", "calibration_drift": {"cosine": 0.97, "n": 3000},
                          "anchor": "centre"}
    again = meta.replace(threshold=0.25).to_props()
    for k, v in NEWER.items():
        assert again[k] == v  # under its own name, byte for byte
    assert json.loads(again[PREFIX + "extra"]) == {"dilated": False, "note": "kept"}
    assert json.loads(again[PREFIX + "threshold"]) == 0.25
    assert set(again) == set(props)


def test_unknown_keys_survive_write_threshold_on_onnx(tmp_path):
    path = make_tiny_model(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    for k, v in NEWER.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    write_threshold(path, 0.4, "test")
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert {k: props[k] for k in NEWER} == NEWER and json.loads(props[PREFIX + "threshold"]) == 0.4


def test_unknown_keys_survive_a_sidecar_threshold_update(tmp_path):
    meta = ModelMeta.from_props(_newer_props(tiny_meta()))
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"engine")
    write_sidecar(engine, Sidecar(tensorrt_version="10.3.0", gpu_name="Orin", compute_capability=(8, 7), meta=meta,
                                  onnx_sha256="ab" * 32, onnx_file="m.onnx", engine_sha256="cd" * 32, build={}))
    update_sidecar_meta(engine, threshold=0.3)
    on_disk = json.loads((tmp_path / "m.engine.json").read_text())["meta"]
    assert {k: on_disk[k] for k in NEWER} == NEWER
    back = read_sidecar(engine).meta
    assert back.threshold == 0.3 and back.extra["anchor"] == "centre" and back.extra["note"] == "kept"
