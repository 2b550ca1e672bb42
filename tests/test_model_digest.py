"""The model file carries a digest of its graph and weights (issue 19): written with the metadata at export,
checked at load, so a damaged file or uolrps metadata copied onto another graph is one line, not junk boxes."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest
from tinymodel import bright_square_frame, make_tiny_model, tiny_meta

from uolrps.core.errors import UserError
from uolrps.model.onnx_meta import DIGEST_KEY, graph_digest, read_onnx_meta

onnx = pytest.importorskip("onnx")


def stamped(path, **kw):
    """A tiny model whose metadata is written as the export writes it (set_meta: with the digest)."""
    from uolrps.model.onnx_meta import set_meta

    make_tiny_model(path, **kw)
    model = onnx.load(str(path))
    set_meta(model, tiny_meta())
    onnx.save(model, str(path))
    return path


def test_the_digest_is_the_sha256_of_every_field_but_the_metadata(tmp_path):
    path = stamped(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    del model.metadata_props[:]  # the same model without its metadata, serialized by protobuf itself
    assert props[DIGEST_KEY] == hashlib.sha256(model.SerializeToString()).hexdigest()
    assert graph_digest(path.read_bytes()) == props[DIGEST_KEY]


def test_a_stamped_model_loads_and_is_verified(tmp_path):
    from uolrps.runtime.localizer import Localizer

    path = stamped(tmp_path / "m.onnx")
    with Localizer(path) as loc:
        assert loc.backend.caps.verified is True
        assert loc(bright_square_frame()).boxes.shape == (1, 4)
    read_onnx_meta(path)  # build, triton and --meta read it without onnx: checked there too


def flip_a_weight_bit(path):
    data = bytearray(path.read_bytes())
    eps = np.float32(1e-6).tobytes()
    i = bytes(data).index(eps)
    data[i + 1] ^= 0x10  # one mantissa bit of the eps initializer
    path.write_bytes(bytes(data))


def test_a_bit_flipped_weight_is_one_line(tmp_path):
    from uolrps.runtime.localizer import Localizer

    path = stamped(tmp_path / "m.onnx")
    flip_a_weight_bit(path)
    with pytest.raises(UserError, match="damaged or not the model its metadata was written for"):
        Localizer(path)
    with pytest.raises(UserError, match="damaged"):
        read_onnx_meta(path)
    res = subprocess.run([sys.executable, "-m", "uolrps.cli.main", "run", "--video", "x.jpg", "--model", str(path)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_metadata_copied_onto_another_graph_is_one_line(tmp_path):
    from uolrps.runtime.localizer import Localizer

    good = onnx.load(str(stamped(tmp_path / "a.onnx")))
    other = onnx.load(str(make_tiny_model(tmp_path / "b.onnx", grid=(4, 4))))
    del other.metadata_props[:]
    for p in good.metadata_props:
        other.metadata_props.add(key=p.key, value=p.value)
    onnx.save(other, str(tmp_path / "b.onnx"))
    with pytest.raises(UserError, match="digest written at export"):
        Localizer(tmp_path / "b.onnx")


def test_a_model_without_a_digest_still_loads(tmp_path):
    from uolrps.runtime.localizer import Localizer

    with Localizer(make_tiny_model(tmp_path / "m.onnx")) as loc:  # exported before digests
        assert loc.backend.caps.verified is False


def test_writing_the_threshold_keeps_the_digest_valid(tmp_path):
    from uolrps.model.threshold import write_threshold
    from uolrps.runtime.localizer import Localizer

    path = stamped(tmp_path / "m.onnx")
    write_threshold(path, 0.37, "test")
    with Localizer(path) as loc:
        assert loc.backend.caps.verified is True and loc.threshold == pytest.approx(0.37)
