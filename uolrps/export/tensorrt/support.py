"""Will TensorRT import this ONNX graph? Asked of TensorRT's own ONNX parser wherever a builder can be made.

The parser needs a network, the network a builder, the builder a visible GPU. Where all three can be
created, ``OnnxParser.supports_model_v2`` answers (with the parser's errors naming each refused node). Where
they cannot (no TensorRT, or no GPU: the export machine), the answer falls back to the operator list in
:mod:`uolrps.export.tensorrt.ops`, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from uolrps.core.errors import UserError
from uolrps.core.gpu import NULLPTR, trt_logger

LIST_CHECKER = "the TensorRT 10 operator list (no TensorRT builder on this machine)"


@dataclass(frozen=True)
class OpCheck:
    problems: list[str]  # one line per refused node or operator; empty when supported
    checker: str  # which answered: the parser of a TensorRT version, or the operator list


def _serialized(model_or_path) -> tuple[bytes, str | None]:
    if isinstance(model_or_path, (str, Path)):
        path = Path(model_or_path)
        if not path.is_file():
            raise UserError(f"ONNX file {str(path)!r} does not exist")
        return path.read_bytes(), str(path)
    if isinstance(model_or_path, (bytes, bytearray)):
        return bytes(model_or_path), None
    return model_or_path.SerializeToString(), None


def _describe(err) -> str:
    def call(name):
        f = getattr(err, name, None)
        try:
            return f() if callable(f) else None
        except Exception:  # noqa: BLE001 - a binding without this accessor
            return None
    op, node, desc = call("node_operator"), call("node_name"), call("desc")
    if op and desc:
        return f"{op} (node {node or call('node')}: {desc.splitlines()[0]})"
    return str(err).splitlines()[0]


def parser_problems(trt, model_or_path) -> list[str] | None:
    """What TensorRT's ONNX parser refuses in the model; None when no builder can be created here."""
    from uolrps.export.tensorrt.build import trt_api

    data, path = _serialized(model_or_path)
    logger = trt_logger(trt)
    try:
        builder = trt.Builder(logger)
    except TypeError as e:
        if NULLPTR in str(e):
            return None
        raise
    network = builder.create_network(trt_api(trt).network_flags(trt)) if builder is not None else None
    if network is None:
        return None
    parser = trt.OnnxParser(network, logger)
    ok = parser.supports_model_v2(data, path) if path else parser.supports_model_v2(data)
    problems = [_describe(parser.get_error(i)) for i in range(parser.num_errors)]
    if not ok and not problems:
        for i in range(parser.num_subgraphs):
            if not parser.is_subgraph_supported(i):
                problems.append(f"nodes {parser.get_subgraph_nodes(i)} (refused by the parser, no message)")
    return problems if not ok or problems else []


def op_check(model_or_path, trt=None, include_late: bool = False) -> OpCheck:
    """The parser's answer where a TensorRT builder can be created, else the operator list's."""
    if trt is None:
        try:
            import tensorrt as trt
        except ImportError:
            trt = None
    if trt is not None:
        problems = parser_problems(trt, model_or_path)
        if problems is not None:
            return OpCheck(problems, f"the ONNX parser of TensorRT {trt.__version__}")
    from uolrps.export.tensorrt.ops import unsupported_ops

    return OpCheck(unsupported_ops(model_or_path, include_late=include_late), LIST_CHECKER)


def check_tensorrt_support(model_or_path, source: str | None = None, trt=None, include_late: bool = False) -> OpCheck:
    """Raise :class:`UserError` naming everything TensorRT would refuse; returns the (passing) check."""
    check = op_check(model_or_path, trt=trt, include_late=include_late)
    if check.problems:
        where = source or (str(model_or_path) if isinstance(model_or_path, (str, Path)) else "the graph")
        raise UserError(f"{where} uses operators TensorRT cannot import (checked by {check.checker}): "
                        f"{'; '.join(check.problems)}. Change the export so these do not appear (see docs/tensorrt.md)")
    return check
