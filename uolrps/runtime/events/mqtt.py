"""``--mqtt mqtt[s]://[user:pass@]host[:port]``: events and states to an MQTT broker, with Home Assistant
discovery (``--mqtt-ha``). See docs/events.md (MQTT).

Topics (``P`` = ``--mqtt-prefix``, default ``uolrps``; every message QoS 1):

- ``P/<stream>/events``: each :class:`~uolrps.runtime.events.event.Event` as ``Event.to_record()`` JSON;
- ``P/<stream>/state``: each :class:`~uolrps.runtime.events.event.State` as JSON, *retained* (a subscriber
  that comes later gets the current state at once); cleared (an empty retained message) when the stream goes;
- ``P/status``: ``online`` / ``offline``, retained; ``offline`` is also the connection's last will, so a
  killed process or a lost network shows as ``offline`` too;
- with ``--mqtt-ha``: ``H/binary_sensor/<node>/<stream>_present/config`` and
  ``H/sensor/<node>/<stream>_objects/config`` (``H`` = ``--mqtt-ha-prefix``, default ``homeassistant``;
  ``<node>`` = the prefix made an id): Home Assistant's discovery payloads, retained, one device per uolrps
  instance (prefix); removed (an empty retained payload) when the stream goes away.

A message counts as ``sent`` only when the broker acknowledged it (PUBACK); until then it stays at the head of
the bounded queue (:class:`~uolrps.runtime.events.publisher.QueuedPublisher`) and is sent again after a
reconnect, so ``dropped`` is exact (at-least-once: a PUBACK lost with the connection means the broker may see
that one message twice). A new state replaces the same stream's state still waiting in the queue (only the
current state matters on a retained topic), so a down broker fills the queue with events, not states.

On every (re)connect the publisher sends ``online`` and, with ``--mqtt-ha``, the discovery payloads of the
streams it has (a broker restarted without persistence has lost them); with ``--mqtt-ha`` it also listens to
Home Assistant's birth message (``online`` on ``<ha_prefix>/status``) and announces the streams again then. At a normal exit it sends
``offline`` and disconnects; the discovery payloads and the last states stay retained, so Home Assistant
keeps the entities (with their names, areas and history) and shows them *unavailable* until the next run
with the same prefix. A stream that goes away while the run goes on (``stream_removed``, then the run still
running ``REMOVAL_GRACE`` seconds later) takes its entities and its retained state with it. (The event sink
removes every stream when the run ends, too: those removals, within the grace before ``close``, are the
exit, not a stream going away.)

Credentials come only from the URL and never appear in a message or a log line (:func:`uolrps.core.redact`).
paho-mqtt (``pip install uolrps[mqtt]``) is imported only when a run asks for MQTT.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from uolrps.core.errors import OptionError
from uolrps.core.redact import redact
from uolrps.runtime.events.publisher import QueuedPublisher, SendError

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
CHECK_TIMEOUT = 3.0  # seconds for the reachability check before the model loads
ACK_TIMEOUT = 10.0  # seconds a connected broker has to acknowledge one message
REMOVAL_GRACE = 2.0  # seconds a removed stream must stay gone while the run goes on before its entities go
STATE_COALESCE = 8  # a new state replaces its stream's state among the last this many queued messages
_ID = re.compile(r"[^A-Za-z0-9_-]")
log = logging.getLogger("uolrps")


@dataclass(frozen=True)
class BrokerUrl:
    """A parsed ``--mqtt`` URL. ``str()`` is the redacted form (for messages)."""

    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None
    text: str

    @property
    def tls(self) -> bool:
        return self.scheme == "mqtts"

    def __str__(self) -> str:
        return redact(self.text)


def parse_url(text: str, param: str = "mqtt") -> BrokerUrl:
    """``mqtt[s]://[user[:pass]@]host[:port]`` checked; a bad one is one :class:`OptionError` line (redacted)."""
    shown = redact(text)
    form = "mqtt://[user:pass@]host[:port] or mqtts://... (TLS)"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:  # a port that is not a number or out of range
        raise OptionError(f"{param} {shown}: the port must be a number in 1..65535; give {form}", param) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not text.lower().startswith(f"{scheme}://"):
        raise OptionError(f"{param} {shown}: a broker URL starts with mqtt:// or mqtts://; give {form}", param)
    if not parts.hostname:
        raise OptionError(f"{param} {shown}: no broker host; give {form}", param)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise OptionError(f"{param} {shown}: a broker URL has no path or query (the topics come from "
                          f"mqtt_prefix); give {form}", param, "mqtt_prefix")
    if port == 0:
        raise OptionError(f"{param} {shown}: the port must be a number in 1..65535; give {form}", param)
    return BrokerUrl(scheme, parts.hostname, port or DEFAULT_PORTS[scheme],
                     unquote(parts.username) if parts.username is not None else None,
                     unquote(parts.password) if parts.password is not None else None, text)


