"""The outputs of a run, per stream: recordings (``--save``), windows (``--show``), one shared JSONL file,
the progress bar of a single file source, the server's viewer feed (:mod:`.viewer_feed`) and the summary
(:mod:`.summary`): each a :class:`~uolrps.runtime.sink.Sink`, listed in ``SINKS``.

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

from uolrps.core.errors import OptionError
from uolrps.core.paths import check_output_path
from uolrps.runtime.events.sink import EventSink
from uolrps.runtime.sink import Sink, run_inputs
from uolrps.runtime.source_kinds import kind_of
from uolrps.runtime.summary import SummarySink
from uolrps.runtime.viewer_feed import ViewerFeed
from uolrps.runtime.outputs import FOURCC, FpsMeter, ImageFolderOutput, JsonlOutput, Progress, VideoOutput, \
    WindowOutput



def parse_serve(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` -> (host, port); the host defaults to 127.0.0.1 (loopback only)."""
    m = re.fullmatch(r"(?:(\[[0-9a-fA-F:]+\]|[^:\s]+):)?(\d{1,5})", str(text).strip())
    if not m or not 0 <= int(m.group(2)) <= 65535:
        raise OptionError(f"serve must be [HOST:]PORT such as 8080 or 0.0.0.0:8080, but got {text!r}", "serve")
    host = (m.group(1) or "127.0.0.1").strip("[]")
    return host, int(m.group(2))


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
        path = Path(text) / (name if kind_of(spec).images else f"{name}.mp4")
    if kind_of(spec).images and not _is_video_name(path):
        return "images", path
    return "video", path


class JsonlSink(Sink):
    """``--jsonl``: one JSON line per result, all streams in one file."""

    @classmethod
    def check(cls, config, specs, names, single):
        if config.jsonl is not None:
            JsonlOutput(config.jsonl, inputs=run_inputs(config, specs))

    @classmethod
    def create(cls, config, annotator, labels, single):
        return cls(JsonlOutput(config.jsonl, labels=labels)) if config.jsonl is not None else None

    def __init__(self, out: JsonlOutput) -> None:
        self.out = out

    def write(self, name, image, result, fps):
        self.out.write(result)
        return True

    def finish(self):
        self.out.finish()

    def close(self):
        self.out.close()


class _Recording:
    def __init__(self) -> None:
        self.video: VideoOutput | None = None
        self.images: ImageFolderOutput | None = None
        self.video_path: Path | None = None
        self.by_time = False
        self.source = None


class SaveSink(Sink):
    """``--save``: an annotated recording per stream (a video, or a folder of images for image sources)."""

    @classmethod
    def check(cls, config, specs, names, single):
        if config.save is None:
            return
        inputs = run_inputs(config, specs)
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

    @classmethod
    def create(cls, config, annotator, labels, single):
        return cls(config, annotator, single) if config.save is not None else None

    def __init__(self, config, annotator, single: bool) -> None:
        self.config, self.annotator, self.single = config, annotator, single
        self.streams: dict[str, _Recording] = {}

    def open(self, stream):
        config, spec = self.config, stream.spec
        out = _Recording()
        out.source = stream.source
        inputs = run_inputs(config, [spec]) + [Path(config.model)]
        first = self.single and not self.streams
        kind, path = save_target(config.save, stream.name, spec, first)
        if self.single and not first and "{stream}" not in str(config.save):
            # a stream added through the API to a one-source run: beside the first one's recording
            given = Path(str(config.save))
            path = given.with_name(f"{given.stem}_{stream.name}{given.suffix}") if kind == "video" and \
                given.suffix else given / stream.name
        if kind == "images":
            out.images = ImageFolderOutput(path, root=kind_of(spec).root(spec), inputs=inputs)
        else:
            out.video_path = check_output_path(path, "save", FOURCC, inputs)
            out.by_time = stream.source.live
        self.streams[stream.name] = out

    def write(self, name, image, result, fps):
        out = self.streams.get(name)
        if out is None:
            return True
        if out.video_path is not None:
            if out.video is None:
                out.video = VideoOutput(out.video_path, fps=out.source.fps, by_time=out.by_time,
                                        segment_s=self.config.segment_s)
            out.video.write(self.annotator.annotate(image, result), result.timestamp)
        if out.images is not None and result.path is not None:
            out.images.write(self.annotator.annotate(image, result), result.path)
        return True

    def close(self):
        _close_all([s.video for s in self.streams.values()])


