"""Export gates: NaN fails verification, the FP16 twin is gated against the FP32 graph in ONNX Runtime, and
a failed gate writes nothing. Real ONNX graphs (the tiny model, a real efflite0 export) in ONNX Runtime."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

from tinymodel import bright_square_frame, make_tiny_model  # noqa: E402
from uolrps.core.errors import UserError  # noqa: E402
from uolrps.export.verify import MIN_GATE_IMAGES, VerifyReport, gate_twin  # noqa: E402


def _images(n=MIN_GATE_IMAGES, seed=0, size=64):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x1, y1 = int(rng.integers(0, size - 24)), int(rng.integers(0, size - 24))
        bgr = bright_square_frame(size, size, (x1, y1, x1 + int(rng.integers(8, 22)), y1 + int(rng.integers(8, 22))))
        out.append(bgr[..., ::-1].copy())
    return out


def _rewire_output(model, make_nodes, extra_init=()):
    """Rename the graph's 'heatmap' output to 'raw' and append ``make_nodes('raw') -> 'heatmap'``."""
    for node in model.graph.node:
        node.output[:] = ["raw" if o == "heatmap" else o for o in node.output]
    model.graph.node.extend(make_nodes("raw"))
    model.graph.initializer.extend(extra_init)
    return model


def _inverted(path, out):
    """A 'twin' whose heatmap is 1 - the original: its boxes land elsewhere."""
    m = _rewire_output(onnx.load(str(path)), lambda raw: [helper.make_node("Sub", ["one", raw], ["heatmap"])],
                       [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])])
    onnx.save(m, str(out))
    return out


def _nan_times(path, out):
    m = _rewire_output(onnx.load(str(path)), lambda raw: [helper.make_node("Mul", [raw, "nan"], ["heatmap"])],
                       [helper.make_tensor("nan", TensorProto.FLOAT, [], [float("nan")])])
    onnx.save(m, str(out))
    return out


def test_twin_identical_to_reference_passes(tmp_path):
    ref = make_tiny_model(tmp_path / "m.onnx")
    report = gate_twin(ref, ref, _images(), min_iou=0.9, min_share=0.95, label="fp16 twin")
    assert report.share == 1.0 and report.max_abs_diff == 0.0 and report.n_images == MIN_GATE_IMAGES


def test_twin_that_disagrees_fails_and_says_where(tmp_path):
    ref = make_tiny_model(tmp_path / "m.onnx")
    twin = _inverted(ref, tmp_path / "bad.onnx")
    with pytest.raises(UserError, match=r"fp16 twin gate failed: box IoU >= 0.9 .* on only \d+% of 32 images"):
        gate_twin(ref, twin, _images(), min_iou=0.9, min_share=0.95, label="fp16 twin")


def test_nan_twin_fails(tmp_path):
    ref = make_tiny_model(tmp_path / "m.onnx")
    with pytest.raises(UserError, match="non-finite heatmaps .* on 32 of 32 images"):
        gate_twin(ref, _nan_times(ref, tmp_path / "nan.onnx"), _images(), min_iou=0.9, min_share=0.95, label="int8 twin")


def test_too_few_images_for_a_share(tmp_path):
    ref = make_tiny_model(tmp_path / "m.onnx")
    with pytest.raises(UserError, match="at least 32 verification images"):
        gate_twin(ref, ref, _images(8), min_iou=0.9, min_share=0.95, label="fp16 twin")


def test_fixed_batch_models_and_other_image_sizes(tmp_path):
    ref = make_tiny_model(tmp_path / "s.onnx", dynamic_batch=False, batch=3)  # 32 = 3 * 10 + 2, padded
    report = gate_twin(ref, ref, _images(size=96), min_iou=0.9, min_share=0.95, label="t")
    assert report.n_images == 32 and report.share == 1.0


def test_nan_never_passes_the_tolerance():
    assert not VerifyReport(float("nan"), [1.0]).within(1e-3)
    assert not VerifyReport(0.0, [1.0], nonfinite=1).within(1e-3)
    assert VerifyReport(5e-4, [1.0]).within(1e-3) and not VerifyReport(2e-3, [1.0]).within(1e-3)


def test_exporter_warnings_are_shown_except_the_known_harmless():
    from uolrps.export.onnx_export import exporter_warnings

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        warnings.warn("You are using the legacy TorchScript-based ONNX export. blah", DeprecationWarning)
        warnings.warn("Constant folding - Only steps=1 can be constant folded for opset >= 10", UserWarning)

        class TracerWarning(Warning):
            pass
        for _ in range(2):
            warnings.warn("Converting a tensor to a Python boolean might cause the trace to be incorrect.",
                          TracerWarning)
    lines = exporter_warnings(rec)
    assert lines == ["warning: torch.onnx.export: TracerWarning: Converting a tensor to a Python boolean might "
                     "cause the trace to be incorrect."]


# ---- the real export with a broken graph: nothing is written ----------------------------------------------
@pytest.fixture
def broken_export(monkeypatch, tmp_path):
    """export_model whose traced graph is corrupted by ``corrupt(model, half) -> model``."""
    import uolrps.export.onnx_export as ox

    real = ox.torch_to_onnx

    def run(corrupt, **kw):
        def traced(graph, *a, **k):
            return corrupt(real(graph, *a, **k), graph.half)
        monkeypatch.setattr(ox, "torch_to_onnx", traced)
        out = tmp_path / "model.onnx"
        out.write_bytes(b"the user's earlier model")
        lines: list[str] = []
        with pytest.raises(UserError) as e:
            ox.export_model("efflite0", out, size=64, fp16=True, progress=False, log=lines.append, **kw)
        assert out.read_bytes() == b"the user's earlier model"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no twin, no temporary file
        return str(e.value)
    return run


def _nan_model(model):
    return _rewire_output(model, lambda raw: [helper.make_node("Mul", [raw, "nan"], ["heatmap"])],
                          [helper.make_tensor("nan", TensorProto.FLOAT, [], [float("nan")])])


@pytest.mark.slow
def test_export_graph_giving_nan_fails_verification(broken_export):
    msg = broken_export(lambda m, half: _nan_model(m) if not half else m)
    assert "non-finite heatmaps" in msg and "nothing was written" in msg


@pytest.mark.slow
def test_export_fp16_twin_that_disagrees_writes_nothing(broken_export):
    def invert(m, half):
        if not half:
            return m
        return _rewire_output(m, lambda raw: [helper.make_node("Sub", ["one", raw], ["heatmap"])],
                              [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])])
    msg = broken_export(invert)
    assert msg.startswith("fp16 twin gate failed: box IoU >= 0.9") and "not written" in msg
