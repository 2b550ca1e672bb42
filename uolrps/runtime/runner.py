"""``run(RunConfig)``: what ``uolrps run`` does: the multi-stream engine plus its outputs and summary.

Inputs and outputs are checked before the model loads; outputs are finalised on every exit path. Ctrl-C
(SIGINT) or SIGTERM ends the run cleanly: every recording is closed (playable), the JSONL file holds whole
lines only, and the returned :class:`RunStats` says ``interrupted``. A second or third signal during that
short cleanup is counted, never fatal (:class:`StopSignals`). An output that cannot be written (a full disk)
stops the run the same way, and ``RunStats.output_error`` says which and what is left of it. With ``serve``, an HTTP server (``serve_with``, e.g. ``uolrps.serve.start_server``) watches and steers the run.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

from uolrps.core.boxes import check_placement
from uolrps.core.checked_io import OutputError
from uolrps.core.errors import OptionError
from uolrps.core.options import check_batch_wait_ms, check_choice, check_inflight, check_max_frames, check_positive, \
    check_reopen_limit, check_smooth, check_stall_timeout, check_threshold
from uolrps.runtime.backends import BACKENDS, ModelOptions, choose_engine
from uolrps.runtime.capture import CaptureOptions, log
from uolrps.runtime.events.mqtt import check_config as check_mqtt
from uolrps.runtime.events.sink import find_ring
from uolrps.runtime.events.webhook import check_config as check_webhooks
from uolrps.core.drawing import Annotator
from uolrps.runtime.live import DEFAULT_STALL_TIMEOUT
from uolrps.runtime.localizer import Localizer
from uolrps.runtime.recording import Recorders, check_save, parse_serve
from uolrps.runtime.source_policy import parse_allow
from uolrps.runtime.source_kinds import kind_of
from uolrps.runtime.sourcelist import SourceEntry, check_names, read_sources_file
from uolrps.runtime.sources import parse_source
from uolrps.runtime.stats import RunStats


@dataclass(frozen=True)
class RunConfig:
    """Every option of ``uolrps run`` (see docs/run.md); validated on creation.

    ``source``: one source string or several; ``sources_file``: a file of ``[NAME=]SOURCE`` lines (both may
    be given). ``capture``: capture options for every source given by ``source``.
    """

    source: str | tuple[str, ...] = ()
    model: str | Path = ""
    threshold: float | None = None
    multi: bool = False
    smooth: float = 0.0
    upsample: str | None = None  # map placement (None: the model's own)
    show: bool = False
    save: str | Path | None = None
    jsonl: str | Path | None = None
    heatmap: bool = False
    max_frames: int | None = None
    loop: bool = False
    backend: str = "auto"
    providers: str | None = None
    threads: int | None = None
    meta: Path | None = None  # an engine without a sidecar (trtexec, Polygraphy): the ONNX file it was built from
    progress: bool = True
    sources_file: str | Path | None = None
    batch_wait_ms: float = 5.0
    stall_timeout: float = DEFAULT_STALL_TIMEOUT
    reopen_limit: int = 10
    capture: CaptureOptions = field(default_factory=CaptureOptions)
    serve: str | None = None
    serve_token: str | None = None
    serve_open_metrics: bool = False  # beyond loopback, /metrics without the token (a Prometheus scraper)
    serve_allow: str | None = None  # what the API may open besides network streams (source_policy.parse_allow)
    inflight: int | None = None  # inference calls in flight at once (None: the backend's own, see StreamEngine)
    device: str | None = None  # OpenVINO device: CPU (default), GPU, NPU, AUTO
    precision: str | None = None  # OpenVINO inference precision: f32 (default), or a gated bf16 / f16
    segment_s: float | None = None  # a recording in files of at most this many seconds (survives a kill -9)
    mqtt: str | None = None  # events and states to this broker, mqtt[s]://[user:pass@]host[:port] (events/mqtt.py)
    mqtt_prefix: str = "uolrps"  # MQTT topic prefix: <prefix>/<stream>/events, .../state, <prefix>/status
    mqtt_ca: str | Path | None = None  # a PEM CA file for mqtts:// (default: the system's CAs)
    mqtt_queue: int = 1000  # MQTT messages kept while the broker is down (then the oldest are dropped, counted)
    mqtt_ha: bool = False  # Home Assistant MQTT discovery
    mqtt_ha_prefix: str = "homeassistant"  # Home Assistant's discovery prefix
    webhook: tuple[str, ...] = ()  # POST every event to these URLs (uolrps.runtime.events.webhook)
    webhook_secret: str | None = None  # HMAC-SHA256 key of the signature header (else UOLRPS_WEBHOOK_SECRET)
    webhook_queue: int = 1000  # events kept per webhook while its endpoint is down (the oldest dropped beyond)
    track: bool = False  # a track id per box (JSONL "ids"); on as well whenever a sink needs tracks (events)
    events: str | Path | None = None  # --events DIR: events.jsonl and snapshots (uolrps.runtime.events.files)
    zone: tuple[str, ...] = ()  # --zone STREAM:NAME=x1,y1,... (uolrps.runtime.events.zones)
    event_min_frames: int = 3  # the debouncing of events (uolrps.runtime.events.builder.EventOptions)
    event_min_seconds: float = 0.0
    event_min_area: float = 0.0
    event_max_gap: float = 1.0
    event_update: float = 10.0
    summary_json: str | Path | None = None  # the summary as JSON, written after every other output is closed

    def __post_init__(self) -> None:
        check_threshold(self.threshold)
        check_smooth(self.smooth)
        check_max_frames(self.max_frames)
        check_choice(self.backend, ("auto", *BACKENDS), "backend")
        check_stall_timeout(self.stall_timeout)
        check_reopen_limit(self.reopen_limit)
        check_batch_wait_ms(self.batch_wait_ms)
        check_inflight(self.inflight)
        if self.upsample is not None:
            check_placement(self.upsample)
        if self.segment_s is not None:
            check_positive(self.segment_s, "segment_s", "number of seconds")
        if self.serve is not None:
            parse_serve(self.serve)
        parse_allow(self.serve_allow)
        check_mqtt(self)  # the MQTT options (the broker itself is checked before the model loads)
        check_webhooks(self)

    def model_options(self) -> ModelOptions:
        extra = {k: v for k, v in (("device", self.device), ("precision", self.precision)) if v is not None}
        return ModelOptions(self.backend, self.providers, self.threads, self.meta, extra)

    def entries(self) -> list[SourceEntry]:
        """The sources in order: ``source`` first, then the lines of ``sources_file``."""
        given = (self.source,) if isinstance(self.source, (str, Path)) else tuple(self.source)
        out = [SourceEntry(None, str(s), self.capture) for s in given if str(s)]
        if self.sources_file is not None:
            out += read_sources_file(self.sources_file, self.capture)
        if not out:
            raise OptionError("no source: give source (one or several) or sources_file", "source", "sources_file")
        check_names(out)
        return out


class StopSignals:
    """SIGINT (Ctrl-C) and SIGTERM (docker stop, systemd) while a run is *armed* end it like Ctrl-C: the first
    one raises KeyboardInterrupt once and disarms; every later one, and any while disarmed (outputs being
    finalised, the summary being written), is only counted. So a second or third signal during cleanup never
    cuts it short: every recording is closed, the JSONL holds whole lines and the summary is written.

    Installed by :func:`stop_signals` in the main thread; a caller that ignores SIGINT (a job started with
    ``nohup ... &``) keeps ignoring it.
    """

    def __init__(self) -> None:
        self.armed = False
        self.received: list[int] = []

    def handler(self, signum, frame) -> None:
        self.received.append(signum)
        if self.armed:
            self.armed = False  # once: the next signal finds the run already stopping
            raise KeyboardInterrupt
        log.info("signal %d during cleanup: cleanup continues", signum)


_guard: StopSignals | None = None


@contextlib.contextmanager
def stop_signals(then_ignore: bool = False):
    """Install a :class:`StopSignals` for SIGINT and SIGTERM for the duration (main thread only; elsewhere, or
    when one is installed already, yields the one in effect or None). The CLI holds it around the run *and*
    the summary with ``then_ignore=True``: the process is about to exit, so a late signal is ignored rather than
    fatal while it does (Python resets its own handlers to the default, fatal one while it shuts down)."""
    global _guard
    if _guard is not None or threading.current_thread() is not threading.main_thread():
        yield _guard
        return
    guard = StopSignals()
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        current = signal.getsignal(sig)
        if sig == signal.SIGINT and current == signal.SIG_IGN:
            continue  # the caller chose to ignore Ctrl-C (nohup, a background job): so do we
        previous[sig] = current
        signal.signal(sig, guard.handler)
    _guard = guard
    try:
        yield guard
    finally:
        guard.armed = False
        _guard = None
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_IGN if then_ignore else handler)


def run(config: RunConfig, capture_factory=None, stats: RunStats | None = None, on_start=None,
        say=None, serve_with=None) -> RunStats:
    """See :func:`_run`; SIGINT and SIGTERM end it cleanly (:class:`StopSignals`)."""
    with stop_signals() as guard:
        return _run(config, capture_factory, stats, on_start, say, serve_with, guard)


def _run(config: RunConfig, capture_factory=None, stats: RunStats | None = None, on_start=None,
         say=None, serve_with=None, guard: StopSignals | None = None) -> RunStats:
    """Run the engine with the outputs of ``config``; returns the statistics (``stats.line()`` summarises).

    ``capture_factory`` replaces OpenCV's capture (tests); pass ``stats`` to watch the counters while it
    runs; ``on_start(engine, server)`` is called once the streams run (tests, embedding); ``say(text)``
    receives what the user should see at the start (the threshold in effect and where it came from; the
    server's address); by default it is logged. With ``config.serve``, ``serve_with(control, host=, port=,
    token=)`` starts the server (``uolrps.serve.start_server``: the runtime never imports the server, which
    sits above it).
    """
    say = say or log.warning
    if config.serve is not None and serve_with is None:
        raise ValueError("RunConfig.serve needs serve_with=uolrps.serve.start_server")
    from uolrps.runtime.engine import StreamEngine

    entries = config.entries()
    specs = [parse_source(e.source, e.options) for e in entries]  # bad sources fail before the model loads
    single = len(entries) == 1
    check_save(config, specs, [e.name for e in entries], single)
    if config.track:
        from uolrps.runtime.tracking import check_tracking

        check_tracking()  # the tracking library missing: one line before the model loads
    for entry, spec in zip(entries, specs):  # camera options on a file are ignored: say so, once per source
        given = [n for n in ("size", "fps", "fourcc") if getattr(spec.options, n, None) is not None]
        if given and not kind_of(spec).capture_options:
            say(f"note: the capture options {', '.join(given)} apply to cameras; "
                f"{entry.source} is a file, so they are ignored for it (it plays at its own size and rate)")
    stats = stats if stats is not None else RunStats()
    closers: list = []
    engine = None
    outputs = None
    try:
        if guard is not None:
            guard.armed = True
            if guard.received:  # a signal came before the run was armed: it stops at once
                guard.armed = False
                raise KeyboardInterrupt
        options, because = choose_engine(config.model, config.model_options())  # backend auto: which engine, and why
        loc = Localizer(config.model, threshold=config.threshold, multi=config.multi, smooth=config.smooth,
                        upsample=config.upsample, options=options)
        closers.append(loc)
        multi_class = len(loc.meta.classes) > 1
        annotator = Annotator(heatmap=config.heatmap, classes=loc.meta.classes, placement=loc.upsample)
        outputs = Recorders(config, annotator, labels=multi_class, single=single)
        closers.append(outputs)
        engine = StreamEngine(loc, batch_wait_ms=config.batch_wait_ms, loop=config.loop,
                              max_frames=config.max_frames, stall_timeout=config.stall_timeout,
                              reopen_limit=config.reopen_limit, capture_factory=capture_factory, stats=stats,
                              labels=multi_class, keep_running=config.serve is not None,
                              capture_options=config.capture, inflight=config.inflight,
                              api_policy=parse_allow(config.serve_allow) if config.serve is not None else None,
                              track=config.track or outputs.needs_tracks)
        engine.on_add = outputs.add
        engine.event_ring = find_ring(outputs)  # the API's recent events (only when it serves a run with events)
        engine.on_remove = outputs.remove
        outputs.bind(stats)
        engine.use_post_sinks(outputs.post)
        closers.append(engine)
        for entry, spec in zip(entries, specs):
            engine.add_source(spec, entry.name, open_now=single)
        origin = loc.threshold_origin
        say(f"threshold {loc.threshold:g} ({origin if origin == 'given' else 'from ' + origin})")
        if because is not None:
            say(f"backend {options.backend} ({because})")
        caps = loc.backend.caps
        if caps.summary is not None:  # where and how the model runs, in the backend's words (OpenVINO: the precision)
            say(caps.summary)
        elif caps.provider is not None:  # ONNX Runtime: the execution provider that actually runs
            say(f"ONNX Runtime runs {Path(str(config.model)).name} on {caps.provider} (session providers: "
                f"{', '.join(caps.providers)})")
        server = None
        if config.serve is not None:
            host, port = parse_serve(config.serve)
            try:
                more = {"open_metrics": True} if config.serve_open_metrics else {}
                server = serve_with(engine, host=host, port=port, token=config.serve_token, **more)
            except OptionError as e:  # in the server's words: the run calls them serve and serve_token
                raise e.renamed({"host": "serve", "port": "serve", "token": "serve_token"}) from e
            closers.append(server)
            say(f"serving the streams at {server.url}")
        if on_start is not None:
            on_start(engine, server)
        try:
            for name, image, result in engine.results():
                if not outputs.write(name, image, result):
                    break
            outputs.finish()
        except OutputError as e:  # a full disk: the run stops, the other outputs and the summary are finished
            stats.output_error = str(e)
        if guard is not None:
            guard.armed = False
    except KeyboardInterrupt:
        stats.interrupted = True
    finally:
        if guard is not None:
            guard.armed = False  # from here on a signal is only counted: cleanup always finishes
        for closer in reversed(closers):
            try:
                closer.close()
            except OutputError as e:
                stats.output_error = stats.output_error or str(e)
            except Exception as e:  # one failing output must not leave the others unfinalised
                log.warning("closing %r failed: %s", closer, e)
        stats.stop()
    if guard is not None and guard.received:
        stats.interrupted = True
    if outputs is not None:  # the summary: after every other output is closed and the statistics are final
        try:
            outputs.report(stats)
        except OutputError as e:
            stats.output_error = stats.output_error or str(e)
    return stats
