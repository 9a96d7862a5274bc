"""ServiceBusTransport against a mocked azure-servicebus client: the exact calls it makes."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusMessageBatch, ServiceBusSubQueue
from pytest_mock import MockerFixture

from shared.transport import (
    REPLAY_OF,
    MessageLockLostError,
    MessageNotFoundError,
    MessageTooLargeError,
    OutboundMessage,
    Transport,
)
from shared.transport.servicebus import ServiceBusTransport


class RecordingBatch(ServiceBusMessageBatch):
    """A real size-limited batch that also remembers what was added."""

    def __init__(self, max_size_in_bytes: int):
        super().__init__(max_size_in_bytes=max_size_in_bytes)
        self.added: list[ServiceBusMessage] = []

    def add_message(self, message: Any) -> None:
        super().add_message(message)
        self.added.append(message)


@pytest.fixture
def sb(mocker: MockerFixture) -> SimpleNamespace:
    client = mocker.MagicMock(name="ServiceBusClient")
    client.close = mocker.AsyncMock()
    sender = mocker.MagicMock(name="sender")
    sender.batch_size = 1024 * 1024
    sender.create_message_batch = mocker.AsyncMock(side_effect=lambda: RecordingBatch(sender.batch_size))
    sender.send_messages = mocker.AsyncMock()
    sender.schedule_messages = mocker.AsyncMock(return_value=[4711])
    sender.cancel_scheduled_messages = mocker.AsyncMock()
    sender.close = mocker.AsyncMock()
    client.get_topic_sender.return_value = sender
    client.get_queue_sender.return_value = sender
    receiver = mocker.MagicMock(name="receiver")
    for name in ("peek_messages", "receive_messages", "complete_message", "abandon_message", "close"):
        setattr(receiver, name, mocker.AsyncMock())
    client.get_subscription_receiver.return_value = receiver
    client.get_queue_receiver.return_value = receiver
    admin = mocker.MagicMock(name="admin")
    admin.get_subscription_runtime_properties = mocker.AsyncMock(
        return_value=SimpleNamespace(active_message_count=7, dead_letter_message_count=3)
    )
    admin.get_queue_runtime_properties = mocker.AsyncMock(
        return_value=SimpleNamespace(active_message_count=1, dead_letter_message_count=2)
    )
    admin.close = mocker.AsyncMock()
    transport = ServiceBusTransport(client, topics={"changes"}, admin=admin, max_wait_time=1.5)
    return SimpleNamespace(client=client, sender=sender, receiver=receiver, admin=admin, transport=transport)


def change(n: int, **kw: Any) -> OutboundMessage:
    return OutboundMessage(
        body=b'{"map":"projects","key":"P-%d"}' % n,
        message_id=f"projects|P-{n}|{n}",
        session_id=f"projects|P-{n}",
        application_properties={"map": "projects", "side": "dataverse", "version": n},
        content_type="application/json",
        correlation_id=f"corr-{n}",
        subject="upsert",
        **kw,
    )


def sent(sender: Any) -> list[list[ServiceBusMessage]]:
    return [call.args[0].added for call in sender.send_messages.await_args_list]


def received(seq: int, **kw: Any) -> SimpleNamespace:
    base: dict[str, Any] = {
        "body": iter([b'{"map":"projects",', b'"key":"P-1"}']),
        "message_id": "projects|P-1|1",
        "session_id": "projects|P-1",
        "application_properties": {b"map": b"projects", b"version": 1},
        "content_type": "application/json",
        "correlation_id": "corr-1",
        "subject": "upsert",
        "sequence_number": seq,
        "delivery_count": 10,
        "enqueued_time_utc": datetime(2024, 1, 1, tzinfo=UTC),
        "scheduled_enqueue_time_utc": None,
        "lock_token": f"lock-{seq}",
        "locked_until_utc": datetime(2024, 1, 1, 0, 1, tzinfo=UTC),
        "dead_letter_reason": "MaxDeliveryCountExceeded",
        "dead_letter_error_description": "Message could not be consumed after 10 delivery attempts.",
        "dead_letter_source": None,
    }
    return SimpleNamespace(**(base | kw))


async def test_publish_maps_every_property(sb: SimpleNamespace) -> None:
    assert isinstance(sb.transport, Transport)
    at = datetime(2030, 1, 1, 12, tzinfo=UTC)
    await sb.transport.publish("changes", [change(1), change(2, scheduled_enqueue_time_utc=at)])
    sb.client.get_topic_sender.assert_called_once_with(topic_name="changes")
    sb.client.get_queue_sender.assert_not_called()
    ((first, second),) = sent(sb.sender)
    assert b"".join(first.body) == b'{"map":"projects","key":"P-1"}'
    assert (first.message_id, first.session_id, first.content_type, first.correlation_id, first.subject) == (
        "projects|P-1|1",
        "projects|P-1",
        "application/json",
        "corr-1",
        "upsert",
    )
    assert first.application_properties == {"map": "projects", "side": "dataverse", "version": 1}
    assert first.scheduled_enqueue_time_utc is None
    assert second.scheduled_enqueue_time_utc == at


async def test_senders_cached_per_entity(sb: SimpleNamespace) -> None:
    await sb.transport.publish("changes", [change(1)])
    await sb.transport.publish("changes", [change(2)])
    await sb.transport.publish("dualsync-dataverse-ingress", [change(3)])
    await sb.transport.publish("dualsync-dataverse-ingress", [])
    assert sb.client.get_topic_sender.call_count == 1
    sb.client.get_queue_sender.assert_called_once_with(queue_name="dualsync-dataverse-ingress")
    assert sb.sender.send_messages.await_count == 3


async def test_batches_split_by_size(sb: SimpleNamespace) -> None:
    sb.sender.batch_size = 500  # room for two or three of these messages per batch
    messages = [change(i) for i in range(10)]
    await sb.transport.publish("changes", messages)
    batches = sent(sb.sender)
    assert len(batches) > 2 and all(batches)
    assert [m.message_id for batch in batches for m in batch] == [m.message_id for m in messages]


async def test_message_too_large_alone(sb: SimpleNamespace) -> None:
    sb.sender.batch_size = 1000
    with pytest.raises(MessageTooLargeError):
        await sb.transport.publish("changes", [OutboundMessage(b"x" * 5000, message_id="big")])
    sb.sender.send_messages.assert_not_awaited()


async def test_schedule_and_cancel(sb: SimpleNamespace) -> None:
    at = datetime(2030, 5, 1, 8, 30, tzinfo=UTC)
    seq = await sb.transport.schedule("changes", change(1), at)
    assert seq == 4711
    ((message, when), _) = sb.sender.schedule_messages.await_args
    assert (message.message_id, message.session_id, when) == ("projects|P-1|1", "projects|P-1", at)
    await sb.transport.cancel_scheduled("changes", 4711)
    sb.sender.cancel_scheduled_messages.assert_awaited_once_with(4711)


async def test_peek_dead_letters(sb: SimpleNamespace) -> None:
    sb.receiver.peek_messages.return_value = [received(5)]
    (peeked,) = await sb.transport.peek_dead_letters("changes", "projects", 25)
    sb.client.get_subscription_receiver.assert_called_once_with(
        topic_name="changes",
        subscription_name="projects",
        sub_queue=ServiceBusSubQueue.DEAD_LETTER,
        max_wait_time=1.5,
    )
    sb.receiver.peek_messages.assert_awaited_once_with(max_message_count=25)
    assert peeked.body == b'{"map":"projects","key":"P-1"}'
    assert peeked.application_properties == {"map": "projects", "version": 1}
    assert (peeked.dead_letter_reason, peeked.sequence_number, peeked.delivery_count) == (
        "MaxDeliveryCountExceeded",
        5,
        10,
    )
    assert peeked.lock_token is None and peeked.entity == "changes/Subscriptions/projects/$deadletterqueue"


async def test_receive_and_complete_dead_letters(sb: SimpleNamespace) -> None:
    raw = received(5)
    sb.receiver.receive_messages.return_value = [raw]
    (got,) = await sb.transport.receive_dead_letters("ingress", None, 3)
    sb.client.get_queue_receiver.assert_called_once_with(
        queue_name="ingress", sub_queue=ServiceBusSubQueue.DEAD_LETTER, max_wait_time=1.5
    )
    sb.receiver.receive_messages.assert_awaited_once_with(max_message_count=3, max_wait_time=1.5)
    assert got.lock_token == "lock-5"
    await sb.transport.complete(got)
    sb.receiver.complete_message.assert_awaited_once_with(raw)
    with pytest.raises(MessageLockLostError):
        await sb.transport.complete(got)


async def test_replay_by_sequence_number(sb: SimpleNamespace) -> None:
    other, target = received(5, message_id="other"), received(7)
    sb.receiver.receive_messages.side_effect = [[other, target], []]
    replayed = await sb.transport.replay_dead_letter("changes", "projects", 7)
    assert replayed.sequence_number == 7
    ((copy,),) = sent(sb.sender)
    assert b"".join(copy.body) == b'{"map":"projects","key":"P-1"}'
    assert copy.application_properties == {"map": "projects", "version": 1, REPLAY_OF: "projects|P-1|1"}
    assert copy.message_id == "projects|P-1|1~replay7"
    assert (copy.session_id, copy.correlation_id, copy.subject) == ("projects|P-1", "corr-1", "upsert")
    sb.client.get_topic_sender.assert_called_once_with(topic_name="changes")
    sb.receiver.complete_message.assert_awaited_once_with(target)
    sb.receiver.abandon_message.assert_awaited_once_with(other)  # given back, untouched


async def test_replay_received_message_and_missing_one(sb: SimpleNamespace) -> None:
    raw = received(9)
    sb.receiver.receive_messages.side_effect = [[raw]]
    (held,) = await sb.transport.receive_dead_letters("changes", "projects")
    await sb.transport.replay_dead_letter("changes", "projects", held)
    sb.receiver.complete_message.assert_awaited_once_with(raw)
    sb.receiver.receive_messages.side_effect = [[received(1)], []]
    with pytest.raises(MessageNotFoundError):
        await sb.transport.replay_dead_letter("changes", "projects", 42)
    assert sb.receiver.abandon_message.await_count == 1
    assert sb.sender.send_messages.await_count == 1  # nothing published for the missing one


async def test_counts_from_the_management_api(sb: SimpleNamespace) -> None:
    assert await sb.transport.dead_letter_count("changes", "projects") == 3
    assert await sb.transport.active_count("changes", "projects") == 7
    sb.admin.get_subscription_runtime_properties.assert_awaited_with("changes", "projects")
    assert await sb.transport.dead_letter_count("ingress", None) == 2
    sb.admin.get_queue_runtime_properties.assert_awaited_with("ingress")
    no_admin = ServiceBusTransport(sb.client, topics={"changes"})
    assert await no_admin.dead_letter_count("changes", "projects") is None


async def test_close_closes_everything(sb: SimpleNamespace) -> None:
    await sb.transport.publish("changes", [change(1)])
    sb.receiver.peek_messages.return_value = []
    await sb.transport.peek_dead_letters("changes", "projects")
    await sb.transport.close()
    sb.sender.close.assert_awaited_once()
    sb.receiver.close.assert_awaited_once()
    sb.admin.close.assert_awaited_once()
    sb.client.close.assert_awaited_once()


def test_constructors_build_real_clients() -> None:
    conn = "Endpoint=sb://example.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=Zm9vYmFy"
    t = ServiceBusTransport.from_connection_string(conn, topics=["changes"], with_admin=False)
    assert t._client.fully_qualified_namespace == "example.servicebus.windows.net"
