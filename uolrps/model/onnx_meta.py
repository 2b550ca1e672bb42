"""The uolrps metadata of an ONNX model, read and written in one place.

Reading: the metadata and the input shapes of an ONNX file, without the ``onnx`` package.

The ``[trt]`` extra (TensorRT + pycuda, what a Jetson has) does not install ``onnx``, so `uolrps build` and
an engine opened with ``--meta model.onnx`` read the metadata straight from the protobuf wire format:
ModelProto.metadata_props (field 14) and the graph's (field 7) inputs (11) less its initializers (5). Only
these fields are decoded; everything else (the weights) is skipped by length. Standard library only.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from uolrps.core.errors import UserError
from uolrps.model.meta import PREFIX, ModelMeta

# field numbers in onnx.proto3
MODEL_GRAPH, MODEL_METADATA = 7, 14
ENTRY_KEY, ENTRY_VALUE = 1, 2
GRAPH_INITIALIZER, GRAPH_INPUT = 5, 11
TENSOR_NAME = 8
VALUE_NAME, VALUE_TYPE = 1, 2
TYPE_TENSOR = 1
TENSOR_TYPE_ELEM, TENSOR_TYPE_SHAPE = 1, 2
SHAPE_DIM = 1
DIM_VALUE, DIM_PARAM = 1, 2


class WireError(ValueError):
    pass


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise WireError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def fields(buf) -> list[tuple[int, object]]:
    """(field number, value) of one protobuf message: ints for varints, memoryviews for bytes/messages."""
    buf = memoryview(buf)
    out, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, i = _varint(buf, i)
        elif kind == 1:
            value, i = buf[i:i + 8], i + 8
        elif kind == 2:
            n, i = _varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif kind == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise WireError(f"unsupported wire type {kind}")
        if i > len(buf) or number == 0:
            raise WireError("truncated or malformed message")
        out.append((number, value))
    return out


DIGEST_KEY = "uolrps_graph_sha256"  # outside the uolrps. prefix: ModelMeta never carries it over to another graph


def graph_digest(data) -> str:
    """SHA-256 of a serialized ModelProto without its metadata_props: the graph, its weights (initializers),
    opsets and producer, as the file holds them. Written into the metadata at export (``DIGEST_KEY``) and
    checked at load (:func:`check_digest`), so a damaged file, or uolrps metadata copied onto another graph,
    is one clear error instead of junk boxes. Weights in external data files are not covered."""
    buf = memoryview(data)
    h = hashlib.sha256()
    i = 0
    while i < len(buf):
        start = i
        key, i = _varint(buf, i)
        kind = key & 7
        if kind == 0:
            _, i = _varint(buf, i)
        elif kind == 1:
            i += 8
        elif kind == 2:
            n, i = _varint(buf, i)
            i += n
        elif kind == 5:
            i += 4
        else:
            raise WireError(f"unsupported wire type {kind}")
        if i > len(buf):
            raise WireError("truncated or malformed message")
        if key >> 3 != MODEL_METADATA:
            h.update(buf[start:i])
    return h.hexdigest()


def check_digest(data, props: dict[str, str], source: str) -> bool:
    """Raise UserError when ``props`` carries a digest that ``data`` does not match; False when there is
    none (a model exported before digests, or edited by another tool), True when it matches."""
    expected = props.get(DIGEST_KEY)
    if expected is None:
        return False
    try:
        actual = graph_digest(data)
    except WireError as e:
        raise UserError(f"{source} is not a readable ONNX file ({e})") from None
    if actual != expected:
        raise UserError(f"{source} is damaged or not the model its metadata was written for: its graph and "
                        f"weights do not match the digest written at export ({DIGEST_KEY}); export it again "
                        "(or copy it again from where it was exported)")
    return True


def _text(v) -> str:
    return bytes(v).decode("utf-8")


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _input_shape(value_info) -> tuple[str, tuple | None]:
    name, shape = "", None
    for num, v in fields(value_info):
        if num == VALUE_NAME:
            name = _text(v)
        elif num == VALUE_TYPE:
            for tnum, tv in fields(v):
                if tnum != TYPE_TENSOR:
                    continue
                for snum, sv in fields(tv):
                    if snum == TENSOR_TYPE_SHAPE:
                        dims = []
                        for dnum, dv in fields(sv):
                            if dnum == SHAPE_DIM:
                                d = dict(fields(dv))
                                size = _signed(d[DIM_VALUE]) if DIM_VALUE in d else None
                                dims.append(size if size is not None and size > 0 else None)
                        shape = tuple(dims)
    return name, shape


def read_onnx_header(data) -> tuple[dict[str, str], dict[str, tuple | None]]:
    """(metadata_props, {graph input name: shape}) of a serialized ONNX model; initializers are not inputs."""
    props: dict[str, str] = {}
    inputs: dict[str, tuple | None] = {}
    initializers: set[str] = set()
    for num, v in fields(data):
        if num == MODEL_METADATA:
            entry = dict(fields(v))
            props[_text(entry.get(ENTRY_KEY, b""))] = _text(entry.get(ENTRY_VALUE, b""))
        elif num == MODEL_GRAPH:
            for gnum, gv in fields(v):
                if gnum == GRAPH_INPUT:
                    name, shape = _input_shape(gv)
                    inputs[name] = shape
                elif gnum == GRAPH_INITIALIZER:
                    for tnum, tv in fields(gv):
                        if tnum == TENSOR_NAME:
                            initializers.add(_text(tv))
    return props, {k: s for k, s in inputs.items() if k not in initializers}


def read_onnx_meta(path: str | Path) -> tuple[ModelMeta, dict[str, tuple | None]]:
    """(uolrps metadata, {input name: shape}) of the ONNX file at ``path``; UserError when it has none."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"ONNX file {str(path)!r} does not exist")
    try:
        props, inputs = read_onnx_header(path.read_bytes())
    except (WireError, UnicodeDecodeError, KeyError) as e:
        raise UserError(f"{path} is not a readable ONNX file ({e})") from None
    except OSError as e:
        raise UserError(f"cannot read {path} ({e.strerror or e})") from None
    if not props:
        raise UserError(f"{path} carries no uolrps metadata: is it an ONNX file from `uolrps export`?")
    check_digest(path.read_bytes(), props, str(path))
    return ModelMeta.from_props(props, source=str(path)), inputs


