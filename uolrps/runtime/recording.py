"""The outputs of a run, per stream: recordings (``--save``), windows (``--show``), one shared JSONL file, and
the progress bar of a single file source.

``--save`` with one source: a video file (``.mp4``/``.avi``...), or for an image source (image, folder,
glob) a folder that receives one annotated image per input image. With several sources: a folder (each
stream writes ``FOLDER/<name>.mp4``, or ``FOLDER/<name>/`` for image sources) or a template containing
``{stream}`` (``rec/{stream}.mp4``); a stream added through the HTTP API to a one-source run records
beside the first (``out_<name>.mp4``). Live streams are recorded by timestamp, so playback runs at the real
speed even when frames were dropped.
"""

from __future__ import annotations

import re
from pathlib import Path

from uolrps.errors import OptionError
from uolrps.paths import check_output_path
from uolrps.runtime.outputs import FOURCC, FpsMeter, ImageFolderOutput, JsonlOutput, Progress, VideoOutput, \
    WindowOutput

IMAGE_KINDS = ("image", "folder", "glob")


def parse_serve(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` -> (host, port); the host defaults to 127.0.0.1 (loopback only)."""
    m = re.fullmatch(r"(?:(\[[0-9a-fA-F:]+\]|[^:\s]+):)?(\d{1,5})", str(text).strip())
    if not m or not 0 <= int(m.group(2)) <= 65535:
        raise OptionError(f"serve must be [HOST:]PORT such as 8080 or 0.0.0.0:8080, but got {text!r}", "serve")
    host = (m.group(1) or "127.0.0.1").strip("[]")
    return host, int(m.group(2))


def _inputs(config, specs) -> list[Path]:
    from uolrps.runtime.sidecar import sidecar_path

    model = Path(config.model)
    files = [model, sidecar_path(model)]
    for spec in specs:
        targets = spec.target if isinstance(spec.target, (list, tuple)) else [spec.target]
        if spec.kind in ("video", *IMAGE_KINDS):
            files += [Path(t) for t in targets]
            if spec.kind == "folder":
                files.append(Path(spec.text))
    return files


def _is_video_name(path: Path) -> bool:
    return path.suffix.lower() in FOURCC


def save_target(save: str | Path, name: str, spec, single: bool) -> tuple[str, Path]:
    """("video" | "images", path) where stream ``name`` is recorded."""
    text = str(save)
    if "{stream}" in text:
        path = Path(text.replace("{stream}", name))
    elif single:
        path = Path(text)
    else:
        path = Path(text) / (name if spec.kind in IMAGE_KINDS else f"{name}.mp4")
    if spec.kind in IMAGE_KINDS and not _is_video_name(path):
        return "images", path
    return "video", path


def check_save(config, specs, names, single: bool) -> None:
    """Every output of the run is checked before the model loads."""
    inputs = _inputs(config, specs)
    if config.jsonl is not None:
        JsonlOutput(config.jsonl, inputs=inputs)
    if config.save is None:
        return
    text = str(config.save)
    if not single and "{stream}" not in text and _is_video_name(Path(text)):
        raise OptionError(f"save {text!r}: with several streams give a folder (rec/) or a template with "
                          "{stream} (rec/{stream}.mp4), so each stream has its own recording", "save")
    for i, (spec, name) in enumerate(zip(specs, names)):
        kind, path = save_target(config.save, name or f"stream{i}", spec, single)
        if kind == "images":
            ImageFolderOutput(path, inputs=inputs)
        else:
            check_output_path(path, "save", FOURCC, inputs)


class _PerStream:
    def __init__(self) -> None:
        self.video: VideoOutput | None = None
        self.images: ImageFolderOutput | None = None
        self.window: WindowOutput | None = None
        self.meter = FpsMeter()
        self.video_path: Path | None = None
        self.by_time = False
        self.source = None


class Recorders:
    def __init__(self, config, annotator, labels: bool, single: bool) -> None:
        self.config, self.annotator, self.single = config, annotator, single
        self._inputs: list[Path] = []
        self.jsonl = JsonlOutput(config.jsonl, labels=labels) if config.jsonl is not None else None
        self.streams: dict[str, _PerStream] = {}
        self.progress: Progress | None = None

    def add(self, stream) -> None:
        """Outputs for a new stream (called before it starts): checked here, opened at its first frame."""
        config, spec = self.config, stream.spec
        out = _PerStream()
        out.source = stream.source
        inputs = _inputs(config, [spec]) + [Path(config.model)]
        if config.save is not None:
            first = self.single and not self.streams
            kind, path = save_target(config.save, stream.name, spec, first)
            if self.single and not first and "{stream}" not in str(config.save):
                # a stream added through the API to a one-source run: beside the first one's recording
                given = Path(str(config.save))
                path = given.with_name(f"{given.stem}_{stream.name}{given.suffix}") if kind == "video" and \
                    given.suffix else given / stream.name
            if kind == "images":
                root = spec.text if spec.kind == "folder" else None
                out.images = ImageFolderOutput(path, root=root, inputs=inputs)
            else:
                out.video_path = check_output_path(path, "save", FOURCC, inputs)
                out.by_time = stream.source.live
        if config.show:
            out.window = WindowOutput("uolrps" if self.single else f"uolrps {stream.name}")
        if self.single and not stream.source.live and self.progress is None:
            total = None if config.loop else stream.source.total
            if config.max_frames is not None:
                total = config.max_frames if total is None else min(total, config.max_frames)
            self.progress = Progress(total, label=Path(str(spec.text)).name or "run",
                                     enabled=config.progress and not config.show)
        self.streams[stream.name] = out

    def write(self, name: str, image, result) -> bool:
        """Write one result everywhere; False when the user closed a window (the run stops)."""
        out = self.streams.get(name)
        if out is None:  # removed meanwhile
            return True
        fps = out.meter.tick()
        if self.jsonl is not None:
            self.jsonl.write(result)
        if out.video_path is not None:
            if out.video is None:
                out.video = VideoOutput(out.video_path, fps=out.source.fps, by_time=out.by_time,
                                        segment_s=getattr(self.config, "segment_s", None))
            out.video.write(self.annotator.annotate(image, result), result.timestamp)
        if out.images is not None and result.path is not None:
            out.images.write(self.annotator.annotate(image, result), result.path)
        if out.window is not None and not out.window.show(self.annotator.annotate(image, result, fps)):
            return False
        if self.progress is not None:
            self.progress.update(fps)
        return True

    def finish(self) -> None:
        if self.jsonl is not None:
            self.jsonl.finish()

    def __repr__(self) -> str:
        return "the outputs (--save, --jsonl)"

    def close(self) -> None:
        """Close every output, even after one fails; then raise the first failure (an OutputError says what
        is left of its file)."""
        errors = []
        closers = [self.progress, self.jsonl] + [o for s in self.streams.values() for o in (s.video, s.window)]
        for closer in closers:
            if closer is None:
                continue
            try:
                closer.close()
            except Exception as e:
                errors.append(e)
        if errors:
            raise errors[0]
