"""The engine sidecar: round trip, checks against the running TensorRT and GPU, atomic metadata updates."""

from __future__ import annotations

import json
import os

import pytest

from tinymodel import tiny_meta
from uolrps.core.errors import UserError
from uolrps.model.sidecar import Sidecar, check_sidecar, read_sidecar, sidecar_differences, sidecar_path, update_sidecar_meta, write_sidecar
from uolrps.core.digest import sha256_file


def _sidecar(**kw) -> Sidecar:
    base = dict(tensorrt_version="10.3.0", gpu_name="Orin", compute_capability=(8, 7), meta=tiny_meta(),
                onnx_sha256="ab" * 32, onnx_file="model.fp16.onnx", engine_sha256="cd" * 32,
                build={"workspace_gib": 2.0, "profile": {"min": 1, "opt": 1, "max": 8}})
    base.update(kw)
    return Sidecar(**base)


def test_paths():
    assert sidecar_path("a/model.engine").as_posix() == "a/model.engine.json"
    assert sidecar_path("a/model.engine.json").as_posix() == "a/model.engine.json"


def test_round_trip(tmp_path):
    sc = _sidecar(meta=tiny_meta(threshold=0.3).replace(classes=("cat", "dog"), extra={"note": "x"}))
    path = write_sidecar(tmp_path / "model.engine", sc)
    assert path == tmp_path / "model.engine.json"
    data = json.loads(path.read_text())
    assert data["gpu"] == {"name": "Orin", "compute_capability": "8.7"}
    assert data["meta"]["uolrps.threshold"] == "0.3"  # the model metadata as ONNX metadata_props
    back = read_sidecar(tmp_path / "model.engine")
    assert back == sc
    assert back.meta.extra == {"note": "x"} and back.meta.classes == ("cat", "dog")


def test_missing_or_damaged_sidecar_says_how_to_rebuild(tmp_path):
    with pytest.raises(UserError, match=r"no sidecar model.engine.json .*uolrps build"):
        read_sidecar(tmp_path / "model.engine")
    (tmp_path / "model.engine.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        read_sidecar(tmp_path / "model.engine")
    (tmp_path / "model.engine.json").write_text(json.dumps({"format": 1, "gpu": {"name": "x"}}))
    with pytest.raises(UserError, match="incomplete or damaged"):
        read_sidecar(tmp_path / "model.engine")
    (tmp_path / "model.engine.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(UserError, match="not a uolrps engine sidecar"):
        read_sidecar(tmp_path / "model.engine")


@pytest.mark.parametrize("running, fatal, words", [
    (("10.3.0", "Orin", (8, 7)), [], []),
    (("10.3.0.30", "Orin", (8, 7)), ["tensorrt"], ["running 10.3.0.30"]),  # another build: engines differ
    (("10.3", "Orin", (8, 7)), [], []),  # 10.3 == 10.3.0 as versions, not as strings
    (("10.7.0", "Orin", (8, 7)), ["tensorrt"], ["TensorRT 10.3.0, running 10.7.0", "uolrps build model.fp16.onnx"]),
    (("10.3.0", "NVIDIA GeForce RTX 4090", (8, 9)), ["compute_capability"], ["compute capability 8.7", "8.9"]),
    (("10.3.0", "Jetson AGX Orin", (8, 7)), [], ["built on Orin, running on Jetson AGX Orin"]),
    (("11.4.1", "NVIDIA H100", "9.0"), ["tensorrt", "compute_capability"], ["running 11.4.1", "9.0 (NVIDIA H100)"]),
])
def test_differences(running, fatal, words):
    diffs = sidecar_differences(_sidecar(), *running)
    assert sorted(d.what for d in diffs if d.fatal) == sorted(fatal)
    text = " | ".join(str(d) for d in diffs)
    for w in words:
        assert w in text
    if fatal:
        with pytest.raises(UserError) as e:
            check_sidecar(_sidecar(), *running)
        assert "\n" not in str(e.value)
    else:
        assert check_sidecar(_sidecar(), *running) == [str(d) for d in diffs]


def test_engine_checksum_mismatch_is_fatal():
    assert check_sidecar(_sidecar(), "10.3.0", "Orin", (8, 7), engine_sha256="cd" * 32) == []
    with pytest.raises(UserError, match="not the one this sidecar describes"):
        check_sidecar(_sidecar(), "10.3.0", "Orin", (8, 7), engine_sha256="ee" * 32)


def test_update_meta_is_validated_and_atomic(tmp_path):
    engine = tmp_path / "model.engine"
    write_sidecar(engine, _sidecar())
    before = sidecar_path(engine).read_text()
    meta = update_sidecar_meta(engine, threshold=0.42, threshold_source="eval imagenet-loc")
    assert meta.threshold == 0.42
    back = read_sidecar(engine)
    assert back.meta.threshold == 0.42 and back.meta.threshold_source == "eval imagenet-loc"
    assert back.tensorrt_version == "10.3.0" and back.build["profile"]["max"] == 8  # the rest is kept
    after = sidecar_path(engine).read_text()
    with pytest.raises(UserError, match="threshold must be in"):
        update_sidecar_meta(engine, threshold=1.5)
    with pytest.raises(UserError, match="cannot change"):
        update_sidecar_meta(engine, no_such_field=1)
    assert sidecar_path(engine).read_text() == after != before  # refused changes leave the file untouched
    assert sorted(os.listdir(tmp_path)) == ["model.engine.json"]  # no temp files left behind


def test_sha256_file(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"abc")
    assert sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"



def test_fields_of_the_wrong_kind_are_user_errors(tmp_path):
    import json

    import pytest

    from uolrps.core.errors import UserError
    from uolrps.model.meta import ModelMeta
    from uolrps.model.sidecar import SIDECAR_FORMAT, read_sidecar

    good = ModelMeta(backbone="b", input_size=(32, 32), grid=(4, 4), mean=(0, 0, 0), std=(1, 1, 1)).to_props()
    p = tmp_path / "m.engine.json"
    for broken in ({"onnx": "x"}, {"meta": ["not", "a", "map"]}, {"meta": {**good, "uolrps.threshold": '"abc"'}}):
        p.write_text(json.dumps({"format": SIDECAR_FORMAT, "tensorrt_version": "10.3.0",
                                 "gpu": {"name": "g", "compute_capability": "8.7"}, "meta": good, **broken}))
        with pytest.raises(UserError, match="m.engine.json"):
            read_sidecar(p)
