"""A publisher for tests: keeps, in order, everything the event sink gives it (registered by the test)."""

from __future__ import annotations


class RecordingPublisher:
    name = "recorder"
    made: list["RecordingPublisher"] = []  # every instance, newest last (the sink creates its own)

    def __init__(self) -> None:
        self.log: list[tuple] = []
        RecordingPublisher.made.append(self)

    @classmethod
    def check(cls, config) -> None:
        pass

    @classmethod
    def create(cls, config) -> "RecordingPublisher":
        return cls()

    def start(self) -> None:
        self.log.append(("start",))

    def stream_added(self, name) -> None:
        self.log.append(("added", name))

    def stream_removed(self, name) -> None:
        self.log.append(("removed", name))

    def publish(self, event) -> None:
        self.log.append(("event", event))

    def state(self, state) -> None:
        self.log.append(("state", state))

    def counters(self) -> dict:
        return {"sent": len(self.log), "dropped": 0, "queued": 0, "failed": 0}

    def close(self, timeout: float = 5.0) -> None:
        self.log.append(("closed",))
