"""The transport interface the engine uses; Service Bus and the local broker implement it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from .messages import OutboundMessage, ReceivedMessage


@runtime_checkable
class Transport(Protocol):
    """Publish change notifications and manage dead letters.

    ``entity`` is a queue or topic name. Dead-letter calls take a topic and a subscription, or a
    queue name and ``subscription=None``.
    """

    async def publish(self, entity: str, messages: Sequence[OutboundMessage]) -> None: ...

    async def schedule(self, entity: str, message: OutboundMessage, at: datetime) -> int:
        """Enqueue ``message`` at ``at`` (UTC); returns the sequence number to cancel it with."""
        ...

    async def cancel_scheduled(self, entity: str, sequence_number: int) -> None: ...

    async def peek_dead_letters(
        self, topic: str, subscription: str | None, max_count: int = 10
    ) -> list[ReceivedMessage]: ...

    async def receive_dead_letters(
        self, topic: str, subscription: str | None, max_count: int = 10
    ) -> list[ReceivedMessage]:
        """Lock up to ``max_count`` dead letters; settle each with :meth:`complete`."""
        ...

    async def complete(self, message: ReceivedMessage) -> None: ...

    async def replay_dead_letter(
        self, topic: str, subscription: str | None, message: int | ReceivedMessage
    ) -> ReceivedMessage:
        """Publish the dead letter's body and properties to ``topic`` again (see
        :meth:`ReceivedMessage.replay_copy`), then remove it from the dead-letter queue.
        Returns the dead letter that was replayed."""
        ...

    async def dead_letter_count(self, topic: str, subscription: str | None) -> int | None:
        """``None`` when the backend cannot tell (no management rights)."""
        ...

    async def active_count(self, topic: str, subscription: str | None) -> int | None: ...

    async def close(self) -> None: ...
