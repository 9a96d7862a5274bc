"""Local broker: what a host watching every entity reads in one go (readiness, counts of all entities)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from transport_clock import FakeClock

from shared.transport import OutboundMessage
from shared.transport.local import LocalBroker

SUB = "changes/Subscriptions/{}".format


def note(key: str, n: int = 1) -> OutboundMessage:
    return OutboundMessage(body=f"{key}:{n}".encode(), message_id=f"{key}|{n}", session_id=key,
                           application_properties={"map": "projects"})


async def sessions_topic(broker: LocalBroker) -> None:
    await broker.create_topic("changes")
    await broker.create_subscription("changes", "projects", requires_session=True)
    await broker.create_subscription("changes", "plain")
    await broker.create_queue("q")


async def test_ready_names_the_entities_a_receiver_would_get_something_from(broker: LocalBroker) -> None:
    await sessions_topic(broker)
    assert (await broker.ready()).paths == frozenset()
    await broker.send("changes", [note("A")])
    assert (await broker.ready()).paths == {SUB("projects"), SUB("plain")}
    await broker.send("q", [OutboundMessage(body=b"x")])
    assert "q" in (await broker.ready()).paths


async def test_a_locked_session_hides_its_later_messages_until_settled(broker: LocalBroker) -> None:
    await sessions_topic(broker)
    await broker.send("changes", [note("A", 1), note("A", 2)])
    [first] = await broker.receive(SUB("projects"))  # locks session A with its first message
    assert SUB("projects") not in (await broker.ready()).paths  # A's second message waits for the first
    await broker.send("changes", [note("B")])
    assert SUB("projects") in (await broker.ready()).paths  # another session is free
    [b] = await broker.receive(SUB("projects"))
    assert b.session_id == "B"
    assert SUB("projects") not in (await broker.ready()).paths
    await broker.complete(first)  # the implicit lock on A goes with its last settled message
    assert SUB("projects") in (await broker.ready()).paths
    [second] = await broker.receive(SUB("projects"))
    assert (second.session_id, second.body) == ("A", b"A:2")


async def test_ready_tells_when_a_schedule_or_a_lock_falls_due(broker: LocalBroker, clock: FakeClock) -> None:
    await broker.create_queue("q")
    assert (await broker.ready()).next_in is None
    await broker.schedule("q", OutboundMessage(body=b"later"),
                          datetime.fromtimestamp(clock.now, UTC) + timedelta(seconds=5))
    readiness = await broker.ready()
    assert (readiness.paths, readiness.next_in) == (frozenset(), 5.0)
    clock.advance(5)
    assert (await broker.ready()).paths == {"q"}
    [m] = await broker.receive("q")
    readiness = await broker.ready()
    assert (readiness.paths, readiness.next_in) == (frozenset(), 30.0)  # the lock's expiry
    clock.advance(30)
    assert (await broker.ready()).paths == {"q"}  # an expired lock makes the message receivable again
    assert m.lock_token is not None


async def test_dead_letters_are_ready_on_their_own_path(broker: LocalBroker) -> None:
    await broker.create_queue("q")
    await broker.send("q", [OutboundMessage(body=b"x")])
    [m] = await broker.receive("q")
    await broker.dead_letter(m, "bad")
    assert (await broker.ready()).paths == {"q/$deadletterqueue"}


async def test_counts_read_an_expired_last_delivery_as_a_dead_letter_without_writing(
        broker: LocalBroker, clock: FakeClock) -> None:
    await broker.create_queue("q")  # max 3 deliveries, 30 s locks
    await broker.send("q", [OutboundMessage(body=b"x")])
    for _ in range(3):
        assert await broker.receive("q")
        clock.advance(31)
    counts = await broker.counts("q")
    assert (counts.active, counts.dead_letter) == (0, 1)
    peeked = await broker.peek("q")  # peeking sweeps: the store now agrees with what counts said
    assert peeked == []
    assert (await broker.counts("q")).dead_letter == 1


async def test_all_counts_covers_every_queue_and_subscription(broker: LocalBroker, clock: FakeClock) -> None:
    await sessions_topic(broker)
    await broker.send("changes", [note("A"), note("B")])
    await broker.schedule("q", OutboundMessage(body=b"later"),
                          datetime.fromtimestamp(clock.now, UTC) + timedelta(seconds=5))
    counts = await broker.all_counts()
    assert set(counts) == {SUB("projects"), SUB("plain"), "q"}
    assert counts[SUB("projects")] == await broker.counts(SUB("projects"))
    assert (counts[SUB("plain")].active, counts["q"].active, counts["q"].scheduled) == (2, 0, 1)


def _vm_steps(path, fn) -> int:
    """SQLite virtual-machine steps one call takes: a count of the work done, not a timing."""
    import sqlite3

    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn.set_progress_handler(count, 1)
    try:
        fn(conn)
    finally:
        conn.close()
    return steps


async def test_watching_costs_the_same_whatever_the_backlog(broker: LocalBroker, broker_path, clock) -> None:
    """The host reads readiness after every change and sweeps expired locks on every receive: neither may
    read every message of a backlog (at 5,000 queued that was 3 ms per change, the host's ceiling)."""
    await sessions_topic(broker)

    async def cost() -> tuple[int, int]:
        await broker.receive(SUB("plain"), max_count=3)  # a few locked messages, as a host holds them
        now = clock() + 1
        ready = _vm_steps(broker_path, lambda c: LocalBroker._ready(c, now))
        sweep = _vm_steps(broker_path, lambda c: broker._sweep(c, now, SUB("plain")))
        return ready, sweep

    await broker.send("changes", [note(f"K{i % 40}", i) for i in range(20)])
    small = await cost()
    await broker.send("changes", [note(f"K{i % 40}", i) for i in range(20, 3000)])
    large = await cost()
    assert large[0] < 2 * small[0], (small, large)
    assert large[1] < 2 * small[1], (small, large)
