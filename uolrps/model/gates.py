"""The record of precision gates a model file passed: ``model.onnx`` -> ``model.onnx.gates.json`` beside it.

A reduced inference precision that a backend picks at load time (OpenVINO's bf16 or f16 hint), or a twin run on
an engine it was not gated on (the INT8 twin on OpenVINO), is used only for a model that passed the twin gate
on that backend, device and precision (:mod:`uolrps.eval.precision_gate` runs it). Only a passing gate is
written; each entry carries the SHA-256 of the model file(s) it was measured on, so an entry of a file that
changed since no longer counts. This module only reads and writes the record; nothing heavy is imported.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from uolrps.core.digest import sha256_file
from uolrps.core.errors import UserError

FORMAT = 1


@dataclass(frozen=True)
class GateEntry:
    backend: str  # registry name, "openvino"
    device: str  # device type the gate ran on ("CPU", "GPU", ...)
    precision: str  # inference precision that ran ("bf16", "f16", "f32")
    model_sha256: str  # of the model file (for an IR, of the .xml and the .bin together)
    summary: str  # the gate's report in words (TwinReport.summary)
    device_name: str = ""  # e.g. the CPU model
    library: str = ""  # e.g. "openvino 2026.4.1"
    date: str = ""


def gates_path(model: str | Path) -> Path:
    model = Path(model)
    return model.with_name(model.name + ".gates.json")


def model_digest(model: str | Path) -> str:
    """SHA-256 of the model file; an OpenVINO IR (``.xml``) is hashed with its ``.bin`` (its weights)."""
    model = Path(model)
    digest = sha256_file(model)
    weights = model.with_suffix(".bin")
    if model.suffix.lower() == ".xml" and weights.is_file():
        import hashlib

        digest = hashlib.sha256((digest + sha256_file(weights)).encode()).hexdigest()
    return digest


def read_gates(model: str | Path) -> list[GateEntry]:
    """The entries recorded beside ``model`` ([] when there is no record); a damaged record is a UserError."""
    path = gates_path(model)
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
        return [GateEntry(**e) for e in data["gates"]]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{path}: not a readable gate record ({e}): delete it and run `uolrps gate` again") from None


def find_gate(model: str | Path, backend: str, device: str, precision: str) -> GateEntry | None:
    """The passing gate of this model file (as it is now) on ``backend``/``device``/``precision``, or None."""
    entries = [e for e in read_gates(model) if (e.backend, e.device, e.precision) == (backend, device, precision)]
    if not entries:
        return None
    digest = model_digest(model)
    return next((e for e in entries if e.model_sha256 == digest), None)


def record_gate(model: str | Path, entry: GateEntry) -> Path:
    """Add (or replace) ``entry`` in the record beside ``model``, written atomically; returns the record's path."""
    from uolrps.core.paths import write_atomic

    keep = [e for e in read_gates(model) if (e.backend, e.device, e.precision) != (entry.backend, entry.device,
                                                                                   entry.precision)]
    text = json.dumps({"format": FORMAT, "gates": [asdict(e) for e in [*keep, entry]]}, indent=1) + "\n"
    path = gates_path(model)
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), "gate record")
    return path
