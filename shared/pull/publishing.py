"""Hand pulled notifications to the change topic (the same message ids and sessions as webhooks)."""

from __future__ import annotations

from collections.abc import Sequence

from shared.events.notification import ChangeNotification
from shared.events.publish import publish_intake
from shared.events.result import IntakeResult
from shared.transport.base import Transport


async def publish(notifications: Sequence[ChangeNotification], transport: Transport, topic: str) -> int:
    """Publish every notification or raise; the caller moves its checkpoint only after this returns."""
    return await publish_intake(IntakeResult(tuple(notifications)), transport, topic)
