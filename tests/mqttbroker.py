"""A real MQTT broker for the tests: Debian's mosquitto on a free loopback port, with a config file written in
the test's tmp folder (plain or TLS, anonymous or with a password file), that can be stopped and started again
on the same port; and a real paho subscriber that records what arrives.

The tests skip, naming what they need, where mosquitto or paho-mqtt is not installed
(``apt-get install mosquitto``; ``pip install 'uolrps[mqtt]'``)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest


def need_broker() -> str:
    """mosquitto's path, or skip with what is missing."""
    pytest.importorskip("paho.mqtt.client", reason="needs paho-mqtt (pip install 'uolrps[mqtt]')")
    exe = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
                                             if os.path.exists(p)), None)
    if exe is None:
        pytest.skip("needs an MQTT broker: Debian's mosquitto (apt-get install mosquitto)")
    return exe


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


def wait_for(cond, timeout=10.0, step=0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())


class Broker:
    """mosquitto on 127.0.0.1:``port``. ``tls``: (ca, cert, key) paths for a TLS listener; ``users``: {name:
    password} (then anonymous clients are refused). Persistence is on (in ``folder``), so a stop and start keeps
    retained messages and a subscriber's session, as a broker restarted by its service manager does."""

    def __init__(self, folder: Path, *, tls: tuple[Path, Path, Path] | None = None,
                 users: dict[str, str] | None = None) -> None:
        self.exe = need_broker()
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = self.folder / "mosquitto.log"
        lines = [f"listener {self.port} 127.0.0.1", "persistence true", f"persistence_location {self.folder}/",
                 "log_dest stderr", "log_type error", "log_type warning", "log_type notice"]
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto started as root switches to the mosquitto user
        if tls is not None:
            ca, cert, key = tls
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
        if users:
            pw = self.folder / "passwords"
            pw.write_text("")
            for name, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pw), name, password], check=True,
                               capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        self.conf = self.folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "ab"))
        if not wait_for(self._listening, 10):
            self.stop()
            raise RuntimeError(f"mosquitto did not start: {self.log.read_text(errors='replace')[-2000:]}")

    def _listening(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited: {self.log.read_text(errors='replace')[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM (mosquitto writes its persistence file and closes every connection)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def url(self, scheme: str = "mqtt", userinfo: str = "") -> str:
        return f"{scheme}://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}"


def make_tls(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 / localhost signed by it, made with openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a CA and a server certificate")
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")  # EC keys: made in milliseconds
    run("req", "-x509", *ec, "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=uolrps test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
        "-days", "2", "-extfile", str(ext))
    return ca, cert, key


class Subscriber:
    """A real paho client subscribed at QoS 2 to ``topics`` (a message arrives at the QoS it was published
    with, up to 2: so ``qos`` tells the publisher's QoS); ``messages`` holds (topic, payload bytes, retain,
    qos) in arrival order. ``persistent``: a fixed session that the broker keeps (and fills) while the
    subscriber is away, e.g. during a broker restart; it reconnects by itself."""

    def __init__(self, broker: Broker, topics=("#",), *, persistent: bool = False, ca: Path | None = None,
                 auth: tuple[str, str] | None = None, client_id: str | None = None) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool, int]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.topics = list(topics)
        cid = client_id or f"test-sub-{os.getpid()}-{id(self)}"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=not persistent)
        self.client.reconnect_delay_set(0.05, 0.2)
        if auth:
            self.client.username_pw_set(*auth)
        if ca is not None:
            self.client.tls_set(ca_certs=str(ca))
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect("127.0.0.1", broker.port, keepalive=5)
        self.client.loop_start()
        assert self.subscribed.wait(10), "the test subscriber could not subscribe"

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        client.subscribe([(t, 2) for t in self.topics])

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain), int(msg.qos)))

    def on(self, topic: str) -> list[tuple[str, bytes, bool, int]]:
        with self.lock:
            return [m for m in self.messages if m[0] == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
