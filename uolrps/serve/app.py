"""The HTTP endpoints (a FastAPI application) over one :class:`~uolrps.runtime.control.StreamControl`.

Every error is a JSON object ``{"error": "one line"}`` with a 4xx status; see docs/serve.md for the API.
"""

# no `from __future__ import annotations` here: FastAPI reads the handlers' annotations (Request) at runtime

import asyncio
import json
import threading
from dataclasses import asdict

from uolrps.core.errors import NotAllowedError, UserError
from uolrps.core.redact import redact, redact_optional
from uolrps.runtime.control import EventControl, StreamControl
from uolrps.serve.auth import LOGIN_PATH, SESSION_COOKIE, Access, session_value, token_matches
from uolrps.serve.frames import Encoded, Hubs
from uolrps.serve.limits import unsent_bytes

BOUNDARY = "uolrpsframe"
KEEPALIVE_S = 2.0  # with no new frame, a viewer is sent the current one again this often (finds gone viewers)
VIEWER_BACKLOG = 16 * 1024  # a viewer gets its next frame only once less than this of the last one is unsent
BACKLOG_POLL_S = 0.02
MAX_BODY = 64 * 1024
BODY_TIMEOUT_S = 10.0  # a request body must arrive within this (a slow body holds a connection like slow headers)
MAX_DEPTH = 8  # JSON nesting of a request body (ours is one flat object)
MAX_NAME = 64  # characters of a stream name (it becomes a file name with --save)
MAX_SOURCE = 2048  # characters of a source
MAX_EVENTS = 1000  # events in one answer of GET /api/events (?limit=)
EVENT_IMAGES = ("crop", "frame")
NO_EVENTS = ("this run keeps no events: start it with --serve and --track (or an event output: --events, --mqtt, "
             "--webhook)")


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (strings skipped), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for b in body:
        if in_string:
            if escaped:
                escaped = False
            elif b == 0x5C:  # backslash
                escaped = True
            elif b == 0x22:
                in_string = False
        elif b == 0x22:
            in_string = True
        elif b in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif b in (0x5D, 0x7D):
            depth -= 1
    return deepest


class ServerState:
    """What the endpoints share: the run, the token, the hubs, the viewer count and the shutdown flag."""

    def __init__(self, control: StreamControl, token: str | None, max_viewers: int, quality: int,
                 public: bool = False, open_metrics: bool = False) -> None:
        self.control = control
        self.token = token
        self.access = Access(token, public, open_metrics)
        self.max_viewers = max_viewers
        self.hubs = Hubs(control, quality)
        self.viewers = 0  # changed on the event loop only
        self.closing = threading.Event()
        self.loop = None  # the server's event loop, once it runs
        self.connections = None  # the open connections (uolrps.serve.limits.Connections), once it runs


def _part(frame: Encoded) -> bytes:
    head = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}\r\n"
            f"X-Seq: {frame.seq}\r\nX-Frame: {frame.frame_index}\r\n\r\n")
    return head.encode("ascii") + frame.jpeg + b"\r\n"


