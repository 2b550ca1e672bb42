"""The MQTT publisher's cost on the run's thread and its delivery rate, against a real local mosquitto.

    python benchmarks/bench_mqtt.py [--events 2000] [--rounds 3]

1. CPU per call on the caller's thread (what the inference loop pays): ``publish(event)`` and ``state(state)``
   in microseconds (thread CPU time, so the sender thread's work is not counted here), with the broker up.
2. Delivery: events per second that the broker acknowledged (PUBACK, one message in flight at a time).
3. The sender thread's CPU per delivered message (process CPU minus the caller's, over the delivery).

Rounds alternate so that a busy machine shows up as spread, not as a bias. Needs mosquitto and paho-mqtt.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from bench_placement import cpu_name  # noqa: E402 (this folder is on sys.path when a benchmark runs)




def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    from mqttbroker import Broker, wait_for
    from uolrps.runtime.events.event import Event, State
    from uolrps.runtime.events.mqtt import MqttPublisher

    print(f"CPU: {cpu_name()}; Python {platform.python_version()}")
    events = [Event(kind="update", stream="cam0", track=i % 5, id=f"cam0-{i % 5}-0", seq=i, start=0.0, end=i / 25,
                    wall=time.time(), box=(10.0, 20.0, 200.0, 180.0), score=0.41, peak=0.93, frame=i,
                    frame_size=(480, 640)) for i in range(args.events)]
    states = [State("cam0", True, 1 + i % 3, 25.0, time.time()) for i in range(args.events)]
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp) / "broker")
        try:
            rows = []
            for r in range(args.rounds):
                pub = MqttPublisher(broker.url(), limit=args.events * 2 + 10)
                pub.start()
                assert wait_for(lambda: pub._connected, 10)
                c0, p0, w0 = time.thread_time(), time.process_time(), time.perf_counter()
                for e, s in zip(events, states):
                    pub.publish(e)
                    pub.state(s)
                caller = time.thread_time() - c0
                assert wait_for(lambda: pub.counters()["queued"] == 0, 300)
                wall = time.perf_counter() - w0
                sender = (time.process_time() - p0) - caller
                sent = pub.counters()["sent"]
                pub.close(5)
                rows.append((caller / (2 * args.events) * 1e6, args.events / wall, sender / sent * 1e6, sent))
                print(f"round {r + 1}: caller {rows[-1][0]:.1f} us/call | {rows[-1][1]:.0f} events/s delivered "
                      f"(with states) | sender {rows[-1][2]:.0f} us CPU/message | {sent} messages acknowledged")
            med = [sorted(col)[len(col) // 2] for col in zip(*rows)]  # each column's own median
            lo = [min(col) for col in zip(*rows)]
            hi = [max(col) for col in zip(*rows)]
            print(f"median (min-max) of {len(rows)} rounds: caller {med[0]:.1f} ({lo[0]:.1f}-{hi[0]:.1f}) us per "
                  f"publish/state call; {med[1]:.0f} ({lo[1]:.0f}-{hi[1]:.0f}) events/s; sender {med[2]:.0f} "
                  f"({lo[2]:.0f}-{hi[2]:.0f}) us CPU per message; load average {os.getloadavg()[0]:.1f}")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
