"""The model file's own metadata: everything the runtime needs besides the graph.

Export writes it into the ONNX file's ``metadata_props`` (string to string) and ``uolrps build`` copies it
into the engine's sidecar JSON. The runtime reads it back with :meth:`ModelMeta.from_props`. This module
imports nothing heavy.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from uolrps.core.boxes import LEGACY_PLACEMENT, PLACEMENTS
from uolrps.core.errors import UserError
from uolrps.core.options import check_fraction

FORMAT_VERSION = "1"
PREFIX = "uolrps."  # every key in metadata_props carries this prefix
# how the h x w map is placed on the frame before thresholding: one of uolrps.core.boxes.PLACEMENTS; a file
# without the key was made before it existed and keeps the boxes it always had (LEGACY_PLACEMENT, "authors")
DEFAULT_PLACEMENT = "authors"  # what uolrps export records (benchmarks/bench_placement.py measures them all)


@dataclass(frozen=True)
class ModelMeta:
    """What a uolrps model file says about itself.

    The graph takes ``image``: uint8, N x H x W x 3 (``layout`` NHWC), colour order ``color``; it does the
    scaling and mean/std itself (``mean``/``std`` are recorded for provenance and for other consumers, in
    0..255 units). It returns ``heatmap``: float32, N x K x h x w, min-max normalised to [0, 1] per image
    and channel, on the feature grid ``grid`` = (h, w).
    """

    backbone: str
    input_size: tuple[int, int]  # (H, W) of the graph's input
    grid: tuple[int, int]  # (h, w) of the heatmap
    mean: tuple[float, float, float]  # in 0..255 units, RGB order
    std: tuple[float, float, float]
    threshold: float = 0.5  # default box threshold t (fraction of the map's maximum)
    layout: str = "NHWC"
    color: str = "RGB"
    input_name: str = "image"
    output_name: str = "heatmap"
    dynamic_batch: bool = False
    batch: int = 1  # the fixed batch size when not dynamic_batch
    precision: str = "fp32"  # fp32, fp16 (mixed precision graph) or int8 (quantized twin; recipe in extra["int8"])
    classes: tuple[str, ...] = ("object",)  # one name per heatmap channel
    weights_sha256: str = ""
    wstar_source: str = ""
    wstar_sha256: str = ""
    threshold_source: str = "default"
    version: str = ""
    upsample: str = LEGACY_PLACEMENT  # map placement (PLACEMENTS): eval and run both read it
    extra: dict = field(default_factory=dict, compare=False)
    # keys this version does not know (written by a newer one), verbatim: written back unchanged by to_props,
    # so reading and rewriting a file (e.g. --write-threshold) loses nothing. Their decoded values are in extra.
    unknown_props: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.input_size) != 2 or min(self.input_size) <= 0:
            raise UserError(f"model metadata: input_size must be two positive ints, but got {self.input_size}")
        if len(self.grid) != 2 or min(self.grid) <= 0:
            raise UserError(f"model metadata: grid must be two positive ints, but got {self.grid}")
        check_fraction(self.threshold, "model metadata: threshold")
        if self.layout != "NHWC" or self.color not in ("RGB", "BGR"):
            raise UserError(f"model metadata: unsupported layout/color {self.layout}/{self.color}")
        if self.upsample not in PLACEMENTS:
            raise UserError(f"model metadata: upsample must be one of {', '.join(PLACEMENTS)}, but got "
                            f"{self.upsample!r}")
        if self.precision not in ("fp32", "fp16", "int8"):
            raise UserError(f"model metadata: precision must be fp32, fp16 or int8, but got {self.precision}")

    # ---- serialisation -------------------------------------------------------------------------------
    def to_props(self) -> dict[str, str]:
        """Flat string to string map for ONNX ``metadata_props`` (every value JSON-encoded)."""
        props = {PREFIX + "format": FORMAT_VERSION}
        for k, v in asdict(self).items():
            if k == "unknown_props":
                continue
            if k == "extra":  # the unknown keys go back under their own names, not into uolrps.extra
                v = {n: x for n, x in v.items() if PREFIX + n not in self.unknown_props}
            props[PREFIX + k] = json.dumps(list(v) if isinstance(v, tuple) else v)
        props.update(self.unknown_props)
        return props

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "model") -> "ModelMeta":
        """Inverse of :meth:`to_props`; unknown keys go to ``extra``, a missing format key is an error."""
        if props.get(PREFIX + "format") != FORMAT_VERSION:
            raise UserError(
                f"{source} has no uolrps metadata (key {PREFIX}format={FORMAT_VERSION!r} missing): "
                "export it with `uolrps export`"
            )
        names = {f.name for f in fields(cls)} - {"unknown_props"}
        kw: dict = {}
        extra: dict = {}
        unknown: dict = {}
        for key, raw in props.items():
            if not key.startswith(PREFIX) or key == PREFIX + "format":
                continue
            name = key[len(PREFIX):]
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as e:
                raise UserError(f"{source}: metadata {key} is not valid JSON ({e})") from None
            if name == "extra":
                if not isinstance(value, dict):
                    raise UserError(f"{source}: metadata {key} must be a JSON object, but got {raw[:60]}")
                extra = {**value, **extra}  # a same-named top-level key wins
            elif name in names:
                kw[name] = tuple(value) if isinstance(value, list) else value
            else:
                extra[name] = value
                unknown[key] = raw
        kw["extra"], kw["unknown_props"] = extra, unknown
        try:
            return cls(**kw)
        except (TypeError, ValueError) as e:  # a missing key, or a value of the wrong kind
            raise UserError(f"{source}: incomplete or invalid uolrps metadata ({e}): export the model again") from None

    def replace(self, **changes) -> "ModelMeta":
        from dataclasses import replace

        return replace(self, **changes)
