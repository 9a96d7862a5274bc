"""Hand accepted notifications to the transport (the change topic)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.events.control import ControlNumberTracker, Stale
from shared.events.result import IntakeResult
from shared.transport.base import Transport


@dataclass(frozen=True)
class Delivered:
    """What became of an accepted request: how many notifications were sent, or why none."""

    sent: int
    ignored_reason: str | None = None


async def publish_intake(result: IntakeResult, transport: Transport, topic: str) -> int:
    """Publish every notification of an accepted request; returns how many were sent."""
    messages = result.messages()
    if messages:
        await transport.publish(topic, messages)
    return len(messages)


async def deliver(result: IntakeResult, transport: Transport, topic: str,
                  tracker: ControlNumberTracker | None) -> Delivered:
    """Publish, first checking a Finance event's control number when it carries one.

    A stale or duplicate event publishes nothing. If publishing fails after the event passed, the
    claim is released before the error propagates, so the sender's retry passes again.
    """
    if result.control is None or tracker is None or not result.notifications:
        return Delivered(await publish_intake(result, transport, topic), result.ignored_reason)
    verdict = await tracker.claim(result.control)
    if isinstance(verdict, Stale):
        return Delivered(0, verdict.reason)
    try:
        sent = await publish_intake(result, transport, topic)
    except BaseException:
        await tracker.release(verdict)
        raise
    return Delivered(sent, result.ignored_reason)
