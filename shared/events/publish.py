"""Hand accepted notifications to the transport (the change topic)."""

from __future__ import annotations

from shared.events.result import IntakeResult
from shared.transport.base import Transport
from shared.transport.messages import OutboundMessage


async def publish_intake(result: IntakeResult, transport: Transport, topic: str) -> int:
    """Publish every notification of an accepted request; returns how many were sent."""
    messages = [
        OutboundMessage(body=m.body, message_id=m.message_id, session_id=m.session_id,
                        application_properties=dict(m.application_properties), content_type=m.content_type,
                        correlation_id=m.correlation_id)
        for m in result.messages()
    ]
    if messages:
        await transport.publish(topic, messages)
    return len(messages)
