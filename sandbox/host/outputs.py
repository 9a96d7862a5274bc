"""Service Bus output bindings routed back into the broker.

Values follow what the Python worker accepts for a Service Bus output: text, bytes, a JSON-able
object, or a list of those (one message each).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shared.transport.local import LocalBroker
from shared.transport.messages import OutboundMessage

from .discovery import HostedFunction


def to_messages(value: Any) -> list[OutboundMessage]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [m for item in value for m in to_messages(item)]
    if isinstance(value, bytes | bytearray):
        return [OutboundMessage(body=bytes(value))]
    if isinstance(value, str):
        return [OutboundMessage(body=value.encode("utf-8"))]
    if isinstance(value, Mapping):
        return [OutboundMessage(body=json.dumps(value).encode("utf-8"), content_type="application/json")]
    raise TypeError(f"a Service Bus output cannot carry a {type(value).__name__}")


async def route_outputs(fn: HostedFunction, outputs: Mapping[str, Any], broker: LocalBroker) -> int:
    """Send what ``fn`` set on its Service Bus outputs; returns the number of messages sent."""
    sent = 0
    for binding in fn.outputs:
        messages = to_messages(outputs.get(binding.name))
        if not messages:
            continue
        entity = binding.queue or binding.topic
        assert entity is not None
        await broker.send(entity, messages)
        sent += len(messages)
    return sent