def build_app(state: ServerState):
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    from uolrps.serve.metrics import metrics_text
    from uolrps.serve.page import PAGE

    class _ReleasingResponse(StreamingResponse):
        """A streaming response that gives its viewer slot back however it ends (done, gone, cancelled)."""

        def __init__(self, content, release, **kwargs) -> None:
            super().__init__(content, **kwargs)
            self._release = release

        async def __call__(self, scope, receive, send) -> None:
            try:
                await super().__call__(scope, receive, send)
            finally:
                self._release()

    control = state.control
    app = FastAPI(title="uolrps", docs_url=None, redoc_url=None, openapi_url=None)

    def error(status: int, message: str, **headers) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers or None)

    @app.exception_handler(HTTPException)
    async def _http_error(request, exc):  # unknown paths and methods: the same {"error": ...} shape
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _bad_query(request, exc):  # e.g. ?heatmap=maybe
        where = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors())
        return error(400, f"bad request ({where})")

    def known(name: str) -> bool:
        try:
            control.latest(name)
        except KeyError:
            return False
        return True

    def unknown(name: str) -> JSONResponse:
        names = ", ".join(st.name for st in control.statuses()) or "none"
        return error(404, f"no stream named {name!r} (streams: {names})")

    async def json_body(request: Request, shape: str):
        """The parsed JSON body, or the error response (415, 413, 400) saying what was wrong."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return None, error(415, f"the body must be JSON with 'Content-Type: application/json', not {ctype or 'none'!r}")

        async def read() -> bytes | None:
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY:
                    return None
            return body

        try:
            body = await asyncio.wait_for(read(), BODY_TIMEOUT_S)
        except asyncio.TimeoutError:
            return None, error(408, f"the body did not arrive within {BODY_TIMEOUT_S:g} s; send {shape}")
        if body is None:
            return None, error(413, f"the body is over {MAX_BODY} bytes; send {shape}")
        if json_depth(body) > MAX_DEPTH:
            return None, error(400, f"the body nests arrays or objects deeper than {MAX_DEPTH} levels; send {shape}")
        try:
            spec = json.loads(body)
            json.dumps(spec, ensure_ascii=False).encode("utf-8")  # "\ud800" parses, but is no text
        except UnicodeEncodeError:
            return None, error(400, "the body holds an escaped lone surrogate (\\ud800...), which is not text; "
                                    f"send {shape}")
        except (ValueError, RecursionError) as e:
            return None, error(400, f"the body is not valid JSON ({e}); send {shape}")
        return spec, None

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return HTMLResponse(PAGE, headers={"Cache-Control": "no-store"})

    @app.post(LOGIN_PATH)
    async def login(request: Request):
        spec, bad = await json_body(request, '{"token": "..."}')
        if bad is not None:
            return bad
        given = spec.get("token") if isinstance(spec, dict) else None
        if state.token is None:
            return error(400, "this server has no token: there is nothing to log in to")
        if not isinstance(given, str) or not token_matches(state.token, given.encode("utf-8")):
            return error(401, "wrong token: give the server's token (the run's serve_token, or UOLRPS_SERVE_TOKEN)")
        response = JSONResponse({"login": "ok"})
        response.set_cookie(SESSION_COOKIE, session_value(state.token), httponly=True, samesite="strict", path="/")
        return response

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "streams": len(control.statuses())}

    @app.get("/metrics")
    async def metrics():
        ec = event_control()
        body, ctype = metrics_text(control, lambda: state.viewers, state.hubs.encoded,
                                   ec.event_metrics if ec is not None else None)
        return Response(body, media_type=ctype)

    def shown(st) -> dict:  # credentials in a source or a reason never leave the process
        return {**asdict(st), "source": redact(st.source), "reason": redact_optional(st.reason)}

    @app.get("/api/streams")
    async def streams():
        return {"streams": [shown(st) for st in control.statuses()], "viewers": state.viewers,
                "max_viewers": state.max_viewers}

    @app.get("/api/streams/{name}/latest")
    async def latest(name: str):
        try:
            got = control.latest(name)
        except KeyError:
            return unknown(name)
        if got is None:
            return error(503, f"stream {name!r} has no result yet: try again shortly", **{"Retry-After": "1"})
        return got.line

    @app.post("/api/streams")
    async def add(request: Request):
        spec, bad = await json_body(request, '{"name": ..., "source": ...}')
        if bad is not None:
            return bad
        if not isinstance(spec, dict):
            return error(400, "the body must be a JSON object {\"name\": ..., \"source\": ...}")
        extra = sorted(set(spec) - {"name", "source"})
        if extra:
            return error(400, f"unknown field(s) {', '.join(extra)}: send only \"name\" and \"source\"")
        source, name = spec.get("source"), spec.get("name")
        if not isinstance(source, str) or not source.strip():
            return error(400, "\"source\" must be a non-empty string (a file, folder, camera or URL)")
        if name is not None and (not isinstance(name, str) or not name):
            return error(400, "\"name\" must be a non-empty string, or left out for a default name")
        if len(source) > MAX_SOURCE:
            return error(400, f"\"source\" is {len(source)} characters long; the limit is {MAX_SOURCE}")
        if name is not None and len(name) > MAX_NAME:
            return error(400, f"\"name\" is {len(name)} characters long; the limit is {MAX_NAME}")
        if name is not None and any(st.name == name for st in control.statuses()):
            return error(409, f"a stream named {name!r} already exists: choose another name or remove it first")
        try:
            added = await run_in_threadpool(control.add_stream, source, name)
        except NotAllowedError as e:
            return error(403, redact(e))
        except UserError as e:
            status = 409 if name is not None and any(st.name == name for st in control.statuses()) else 400
            return error(status, redact(e))
        return JSONResponse({"name": added, "source": redact(source)}, status_code=201,
                            headers={"Location": f"/api/streams/{added}/latest"})

    @app.delete("/api/streams/{name}")
    async def remove(name: str):
        try:
            await run_in_threadpool(control.remove_stream, name)
        except KeyError:
            return unknown(name)
        state.hubs.forget(name)
        return {"removed": name}

    async def taken(transport) -> None:
        """Wait until the viewer has taken (almost) all that was sent: so the frame it gets next is the newest
        one then, not one that waited behind seconds of older video in the buffers."""
        while transport is not None and not transport.is_closing() and not state.closing.is_set() \
                and unsent_bytes(transport) > VIEWER_BACKLOG:
            await asyncio.sleep(BACKLOG_POLL_S)

    def event_control() -> EventControl | None:
        """The run's events, or None for a run that keeps none (a plain StreamControl, or a run without events)."""
        if isinstance(control, EventControl) and control.events(None, None, 1) is not None:
            return control
        return None

    def with_urls(rec: dict) -> dict:
        kinds = rec.get("images") or []
        return {**rec, "images": {k: f"/api/events/{rec['id']}/{k}.jpg" for k in kinds}}

    @app.get("/api/events")
    async def events(stream: str | None = None, since: int | None = None, limit: int = 100):
        ec = event_control()
        if ec is None:
            return error(404, NO_EVENTS)
        if not 1 <= limit <= MAX_EVENTS:
            return error(400, f"limit must be from 1 to {MAX_EVENTS}, but got {limit}")
        rows = ec.events(stream, since, limit)
        if stream is not None and not rows and not known(stream):
            return unknown(stream)
        last = rows[-1]["seq"] if rows else since
        return {"events": [with_urls(r) for r in rows], "last": last}

    @app.get("/api/events/{event_id}/{kind}.jpg")
    async def event_image(event_id: str, kind: str):
        ec = event_control()
        if ec is None:
            return error(404, NO_EVENTS)
        if kind not in EVENT_IMAGES:
            return error(404, f"no image {kind!r}: an event's images are {' and '.join(EVENT_IMAGES)} "
                              f"(/api/events/ID/crop.jpg)")
        jpeg = ec.event_image(event_id, kind)
        if jpeg is None:
            return error(404, f"no {kind} image of event {event_id!r}: not made yet, or forgotten (the API keeps "
                              "the images of the most recent objects only)")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/streams/{name}.mjpg")
    async def mjpeg(name: str, request: Request, heatmap: bool = False):
        if not known(name):
            return unknown(name)
        if state.viewers >= state.max_viewers:
            return error(503, f"{state.viewers} viewers are already watching (the limit is {state.max_viewers}): "
                              "close one, or start the server with a higher max_viewers", **{"Retry-After": "5"})
        try:
            hub = state.hubs.subscribe(name, heatmap)
        except RuntimeError:
            return error(503, "the server is shutting down")
        state.viewers += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                state.viewers -= 1
                state.hubs.unsubscribe(hub)

        transport = state.connections.transport_of(request.scope.get("client")) if state.connections else None

        async def parts():
            sent = -1
            while not state.closing.is_set():
                await taken(transport)
                frame = await hub.next_after(sent, KEEPALIVE_S)
                if frame is None:
                    if hub.gone or state.closing.is_set():
                        return
                    frame = hub.current
                    if frame is None:
                        continue
                yield _part(frame)
                sent = frame.n

        return _ReleasingResponse(parts(), release, media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                                  headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.get("/streams/{name}.jpg")
    async def snapshot(name: str, heatmap: bool = False):
        if not known(name):
            return unknown(name)
        try:
            hub = state.hubs.subscribe(name, heatmap)
        except RuntimeError:
            return error(503, "the server is shutting down")
        try:
            cur = hub.current
            frame = await hub.next_after(cur.n if cur is not None else -1, 1.0) or hub.current
            if frame is None:
                frame = await hub.next_after(-1, 2.0)
        finally:
            state.hubs.unsubscribe(hub)
        if frame is None:
            return error(503, f"stream {name!r} has no frame yet: try again shortly", **{"Retry-After": "1"})
        return Response(frame.jpeg, media_type="image/jpeg",
                        headers={"Cache-Control": "no-store", "X-Seq": str(frame.seq), "X-Frame": str(frame.frame_index)})

    return Guard(app, state.access, error)


class Guard:
    """ASGI middleware: every HTTP request passes :meth:`Access.check` before any route runs (unknown paths
    too); a refused ``GET /`` gets the login page, anything else ``{"error": ...}``."""

    def __init__(self, app, access: Access, error) -> None:
        self.app = app
        self.access = access
        self.error = error

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {}
        for key, value in scope["headers"]:
            headers.setdefault(key, value)
        why = self.access.check(scope["method"], scope["path"], headers)
        if why is None:
            return await self.app(scope, receive, send)
        status, message = why
        if status == 401 and scope["method"] == "GET" and scope["path"] == "/":
            from fastapi.responses import HTMLResponse

            from uolrps.serve.page import LOGIN_PAGE

            response = HTMLResponse(LOGIN_PAGE, status_code=401, headers={"Cache-Control": "no-store"})
        else:
            response = self.error(status, message, **({"WWW-Authenticate": "Bearer"} if status == 401 else {}))
        await response(scope, receive, send)
