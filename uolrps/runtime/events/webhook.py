"""``--webhook URL``: every event POSTed as JSON to an HTTP endpoint, retried, optionally signed.

Each event is one ``POST`` of ``Event.to_record()`` (``Content-Type: application/json``) with the headers

- ``X-Uolrps-Event``: the event's type (start, update, end, enter, leave);
- ``X-Uolrps-Delivery``: an id made once per event and kept across retries (a receiver that got a retried
  event twice sees the same id);
- ``X-Uolrps-Timestamp``: Unix seconds when this try was sent;
- ``X-Uolrps-Signature: sha256=<hex>`` when a secret is set (``--webhook-secret`` or
  :data:`SECRET_ENV`): HMAC-SHA256 with the secret as key over ``<timestamp>.<body>`` (the timestamp header's
  text, a dot, the body's bytes), so a receiver can check both who sent it and that it is fresh (refuse a
  timestamp more than a few minutes old: a replay).

What is retried (with a growing pause, the event kept at the head of the bounded queue): a refused
connection, a timeout or any other network error, a 5xx answer, 408 and 429. Any other answer outside 2xx
(400, 401, 403, 404, 413, a redirect: redirects are not followed) means the endpoint will not take this event
as sent: it is logged, counted under ``rejected`` (and ``failed``) and not retried. Credentials in the URL
(``https://user:pass@host/...`` becomes HTTP Basic authentication; ``?token=...``) never appear in a log
line or an error (:func:`uolrps.core.redact.redact`). Standard library only (``http.client``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from uolrps.core.errors import OptionError
from uolrps.core.redact import redact
from uolrps.runtime.events.publisher import Publisher, QueuedPublisher, SendError, log

SECRET_ENV = "UOLRPS_WEBHOOK_SECRET"
TIMEOUT_S = 5.0  # connecting, and each read of the answer: a slow endpoint is retried, never waited on long
RETRIED = frozenset({408, 429})  # 4xx answers that mean "later", not "never"
DEFAULT_QUEUE = 1000
MAX_REASON = 200  # bytes of an answer's body quoted in a log line


@dataclass(frozen=True)
class Target:
    """One parsed webhook URL: where to connect, what to request, and the Basic authentication if any."""

    url: str  # as given (never shown: see ``shown``)
    https: bool
    host: str
    port: int
    path: str  # path and query
    authorization: str | None

    @property
    def shown(self) -> str:
        return redact(self.url)


def parse_url(url: str) -> Target:
    """``http[s]://[user:pass@]host[:port][/path][?query]`` -> :class:`Target`; OptionError naming ``webhook``."""
    text = str(url).strip()
    shown = redact(text)
    form = "http[s]://[USER:PASS@]HOST[:PORT]/PATH"
    try:
        u = urlsplit(text)
        port = u.port  # ValueError for a port out of range or not a number
    except ValueError as e:
        raise OptionError(f"webhook {shown!r} is not a URL ({redact(e)}): give {form}", "webhook") from None
    if u.scheme.lower() not in ("http", "https"):
        raise OptionError(f"webhook {shown!r} must be an http:// or https:// URL ({form})", "webhook")
    if not u.hostname:
        raise OptionError(f"webhook {shown!r} has no host: give {form}", "webhook")
    if u.fragment:
        raise OptionError(f"webhook {shown!r} has a #fragment, which HTTP never sends: remove it", "webhook")
    if any(c.isspace() or ord(c) < 32 for c in text):
        raise OptionError(f"webhook {shown!r} contains spaces or control characters: percent-encode them",
                          "webhook")
    https = u.scheme.lower() == "https"
    auth = None
    if u.username is not None or u.password is not None:
        pair = f"{unquote(u.username or '')}:{unquote(u.password or '')}".encode("utf-8")
        auth = "Basic " + base64.b64encode(pair).decode("ascii")
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    return Target(text, https, u.hostname, port or (443 if https else 80), path, auth)


def resolve_secret(secret: str | None) -> bytes | None:
    """The signing key: ``secret``, else the environment variable :data:`SECRET_ENV`, else None (unsigned)."""
    if secret is None:
        secret = os.environ.get(SECRET_ENV) or None
    if secret is not None and not secret.strip():
        raise OptionError(f"webhook_secret is empty: give a non-empty secret (or unset {SECRET_ENV})",
                          "webhook_secret")
    return None if secret is None else secret.encode("utf-8")


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Uolrps-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of ``<timestamp>.<body>``."""
    return "sha256=" + hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def urls_of(config) -> tuple[str, ...]:
    given = getattr(config, "webhook", None) or ()
    return (given,) if isinstance(given, str) else tuple(given)


def check_options(urls, secret: str | None, queue) -> None:
    """Every webhook URL, the secret and the queue bound: one OptionError for the first bad one."""
    urls = (urls,) if isinstance(urls, str) else tuple(urls or ())
    for url in urls:
        parse_url(url)
    if urls:
        resolve_secret(secret)
    if isinstance(queue, bool) or not isinstance(queue, int) or queue < 1:
        raise OptionError(f"webhook_queue must be a whole number of events of at least 1, but got {queue!r}",
                          "webhook_queue")


def check_config(config) -> None:
    """:func:`check_options` of a RunConfig's ``webhook``, ``webhook_secret`` and ``webhook_queue``."""
    check_options(urls_of(config), getattr(config, "webhook_secret", None),
                  getattr(config, "webhook_queue", DEFAULT_QUEUE))


