"""MqttPublisher (``--mqtt``) against a real broker (mosquitto, started per test on a free loopback port) and a
real paho subscriber: topics, QoS 1, retained state and availability, the last will of a killed process, a
broker restart in the middle of a stream of events (nothing lost within the bound, the drop count exact beyond
it), TLS with a CA file, credentials never shown, Home Assistant discovery against HA's documented schema."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from mqttbroker import Broker, Subscriber, free_port, make_tls, need_broker, wait_for
from uolrps.core.errors import OptionError
from uolrps.runtime.events.event import Event, State

ROOT = Path(__file__).resolve().parents[1]


def event(i: int, stream: str = "cam0", kind: str = "start") -> Event:
    return Event(kind=kind, stream=stream, track=i % 7, id=f"{stream}-{i % 7}-{i}", seq=i, start=i * 0.1,
                 end=i * 0.1 + 0.5, wall=1.7e9 + i, box=(1.0, 2.0, 30.5, 40.25), score=0.5, peak=0.9, frame=i,
                 frame_size=(480, 640), zones=("door",) if i % 2 else ())


def config(**kw) -> SimpleNamespace:
    base = {"mqtt": None, "mqtt_prefix": "uolrps", "mqtt_ca": None, "mqtt_queue": 1000, "mqtt_ha": False,
            "mqtt_ha_prefix": "homeassistant"}
    base.update(kw)
    return SimpleNamespace(**base)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker")
    yield b
    b.stop()


def publisher(url: str, **kw):
    from uolrps.runtime.events.mqtt import MqttPublisher

    kw.setdefault("backoff", (0.05, 0.2))
    kw.setdefault("removal_grace", 0.2)
    return MqttPublisher(url, **kw)


def test_events_and_states_arrive_on_their_topics_at_qos_1_and_the_state_is_retained(broker):
    sub = Subscriber(broker, ["uolrps/#"])
    pub = publisher(broker.url())
    pub.start()
    pub.stream_added("cam0")
    events = [event(i) for i in range(5)]
    for i, e in enumerate(events):
        pub.publish(e)
        pub.state(State("cam0", present=True, count=i + 1, fps=25.0, wall=1.7e9 + i))
    assert wait_for(lambda: len(sub.on("uolrps/cam0/events")) == 5)
    got = sub.on("uolrps/cam0/events")
    # the payload is Event.to_record() as JSON, in order; QoS 1 (the subscription asked for 2), not retained
    assert [json.loads(p) for _, p, _, _ in got] == [e.to_record() for e in events]
    assert {(retain, qos) for _, _, retain, qos in got} == {(False, 1)}
    assert wait_for(lambda: pub.counters()["queued"] == 0)
    states = sub.on("uolrps/cam0/state")
    assert states and json.loads(states[-1][1]) == {"stream": "cam0", "present": True, "count": 5, "fps": 25.0,
                                                    "wall": 1.7e9 + 4}
    assert {qos for *_, qos in states} == {1}
    assert [p for _, p, _, _ in sub.on("uolrps/status")][-1] == b"online"
    # a subscriber that comes later gets the current state and the availability at once, flagged retained
    late = Subscriber(broker, ["uolrps/cam0/state", "uolrps/status"])
    assert wait_for(lambda: late.on("uolrps/cam0/state") and late.on("uolrps/status"))
    assert late.on("uolrps/cam0/state")[0][2] is True
    assert json.loads(late.on("uolrps/cam0/state")[0][1])["count"] == 5
    assert late.on("uolrps/status")[0][1:3] == (b"online", True)
    pub.close(timeout=5)
    c = pub.counters()
    assert c["dropped"] == 0 and c["queued"] == 0 and c["sent"] >= 5 + 1  # 5 events, at least one state
    # a normal exit says "offline" (retained)
    assert wait_for(lambda: [p for _, p, _, _ in sub.on("uolrps/status")][-1:] == [b"offline"])
    sub.close()
    late.close()


def test_a_new_state_replaces_the_waiting_state_of_its_stream_but_never_an_event(tmp_path):
    b = Broker(tmp_path / "broker")
    try:
        sub = Subscriber(b, ["uolrps/#"], persistent=True, client_id="test-coalesce-sub")
        b.stop()  # the broker is down: everything queues (the subscriber's session is kept for it)
        pub = publisher(b.url(), limit=50)
        pub.start()
        for i in range(4):
            pub.publish(event(i))
            for k in range(30):  # 30 states per event, as a sink that reports every frame would
                pub.state(State("cam0", present=k % 2 == 0, count=k, fps=10.0, wall=1.0 * k))
        c = pub.counters()
        assert c["dropped"] == 0 and c["queued"] <= 4 * 2  # per event at most one waiting state
        b.start()
        assert wait_for(lambda: len({json.loads(p)["seq"] for _, p, _, _ in sub.on("uolrps/cam0/events")}) == 4, 20)
        assert wait_for(lambda: pub.counters()["queued"] == 0)
        pub.close(timeout=5)
        seqs = list(dict.fromkeys(json.loads(p)["seq"] for _, p, _, _ in sub.on("uolrps/cam0/events")))
        assert seqs == [0, 1, 2, 3]
        assert wait_for(lambda: json.loads(sub.on("uolrps/cam0/state")[-1][1])["count"] == 29)  # the newest wins
        assert pub.counters()["dropped"] == 0
        sub.close()
    finally:
        b.stop()


def test_broker_restart_mid_stream_loses_nothing_within_the_bound_and_counts_the_rest_exactly(broker):
    sub = Subscriber(broker, ["uolrps/cam0/events"], persistent=True, client_id="test-restart-sub")
    limit = 10
    pub = publisher(broker.url(), limit=limit)
    pub.start()
    for i in range(5):
        pub.publish(event(i))
    assert wait_for(lambda: pub.counters()["sent"] == 5)
    broker.stop()  # the broker goes away in the middle of the stream
    for i in range(5, 30):
        pub.publish(event(i))  # never blocks
        time.sleep(0.01)
    assert wait_for(lambda: pub.failed >= 1)
    c = pub.counters()
    assert c["queued"] == limit and c["dropped"] == 25 - limit
    broker.start()  # back on the same port, with its persisted sessions
    assert wait_for(lambda: pub.counters()["sent"] == 5 + limit, 30)

    def seqs():  # the broker may deliver a message twice to the subscriber's kept session (QoS 1: at least once)
        return list(dict.fromkeys(json.loads(p)["seq"] for _, p, _, _ in sub.on("uolrps/cam0/events")))

    assert wait_for(lambda: len(seqs()) == 5 + limit, 20)
    pub.close(timeout=5)
    seqs = seqs()
    # before the outage: all 5; after: exactly `limit` of the 25, in order, the newest among them, no duplicate
    assert seqs[:5] == [0, 1, 2, 3, 4]
    after = seqs[5:]
    assert len(after) == limit and after == sorted(set(after)) and set(after) <= set(range(5, 30))
    assert after[-(limit - 1):] == list(range(30 - (limit - 1), 30))  # the head being retried may be kept too
    c = pub.counters()
    assert c["dropped"] == 25 - limit and c["sent"] == 5 + limit and c["queued"] == 0
    assert c["sent"] + c["dropped"] == 30  # every event is either delivered (PUBACK) or counted as dropped
    sub.close()


def test_a_killed_process_leaves_offline_by_its_last_will(broker):
    sub = Subscriber(broker, ["uolrps/status"])
    script = (
        "import sys, time\n"
        "from uolrps.runtime.events.mqtt import MqttPublisher\n"
        f"p = MqttPublisher({broker.url()!r})\n"
        "p.start()\n"
        "while not p._connected: time.sleep(0.02)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        assert wait_for(lambda: [p for _, p, _, _ in sub.on("uolrps/status")] == [b"online"])
        proc.kill()  # no goodbye: the broker sees the connection drop and sends the will
        proc.wait(10)
        assert wait_for(lambda: [p for _, p, _, _ in sub.on("uolrps/status")] == [b"online", b"offline"])
        will = sub.on("uolrps/status")[-1]
        assert will[3] == 1
    finally:
        if proc.poll() is None:
            proc.kill()
    late = Subscriber(broker, ["uolrps/status"])  # and it stays: retained
    assert wait_for(lambda: late.on("uolrps/status"))
    assert late.on("uolrps/status")[0][1:3] == (b"offline", True)
    sub.close()
    late.close()


# ---- checks before any work ------------------------------------------------------------------------------

@pytest.mark.parametrize("url, says", [
    ("http://127.0.0.1:1883", "starts with mqtt:// or mqtts://"),
    ("127.0.0.1:1883", "starts with mqtt:// or mqtts://"),
    ("mqtt://:1883", "no broker host"),
    ("mqtt://host:99999", "port must be a number in 1..65535"),
    ("mqtt://host:abc", "port must be a number in 1..65535"),
    ("mqtt://host:0", "port must be a number in 1..65535"),
    ("mqtt://user:S3cret@host/topic", "no path or query"),
])
def test_a_bad_url_is_one_line_without_the_password(url, says):
    from uolrps.runtime.events.mqtt import MqttPublisher

    with pytest.raises(OptionError) as e:
        MqttPublisher.check(config(mqtt=url))
    text = str(e.value)
    assert says in text and "\n" not in text and "S3cret" not in text and e.value.params[0] == "mqtt"


def test_an_unreachable_broker_is_one_line_naming_the_redacted_url():
    need_broker()
    from uolrps.runtime.events.mqtt import MqttPublisher

    url = f"mqtt://me:S3cret@127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(OptionError) as e:
        MqttPublisher.check(config(mqtt=url))
    assert time.monotonic() - t0 < 10
    text = str(e.value)
    assert "\n" not in text and "S3cret" not in text and "me:" not in text
    assert f"mqtt://***@127.0.0.1:{url.rsplit(':', 1)[1]}" in text and "cannot connect" in text


def test_credentials_from_the_url_work_and_a_wrong_password_is_refused_in_one_line(tmp_path, caplog):
    from uolrps.runtime.events.mqtt import MqttPublisher

    b = Broker(tmp_path / "broker", users={"cam": "Pa55:w@rd"})
    try:
        MqttPublisher.check(config(mqtt=b.url(userinfo="cam:Pa55%3Aw%40rd")))  # percent-encoded in the URL
        with pytest.raises(OptionError) as e:
            MqttPublisher.check(config(mqtt=b.url(userinfo="cam:wrong")))
        text = str(e.value)
        assert "refused" in text and "wrong" not in text and "\n" not in text
        with pytest.raises(OptionError) as e:
            MqttPublisher.check(config(mqtt=b.url()))  # anonymous
        assert "refused" in str(e.value)
        sub = Subscriber(b, ["uolrps/#"], auth=("cam", "Pa55:w@rd"))
        caplog.set_level(logging.DEBUG)
        pub = publisher(b.url(userinfo="cam:Pa55%3Aw%40rd"))
        pub.start()
        pub.publish(event(1))
        assert wait_for(lambda: sub.on("uolrps/cam0/events"))
        pub.close(timeout=5)
        # a publisher whose password is wrong keeps retrying; what it logs never shows the password
        bad = publisher(b.url(userinfo="cam:Wr0ngPa55"))
        bad.start()
        bad.publish(event(2))
        assert wait_for(lambda: bad.failed >= 1)
        bad.close(timeout=0.2)
        assert bad.counters()["dropped"] == 1
        assert "Pa55" not in caplog.text and "Wr0ngPa55" not in caplog.text and "refused" in caplog.text
        sub.close()
    finally:
        b.stop()


def test_check_refuses_a_ca_file_without_mqtts_a_missing_ca_and_a_bad_prefix(broker, tmp_path):
    from uolrps.runtime.events.mqtt import MqttPublisher

    with pytest.raises(OptionError, match="mqtt_ca is for mqtts://"):
        MqttPublisher.check(config(mqtt=broker.url(), mqtt_ca=str(tmp_path)))
    with pytest.raises(OptionError, match="no such file"):
        MqttPublisher.check(config(mqtt=broker.url("mqtts"), mqtt_ca=str(tmp_path / "nope.pem")))
    for prefix in ("", "a/#", "a/+/b", "/a", "a/", "a//b"):
        with pytest.raises(OptionError, match="topic prefix"):
            MqttPublisher.check(config(mqtt=broker.url(), mqtt_prefix=prefix))
    with pytest.raises(OptionError, match="mqtt_queue must be at least 1"):
        MqttPublisher.check(config(mqtt=broker.url(), mqtt_queue=0))
    MqttPublisher.check(config(mqtt=broker.url(), mqtt_prefix="home/cams"))  # a good one passes


def test_mqtts_with_a_ca_file(tmp_path):
    from uolrps.runtime.events.mqtt import MqttPublisher

    ca, cert, key = make_tls(tmp_path / "pki")
    b = Broker(tmp_path / "broker", tls=(ca, cert, key))
    try:
        MqttPublisher.check(config(mqtt=b.url("mqtts"), mqtt_ca=str(ca)))
        # without our CA the system's CAs do not vouch for this server: refused, one line
        with pytest.raises(OptionError) as e:
            MqttPublisher.check(config(mqtt=b.url("mqtts")))
        assert "certificate" in str(e.value).lower() and "\n" not in str(e.value)
        sub = Subscriber(b, ["uolrps/#"], ca=ca)
        pub = MqttPublisher.create(config(mqtt=b.url("mqtts"), mqtt_ca=str(ca)))
        pub.start()
        pub.publish(event(3))
        assert wait_for(lambda: sub.on("uolrps/cam0/events"))
        assert json.loads(sub.on("uolrps/cam0/events")[0][1]) == event(3).to_record()
        pub.close(timeout=5)
        sub.close()
    finally:
        b.stop()


# ---- Home Assistant discovery ----------------------------------------------------------------------------

# The reference: Home Assistant's MQTT discovery as documented at https://www.home-assistant.io/integrations/mqtt/
# ("Discovery messages": the config topic <discovery_prefix>/<component>/[<node_id>/]<object_id>/config, node_id
# and object_id from [a-zA-Z0-9_-]; a retained JSON dictionary; an empty retained payload removes the entity;
# "Using availability topics"; the "device" mapping groups entities and needs identifiers or connections),
# https://www.home-assistant.io/integrations/binary_sensor.mqtt/ and https://www.home-assistant.io/integrations/
# sensor.mqtt/ (the keys and types below). Written here from those pages, not from the code under test.
HA_TOPIC = re.compile(r"^homeassistant/(?P<component>binary_sensor|sensor)/(?P<node>[A-Za-z0-9_-]+)/"
                      r"(?P<object>[A-Za-z0-9_-]+)/config$")
HA_COMMON = {"name": str, "unique_id": str, "state_topic": str, "availability_topic": str,
             "payload_available": str, "payload_not_available": str, "qos": int, "device": dict,
             "value_template": str}
HA_OPTIONAL = {"device_class": str, "payload_on": str, "payload_off": str, "state_class": str, "icon": str,
               "json_attributes_topic": str, "origin": dict, "unit_of_measurement": str}
HA_BINARY_SENSOR_CLASSES = {"occupancy", "presence", "motion", "moving", "running"}  # a subset of the documented
HA_DEVICE = {"identifiers": (list, str), "name": str, "manufacturer": str, "model": str, "sw_version": str}
HA_STATE_CLASSES = {"measurement", "total", "total_increasing"}


def check_ha(topic: str, payload: dict) -> str:
    m = HA_TOPIC.match(topic)
    assert m, topic
    for key, typ in HA_COMMON.items():
        assert isinstance(payload.get(key), typ), (key, payload.get(key))
    for key, value in payload.items():
        assert key in HA_COMMON or key in HA_OPTIONAL, f"{key} is not an option of the documented schema"
        if key in HA_OPTIONAL:
            assert isinstance(value, HA_OPTIONAL[key]), key
    assert payload["qos"] in (0, 1, 2)
    dev = payload["device"]
    assert dev.get("identifiers"), "a device needs identifiers (or connections)"
    for key, value in dev.items():
        assert key in HA_DEVICE and isinstance(value, HA_DEVICE[key]), key
    if m["component"] == "binary_sensor":
        assert payload.get("device_class", "occupancy") in HA_BINARY_SENSOR_CLASSES
    else:
        assert payload.get("state_class", "measurement") in HA_STATE_CLASSES
    return m["component"]


def render(template: str, state: dict) -> str:
    """The value template as HA renders it (Jinja2 with ``value_json``)."""
    jinja2 = pytest.importorskip("jinja2", reason="needs jinja2 to render HA's value templates")
    return jinja2.Environment().from_string(template).render(value_json=state, value=json.dumps(state)).strip()


def test_home_assistant_discovery_matches_the_documented_schema_and_is_removed_with_the_stream(broker):
    sub = Subscriber(broker, ["homeassistant/#", "uolrps/#"])
    pub = publisher(broker.url(), ha=True)
    pub.start()
    pub.stream_added("cam0")
    pub.stream_added("door_cam")
    assert wait_for(lambda: len([m for m in sub.messages if m[0].startswith("homeassistant/")]) >= 4)
    assert wait_for(lambda: pub.counters()["queued"] == 0)
    # what HA gets when it subscribes (e.g. after its own restart): the retained configs (the retain flag is
    # set only on messages a new subscription receives from the broker's store)
    ha = Subscriber(broker, ["homeassistant/#"])
    assert wait_for(lambda: len(ha.messages) >= 4)
    configs = {}
    for topic, payload, retain, qos in ha.messages:
        if payload:
            configs[topic] = (json.loads(payload), retain, qos)
    ha.close()
    assert len(configs) == 4  # two entities per stream
    by_stream: dict[str, dict[str, dict]] = {}
    devices = set()
    unique_ids = set()
    for topic, (payload, retain, qos) in configs.items():
        component = check_ha(topic, payload)
        assert retain is True and qos == 1
        stream = payload["state_topic"].split("/")[1]
        by_stream.setdefault(stream, {})[component] = payload
        devices.add(json.dumps(payload["device"], sort_keys=True))
        unique_ids.add(payload["unique_id"])
        assert payload["availability_topic"] == "uolrps/status"
        assert payload["state_topic"] == f"uolrps/{stream}/state"
    assert set(by_stream) == {"cam0", "door_cam"} and len(unique_ids) == 4
    assert len(devices) == 1  # every entity of this instance is grouped under one device
    # what HA shows for a state payload, by HA's rendering of the templates
    present = by_stream["cam0"]["binary_sensor"]
    on, off = present.get("payload_on", "ON"), present.get("payload_off", "OFF")  # HA's defaults
    assert render(present["value_template"], State("cam0", True, 2, 9.5, 1.0).to_record()) == on
    assert render(present["value_template"], State("cam0", False, 0, 9.5, 1.0).to_record()) == off
    objects = by_stream["cam0"]["sensor"]
    assert render(objects["value_template"], State("cam0", True, 3, 9.5, 1.0).to_record()) == "3"
    # availability: HA marks the entities available on the payload it was told
    assert [p for _, p, _, _ in sub.on("uolrps/status")][-1] == present["payload_available"].encode()
    # the stream goes away and the run goes on: its two configs are cleared with empty retained payloads (and
    # its retained state), the other stream's stay
    pub.state(State("cam0", True, 1, 5.0, 2.0))
    pub.stream_removed("cam0")
    time.sleep(pub.removal_grace + 0.05)
    pub.state(State("door_cam", False, 0, 5.0, 3.0))  # the run goes on
    cam0_topics = [t for t, (p, _, _) in configs.items() if p["state_topic"] == "uolrps/cam0/state"]
    assert wait_for(lambda: all(any(m[0] == t and m[1] == b"" for m in sub.messages) for t in cam0_topics))
    assert wait_for(lambda: pub.counters()["queued"] == 0)
    pub.close(timeout=5)
    late = Subscriber(broker, ["homeassistant/#", "uolrps/+/state"])  # what the broker keeps now
    time.sleep(0.5)
    kept = {t for t, p, r, _ in late.messages if r and p}
    assert kept == {t for t, (p, _, _) in configs.items() if p["state_topic"] == "uolrps/door_cam/state"} \
        | {"uolrps/door_cam/state"}
    sub.close()
    late.close()


def test_discovery_is_sent_again_after_a_broker_restart_that_lost_it(tmp_path):
    b = Broker(tmp_path / "broker")
    try:
        pub = publisher(b.url(), ha=True, ha_prefix="ha")
        pub.start()
        pub.stream_added("cam0")
        assert wait_for(lambda: pub.counters()["sent"] == 2)
        b.stop()
        for f in b.folder.glob("*.db"):
            f.unlink()  # a broker without persistence forgets retained messages
        b.start()
        pub.publish(event(1))  # the next send finds the connection gone and reconnects
        sub_late = Subscriber(b, ["ha/#", "uolrps/status"])
        assert wait_for(lambda: len([m for m in sub_late.messages if m[0].startswith("ha/") and m[1]]) == 2, 20)
        assert wait_for(lambda: [p for _, p, _, _ in sub_late.on("uolrps/status")][-1:] == [b"online"])
        pub.close(timeout=5)
        sub_late.close()
    finally:
        b.stop()


# ---- the command line ------------------------------------------------------------------------------------

def test_the_run_refuses_bad_mqtt_options_when_its_config_is_made(tmp_path):
    from uolrps.runtime.runner import RunConfig

    with pytest.raises(OptionError) as e:
        RunConfig(source="x.mp4", model="m.onnx", mqtt="tcp://broker:1883")
    assert e.value.params[0] == "mqtt"
    with pytest.raises(OptionError) as e:
        RunConfig(source="x.mp4", model="m.onnx", mqtt="mqtt://broker", mqtt_queue=0)
    assert e.value.params == ("mqtt_queue",)
    with pytest.raises(OptionError) as e:
        RunConfig(source="x.mp4", model="m.onnx", mqtt="mqtts://broker", mqtt_ca=str(tmp_path / "none.pem"))
    assert e.value.params == ("mqtt_ca",)
    RunConfig(source="x.mp4", model="m.onnx", mqtt="mqtts://u:p@broker:8883", mqtt_prefix="home/cams")  # no network


@pytest.mark.parametrize("args, says", [
    (["--mqtt", "http://bob:hunter2@broker:1883"], "starts with mqtt:// or mqtts://"),
    (["--mqtt", "mqtt://broker:70000"], "port must be a number"),
    (["--mqtt", "mqtt://broker", "--mqtt-prefix", "a/#"], "--mqtt-prefix"),
    (["--mqtt", "mqtt://broker", "--mqtt-queue", "0"], "--mqtt-queue must be at least 1"),
    (["--mqtt", "mqtt://broker", "--mqtt-ca", "ca.pem"], "--mqtt-ca is for mqtts://"),
    (["--mqtt-ha"], "--mqtt-ha needs a broker: give --mqtt URL with it"),
    (["--mqtt-ca", "ca.pem"], "--mqtt-ca needs a broker: give --mqtt URL with it"),
])
def test_the_command_line_exits_2_on_bad_mqtt_options_before_any_model_is_made(tmp_path, monkeypatch, capsys,
                                                                               args, says):
    from uolrps.cli.main import main

    cache = tmp_path / "cache"
    monkeypatch.setenv("UOLRPS_CACHE", str(cache))  # where a default model would be made
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")  # never opened: the options are checked first
    code = main(["run", "--video", str(video), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert says in err and len(err.splitlines()) == 1, err
    assert "hunter2" not in err and "bob" not in err and "Traceback" not in err
    assert not cache.exists()


def test_at_a_normal_exit_the_entities_stay_and_show_unavailable(broker):
    # the event sink removes every stream when the run ends, just before it closes the publishers
    pub = publisher(broker.url(), ha=True, removal_grace=2.0)
    pub.start()
    pub.stream_added("cam0")
    pub.state(State("cam0", True, 1, 5.0, 1.0))
    assert wait_for(lambda: pub.counters()["sent"] == 3)
    pub.state(State("cam0", False, 0, 0.0, 2.0))
    pub.stream_removed("cam0")
    pub.close(timeout=5)
    late = Subscriber(broker, ["homeassistant/#", "uolrps/#"])
    assert wait_for(lambda: len(late.messages) >= 4)
    time.sleep(0.3)
    kept = {t: p for t, p, r, _ in late.messages if r}
    assert set(kept) == {"homeassistant/binary_sensor/uolrps/cam0_present/config",
                         "homeassistant/sensor/uolrps/cam0_objects/config", "uolrps/cam0/state", "uolrps/status"}
    assert all(kept.values()) and kept["uolrps/status"] == b"offline"  # HA: the entities are unavailable
    assert json.loads(kept["uolrps/cam0/state"])["present"] is False
    late.close()


def test_a_stream_back_within_the_grace_keeps_its_entities(broker):
    sub = Subscriber(broker, ["homeassistant/#"])
    pub = publisher(broker.url(), ha=True, removal_grace=0.5)
    pub.start()
    pub.stream_added("cam0")
    assert wait_for(lambda: len(sub.messages) == 2)
    pub.stream_removed("cam0")
    pub.stream_added("cam0")  # reopened at once (the API replaced its source)
    time.sleep(0.6)
    pub.state(State("cam0", True, 1, 5.0, 1.0))
    assert wait_for(lambda: pub.counters()["queued"] == 0)
    pub.close(timeout=5)
    assert all(p for _, p, _, _ in sub.messages) and len(sub.messages) == 2  # never removed, not sent again
    sub.close()


# ---- end to end: `uolrps run --track --mqtt` -------------------------------------------------------------

CLI = [sys.executable, "-m", "uolrps.cli.main"]


def cli_env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def test_uolrps_run_refuses_an_unreachable_broker_before_the_model_loads(tmp_path):
    need_broker()
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    port = free_port()
    out = subprocess.run(CLI + ["run", "--video", str(video), "--model", str(tmp_path / "absent.onnx"), "--mqtt",
                                f"mqtt://cam:S3cret@127.0.0.1:{port}"], capture_output=True, text=True, timeout=120,
                         env=cli_env())
    err = out.stderr.strip()
    assert out.returncode == 2, err
    # one line, naming the redacted URL; the absent model was never reached (its error would name it)
    assert err.splitlines() == [err] and f"mqtt://***@127.0.0.1:{port}" in err and "--mqtt" in err, err
    assert "S3cret" not in err and "absent.onnx" not in err and "Traceback" not in err


@pytest.mark.slow
def test_uolrps_run_with_a_broker_restarted_mid_run_delivers_every_event(tmp_path):
    from conftest import shared
    from tinymodel import make_tiny_model

    video = shared("video", "raccoon_pan.mp4")
    pytest.importorskip("trackers", reason="needs uolrps[track] (the event sink tracks)")
    model = make_tiny_model(tmp_path / "tiny.onnx")
    b = Broker(tmp_path / "broker")
    try:
        sub = Subscriber(b, ["uolrps/#", "homeassistant/#"], persistent=True, client_id="test-e2e-sub")
        frames = 900
        cmd = CLI + ["run", "--video", str(video), "--model", str(model), "--max-frames", str(frames), "-q",
                     "--jsonl", str(tmp_path / "out.jsonl"), "--events", str(tmp_path / "ev"),
                     "--summary-json", str(tmp_path / "summary.json"), "--mqtt", b.url(), "--mqtt-ha"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
        try:
            assert wait_for(lambda: sub.on("uolrps/raccoon_pan/events") or proc.poll() is not None, 120)
            b.stop()  # the broker goes away in the middle of the run...
            time.sleep(0.5)
            running = proc.poll() is None
            b.start()  # ...and comes back
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        assert running, "the run ended before the broker came back: nothing was tested mid-run (a longer clip?)"
        # the run's own outputs are complete
        lines = (tmp_path / "out.jsonl").read_text().splitlines()
        assert len(lines) == frames
        made = [json.loads(line) for line in (tmp_path / "ev" / "events.jsonl").read_text().splitlines()]
        assert len(made) >= 10  # raccoon_pan: 20 photos; at least a start and an end for several
        summary = json.loads((tmp_path / "summary.json").read_text())
        mqtt = summary["events"]["mqtt"]
        assert mqtt["dropped"] == 0 and mqtt["queued"] == 0 and mqtt["failed"] >= 1  # the outage was felt
        # every event the run made (the --events file is the independent record) arrived over MQTT, in order
        assert wait_for(lambda: len({json.loads(p)["seq"] for _, p, _, _ in sub.on("uolrps/raccoon_pan/events")})
                        == len(made), 20)
        got = list(dict.fromkeys(p for _, p, _, _ in sub.on("uolrps/raccoon_pan/events")))  # QoS 1: maybe twice
        records = [json.loads(p) for p in got]
        assert [r["seq"] for r in records] == [r["seq"] for r in made]
        assert [(r["type"], r["id"], r["box"]) for r in records] == [(r["type"], r["id"], r["box"]) for r in made]
        status = [p for _, p, _, _ in sub.on("uolrps/status")]
        assert status[0] == b"online" and status[-1] == b"offline"
        sub.close()
    finally:
        b.stop()


def test_the_url_can_come_from_the_environment(tmp_path, monkeypatch, capsys):
    from uolrps.cli.main import main

    monkeypatch.setenv("UOLRPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("UOLRPS_MQTT", "ws://bob:hunter2@broker")  # a password kept out of ps, and a bad scheme
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    assert main(["run", "--video", str(video)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--mqtt" in err and "starts with mqtt://" in err and "hunter2" not in err and len(err.splitlines()) == 1


def test_home_assistant_coming_online_gets_the_discovery_payloads_again(broker):
    import paho.mqtt.client as mqtt

    sub = Subscriber(broker, ["homeassistant/+/+/+/config"])
    pub = publisher(broker.url(), ha=True)
    pub.start()
    pub.stream_added("cam0")
    assert wait_for(lambda: len(sub.messages) == 2 and pub.counters()["queued"] == 0)
    ha = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-ha")
    ha.connect("127.0.0.1", broker.port)
    ha.loop_start()
    ha.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)  # HA's birth message
    assert wait_for(lambda: len(sub.messages) == 4)
    assert [m[:2] for m in sub.messages[2:]] == [m[:2] for m in sub.messages[:2]]  # the same payloads again
    ha.publish("homeassistant/status", b"offline", qos=1).wait_for_publish(5)
    time.sleep(0.3)
    assert len(sub.messages) == 4
    ha.disconnect()
    ha.loop_stop()
    pub.close(timeout=5)
    sub.close()
