"""The run's event publishers, in the order they receive each event. To add one: its module, and one line here."""

from __future__ import annotations

from uolrps.runtime.events.files import FilesPublisher
from uolrps.runtime.events.mqtt import MqttPublisher
from uolrps.runtime.events.publisher import Publisher
from uolrps.runtime.events.ring import EventRing
from uolrps.runtime.events.webhook import Webhooks

PUBLISHERS: list[type[Publisher]] = []
PUBLISHERS.append(FilesPublisher)  # --events DIR
PUBLISHERS.append(MqttPublisher)  # --mqtt (issue 23 item 3)
PUBLISHERS.append(Webhooks)  # --webhook URL
PUBLISHERS.append(EventRing)  # the HTTP API's recent events (--serve)