@dataclass
class _Delivery:
    """One event on its way: the body is made once, the delivery id too; retries send the same bytes."""

    body: bytes
    kind: str
    delivery: str


class WebhookPublisher(QueuedPublisher):
    """One endpoint (see the module docstring). ``limit``: events kept while it is down (the oldest dropped
    beyond, counted); ``timeout``: seconds for connecting and for each read of the answer."""

    name = "webhook"

    def __init__(self, url: str, secret: bytes | None = None, limit: int = DEFAULT_QUEUE,
                 backoff: tuple[float, float] = (0.5, 30.0), timeout: float = TIMEOUT_S) -> None:
        super().__init__(limit=limit, backoff=backoff)
        self.target = parse_url(url)
        self.secret = secret
        self.timeout = float(timeout)
        self.rejected = 0  # answered with a 4xx that is not retried: counted, not sent again
        self.last_status: int | None = None
        self._last_rejected: int | None = None  # the status of the last refusal logged
        from uolrps import __version__

        self.user_agent = f"uolrps/{__version__}"

    def publish(self, event) -> None:
        body = json.dumps(event.to_record(), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        self.put(_Delivery(body, event.kind, uuid.uuid4().hex))

    def _connection(self) -> http.client.HTTPConnection:
        t = self.target
        if t.https:
            return http.client.HTTPSConnection(t.host, t.port, timeout=self.timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(t.host, t.port, timeout=self.timeout)

    def headers(self, item: _Delivery, timestamp: str) -> dict[str, str]:
        h = {"Content-Type": "application/json", "User-Agent": self.user_agent, "X-Uolrps-Event": item.kind,
             "X-Uolrps-Delivery": item.delivery, "X-Uolrps-Timestamp": timestamp}
        if self.secret is not None:
            h["X-Uolrps-Signature"] = signature(self.secret, timestamp, item.body)
        if self.target.authorization is not None:
            h["Authorization"] = self.target.authorization
        return h

    def send(self, item: _Delivery) -> None:
        timestamp = str(int(time.time()))
        conn = self._connection()  # one connection per event: events are seconds apart, a pooled one goes stale
        try:
            conn.request("POST", self.target.path, body=item.body, headers=self.headers(item, timestamp))
            resp = conn.getresponse()
            reason = resp.read(MAX_REASON + 1)
        except OSError as e:  # refused, reset, timed out, TLS failure (ssl.SSLError is an OSError)
            raise SendError(f"{self.target.shown}: {redact(e)}") from None
        except http.client.HTTPException as e:  # a malformed or missing answer
            raise SendError(f"{self.target.shown}: bad answer ({type(e).__name__}: {redact(e)})") from None
        finally:
            conn.close()
        self.last_status = resp.status
        if 200 <= resp.status < 300:
            return
        said = reason[:MAX_REASON].decode("utf-8", "replace").strip()
        said = f": {redact(said)}" if said else ""
        if resp.status >= 500 or resp.status in RETRIED:
            raise SendError(f"{self.target.shown} answered {resp.status} {resp.reason}{said}")
        # the endpoint refuses this event as sent (bad auth, wrong path, too big, a redirect): not retried
        self.rejected += 1
        if resp.status != self._last_rejected or self.rejected % 100 == 0:  # an endpoint that refuses all: no flood
            self._last_rejected = resp.status
            more = " (redirects are not followed: give the final URL)" if 300 <= resp.status < 400 else ""
            log.warning("%s: %s answered %d %s%s%s; event %s not retried (%d refused so far)", self.name,
                        self.target.shown, resp.status, resp.reason, more, said, item.delivery, self.rejected)

    def counters(self) -> dict:
        c = super().counters()
        rejected = self.rejected
        # a rejected event left the queue like a sent one: it is counted as failed, not as sent
        return {**c, "sent": c["sent"] - rejected, "failed": c["failed"] + rejected, "rejected": rejected}


class Webhooks(Publisher):
    """``--webhook URL`` (repeatable): one :class:`WebhookPublisher` per URL, each with its own queue and thread
    (one endpoint that is down never holds up another); their counters summed."""

    name = "webhook"

    @classmethod
    def check(cls, config) -> None:
        check_config(config)

    @classmethod
    def create(cls, config) -> "Webhooks | None":
        urls = urls_of(config)
        if not urls:
            return None
        check_config(config)
        secret = resolve_secret(getattr(config, "webhook_secret", None))
        limit = getattr(config, "webhook_queue", DEFAULT_QUEUE)
        return cls([WebhookPublisher(u, secret=secret, limit=limit) for u in urls])

    def __init__(self, targets: list[WebhookPublisher]) -> None:
        self.targets = targets

    def start(self) -> None:
        for t in self.targets:
            t.start()
        log.info("webhook: posting events to %s", ", ".join(t.target.shown for t in self.targets))

    def publish(self, event) -> None:
        for t in self.targets:
            t.publish(event)

    def counters(self) -> dict:
        total: dict[str, int] = {}
        for t in self.targets:
            for k, v in t.counters().items():
                total[k] = total.get(k, 0) + v
        return total

    def close(self, timeout: float = 5.0) -> None:
        """Every endpoint gets the whole ``timeout`` at once (one that is down does not eat the others' time)."""
        if len(self.targets) == 1:
            self.targets[0].close(timeout)
            return
        closers = [threading.Thread(target=t.close, args=(timeout,), daemon=True) for t in self.targets]
        for c in closers:
            c.start()
        for c in closers:
            c.join(timeout + 1.0)
