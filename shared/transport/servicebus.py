"""``Transport`` on Azure Service Bus (``azure-servicebus`` aio).

Senders are opened once per entity and reused (opening an AMQP link costs a round trip). Publishing
packs messages into as few size-limited batches as the entity allows. Dead letters received here stay
locked by the receiver that got them, so :meth:`complete` settles through that same receiver.
Counts need the management API (``Manage`` rights); without an admin client they are ``None``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from azure.servicebus import ServiceBusMessage, ServiceBusReceivedMessage, ServiceBusSubQueue
from azure.servicebus.aio import ServiceBusClient, ServiceBusReceiver, ServiceBusSender
from azure.servicebus.exceptions import MessageLockLostError as SbMessageLockLostError
from azure.servicebus.exceptions import MessageSizeExceededError, MessagingEntityNotFoundError

from .errors import EntityNotFoundError, MessageLockLostError, MessageNotFoundError, MessageTooLargeError
from .messages import OutboundMessage, PropertyValue, ReceivedMessage, subscription_path

# How many dead letters replay-by-sequence-number will look through before giving up.
_REPLAY_SEARCH_LIMIT = 5_000


def to_service_bus(message: OutboundMessage) -> ServiceBusMessage:
    return ServiceBusMessage(
        message.body,
        application_properties=dict(message.application_properties) or None,  # type: ignore[arg-type]
        session_id=message.session_id,
        message_id=message.message_id,
        content_type=message.content_type,
        correlation_id=message.correlation_id,
        subject=message.subject,
        scheduled_enqueue_time_utc=message.scheduled_enqueue_time_utc,
    )


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _body(message: ServiceBusReceivedMessage) -> bytes:
    body: Any = message.body
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    return b"".join(bytes(part) for part in body)  # AMQP data sections


def from_service_bus(message: ServiceBusReceivedMessage, entity: str, *, locked: bool) -> ReceivedMessage:
    props: Mapping[str, PropertyValue] = {
        str(_text(k)): _text(v) for k, v in (message.application_properties or {}).items()
    }
    return ReceivedMessage(
        body=_body(message),
        message_id=message.message_id,
        session_id=message.session_id,
        application_properties=props,
        content_type=message.content_type,
        correlation_id=message.correlation_id,
        subject=message.subject,
        sequence_number=int(message.sequence_number or 0),
        delivery_count=int(message.delivery_count or 0),
        enqueued_time_utc=message.enqueued_time_utc,
        scheduled_enqueue_time_utc=message.scheduled_enqueue_time_utc,
        lock_token=str(message.lock_token) if locked and message.lock_token else None,
        locked_until_utc=message.locked_until_utc if locked else None,
        dead_letter_reason=message.dead_letter_reason,
        dead_letter_error_description=message.dead_letter_error_description,
        dead_letter_source=message.dead_letter_source,
        entity=entity,
    )


class ServiceBusTransport:
    """:class:`~shared.transport.base.Transport` on Azure Service Bus.

    ``topics`` names the entities that are topics (the change topic); any other entity is a queue.
    """

    def __init__(
        self,
        client: ServiceBusClient,
        *,
        topics: Collection[str] = (),
        admin: Any | None = None,
        max_wait_time: float = 5.0,
    ):
        self._client = client
        self._topics = frozenset(topics)
        self._admin = admin
        self._max_wait_time = max_wait_time
        self._senders: dict[str, ServiceBusSender] = {}
        self._dlq_receivers: dict[tuple[str, str | None], ServiceBusReceiver] = {}
        # lock token -> (receiver that holds the lock, the SDK message to settle)
        self._held: dict[str, tuple[ServiceBusReceiver, ServiceBusReceivedMessage]] = {}

    @classmethod
    def from_connection_string(
        cls, connection_string: str, *, topics: Collection[str] = (), with_admin: bool = True
    ) -> ServiceBusTransport:
        admin = None
        if with_admin:
            from azure.servicebus.aio.management import ServiceBusAdministrationClient

            admin = ServiceBusAdministrationClient.from_connection_string(connection_string)
        return cls(ServiceBusClient.from_connection_string(connection_string), topics=topics, admin=admin)

    @classmethod
    def from_namespace(
        cls,
        fully_qualified_namespace: str,
        credential: Any,
        *,
        topics: Collection[str] = (),
        with_admin: bool = True,
    ) -> ServiceBusTransport:
        admin = None
        if with_admin:
            from azure.servicebus.aio.management import ServiceBusAdministrationClient

            admin = ServiceBusAdministrationClient(fully_qualified_namespace, credential)
        return cls(ServiceBusClient(fully_qualified_namespace, credential), topics=topics, admin=admin)

    # --- sending ------------------------------------------------------------------------------------
    def _sender(self, entity: str) -> ServiceBusSender:
        sender = self._senders.get(entity)
        if sender is None:
            if entity in self._topics:
                sender = self._client.get_topic_sender(topic_name=entity)
            else:
                sender = self._client.get_queue_sender(queue_name=entity)
            self._senders[entity] = sender
        return sender

    async def publish(self, entity: str, messages: Sequence[OutboundMessage]) -> None:
        if not messages:
            return
        sender = self._sender(entity)
        try:
            batch = await sender.create_message_batch()
            for message in messages:
                sb_message = to_service_bus(message)
                try:
                    batch.add_message(sb_message)
                except MessageSizeExceededError:
                    if len(batch) == 0:
                        raise MessageTooLargeError(
                            f"message {message.message_id!r} ({len(message.body)} bytes of body) exceeds "
                            f"the largest batch {entity!r} accepts"
                        ) from None
                    await sender.send_messages(batch)
                    batch = await sender.create_message_batch()
                    try:
                        batch.add_message(sb_message)
                    except MessageSizeExceededError:
                        raise MessageTooLargeError(
                            f"message {message.message_id!r} exceeds the largest batch {entity!r} accepts"
                        ) from None
            if len(batch):
                await sender.send_messages(batch)
        except MessagingEntityNotFoundError as exc:
            raise EntityNotFoundError(f"no queue or topic {entity!r}") from exc

    async def schedule(self, entity: str, message: OutboundMessage, at: datetime) -> int:
        (sequence_number,) = await self._sender(entity).schedule_messages(
            to_service_bus(message), at.astimezone(UTC)
        )
        return int(sequence_number)

    async def cancel_scheduled(self, entity: str, sequence_number: int) -> None:
        await self._sender(entity).cancel_scheduled_messages(sequence_number)

    # --- dead letters -------------------------------------------------------------------------------
    def _dlq(self, topic: str, subscription: str | None) -> ServiceBusReceiver:
        receiver = self._dlq_receivers.get((topic, subscription))
        if receiver is None:
            if subscription is None:
                receiver = self._client.get_queue_receiver(
                    queue_name=topic,
                    sub_queue=ServiceBusSubQueue.DEAD_LETTER,
                    max_wait_time=self._max_wait_time,
                )
            else:
                receiver = self._client.get_subscription_receiver(
                    topic_name=topic,
                    subscription_name=subscription,
                    sub_queue=ServiceBusSubQueue.DEAD_LETTER,
                    max_wait_time=self._max_wait_time,
                )
            self._dlq_receivers[(topic, subscription)] = receiver
        return receiver

    @staticmethod
    def _dlq_path(topic: str, subscription: str | None) -> str:
        return (
            topic if subscription is None else subscription_path(topic, subscription)
        ) + "/$deadletterqueue"

    async def peek_dead_letters(
        self, topic: str, subscription: str | None, max_count: int = 10
    ) -> list[ReceivedMessage]:
        raw = await self._dlq(topic, subscription).peek_messages(max_message_count=max_count)
        path = self._dlq_path(topic, subscription)
        return [from_service_bus(m, path, locked=False) for m in raw]

    async def receive_dead_letters(
        self, topic: str, subscription: str | None, max_count: int = 10
    ) -> list[ReceivedMessage]:
        receiver = self._dlq(topic, subscription)
        raw = await receiver.receive_messages(max_message_count=max_count, max_wait_time=self._max_wait_time)
        path = self._dlq_path(topic, subscription)
        out = []
        for m in raw:
            received = from_service_bus(m, path, locked=True)
            if received.lock_token:
                self._held[received.lock_token] = (receiver, m)
            out.append(received)
        return out

    async def complete(self, message: ReceivedMessage) -> None:
        held = self._held.pop(message.lock_token or "", None)
        if held is None:
            raise MessageLockLostError(
                "this transport holds no lock for that message (peeked, or already settled)"
            )
        receiver, raw = held
        try:
            await receiver.complete_message(raw)
        except SbMessageLockLostError as exc:
            raise MessageLockLostError(str(exc)) from exc

    async def _abandon_all(self, messages: Sequence[ReceivedMessage]) -> None:
        for m in messages:
            held = self._held.pop(m.lock_token or "", None)
            if held is not None:
                await held[0].abandon_message(held[1])

    async def replay_dead_letter(
        self, topic: str, subscription: str | None, message: int | ReceivedMessage
    ) -> ReceivedMessage:
        if isinstance(message, ReceivedMessage) and message.lock_token in self._held:
            target = message
        else:
            seq = message if isinstance(message, int) else message.sequence_number
            target = await self._find_dead_letter(topic, subscription, seq)
        await self.publish(topic, [target.replay_copy()])
        await self.complete(target)
        return target

    async def _find_dead_letter(self, topic: str, subscription: str | None, seq: int) -> ReceivedMessage:
        # Service Bus cannot receive a dead letter by sequence number: lock batches until it shows up,
        # then give the others back.
        others: list[ReceivedMessage] = []
        try:
            while len(others) < _REPLAY_SEARCH_LIMIT:
                batch = await self.receive_dead_letters(topic, subscription, max_count=100)
                if not batch:
                    break
                for m in batch:
                    if m.sequence_number == seq:
                        others.extend(x for x in batch if x is not m)
                        return m
                others.extend(batch)
        finally:
            await self._abandon_all(others)
        raise MessageNotFoundError(f"no dead letter {seq} in {self._dlq_path(topic, subscription)!r}")

    # --- counts -------------------------------------------------------------------------------------
    async def _runtime(self, topic: str, subscription: str | None) -> Any | None:
        if self._admin is None:
            return None
        if subscription is None:
            return await self._admin.get_queue_runtime_properties(topic)
        return await self._admin.get_subscription_runtime_properties(topic, subscription)

    async def dead_letter_count(self, topic: str, subscription: str | None) -> int | None:
        props = await self._runtime(topic, subscription)
        return None if props is None else int(props.dead_letter_message_count)

    async def active_count(self, topic: str, subscription: str | None) -> int | None:
        props = await self._runtime(topic, subscription)
        return None if props is None else int(props.active_message_count)

    async def close(self) -> None:
        for sender in self._senders.values():
            await sender.close()
        for receiver in self._dlq_receivers.values():
            await receiver.close()
        self._senders.clear()
        self._dlq_receivers.clear()
        self._held.clear()
        if self._admin is not None:
            await self._admin.close()
        await self._client.close()