def check_prefix(prefix: str, param: str) -> str:
    """A topic prefix: not empty, no wildcards, no empty levels."""
    if not prefix or prefix.startswith("/") or prefix.endswith("/") or "//" in prefix \
            or any(c in prefix for c in "+#\0"):
        raise OptionError(f"{param} {prefix!r} must be a topic prefix such as uolrps or home/cams (no '+', '#', "
                          f"no leading, trailing or doubled '/')", param)
    return prefix


def check_options(url: str | None, prefix: str = "uolrps", ca: str | Path | None = None, queue: int = 1000,
                  ha_prefix: str = "homeassistant", ha: bool = False) -> BrokerUrl | None:
    """The MQTT options without touching the network (a bad URL, prefix, CA file or queue bound, or an MQTT
    option without a broker: one OptionError line); the parsed URL, or None when MQTT is not asked for.
    Cheap: the command line calls it before anything is made."""
    if url is None:
        for name, given in (("mqtt_ha", ha), ("mqtt_ca", ca is not None)):
            if given:
                raise OptionError(f"{name} needs a broker: give mqtt=URL with it", name, "mqtt")
        return None
    broker = parse_url(url)
    check_prefix(prefix, "mqtt_prefix")
    check_prefix(ha_prefix, "mqtt_ha_prefix")
    if ca is not None:
        if not broker.tls:
            raise OptionError(f"mqtt_ca is for mqtts:// brokers; {broker} is plain mqtt://", "mqtt_ca")
        if not Path(ca).is_file():
            raise OptionError(f"mqtt_ca {ca}: no such file (give a PEM file of CA certificates)", "mqtt_ca")
    if queue is None or int(queue) < 1:
        raise OptionError(f"mqtt_queue must be at least 1, but got {queue}", "mqtt_queue")
    return broker


def check_config(config) -> BrokerUrl | None:
    """:func:`check_options` on a RunConfig's MQTT fields."""
    return check_options(getattr(config, "mqtt", None), getattr(config, "mqtt_prefix", "uolrps"),
                         getattr(config, "mqtt_ca", None), getattr(config, "mqtt_queue", 1000),
                         getattr(config, "mqtt_ha_prefix", "homeassistant"), bool(getattr(config, "mqtt_ha", False)))


def topic_id(name: str) -> str:
    """``name`` as an id Home Assistant accepts in a discovery topic (``[A-Za-z0-9_-]``)."""
    return _ID.sub("_", name)


def _paho():
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise OptionError("mqtt needs paho-mqtt: pip install 'uolrps[mqtt]' (or pip install paho-mqtt)",
                          "mqtt") from None
    return mqtt


class Message:
    """One MQTT message in the queue (mutable: a newer state replaces a waiting one's payload)."""

    __slots__ = ("topic", "payload", "retain", "kind")

    def __init__(self, topic: str, payload: bytes, retain: bool, kind: str) -> None:
        self.topic, self.payload, self.retain, self.kind = topic, payload, retain, kind

    def __repr__(self) -> str:
        return f"Message({self.topic!r}, {len(self.payload)} bytes, retain={self.retain})"


