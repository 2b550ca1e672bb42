"""``--webhook``: each event POSTed as JSON to a real loopback HTTP receiver (http.server in a thread), signed,
retried after 5xx answers and while the receiver is down, bounded with an exact drop count, credentials
never logged; a bad URL is one line and exit 2 before any model is made."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time

import pytest

from event_samples import make_event
from webhook_receiver import Receiver

from uolrps.core.errors import OptionError
from uolrps.runtime.events.webhook import SECRET_ENV, Webhooks, WebhookPublisher, parse_url

FAST = (0.02, 0.1)  # backoff for the tests: first and largest pause, seconds


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def test_each_event_is_posted_as_its_record_with_a_signature_a_receiver_can_check(receiver):
    secret = "s3cr3t-key"
    pub = WebhookPublisher(receiver.url(), secret=secret.encode(), backoff=FAST)
    pub.start()
    events = [make_event(i, kind) for i, kind in enumerate(("start", "update", "end"))]
    for ev in events:
        pub.publish(ev)
    pub.close(5.0)
    assert receiver.bodies() == [ev.to_record() for ev in events]
    deliveries = set()
    for (path, headers, body), ev in zip(receiver.requests, events):
        assert path == "/hook" and headers["content-type"] == "application/json"
        assert headers["x-uolrps-event"] == ev.kind and headers["user-agent"].startswith("uolrps/")
        ts = headers["x-uolrps-timestamp"]
        assert abs(int(ts) - time.time()) < 30
        # the receiver's check, written from the documented rule: HMAC-SHA256(secret, "<timestamp>.<body>")
        expected = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-uolrps-signature"], "sha256=" + expected)
        wrong = hmac.new(b"another key", f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
        assert headers["x-uolrps-signature"] != "sha256=" + wrong
        deliveries.add(headers["x-uolrps-delivery"])
    assert len(deliveries) == 3
    assert pub.counters() == {"sent": 3, "dropped": 0, "queued": 0, "failed": 0, "rejected": 0}


def test_without_a_secret_no_signature_header(receiver):
    pub = WebhookPublisher(receiver.url(), backoff=FAST)
    pub.start()
    pub.publish(make_event(0))
    pub.close(5.0)
    assert len(receiver.requests) == 1 and "x-uolrps-signature" not in receiver.requests[0][1]


def test_5xx_408_and_429_are_retried_with_the_same_delivery_and_body(receiver):
    receiver.answers = [500, 503, 429, 408]
    pub = WebhookPublisher(receiver.url(), backoff=FAST)
    pub.start()
    pub.publish(make_event(7))
    wait_for(lambda: pub.counters()["sent"] == 1)
    pub.close(5.0)
    assert len(receiver.requests) == 5
    assert len({h["x-uolrps-delivery"] for _, h, _ in receiver.requests}) == 1
    assert len({b for _, _, b in receiver.requests}) == 1
    assert pub.counters() == {"sent": 1, "dropped": 0, "queued": 0, "failed": 4, "rejected": 0}


def test_an_endpoint_that_does_not_answer_in_time_is_retried(receiver):
    receiver.answers = [1.5]  # the first answer comes after the publisher's timeout
    pub = WebhookPublisher(receiver.url(), backoff=FAST, timeout=0.3)
    pub.start()
    t0 = time.monotonic()
    pub.publish(make_event(0))
    wait_for(lambda: pub.counters()["sent"] == 1)
    assert time.monotonic() - t0 < 1.4  # delivered by the retry, not by waiting for the slow answer
    pub.close(5.0)
    assert len(receiver.requests) == 2 and receiver.requests[0][2] == receiver.requests[1][2]
    assert pub.counters()["failed"] == 1


def test_other_4xx_are_counted_and_not_retried(receiver, caplog):
    receiver.answers = [400, 404]
    pub = WebhookPublisher(receiver.url(), backoff=FAST)
    pub.start()
    with caplog.at_level(logging.WARNING, logger="uolrps"):
        for i in range(3):
            pub.publish(make_event(i))
        pub.close(5.0)
    assert len(receiver.requests) == 3  # each tried once: two refused, the third taken
    assert receiver.bodies()[2]["seq"] == 2
    assert pub.counters() == {"sent": 1, "dropped": 0, "queued": 0, "failed": 2, "rejected": 2}
    assert "answered 400" in caplog.text and "answered 404" in caplog.text and "not retried" in caplog.text


def test_an_endpoint_refusing_everything_does_not_flood_the_log(receiver, caplog):
    receiver.answers = [401] * 150
    pub = WebhookPublisher(receiver.url(), backoff=FAST)
    pub.start()
    with caplog.at_level(logging.WARNING, logger="uolrps"):
        for i in range(150):
            pub.publish(make_event(i))
        pub.close(10.0)
    assert len(receiver.requests) == 150 and pub.counters()["rejected"] == 150
    assert caplog.text.count("answered 401") == 2  # the first, and the 100th


def test_a_receiver_down_then_up_gets_every_event_within_the_bound_in_order(receiver):
    port = receiver.port
    receiver.stop()
    pub = WebhookPublisher(f"http://127.0.0.1:{port}/hook", limit=50, backoff=FAST)
    pub.start()
    for i in range(30):
        pub.publish(make_event(i))
    wait_for(lambda: pub.counters()["failed"] >= 3)  # connections refused, retried
    assert pub.counters()["queued"] == 30
    back = Receiver(port=port)
    try:
        wait_for(lambda: pub.counters()["sent"] == 30)
        pub.close(5.0)
        assert [b["seq"] for b in back.bodies()] == list(range(30))
        assert pub.counters()["dropped"] == 0
    finally:
        back.stop()


def test_beyond_the_bound_the_oldest_are_dropped_and_counted_exactly(receiver):
    port = receiver.port
    receiver.stop()
    limit, extra = 10, 7
    pub = WebhookPublisher(f"http://127.0.0.1:{port}/hook", limit=limit, backoff=FAST)
    pub.start()
    pub.publish(make_event(0))
    wait_for(lambda: pub.counters()["failed"] >= 1)  # the first event is the one being retried
    for i in range(1, limit + extra):
        pub.publish(make_event(i))
    assert pub.counters()["dropped"] == extra
    back = Receiver(port=port)
    try:
        wait_for(lambda: pub.counters()["sent"] == limit)
        pub.close(5.0)
        got = [b["seq"] for b in back.bodies()]
        # the one in flight is kept (it may have reached the receiver); the oldest waiting ones went
        assert got == [0] + list(range(extra + 1, limit + extra))
        c = pub.counters()
        assert c["dropped"] == extra and c["sent"] + c["dropped"] == limit + extra
    finally:
        back.stop()


def test_events_left_at_close_are_counted_as_dropped(receiver):
    port = receiver.port
    receiver.stop()
    pub = WebhookPublisher(f"http://127.0.0.1:{port}/hook", backoff=FAST)
    pub.start()
    for i in range(4):
        pub.publish(make_event(i))
    pub.close(0.3)
    assert pub.counters()["dropped"] == 4 and pub.counters()["sent"] == 0


def test_url_credentials_become_basic_auth_and_never_reach_the_log(receiver, caplog):
    receiver.answers = [500, 500]
    url = f"http://alice:pa55word@127.0.0.1:{receiver.port}/hook?token=t0ken"
    pub = WebhookPublisher(url, backoff=FAST)
    pub.start()
    with caplog.at_level(logging.DEBUG, logger="uolrps"):
        pub.publish(make_event(0))
        wait_for(lambda: pub.counters()["sent"] == 1)
        pub.close(5.0)
    path, headers, _ = receiver.requests[-1]
    assert path == "/hook?token=t0ken"
    assert base64.b64decode(headers["authorization"].split()[1]) == b"alice:pa55word"
    assert "answered 500" in caplog.text
    assert "pa55word" not in caplog.text and "t0ken" not in caplog.text and "alice" not in caplog.text


def test_several_webhooks_each_get_every_event_and_one_down_does_not_hold_the_other(receiver):
    down = Receiver()
    down_port = down.port
    down.stop()

    class Config:
        webhook = (receiver.url(), f"http://127.0.0.1:{down_port}/x")
        webhook_secret = None
        webhook_queue = 100

    pubs = Webhooks.create(Config())
    for t in pubs.targets:
        t.backoff = FAST
    pubs.start()
    for i in range(5):
        pubs.publish(make_event(i))
    wait_for(lambda: len(receiver.requests) == 5)
    c = pubs.counters()
    assert c["sent"] == 5 and c["queued"] == 5 and c["failed"] >= 1
    t0 = time.monotonic()
    pubs.close(0.5)
    assert time.monotonic() - t0 < 1.5
    assert pubs.counters()["dropped"] == 5


def test_an_unreachable_https_endpoint_is_retried_not_fatal():
    pub = WebhookPublisher("https://127.0.0.1:9/hook", backoff=FAST, timeout=0.5)  # port 9: nothing listens
    pub.start()
    pub.publish(make_event(0))
    wait_for(lambda: pub.counters()["failed"] >= 2)
    pub.close(0.2)
    assert pub.counters()["dropped"] == 1


@pytest.mark.parametrize("url, words", [
    ("ftp://bob:hunter2@example.com/x", "http:// or https://"),
    ("example.com/hook", "http:// or https://"),
    ("http:///hook", "no host"),
    ("http://bob:hunter2@example.com:99999/x", "not a URL"),
    ("http://example.com/a b", "spaces"),
    ("https://example.com/hook#frag", "fragment"),
])
def test_bad_urls_are_one_clear_line_without_the_credentials(url, words):
    with pytest.raises(OptionError) as info:
        parse_url(url)
    msg = str(info.value)
    assert words in msg and "webhook" in msg and "\n" not in msg
    assert "hunter2" not in msg


def test_the_run_refuses_a_bad_webhook_when_its_config_is_made(tmp_path):
    from uolrps.runtime.runner import RunConfig

    with pytest.raises(OptionError) as info:
        RunConfig(source="x.mp4", model="m.onnx", webhook=("mqtt://broker",))
    assert info.value.params == ("webhook",)
    with pytest.raises(OptionError):
        RunConfig(source="x.mp4", model="m.onnx", webhook=("http://h/x",), webhook_queue=0)
    with pytest.raises(OptionError):
        RunConfig(source="x.mp4", model="m.onnx", webhook=("http://h/x",), webhook_secret="  ")


def test_the_command_line_exits_2_on_a_bad_webhook_before_any_model_is_made(tmp_path, monkeypatch, capsys):
    from uolrps.cli.main import main

    cache = tmp_path / "cache"
    monkeypatch.setenv("UOLRPS_CACHE", str(cache))  # where a default model would be made
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")  # never opened: the webhook is checked first
    code = main(["run", "--video", str(video), "--webhook", "ftp://bob:hunter2@example.com/hook"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "--webhook" in err and "http:// or https://" in err and len(err.splitlines()) == 1, err
    assert "hunter2" not in err and "Traceback" not in err
    assert not cache.exists()


def test_the_secret_comes_from_the_environment_when_not_given(receiver, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "from-env")

    class Config:
        webhook = (receiver.url(),)
        webhook_secret = None
        webhook_queue = 10

    pubs = Webhooks.create(Config())
    pubs.start()
    pubs.publish(make_event(0))
    pubs.close(5.0)
    _, headers, body = receiver.requests[0]
    ts = headers["x-uolrps-timestamp"]
    assert headers["x-uolrps-signature"] == "sha256=" + hmac.new(b"from-env", ts.encode() + b"." + body,
                                                                   hashlib.sha256).hexdigest()
