"""Service Bus triggers from the broker file: sessions in order, redelivery, dead letters, restart."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sandbox.host import DevHost
from shared.transport.local import LocalBroker
from shared.transport.messages import OutboundMessage, subscription_path
from tests.host.conftest import MAX_DELIVERIES, make_host
from tests.host.testapp import TOPIC, Record

ORDERS = subscription_path(TOPIC, "orders")


def order(body: str, session: str, map_name: str = "orders") -> OutboundMessage:
    return OutboundMessage(body=body.encode(), session_id=session, application_properties={"map": map_name})


async def test_entities_are_created_with_sessions_and_a_filter_on_the_map(host: DevHost, broker: LocalBroker):
    entities = {e.path: e for e in await broker.entities()}
    sub = entities[ORDERS]
    assert sub.requires_session and sub.filter == "map = 'orders'" and sub.max_delivery_count == MAX_DELIVERIES
    assert not entities["host-test-work"].requires_session
    assert entities[TOPIC].kind == "topic"


async def test_each_session_is_delivered_in_order_one_message_at_a_time(host: DevHost, broker: LocalBroker,
                                                                        record: Record):
    sessions = [f"s{i}" for i in range(6)]
    # interleaved sends: each session's order must survive several sessions running at once
    await broker.send(TOPIC, [order(f"{s}-{n}", s) for n in range(5) for s in sessions])
    await broker.send(TOPIC, [order("not mine", "x", map_name="other")])  # the filter keeps it out
    assert await host.wait_idle(20)
    by_session: dict[str, list[str]] = {}
    for session, body, delivery in record.orders:
        assert delivery == 1
        by_session.setdefault(session or "", []).append(body)
    assert by_session == {s: [f"{s}-{n}" for n in range(5)] for s in sessions}
    assert record.overlaps == 0
    stats = host.stats()
    assert (stats["delivered"], stats["completed"], stats["abandoned"]) == (30, 30, 0)
    assert (await broker.counts(ORDERS)).active == 0


async def test_a_failing_message_is_redelivered_then_dead_lettered_with_the_reason(
        host: DevHost, broker: LocalBroker, record: Record):
    await broker.send(TOPIC, [order("ok-1", "a"), order("fail-2", "a"), order("ok-3", "a")])
    assert await host.wait_idle(20)
    assert record.orders == [("a", "ok-1", 1), ("a", "fail-2", 1), ("a", "fail-2", 2), ("a", "fail-2", 3),
                             ("a", "ok-3", 1)]  # redelivered in place: the session's order is kept
    [dead] = record.dead
    assert dead["body"] == "fail-2" and dead["reason"] == "MaxDeliveryCountExceeded"
    assert f"after {MAX_DELIVERIES} delivery attempts" in dead["description"]
    # receiving from the dead-letter queue is one more delivery, as in Service Bus
    assert dead["session"] == "a" and dead["delivery_count"] == MAX_DELIVERIES + 1
    stats = host.stats()
    assert (stats["abandoned"], stats["dead_lettered"]) == (MAX_DELIVERIES, 1)
    assert stats["functions"]["orders_dead_letters"]["completed"] == 1
    assert (await broker.counts(ORDERS)).dead_letter == 0  # the dead-letter trigger completed it


async def test_queue_trigger_runs_a_sync_function_in_a_worker_thread(host: DevHost, broker: LocalBroker,
                                                                     record: Record):
    await broker.send("host-test-work", [OutboundMessage(body=f"w{i}".encode()) for i in range(20)])
    assert await host.wait_idle(20)
    assert sorted(b for b, _ in record.work) == sorted(f"w{i}" for i in range(20))
    assert all(thread != "MainThread" for _, thread in record.work)


async def test_wait_idle_reports_far_scheduled_messages_apart(host: DevHost, broker: LocalBroker,
                                                              record: Record):
    later = datetime.now(UTC) + timedelta(hours=1)
    await broker.schedule(TOPIC, order("much later", "z"), later)
    assert await host.wait_idle(5, horizon=1.0)
    report = await host.idle_report(horizon=1.0)
    assert report["idle"] and report["busy"] == {}
    assert report["scheduled_later"][ORDERS]["count"] == 1
    # one due within the horizon keeps the host busy until it is delivered
    await broker.schedule(TOPIC, order("soon", "y"), datetime.now(UTC) + timedelta(seconds=0.5))
    assert not (await host.idle_report(horizon=1.0))["idle"]
    assert await host.wait_idle(10, horizon=1.0)
    assert ("y", "soon", 1) in record.orders


async def test_wait_idle_times_out_while_a_function_runs(host: DevHost, broker: LocalBroker, record: Record):
    await broker.send(TOPIC, [order("slow-1", "q")])
    assert not await host.wait_idle(0.5)
    record.release.set()
    assert await host.wait_idle(10)


async def test_messages_pending_in_the_broker_file_are_delivered_after_a_restart(tmp_path, record: Record):
    first = make_host(record, tmp_path)
    await first.start()
    sender = LocalBroker(first.broker_path)
    await sender.send(TOPIC, [order("slow-0", "r")])  # held by the function when the host stops
    while not record.orders:
        await asyncio.sleep(0.01)
    await first.stop()  # the grace runs out: the running invocation is cancelled, its message abandoned
    await sender.send(TOPIC, [order(f"r-{n}", "r") for n in range(1, 4)])
    await sender.send("host-test-work", [OutboundMessage(body=b"queued while down")])
    assert record.orders == [("r", "slow-0", 1)]

    record.release.set()
    second = make_host(record, tmp_path)
    await second.start()
    try:
        assert await second.wait_idle(20)
    finally:
        await second.stop()
        await sender.close()
    assert record.orders == [("r", "slow-0", 1), ("r", "slow-0", 2), ("r", "r-1", 1), ("r", "r-2", 1),
                             ("r", "r-3", 1)]
    assert [b for b, _ in record.work] == ["queued while down"]
