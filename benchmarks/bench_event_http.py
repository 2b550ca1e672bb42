"""What the HTTP side of events costs the thread that publishes, and how fast a webhook delivers.

(a) ``publish(event)`` on the caller's thread (the run's consumer thread in a real run), microseconds per
    event, median of ``--rounds`` rounds of ``--events`` events: the webhook publisher (the JSON body is made
    here, then queued) and the API's EventRing (the record kept; an event with a frame is queued for its
    JPEGs). Both must return at once: neither touches the network nor encodes on this thread.
(b) The ring's encoder thread: ms to make one object's two JPEGs (crop + annotated frame) from a 640 x 480
    and a 1920 x 1080 frame.
(c) Webhook delivery to a loopback ``http.server`` receiver: events per second delivered one POST at a time
    (a fresh connection per event), and with the receiver answering 500 to every other try (retries, backoff
    0.01 s).

    python benchmarks/bench_event_http.py [--events 2000] [--rounds 3]

Name the CPU with the figures (lscpu); on the project's build machine it is an AMD EPYC with AVX2 only.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from event_samples import make_event  # noqa: E402

from uolrps.runtime.events.ring import EventRing  # noqa: E402
from uolrps.runtime.events.webhook import WebhookPublisher  # noqa: E402


def receiver(fail_every: int = 0):
    count = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            count[0] += 1
            code = 500 if fail_every and count[0] % fail_every == 0 else 200
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def publish_us(make, events) -> float:
    pub = make()
    t0 = time.perf_counter()
    for ev in events:
        pub.publish(ev)
    dt = time.perf_counter() - t0
    pub.close(0.0 if isinstance(pub, WebhookPublisher) else 1.0)
    return dt / len(events) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    logging.getLogger("uolrps").setLevel(logging.ERROR)  # the retries' warnings are expected here

    plain = [make_event(i) for i in range(args.events)]
    framed = [make_event(i, track=i, frame=i, image=True) for i in range(min(args.events, 200))]
    unreachable = "http://127.0.0.1:9/hook"  # nothing listens: the sender thread retries, publish never waits
    rows = {"webhook publish (endpoint down)": [], "ring publish (no frame)": [], "ring publish (with frame)": []}
    for _ in range(args.rounds):  # interleaved rounds
        rows["webhook publish (endpoint down)"].append(
            publish_us(lambda: _started(WebhookPublisher(unreachable, secret=b"k", limit=10 ** 6)), plain))
        rows["ring publish (no frame)"].append(publish_us(lambda: _started(EventRing()), plain))
        rows["ring publish (with frame)"].append(publish_us(lambda: _started(EventRing()), framed))
    print("(a) publish() on the caller's thread, us per event (median of rounds):")
    for name, values in rows.items():
        print(f"    {name:34s} {statistics.median(values):8.1f}")

    ring = EventRing()
    print("(b) one object's JPEGs on the ring's encoder thread, ms:")
    for size in ((480, 640), (1080, 1920)):
        ev = make_event(0, box=(size[1] // 4, size[0] // 4, size[1] // 2, size[0] // 2), size=size, image=True)
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            ring._encode(ev.image, ev.box, ev.frame, ev.track)
            times.append((time.perf_counter() - t0) * 1000)
        print(f"    {size[1]} x {size[0]}: {statistics.median(times):6.2f}")

    print("(c) webhook delivery to a loopback receiver:")
    for label, fail_every in (("every POST answered 200", 0), ("every other try answered 500", 2)):
        server = receiver(fail_every)
        pub = WebhookPublisher(f"http://127.0.0.1:{server.server_address[1]}/hook", secret=b"k",
                               limit=10 ** 6, backoff=(0.01, 0.01))
        n = min(args.events, 500)
        t0 = time.perf_counter()
        pub.start()
        for ev in plain[:n]:
            pub.publish(ev)
        while pub.counters()["sent"] < n:
            time.sleep(0.005)
        dt = time.perf_counter() - t0
        c = pub.counters()
        pub.close(1.0)
        server.shutdown()
        server.server_close()
        print(f"    {label:30s} {n / dt:8.0f} events/s  (sent {c['sent']}, failed tries {c['failed']})")


def _started(pub):
    pub.start()
    return pub


if __name__ == "__main__":
    main()