class Connection:
    """One paho client, connected (CONNACK received) or raising :class:`SendError`. Not reused after a failure:
    a lost connection is dropped with its client, so nothing is resent behind the queue's back."""

    def __init__(self, url: BrokerUrl, *, client_id: str, will: tuple[str, bytes] | None, ca: str | Path | None,
                 timeout: float, keepalive: int = 30, listen: tuple[str, object] | None = None) -> None:
        mqtt = _paho()
        self.url = url
        self.lost = threading.Event()
        self._wake = threading.Event()  # set by paho's thread on a PUBACK or a lost connection
        self._connack = threading.Event()
        self._reason: str | None = None
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True,
                             reconnect_on_failure=False)
        client.connect_timeout = timeout
        if url.username is not None:
            client.username_pw_set(url.username, url.password)
        if will is not None:
            client.will_set(will[0], will[1], qos=1, retain=True)
        if url.tls:
            try:
                client.tls_set(ca_certs=str(ca) if ca is not None else None)  # None: the system's CAs
            except (OSError, ValueError) as e:
                raise OptionError(f"mqtt_ca {ca}: cannot be read as PEM CA certificates ({e})", "mqtt_ca") from None
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        if listen is not None:  # (topic, callback(payload bytes)), subscribed on every CONNACK
            topic, callback = listen
            client.on_message = lambda _c, _u, msg: callback(bytes(msg.payload))
        self._listen = listen
        self.client = client
        try:
            client.connect(url.host, url.port, keepalive=keepalive)
        except Exception as e:  # noqa: BLE001 - DNS, refused, timeout, TLS handshake: all "cannot connect"
            raise SendError(f"cannot connect to {url}: {_reason_of(e)}") from None
        client.loop_start()
        if not self._connack.wait(timeout):
            self.close()
            raise SendError(f"cannot connect to {url}: no answer (CONNACK) within {timeout:g} s")
        if self._reason is not None:
            self.close()
            raise SendError(f"{url} refused the connection: {self._reason}")

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            self._reason = str(reason_code)
        elif self._listen is not None:
            client.subscribe(self._listen[0], qos=1)
        self._connack.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self.lost.set()
        self._wake.set()

    def _on_publish(self, client, userdata, mid, reason_code=None, properties=None) -> None:
        self._wake.set()

    def publish(self, topic: str, payload: bytes, retain: bool, timeout: float = ACK_TIMEOUT) -> None:
        """Publish at QoS 1 and return once the broker acknowledged it (PUBACK); raise SendError if not."""
        if self.lost.is_set():
            raise SendError(f"lost the connection to {self.url}")
        self._wake.clear()
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != 0:
            raise SendError(f"cannot publish to {self.url}: {_paho().error_string(info.rc)}")
        end = time.monotonic() + timeout
        while not info.is_published():  # woken by the PUBACK (on_publish) or the loss of the connection
            if self.lost.is_set():
                raise SendError(f"lost the connection to {self.url}")
            left = end - time.monotonic()
            if left <= 0:
                raise SendError(f"{self.url} did not acknowledge a message within {timeout:g} s")
            self._wake.wait(left)
            self._wake.clear()

    def close(self) -> None:
        try:
            self.client.disconnect()
        except Exception:  # noqa: BLE001
            pass
        self.client.loop_stop()


