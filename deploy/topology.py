"""The Service Bus topology the app needs, generated from the map catalog.

One topic of change notifications; per catalog map one session-enabled subscription whose SQL filter
selects that map's notifications (``ChangeNotification.to_message`` sets the application property
``map``); the two ingress queues and the initial-sync work queue. The JSON form is shaped for the Bicep
template (``infra/main.bicep`` reads ``infra/topology.json`` with ``loadJsonContent``): each entity's
``properties`` object is passed to Azure Resource Manager as it is, so property names are ARM's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.catalog import Catalog
from shared.settings import PREFIX, Settings

DEFAULT_TOPOLOGY_FILE = Path(__file__).resolve().parent.parent / "infra" / "topology.json"

# Service Bus limits on entity names (subscriptions are the shortest).
MAX_SUBSCRIPTION_NAME = 50
# The property the per-map filter reads; ``ChangeNotification.to_message`` sets it.
MAP_PROPERTY = "map"
# ARM creates a TrueFilter rule named $Default with every subscription; a rule of the same name
# replaces it, so the subscription does not also receive every other map's messages.
DEFAULT_RULE = "$Default"

# A change waits while a map is paused (the service reschedules a fresh copy), so the TTL only bounds
# how long a notification nobody handles may sit; expiry dead-letters it, and the dead-letter function
# keeps it in the error store (nothing is lost silently).
MESSAGE_TTL = "P14D"
# Long enough for one record's read-map-write with retries inside the 120 s retry budget; the
# Functions host renews the lock (host.json maxAutoLockRenewalDuration) for longer handlers.
SYNC_LOCK = "PT1M"
# A crash abandons the message; Service Bus dead-letters it after this many deliveries. Retries the
# service decides on are scheduled copies, so they do not count here.
MAX_DELIVERY_COUNT = 10
# Same (map, record, version) announced twice within this window is dropped by Service Bus.
DUPLICATE_WINDOW = "PT10M"
# Initial-sync work items write a batch of rows each; Standard tier's longest lock.
WORK_LOCK = "PT5M"


class TopologyError(Exception):
    """The catalog cannot be expressed as a Service Bus topology (e.g. a map name too long)."""


@dataclass(frozen=True)
class Subscription:
    map: str
    name: str
    sql_filter: str
    properties: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "map": self.map,
                "rule": {"name": DEFAULT_RULE, "sqlExpression": self.sql_filter},
                "properties": self.properties}


@dataclass(frozen=True)
class Entity:
    """The topic or a queue, with the app setting that names it."""

    name: str
    setting: str
    properties: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "setting": self.setting, "properties": self.properties}


@dataclass(frozen=True)
class Topology:
    topic: Entity
    subscriptions: list[Subscription] = field(default_factory=list)
    queues: list[Entity] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "$comment": "Generated from maps/ by `dualsync deploy topology`; do not edit by hand.",
            "topic": self.topic.to_json(),
            "subscriptions": [s.to_json() for s in self.subscriptions],
            "queues": [q.to_json() for q in self.queues],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"


def map_filter(map_name: str) -> str:
    """The SQL filter selecting one map's notifications (``user.`` scope: an application property)."""
    literal = map_name.replace("'", "''")
    return f"user.{MAP_PROPERTY} = '{literal}'"


def _default(setting: str) -> str:
    value = Settings.model_fields[setting].default
    assert isinstance(value, str)
    return value


def _queue(setting: str, lock: str) -> Entity:
    return Entity(
        name=_default(setting),
        setting=f"{PREFIX}{setting.upper()}",
        properties={
            "requiresSession": False,
            "lockDuration": lock,
            "maxDeliveryCount": MAX_DELIVERY_COUNT,
            "defaultMessageTimeToLive": MESSAGE_TTL,
            "deadLetteringOnMessageExpiration": True,
        },
    )


def build_topology(catalog: Catalog) -> Topology:
    """The topology for ``catalog``, with the entity names the settings default to."""
    too_long = [n for n in catalog.maps if len(n) > MAX_SUBSCRIPTION_NAME]
    if too_long:
        raise TopologyError(f"map names longer than {MAX_SUBSCRIPTION_NAME} characters cannot name a "
                            f"Service Bus subscription: {', '.join(sorted(too_long))}")
    topic = Entity(
        name=_default("change_topic"),
        setting=f"{PREFIX}CHANGE_TOPIC",
        properties={
            "requiresDuplicateDetection": True,
            "duplicateDetectionHistoryTimeWindow": DUPLICATE_WINDOW,
            "defaultMessageTimeToLive": MESSAGE_TTL,
        },
    )
    subscriptions = [
        Subscription(
            map=name,
            name=name,
            sql_filter=map_filter(name),
            properties={
                "requiresSession": True,
                "lockDuration": SYNC_LOCK,
                "maxDeliveryCount": MAX_DELIVERY_COUNT,
                "defaultMessageTimeToLive": MESSAGE_TTL,
                "deadLetteringOnMessageExpiration": True,
                "deadLetteringOnFilterEvaluationExceptions": True,
            },
        )
        for name in sorted(catalog.maps)
    ]
    queues = [
        _queue("ingress_queue_dataverse", SYNC_LOCK),
        _queue("ingress_queue_finance", SYNC_LOCK),
        _queue("work_queue", WORK_LOCK),
    ]
    return Topology(topic=topic, subscriptions=subscriptions, queues=queues)


def write_topology(topology: Topology, path: Path = DEFAULT_TOPOLOGY_FILE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(topology.dumps(), encoding="utf-8")
    return path
