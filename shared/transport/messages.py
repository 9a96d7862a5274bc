"""Messages as the engine sees them, independent of Service Bus SDK types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

PropertyValue = str | int | float | bool | None

# Application property a replayed message carries: the message id of the original failure, so the
# error store can group a replay's failures with the original's.
REPLAY_OF = "dualsync_replay_of"


class SubQueue(StrEnum):
    ACTIVE = "active"
    DEAD_LETTER = "deadletter"


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    body: bytes
    message_id: str | None = None
    session_id: str | None = None
    application_properties: Mapping[str, PropertyValue] = field(default_factory=dict)
    content_type: str | None = None
    correlation_id: str | None = None
    subject: str | None = None
    scheduled_enqueue_time_utc: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    body: bytes
    message_id: str | None
    session_id: str | None
    application_properties: Mapping[str, PropertyValue]
    content_type: str | None
    correlation_id: str | None
    subject: str | None
    sequence_number: int
    delivery_count: int
    enqueued_time_utc: datetime | None
    scheduled_enqueue_time_utc: datetime | None = None
    lock_token: str | None = None  # None when peeked
    locked_until_utc: datetime | None = None
    dead_letter_reason: str | None = None
    dead_letter_error_description: str | None = None
    dead_letter_source: str | None = None
    entity: str | None = None  # where it was received from (queue, or topic/Subscriptions/sub)

    def replay_copy(self) -> OutboundMessage:
        """The message to publish again when replaying this dead letter.

        Body and properties are the original's. The message id is new: duplicate detection would
        otherwise silently drop a replay sent within its window; the original id travels in
        :data:`REPLAY_OF` (kept from the first failure through any number of replays).
        """
        props = dict(self.application_properties)
        original = str(props.get(REPLAY_OF) or self.message_id or "")
        props[REPLAY_OF] = original
        return OutboundMessage(
            body=self.body,
            message_id=f"{original}~replay{self.sequence_number}"[-128:] if original else None,
            session_id=self.session_id,
            application_properties=props,
            content_type=self.content_type,
            correlation_id=self.correlation_id,
            subject=self.subject,
        )


def subscription_path(topic: str, subscription: str) -> str:
    """Service Bus's own path of a subscription."""
    return f"{topic}/Subscriptions/{subscription}"
