"""Local broker: peek-lock, lock expiry, delivery counts, dead letters, scheduling, duplicates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from transport_clock import FakeClock

from shared.transport import (
    EntityNotFoundError,
    MessageLockLostError,
    MessageNotFoundError,
    OutboundMessage,
    SubQueue,
    TransportError,
)
from shared.transport.local import MAX_DELIVERY_COUNT_EXCEEDED, LocalBroker


def msg(n: int | str, **kw: object) -> OutboundMessage:
    return OutboundMessage(body=f"body-{n}".encode(), message_id=f"m-{n}", **kw)  # type: ignore[arg-type]


async def test_peek_lock_and_complete(broker: LocalBroker, clock: FakeClock) -> None:
    await broker.create_queue("q")
    await broker.send(
        "q", [msg(1, application_properties={"map": "projects"}, content_type="application/json")]
    )
    (got,) = await broker.receive("q", 5)
    assert (got.body, got.message_id, got.delivery_count, got.entity) == (b"body-1", "m-1", 1, "q")
    assert got.application_properties == {"map": "projects"} and got.content_type == "application/json"
    assert got.lock_token and got.locked_until_utc == datetime.fromtimestamp(clock.now + 30, UTC)
    assert got.enqueued_time_utc == datetime.fromtimestamp(clock.now, UTC)
    assert await broker.receive("q", 5) == []  # locked: nobody else gets it
    assert (await broker.counts("q")).active == 1
    await broker.complete(got)
    assert (await broker.counts("q")).active == 0
    with pytest.raises(MessageLockLostError):
        await broker.complete(got)


async def test_receive_order_and_max_count(broker: LocalBroker) -> None:
    await broker.create_queue("q")
    await broker.send("q", [msg(i) for i in range(5)])
    first = await broker.receive("q", 3)
    second = await broker.receive("q", 3)
    assert [m.message_id for m in first + second] == [f"m-{i}" for i in range(5)]
    assert [m.sequence_number for m in first + second] == sorted(m.sequence_number for m in first + second)


async def test_lock_expiry_redelivers_and_counts(broker: LocalBroker, clock: FakeClock) -> None:
    await broker.create_queue("q")
    await broker.send("q", [msg(1)])
    (first,) = await broker.receive("q")
    clock.advance(29.9)
    assert await broker.receive("q") == []
    clock.advance(0.2)  # lock expired
    (again,) = await broker.receive("q")
    assert again.sequence_number == first.sequence_number and again.delivery_count == 2
    assert again.lock_token != first.lock_token
    with pytest.raises(MessageLockLostError):
        await broker.complete(first)  # the old lock is gone
    await broker.complete(again)


async def test_renew_lock_keeps_message(broker: LocalBroker, clock: FakeClock) -> None:
    await broker.create_queue("q")
    await broker.send("q", [msg(1)])
    (got,) = await broker.receive("q")
    clock.advance(20)
    until = await broker.renew_lock(got)
    assert until == datetime.fromtimestamp(clock.now + 30, UTC)
    clock.advance(20)  # 40 s after receive, 20 s after renewal
    assert await broker.receive("q") == []
    await broker.complete(got)
    clock.advance(60)
    assert await broker.receive("q") == []


async def test_abandon_redelivers_immediately(broker: LocalBroker) -> None:
    await broker.create_queue("q")
    await broker.send("q", [msg(1), msg(2)])
    (one,) = await broker.receive("q")
    await broker.abandon(one)
    (again,) = await broker.receive("q")
    assert (again.message_id, again.delivery_count) == ("m-1", 2)


async def test_max_delivery_count_by_abandon(broker: LocalBroker) -> None:
    await broker.create_queue("q")  # broker default: 3 deliveries
    await broker.send("q", [msg(1)])
    for attempt in (1, 2, 3):
        (got,) = await broker.receive("q")
        assert got.delivery_count == attempt
        await broker.abandon(got)
    assert await broker.receive("q") == []
    counts = await broker.counts("q")
    assert (counts.active, counts.dead_letter) == (0, 1)
    (dead,) = await broker.peek("q", sub_queue=SubQueue.DEAD_LETTER)
    assert dead.dead_letter_reason == MAX_DELIVERY_COUNT_EXCEEDED == "MaxDeliveryCountExceeded"
    assert dead.dead_letter_error_description == "Message could not be consumed after 3 delivery attempts."
    assert (dead.dead_letter_source, dead.delivery_count, dead.body) == ("q", 3, b"body-1")
    assert dead.entity == "q/$deadletterqueue"


async def test_max_delivery_count_by_lock_expiry(broker: LocalBroker, clock: FakeClock) -> None:
    await broker.create_queue("q", max_delivery_count=2, lock_duration=timedelta(seconds=5))
    await broker.send("q", [msg(1)])
    for _ in range(2):
        assert len(await broker.receive("q")) == 1
        clock.advance(6)
    assert await broker.receive("q") == []
    (dead,) = await broker.receive("q/$deadletterqueue")
    assert dead.dead_letter_reason == "MaxDeliveryCountExceeded" and dead.lock_token


async def test_dead_letter_with_reason(broker: LocalBroker) -> None:
    await broker.create_queue("q")
    await broker.send("q", [msg(1)])
    (got,) = await broker.receive("q")
    await broker.dead_letter(got, "validation", "ProjectId is required")
    assert await broker.receive("q") == []
    (dead,) = await broker.receive("q", sub_queue="deadletter")
    assert (dead.dead_letter_reason, dead.dead_letter_error_description) == (
        "validation",
        "ProjectId is required",
    )
    with pytest.raises(TransportError):
        await broker.dead_letter(dead, "again")  # no dead-lettering from a dead-letter queue
    await broker.complete(dead)
    assert (await broker.counts("q")).dead_letter == 0


async def test_dead_letter_queue_has_no_delivery_limit(broker: LocalBroker, clock: FakeClock) -> None:
    await broker.create_queue("q", max_delivery_count=1)
    await broker.send("q", [msg(1)])
    (got,) = await broker.receive("q")
    await broker.dead_letter(got, "r")
    for n in (1, 2, 3):
        (dead,) = await broker.receive("q/$deadletterqueue")
        assert dead.delivery_count == 1 + n  # the count travels with the message
        await broker.abandon(dead)
    assert (await broker.counts("q")).dead_letter == 1


async def test_peek_neither_locks_nor_counts(broker: LocalBroker) -> None:
    await broker.create_queue("q")
    await broker.send("q", [msg(1), msg(2)])
    peeked = await broker.peek("q", 10)
    assert [m.message_id for m in peeked] == ["m-1", "m-2"] and all(m.lock_token is None for m in peeked)
    assert [m.message_id for m in await broker.peek("q", 10, from_sequence=peeked[1].sequence_number)] == [
        "m-2"
    ]
    (got, _) = await broker.receive("q", 2)
    assert got.delivery_count == 1
    with pytest.raises(MessageLockLostError):
        await broker.complete(peeked[0])


async def test_scheduled_message_invisible_until_due(broker: LocalBroker, clock: FakeClock) -> None:
    await broker.create_queue("q")
    at = datetime.fromtimestamp(clock.now + 60, UTC)
    seq = await broker.schedule("q", msg(1), at)
    await broker.send("q", [msg(2, scheduled_enqueue_time_utc=at + timedelta(seconds=30))])
    assert await broker.receive("q", 10) == []
    assert (await broker.counts("q")).scheduled == 2
    clock.advance(59)
    assert await broker.receive("q", 10) == []
    clock.advance(1)
    (due,) = await broker.receive("q", 10)
    assert due.message_id == "m-1" and due.scheduled_enqueue_time_utc == at
    assert seq > 0
    await broker.complete(due)
    clock.advance(30)
    assert [m.message_id for m in await broker.receive("q", 10)] == ["m-2"]


async def test_cancel_scheduled(broker: LocalBroker, clock: FakeClock) -> None:
    await broker.create_topic("t")
    await broker.create_subscription("t", "a")
    await broker.create_subscription("t", "b")
    seq = await broker.schedule("t", msg(1), datetime.fromtimestamp(clock.now + 10, UTC))
    assert (await broker.counts("t/Subscriptions/a")).scheduled == 1
    await broker.cancel_scheduled("t", seq)
    clock.advance(11)
    assert await broker.receive("t/Subscriptions/a") == [] and await broker.receive("t/Subscriptions/b") == []
    with pytest.raises(MessageNotFoundError):
        await broker.cancel_scheduled("t", seq)


async def test_duplicate_detection_window(broker: LocalBroker, clock: FakeClock) -> None:
    await broker.create_queue("q")  # default window: 10 minutes
    assert await broker.send("q", [msg(1), msg(1)]) == 1
    clock.advance(599)
    assert await broker.send("q", [msg(1)]) == 0  # silently dropped
    assert len(await broker.receive("q", 10)) == 1
    clock.advance(2)  # 601 s after the first send
    assert await broker.send("q", [msg(1)]) == 1


async def test_duplicate_window_configurable_and_off(broker: LocalBroker, clock: FakeClock) -> None:
    await broker.create_queue("short", duplicate_detection_window=timedelta(seconds=20))
    await broker.create_queue("off", duplicate_detection_window=None)
    assert await broker.send("short", [msg(1)]) == 1
    clock.advance(21)
    assert await broker.send("short", [msg(1)]) == 1
    assert await broker.send("off", [msg(1), msg(1)]) == 2


async def test_messages_without_id_get_one(broker: LocalBroker) -> None:
    await broker.create_queue("q")
    await broker.send("q", [OutboundMessage(b"a"), OutboundMessage(b"a")])
    got = await broker.receive("q", 5)
    assert len(got) == 2 and got[0].message_id and got[0].message_id != got[1].message_id


async def test_unknown_entities(broker: LocalBroker) -> None:
    with pytest.raises(EntityNotFoundError):
        await broker.send("nope", [msg(1)])
    with pytest.raises(EntityNotFoundError):
        await broker.receive("nope")
    with pytest.raises(EntityNotFoundError):
        await broker.create_subscription("no-topic", "s")
    await broker.create_topic("t")
    with pytest.raises(EntityNotFoundError):
        await broker.receive("t")  # a topic is not receivable


async def test_receive_waits_for_a_message(broker_path) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    async with LocalBroker(broker_path) as b:  # real clock
        await b.create_queue("q")

        async def later() -> None:
            await asyncio.sleep(0.1)
            await b.send("q", [msg(1)])

        task = asyncio.create_task(later())
        got = await b.receive("q", max_wait=5)
        await task
        assert [m.message_id for m in got] == ["m-1"]
        assert await b.receive("q", max_wait=0.1) == []
