"""``Transport`` on top of the local broker."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ..messages import OutboundMessage, ReceivedMessage, SubQueue, subscription_path
from .broker import LocalBroker


def _path(topic: str, subscription: str | None) -> str:
    return topic if subscription is None else subscription_path(topic, subscription)


class LocalBrokerTransport:
    """:class:`~shared.transport.base.Transport` backed by a :class:`LocalBroker`."""

    def __init__(self, broker: LocalBroker):
        self.broker = broker

    async def publish(self, entity: str, messages: Sequence[OutboundMessage]) -> None:
        await self.broker.send(entity, messages)

    async def schedule(self, entity: str, message: OutboundMessage, at: datetime) -> int:
        return await self.broker.schedule(entity, message, at)

    async def cancel_scheduled(self, entity: str, sequence_number: int) -> None:
        await self.broker.cancel_scheduled(entity, sequence_number)

    async def peek_dead_letters(
        self, topic: str, subscription: str | None, max_count: int = 10
    ) -> list[ReceivedMessage]:
        return await self.broker.peek(_path(topic, subscription), max_count, sub_queue=SubQueue.DEAD_LETTER)

    async def receive_dead_letters(
        self, topic: str, subscription: str | None, max_count: int = 10
    ) -> list[ReceivedMessage]:
        return await self.broker.receive(
            _path(topic, subscription), max_count, sub_queue=SubQueue.DEAD_LETTER
        )

    async def complete(self, message: ReceivedMessage) -> None:
        await self.broker.complete(message)

    async def replay_dead_letter(
        self, topic: str, subscription: str | None, message: int | ReceivedMessage
    ) -> ReceivedMessage:
        return await self.broker.replay_dead_letter(_path(topic, subscription), message, topic)

    async def dead_letter_count(self, topic: str, subscription: str | None) -> int | None:
        return (await self.broker.counts(_path(topic, subscription))).dead_letter

    async def active_count(self, topic: str, subscription: str | None) -> int | None:
        return (await self.broker.counts(_path(topic, subscription))).active

    async def close(self) -> None:
        await self.broker.close()
