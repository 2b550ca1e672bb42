"""`uolrps run --video SRC [--video SRC2 ...] --model MODEL`: streaming localization of cameras, files, streams."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from uolrps.cli.model_options import DEVICE, META, PRECISION, PROVIDERS, RUN_BACKEND, THREADS, UPSAMPLE
from uolrps.core.checked_io import OutputError
from uolrps.core.errors import UserError
from uolrps.core.redact import redact

EXIT_STREAM_FAILED = 3  # the run finished, but at least one stream ended in failure (docs/run.md)


def run(
    source: List[str] = typer.Option(None, "--video", "-v", metavar="SRC", help="Source: cam0 / 0 / /dev/video0, a video file, an "
                                    "image, a folder or glob of images, rtsp://..., http(s)://..., or gst:PIPELINE. "
                                    "Give it several times for several streams."),
    model: str = typer.Option(None, "--model", "-m", help="Model file: .onnx (uolrps export) or .engine (uolrps build), "
                              "or a Triton model URL grpc://HOST:8001/NAME (--backend triton). Default: efflite0 at "
                              "224 with the shipped w*, made once into the cache (needs uolrps\\[export] the first time)."),
    sources_file: Path = typer.Option(None, "--sources", help="File with one source per line: [NAME=]SOURCE [--size WxH] "
                                 "[--fps N] [--fourcc XXXX] [--rtsp-transport tcp|udp]."),
    threshold: float = typer.Option(None, "--threshold", "-t", help="Box threshold as a fraction of the heatmap "
                                    "maximum (default: the model's own)."),
    multi: bool = typer.Option(False, "--multi", help="A box for every region above the threshold (largest first)."),
    upsample: str = UPSAMPLE,
    smooth: float = typer.Option(0.0, "--smooth", help="Heatmap smoothing over time, A in [0, 1): 0 = off, 0.8 = strong."),
    show: bool = typer.Option(False, "--show", help="Show a window per stream with the boxes and the frame rate (q or Esc quits)."),
    save: str = typer.Option(None, "--save", help="Annotated video (.mp4, .m4v, .mov, .avi, .mkv or .webm); for an image folder a folder of "
                             "annotated images; with several streams a folder or a template with {stream}."),
    segment_s: float = typer.Option(None, "--segment", metavar="SECONDS", help="Record --save as files of at most "
                                  "SECONDS each (OUT_000.mp4, OUT_001.mp4...), each closed before the next: a kill "
                                  "-9 or power cut loses only the last one. Default: one file."),
    jsonl: Path = typer.Option(None, "--jsonl", help="Write one JSON line per frame and stream (boxes, scores, latency)."),
    heatmap: bool = typer.Option(False, "--heatmap", help="Overlay the heatmap in --show and --save."),
    max_frames: int = typer.Option(None, "--max-frames", help="Stop each stream after N frames (default: all of them)."),
    loop: bool = typer.Option(False, "--loop", help="Restart a file or image folder at its end (until Ctrl-C)."),
    backend: str = RUN_BACKEND,
    providers: str = PROVIDERS,
    threads: int = THREADS,
    meta: Path = META,
    device: str = DEVICE,
    precision: str = PRECISION,
    batch_wait_ms: float = typer.Option(5.0, "--batch-wait-ms", help="How long the inference stage waits for slower "
                                        "streams to fill a batch."),
    inflight: int = typer.Option(None, "--inflight", help="Inference calls in flight at once (default: 2 for "
                                 "ONNX Runtime on the CPU at its default threads; 1 with --threads, a GPU provider "
                                 "or TensorRT; 4 for --backend triton, whose network round trips then overlap)."),
    stall_timeout: float = typer.Option(5.0, "--stall-timeout", help="Seconds without a frame before a live source "
                                        "is reopened."),
    reopen_limit: int = typer.Option(10, "--reopen-limit", help="Failed recoveries in a row before a live stream ends."),
    size: str = typer.Option(None, "--size", help="Camera capture size WIDTHxHEIGHT (V4L2; default: the camera's own)."),
    fps: float = typer.Option(None, "--fps", help="Camera frame rate (V4L2; default: the camera's own)."),
    fourcc: str = typer.Option(None, "--fourcc", help="Camera pixel format, e.g. MJPG or YUYV (V4L2; default: the camera's own)."),
    rtsp_transport: str = typer.Option("tcp", "--rtsp-transport", help="RTSP over tcp (default) or udp."),
    serve: str = typer.Option(None, "--serve", help="Serve a browser view and an HTTP API at [HOST:]PORT "
                              "(default host 127.0.0.1)."),
    serve_token: str = typer.Option(None, "--serve-token", envvar="UOLRPS_SERVE_TOKEN", show_envvar=True,
                                    help="The HTTP server's token: needed beyond loopback, where every route but "
                                    "/healthz requires it (header or the page's login); on loopback POST/DELETE do."),
    serve_allow: str = typer.Option(None, "--serve-allow", help="What the HTTP API may open besides network streams "
                                    "(rtsp, http): camera, gst (checked pipelines), files=FOLDER; comma-separated. "
                                    "Sources given here on the command line are not limited (default: network streams only)."),
    serve_open_metrics: bool = typer.Option(False, "--serve-open-metrics", help="Beyond loopback, serve /metrics "
                                            "without the token (for a Prometheus scraper on a trusted network)."),
    mqtt: str = typer.Option(None, "--mqtt", metavar="URL", envvar="UOLRPS_MQTT", show_envvar=True,
                             help="Publish events and states to an MQTT broker: mqtt://[user:pass@]host[:port] or "
                             "mqtts://... (TLS); topics <prefix>/<stream>/events, <prefix>/<stream>/state (retained), "
                             "<prefix>/status (online/offline). With a password prefer the environment variable (a "
                             "flag shows in ps). docs/events.md"),
    mqtt_prefix: str = typer.Option("uolrps", "--mqtt-prefix", help="MQTT topic prefix."),
    mqtt_ca: Path = typer.Option(None, "--mqtt-ca", metavar="FILE", help="PEM CA certificates for an mqtts:// broker "
                                 "(default: the system's CAs)."),
    mqtt_queue: int = typer.Option(1000, "--mqtt-queue", metavar="N", help="MQTT messages kept while the broker is "
                                   "down; beyond that the oldest are dropped and counted in the summary."),
    mqtt_ha: bool = typer.Option(False, "--mqtt-ha", help="Home Assistant MQTT discovery: per stream a binary_sensor "
                                 "'object present' and a sensor 'objects', one device per --mqtt-prefix."),
    mqtt_ha_prefix: str = typer.Option("homeassistant", "--mqtt-ha-prefix", help="Home Assistant's discovery prefix."),
    webhook: List[str] = typer.Option(None, "--webhook", metavar="URL", help="POST every event as JSON to this "
                                      "http(s) URL (repeatable), retried with backoff; see docs/events.md. "
                                      "Tracks by itself (--track: the trackers library, extra track)."),
    webhook_secret: str = typer.Option(None, "--webhook-secret", metavar="SECRET", envvar="UOLRPS_WEBHOOK_SECRET",
                                       show_envvar=True,
                                       help="Sign each webhook POST: X-Uolrps-Signature = sha256=HMAC-SHA256(secret, "
                                       "TIMESTAMP.BODY) (prefer the environment variable: a flag shows in ps). Default: unsigned."),
    webhook_queue: int = typer.Option(1000, "--webhook-queue", metavar="N", help="Events kept per webhook while its "
                                      "endpoint is down; beyond, the oldest are dropped and counted."),
    track: bool = typer.Option(False, "--track", help="Give every box a track id that stays with its object across "
                               "the frames of its stream (JSONL \"ids\", the API's latest; -1: not confirmed yet). "
                               "Needs uolrps\\[track]. On by itself with --events."),
    events: Path = typer.Option(None, "--events", metavar="DIR", help="Turn tracks into events (start, update, end; "
                                "zone enter/leave): DIR/events.jsonl, one JSON line per event, and each object's "
                                "best snapshot, DIR/<stream>/<id>.jpg (annotated frame) and <id>-crop.jpg. Tracks "
                                "by itself (--track). Needs uolrps\\[track]."),
    zone: List[str] = typer.Option(None, "--zone", metavar="STREAM:NAME=x1,y1,x2,y2,...", help="A zone of a stream: a "
                                   "polygon of 3 or more points in fractions of the frame (0..1, x right, y down). "
                                   "Repeatable. Events then count only objects whose box centre is in one of the "
                                   "stream's zones, and add enter/leave events. Default: no zone (the whole frame)."),
    event_min_frames: int = typer.Option(3, "--event-min-frames", help="An object starts (a start event) once seen "
                                         "on this many frames: shorter flickers make no event."),
    event_min_seconds: float = typer.Option(0.0, "--event-min-seconds", help="...and once seen for at least this "
                                            "many seconds of source time."),
    event_min_area: float = typer.Option(0.0, "--event-min-area", help="Ignore boxes smaller than this fraction of "
                                         "the frame (0.01 = 1%)."),
    event_max_gap: float = typer.Option(1.0, "--event-max-gap", help="An object unseen for more than this many "
                                        "seconds ends (an end event, timed at its last sighting)."),
    event_update: float = typer.Option(10.0, "--event-update", help="An update event every this many seconds while "
                                       "an object is there, with its best box so far (0: none)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    summary_json: Path = typer.Option(None, "--summary-json", help="Also write the summary as JSON to this file."),
) -> None:
    """Localize the main object in every frame of cameras, video files, image folders or network streams."""
    # the parameters have RunConfig's names (source, sources_file...), so a library OptionError is worded with
    # these flags (uolrps.cli.main.word_option_errors)
    from uolrps.core.paths import check_distinct_outputs, check_output_path
    from uolrps.runtime.capture import CaptureOptions
    from uolrps.runtime.runner import RunConfig, run as run_pipeline, stop_signals
    from uolrps.runtime.sourcelist import parse_size

    check_distinct_outputs({"--save": save, "--jsonl": jsonl, "--summary-json": summary_json})
    from uolrps.runtime.events.mqtt import check_options as check_mqtt

    check_mqtt(mqtt, mqtt_prefix, mqtt_ca, mqtt_queue, mqtt_ha_prefix, mqtt_ha)  # before a default model is made
    from uolrps.runtime.events.webhook import check_options as check_webhooks

    check_webhooks(tuple(webhook or ()), webhook_secret, webhook_queue)  # before a default model is made
    if events is not None:
        check_distinct_outputs({"--events": Path(events) / "events.jsonl", "--jsonl": jsonl,
                                "--summary-json": summary_json})
    videos = tuple(source or ())
    if not videos and sources_file is None:
        raise UserError("no source: give --video SRC (several times for several streams) or --sources FILE")
    if summary_json is not None:
        check_output_path(summary_json, "--summary-json", inputs=(model, *videos, sources_file))
    if model is None:  # the card's command as typed: `uolrps run --video cam0`
        from uolrps.export.default_model import default_model
        from uolrps.runtime.sources import parse_source

        for text in videos:
            parse_source(text)  # a bad source is refused before the model is made

        model = str(default_model(log=lambda text: typer.echo(text, err=True), progress=not quiet))
    capture = CaptureOptions(size=parse_size(size) if size else None, fps=fps, fourcc=fourcc,
                             rtsp_transport=rtsp_transport)
    config = RunConfig(source=videos, model=model, threshold=threshold, multi=multi, smooth=smooth, upsample=upsample,
                       show=show,
                       save=save, jsonl=jsonl, heatmap=heatmap, max_frames=max_frames, loop=loop, backend=backend,
                       providers=providers, threads=threads, meta=meta, progress=not quiet, sources_file=sources_file,
                       batch_wait_ms=batch_wait_ms, stall_timeout=stall_timeout, reopen_limit=reopen_limit,
                       capture=capture, serve=serve, serve_token=serve_token, serve_allow=serve_allow,
                       serve_open_metrics=serve_open_metrics, inflight=inflight, device=device, precision=precision,
                       webhook=tuple(webhook or ()), webhook_secret=webhook_secret, webhook_queue=webhook_queue,
                       segment_s=segment_s, track=track, events=events, zone=tuple(zone or ()),
                       event_min_frames=event_min_frames, event_min_seconds=event_min_seconds,
                       event_min_area=event_min_area, event_max_gap=event_max_gap, event_update=event_update,
                       summary_json=summary_json, mqtt=mqtt, mqtt_prefix=mqtt_prefix, mqtt_ca=mqtt_ca,
                       mqtt_queue=mqtt_queue, mqtt_ha=mqtt_ha, mqtt_ha_prefix=mqtt_ha_prefix)
    serve_with = None
    if serve is not None:
        from uolrps.serve import start_server as serve_with  # the server sits above the runtime
    with stop_signals(then_ignore=True):  # a signal after the run (the summary, the exit) is not fatal
        stats = run_pipeline(config, say=lambda text: typer.echo(text, err=True), serve_with=serve_with)
        typer.echo(stats.line())  # (the summary JSON is the run's last sink, written before it returns)
    if stats.output_error:  # never "wrote" for a file that was not completely written
        raise OutputError(stats.output_error)
    written = [f"{p}" if p != save or segment_s is None else f"{p} (as segments {Path(p).stem}_NNN{Path(p).suffix})"
               for p in (save, jsonl) if p is not None]
    if written:
        typer.echo(f"wrote {', '.join(written)}", err=True)
    if stats.interrupted:
        raise typer.Exit(130)
    failed = stats.failed
    if failed:
        for s in failed:
            typer.echo(f"error: stream {s.name} ({s.source}) failed after {s.frames} frames: {redact(s.reason or '')}", err=True)
        raise typer.Exit(EXIT_STREAM_FAILED)
    if stats.frames == 0:
        what = videos[0] if len(videos) == 1 and sources_file is None else "the sources"
        raise UserError(f"no frame could be read from {what!r} ({stats.skipped} unreadable): check the source")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