class WindowSink(Sink):
    """``--show``: a window per stream with the boxes and the frame rate."""

    @classmethod
    def create(cls, config, annotator, labels, single):
        return cls(annotator, single) if config.show else None

    def __init__(self, annotator, single: bool) -> None:
        self.annotator, self.single = annotator, single
        self.windows: dict[str, WindowOutput] = {}

    def open(self, stream):
        self.windows[stream.name] = WindowOutput("uolrps" if self.single else f"uolrps {stream.name}")

    def write(self, name, image, result, fps):
        window = self.windows.get(name)
        return window is None or window.show(self.annotator.annotate(image, result, fps))

    def close(self):
        _close_all(list(self.windows.values()))


class ProgressSink(Sink):
    """The progress bar of a run on one file source (not live, no window)."""

    close_rank = 0

    @classmethod
    def create(cls, config, annotator, labels, single):
        return cls(config) if single else None

    def __init__(self, config) -> None:
        self.config = config
        self.bar: Progress | None = None

    def open(self, stream):
        config = self.config
        if stream.source.live or self.bar is not None:
            return
        total = None if config.loop else stream.source.total
        if config.max_frames is not None:
            total = config.max_frames if total is None else min(total, config.max_frames)
        self.bar = Progress(total, label=Path(str(stream.spec.text)).name or "run",
                            enabled=config.progress and not config.show)

    def write(self, name, image, result, fps):
        if self.bar is not None:
            self.bar.update(fps)
        return True

    def close(self):
        if self.bar is not None:
            self.bar.close()


SINKS: list[type[Sink]] = [JsonlSink, SaveSink, WindowSink, ProgressSink, EventSink,  # written in this order
                           ViewerFeed, SummarySink]


def _close_all(closers) -> None:
    """``close()`` each (None skipped), all of them even when one fails; then raise the first failure."""
    errors = []
    for closer in closers:
        if closer is None:
            continue
        try:
            closer.close()
        except Exception as e:
            errors.append(e)
    if errors:
        raise errors[0]


def check_save(config, specs, names, single: bool) -> None:
    """Every output of the run is checked before the model loads."""
    for sink in SINKS:
        sink.check(config, specs, names, single)


class Recorders:
    """The run's sinks, fanned out: each result goes to every sink the run asked for (the consumer-stage
    ones from :meth:`write`; the post-stage ones, in ``post``, are handed to the engine, whose streams write
    them as each result is made)."""

    def __init__(self, config, annotator, labels: bool, single: bool) -> None:
        made = [s for cls in SINKS if (s := cls.create(config, annotator, labels, single)) is not None]
        self.all = made
        self.sinks = [s for s in made if s.stage != "post"]
        self.post = [s for s in made if s.stage == "post"]
        self.meters: dict[str, FpsMeter] = {}

    def sink_of(self, kind: type) -> "Sink | None":
        """The run's sink of class ``kind``, or None when the run has none."""
        return next((s for s in self.all if isinstance(s, kind)), None)

    @property
    def needs_tracks(self) -> bool:
        """True when a sink of the run needs track ids (the event sink)."""
        return any(s.needs_tracks for s in self.all)

    def bind(self, stats) -> None:
        for sink in self.all:
            sink.bind(stats)

    def remove(self, name: str) -> None:
        """A stream was removed: each sink hears of it (its later results are not written to it)."""
        for sink in self.all:
            sink.remove(name)

    def add(self, stream) -> None:
        """Outputs for a new stream (called before it starts): checked here, opened at its first frame."""
        for sink in self.all:
            sink.open(stream)
        self.meters[stream.name] = FpsMeter()

    def write(self, name: str, image, result) -> bool:
        """Write one result everywhere; False when the user closed a window (the run stops)."""
        meter = self.meters.get(name)
        if meter is None:  # removed meanwhile
            return True
        fps = meter.tick()
        for sink in self.sinks:
            if not sink.write(name, image, result, fps):
                return False
        return True

    def finish(self) -> None:
        for sink in self.all:
            sink.finish()

    def __repr__(self) -> str:
        return "the outputs (--save, --jsonl)"

    def close(self) -> None:
        """Close every sink (the progress bar first), even when one fails; then raise the first failure (an
        OutputError says what is left of its file)."""
        _close_all(sorted(self.all, key=lambda s: s.close_rank))

    def report(self, stats) -> None:
        """After everything is closed and ``stats`` are final: each sink's report (the summary), all of them
        even when one fails; then raise the first failure."""
        errors = []
        for sink in self.all:
            try:
                sink.report(stats)
            except Exception as e:
                errors.append(e)
        if errors:
            raise errors[0]
