"""The twin gates judge boxes at the threshold the model stores (issue 19 item 6, found while recomputing the INT8
figures): `verify._threshold_of` read a ``threshold`` prop that uolrps never writes, so every gate used 0.5,
not efflite0's 0.4 (``uolrps.threshold``). Fails on e634ddc (0.5 for both models)."""

from __future__ import annotations

import pytest
from tinymodel import make_tiny_model

from uolrps.export.verify import _session, _threshold_of


@pytest.mark.parametrize("stored", [0.3, 0.4])
def test_the_gate_threshold_is_the_one_the_model_stores(tmp_path, stored):
    model = make_tiny_model(tmp_path / "m.onnx", threshold=stored)
    assert _threshold_of(_session(model)) == pytest.approx(stored)
