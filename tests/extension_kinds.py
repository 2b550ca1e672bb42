"""Small extra kinds that tests/test_extensions.py registers from outside the package: a numpy backend, a
synthetic source kind and a tab-separated data set format. Nothing here is part of uolrps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from uolrps.eval.items import Dataset, Item, finish_dataset
from uolrps.model.meta import ModelMeta
from uolrps.runtime.backends.base import Backend, Capabilities, check_io
from uolrps.runtime.capture import DEFAULT_FPS, Frame, Read, Source, SourceSpec, Status
from uolrps.runtime.sink import Sink

from tinymodel import bright_square_frame


# ---- a backend: the tiny model's arithmetic in numpy, its metadata in a JSON file ------------------------
class NumpyBackend(Backend):
    """``model.npjson`` = the metadata props as JSON (and ``"fixed_batch"``); heatmap = each grid cell's mean
    brightness, min-max normalised (what tests/tinymodel.py's ONNX graph computes). Records each call's size."""

    calls: list[int] = []

    def __init__(self, path, scale: float | None = None):
        data = json.loads(Path(path).read_text())
        self.meta = ModelMeta.from_props(data["props"], source=str(path))
        fixed = data.get("fixed_batch")
        H, W = self.meta.input_size
        check_io(str(path), self.meta, {self.meta.input_name: ("uint8", (fixed, H, W, 3))},
                 {self.meta.output_name: ("float32", (fixed, 1, *self.meta.grid))})
        self.caps = Capabilities(device="cpu", max_batch=fixed, min_batch=fixed or 1, fixed_batch=fixed is not None)
        self.scale = 1.0 if scale is None else float(scale)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        NumpyBackend.calls.append(len(batch))
        n, (H, W), (gh, gw) = len(batch), self.meta.input_size, self.meta.grid
        gray = batch.astype(np.float32).mean(axis=3)
        pooled = gray.reshape(n, gh, H // gh, gw, W // gw).mean(axis=(2, 4))[:, None]
        lo = pooled.min(axis=(2, 3), keepdims=True)
        hi = pooled.max(axis=(2, 3), keepdims=True)
        return ((pooled - lo) / (hi - lo + 1e-6) * self.scale).astype(np.float32)


def write_numpy_model(path: Path, meta: ModelMeta, fixed_batch: int | None = None) -> Path:
    path.write_text(json.dumps({"props": meta.to_props(), "fixed_batch": fixed_batch}))
    return path


# ---- a source kind: "square:N" = N frames of a bright square moving right -------------------------------
def square_box(i: int) -> tuple[int, int, int, int]:
    return (20 + 4 * i, 30, 70 + 4 * i, 80)


class SquareSource(Source):
    def __init__(self, spec: SourceSpec, loop: bool = False):
        super().__init__(spec)
        self.total, self.fps, self._i = int(spec.target), DEFAULT_FPS, 0

    def read(self, timeout: float = 1.0) -> Read:
        if self._i >= self.total:
            return Read(Status.END)
        i, self._i = self._i, self._i + 1
        return Read(Status.OK, Frame(bright_square_frame(120, 160, square_box(i)), i, i / self.fps, 0.0))


def recognise_square(raw: str, paths=None):
    return SourceSpec("square", int(raw[7:]), raw) if raw.startswith("square:") and raw[7:].isdigit() else None


def open_square(spec, *, loop=False, **_):
    return SquareSource(spec, loop)


# ---- a data set format: "image<TAB>x1<TAB>y1<TAB>x2<TAB>y2" lines in a .tsv file -------------------------
def detect_tsv(path: Path) -> str | None:
    return f"tab-separated boxes {path.name}" if path.is_file() and path.suffix == ".tsv" else None


def load_tsv(path: Path, split=None, images_root=None) -> Dataset:
    root = images_root or path.parent
    boxes: dict[str, list] = {}
    for line in path.read_text().splitlines():
        name, *numbers = line.split("\t")
        boxes.setdefault(name, []).append([float(v) for v in numbers])
    items = [Item(root / name, np.asarray(b, dtype=np.float64)) for name, b in boxes.items()]
    return finish_dataset("tsv", root, items, [], str(path))


# ---- a sink: one CSV line per result (stream, frame, first box) ---------------------------------------------
class CsvSink(Sink):
    """Registered into uolrps.runtime.recording.SINKS by the test; asked for by ``config.jsonl`` (a run option
    of its own would be a RunConfig field)."""

    opened: list[str] = []

    @classmethod
    def check(cls, config, specs, names, single):
        pass

    @classmethod
    def create(cls, config, annotator, labels, single):
        return cls(Path(str(config.jsonl)).with_suffix(".csv")) if config.jsonl is not None else None

    def __init__(self, path: Path):
        self.path, self.lines = path, []

    def open(self, stream):
        CsvSink.opened.append(stream.name)

    def write(self, name, image, result, fps):
        box = [int(v) for v in result.boxes[0]] if len(result.boxes) else []
        self.lines.append(",".join([name, str(result.frame_index)] + [str(v) for v in box]))
        return True

    def finish(self):
        self.path.write_text("\n".join(self.lines) + "\n")

    def close(self):
        pass


# ---- a map placement: nearest-neighbour, the map's cells as blocks on the frame -------------------------
def nearest_placement(heatmap, size):
    """The h x w map on an (H, W) frame by nearest neighbour (OpenCV), times 255, float32 in [0, 255]."""
    import cv2

    H, W = size
    hm = np.clip(np.asarray(heatmap, dtype=np.float32), 0.0, 1.0) * np.float32(255.0)
    return cv2.resize(hm, (W, H), interpolation=cv2.INTER_NEAREST)


# ---- an event publisher: every event and state into lists ------------------------------------------------
from uolrps.runtime.events.publisher import Publisher  # noqa: E402


class ListPublisher(Publisher):
    """Registered into uolrps.runtime.events.registry.PUBLISHERS by the test; asked for by ``config.jsonl``
    ending in ``.events.jsonl`` (a run option of its own would be a RunConfig field)."""

    name = "list"
    made: list["ListPublisher"] = []

    @classmethod
    def create(cls, config):
        if config.jsonl is None or not str(config.jsonl).endswith(".events.jsonl"):
            return None
        cls.made.append(cls())
        return cls.made[-1]

    def __init__(self):
        self.events, self.states, self.added, self.closed = [], [], [], False

    def stream_added(self, name):
        self.added.append(name)

    def publish(self, event):
        self.events.append(event.to_record())

    def state(self, state):
        self.states.append(state.to_record())

    def counters(self):
        return {"sent": len(self.events), "dropped": 0, "queued": 0, "failed": 0}

    def close(self, timeout=5.0):
        self.closed = True