def _reason_of(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return redact(text)


class MqttPublisher(QueuedPublisher):
    """Events and states to an MQTT broker (see the module docstring). ``url``: ``mqtt[s]://...``;
    ``prefix``: the topic prefix; ``ca``: a PEM CA file for mqtts (default: the system's CAs); ``limit``: the
    queue bound; ``ha``: Home Assistant discovery under ``ha_prefix``."""

    name = "mqtt"

    def __init__(self, url: str, *, prefix: str = "uolrps", ca: str | Path | None = None, limit: int = 1000,
                 ha: bool = False, ha_prefix: str = "homeassistant", backoff: tuple[float, float] = (0.5, 30.0),
                 timeout: float = 5.0, client_id: str | None = None, removal_grace: float = REMOVAL_GRACE) -> None:
        super().__init__(limit=limit, backoff=backoff)
        self.url = parse_url(url)
        self.prefix = check_prefix(prefix, "mqtt_prefix")
        self.ha_prefix = check_prefix(ha_prefix, "mqtt_ha_prefix")
        self.ca = ca
        self.ha = ha
        self.timeout = timeout
        self.client_id = client_id or f"uolrps-{uuid.uuid4().hex[:12]}"
        self.status_topic = f"{self.prefix}/status"
        self.node = topic_id(self.prefix)
        self.uid = "uolrps" if self.node == "uolrps" else f"uolrps_{self.node}"  # the device id, unique ids' head
        self._ever_connected = False
        self._streams: list[str] = []  # the streams whose discovery payloads are (re)sent on connect
        self._pending: dict[str, float] = {}  # stream -> when it was removed (see stream_removed)
        self.removal_grace = removal_grace
        self._conn: Connection | None = None
        self._closing = False

    # ---- run options -------------------------------------------------------------------------------------
    @classmethod
    def check(cls, config) -> None:
        """The options (:func:`check_config`), then the broker: one that cannot be reached now is one
        OptionError line naming the redacted URL."""
        broker = check_config(config)
        if broker is None:
            return
        try:
            Connection(broker, client_id=f"uolrps-check-{uuid.uuid4().hex[:8]}", will=None,
                       ca=getattr(config, "mqtt_ca", None), timeout=CHECK_TIMEOUT).close()
        except SendError as e:
            raise OptionError(f"mqtt: {e} (is the broker running, and is the URL right?)", "mqtt") from None

    @classmethod
    def create(cls, config) -> "MqttPublisher | None":
        url = getattr(config, "mqtt", None)
        if url is None:
            return None
        return cls(url, prefix=getattr(config, "mqtt_prefix", "uolrps"), ca=getattr(config, "mqtt_ca", None),
                   limit=getattr(config, "mqtt_queue", 1000), ha=bool(getattr(config, "mqtt_ha", False)),
                   ha_prefix=getattr(config, "mqtt_ha_prefix", "homeassistant"))

    # ---- topics and payloads -----------------------------------------------------------------------------
    def topic(self, stream: str, leaf: str) -> str:
        return f"{self.prefix}/{topic_id(stream)}/{leaf}"

    def device(self) -> dict:
        from uolrps import __version__

        return {"identifiers": [self.uid],
                "name": "uolrps" if self.node == "uolrps" else f"uolrps {self.node}",
                "manufacturer": "uolrps", "model": "Unsupervised object localization (representer points)",
                "sw_version": __version__}

    def discovery(self, stream: str) -> list[tuple[str, dict]]:
        """The Home Assistant discovery (config topic, payload) pairs of ``stream``: a binary_sensor "object
        present" and a sensor "objects" (the count), both of one device, on the stream's retained state topic."""
        from uolrps import __version__

        sid = topic_id(stream)
        state = self.topic(stream, "state")
        common = {"state_topic": state, "availability_topic": self.status_topic, "payload_available": "online",
                  "payload_not_available": "offline", "qos": 1, "device": self.device(),
                  "origin": {"name": "uolrps", "sw_version": __version__}}
        present = {"name": f"{stream} object present", "unique_id": f"{self.uid}_{sid}_present",
                   "device_class": "occupancy", "value_template": "{{ 'ON' if value_json.present else 'OFF' }}",
                   "payload_on": "ON", "payload_off": "OFF", **common}
        objects = {"name": f"{stream} objects", "unique_id": f"{self.uid}_{sid}_objects",
                   "state_class": "measurement", "value_template": "{{ value_json.count }}",
                   "json_attributes_topic": state, "icon": "mdi:counter", **common}
        return [(f"{self.ha_prefix}/binary_sensor/{self.node}/{sid}_present/config", present),
                (f"{self.ha_prefix}/sensor/{self.node}/{sid}_objects/config", objects)]

    # ---- the publisher -----------------------------------------------------------------------------------
    def stream_added(self, name: str) -> None:
        with self._cond:
            back = self._pending.pop(name, None) is not None  # gone for a moment and back: nothing to remove
            if name not in self._streams:
                self._streams.append(name)
        self._settle()
        if self.ha and not back:
            for topic, payload in self.discovery(name):
                self.put(Message(topic, _json(payload), True, "discovery"))

    def stream_removed(self, name: str) -> None:
        """The stream went away. Its discovery payloads and retained state are removed once the run has gone on
        for ``removal_grace`` seconds without it (by the next message after that): the sink also removes every
        stream when the run ends, and at an exit the entities are kept (shown unavailable, see the module)."""
        with self._cond:
            if name in self._streams:
                self._pending[name] = time.monotonic()

    def _settle(self) -> None:
        """Remove the streams gone for ``removal_grace`` seconds while the run went on."""
        if not self._pending:
            return
        now = time.monotonic()
        with self._cond:
            gone = [n for n, t in self._pending.items() if now - t >= self.removal_grace]
            for name in gone:
                del self._pending[name]
                self._streams.remove(name)
        for name in gone:
            if self.ha:
                for topic, _ in self.discovery(name):
                    self.put(Message(topic, b"", True, "discovery"))  # HA removes the entity
            self.put(Message(self.topic(name, "state"), b"", True, "state"))  # no retained state of a gone stream

    def publish(self, event) -> None:
        self._settle()
        payload = self._encode(event)
        if payload is not None:
            self.put(Message(self.topic(event.stream, "events"), payload, False, "event"))

    def state(self, state) -> None:
        self._settle()
        payload = self._encode(state)
        if payload is None:
            return
        topic = self.topic(state.stream, "state")
        with self._cond:  # the same stream's state still waiting is replaced (a retained topic: the newest wins)
            for i in range(1, min(STATE_COALESCE, len(self._queue)) + 1):
                waiting = self._queue[-i]
                if waiting.topic == topic and waiting.kind == "state" and waiting is not self._inflight:
                    waiting.payload = payload
                    return
        self.put(Message(topic, payload, True, "state"))

    def _encode(self, record) -> bytes | None:
        """The record's JSON, or None (counted as dropped, said once) if it cannot be made: a publisher never
        stops the run."""
        try:
            return _json(record.to_record())
        except (TypeError, ValueError) as e:
            with self._cond:
                self.dropped += 1
            if self.last_error != f"encode: {e}":
                log.warning("%s: cannot encode %s (%s): dropped", self.name, type(record).__name__, e)
                self.last_error = f"encode: {e}"
            return None

    # ---- QueuedPublisher -----------------------------------------------------------------------------------
    def _loop(self) -> None:
        try:  # connect at once: "online" and the discovery payloads appear before the first event
            if not self._connected and not self._stop.is_set():
                self.connect()
                self._connected = True
        except Exception as e:  # noqa: BLE001 - the queue's loop retries when there is something to send
            log.warning("%s: %s (retrying when there is something to send)", self.name, e)
            self.last_error = str(e)
        super()._loop()

    def connect(self) -> None:
        conn = Connection(self.url, client_id=self.client_id, will=(self.status_topic, b"offline"), ca=self.ca,
                          timeout=self.timeout,
                          listen=(f"{self.ha_prefix}/status", self._ha_status) if self.ha else None)
        try:
            conn.publish(self.status_topic, b"online", retain=True)
            if self.ha and self._ever_connected:  # a reconnect (the first connection sends the queued ones)
                with self._cond:
                    streams = list(self._streams)
                for stream in streams:
                    for topic, payload in self.discovery(stream):
                        conn.publish(topic, _json(payload), retain=True)
        except SendError:
            conn.close()
            raise
        self._conn = conn
        self._ever_connected = True

    def _ha_status(self, payload: bytes) -> None:
        """Home Assistant's birth message (``online`` on ``<ha_prefix>/status``, sent when it starts): announce
        the streams again, as HA's docs advise, in case the broker lost the retained payloads (paho's thread)."""
        if payload.strip() != b"online":
            return
        with self._cond:
            streams = [n for n in self._streams if n not in self._pending]
        for stream in streams:
            for topic, config in self.discovery(stream):
                self.put(Message(topic, _json(config), True, "discovery"))

    def send(self, item: Message) -> None:
        if self._conn is None:
            raise SendError(f"not connected to {self.url}")
        self._conn.publish(item.topic, item.payload, item.retain)

    def disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._closing and not conn.lost.is_set():  # a normal exit: say so (a clean disconnect sends no will)
            try:
                conn.publish(self.status_topic, b"offline", retain=True, timeout=2.0)
            except SendError:
                pass
        conn.close()

    def close(self, timeout: float = 5.0) -> None:
        self._closing = True
        with self._cond:
            kept, self._pending = list(self._pending), {}
        if kept and self.ha:
            log.info("%s: the Home Assistant entities of %s stay (unavailable while uolrps is offline)", self.name,
                     ", ".join(kept))
        super().close(timeout)


def _json(record: dict) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode("utf-8")