# ---- writing (on an ``onnx.ModelProto`` in memory; the caller has the onnx package) --------------------------
def _put_props(model, props: dict[str, str]) -> None:
    """Replace ``model``'s metadata_props with ``props`` and the digest of its graph and weights
    (:func:`graph_digest`, checked at load); call it after every change to the graph and producer fields."""
    del model.metadata_props[:]
    digest = graph_digest(model.SerializeToString())
    for k, v in props.items():
        if k != DIGEST_KEY:
            model.metadata_props.add(key=k, value=v)
    model.metadata_props.add(key=DIGEST_KEY, value=digest)


def set_meta(model, meta: ModelMeta):
    """Put ``meta`` in ``model``'s metadata_props (replacing what was there) with the digest of the graph and
    its weights (checked at load); returns ``model``. Call it last, after every change to the graph."""
    from uolrps import __version__

    model.producer_name, model.producer_version = "uolrps", __version__
    _put_props(model, meta.to_props())
    return model


def update_meta(model, **changes):
    """Rewrite only the uolrps props named in ``changes`` (JSON-encoded, like ``ModelMeta.to_props``), keeping
    every other prop as it is; returns ``model``."""
    import json

    props = {q.key: q.value for q in model.metadata_props}
    for key, value in changes.items():
        props[PREFIX + key] = json.dumps(value)
    _put_props(model, props)
    return model
