"""Local broker: subscriptions and filters, sessions, replay, persistence, several processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from transport_clock import FakeClock

from shared.transport import (
    REPLAY_OF,
    FilterSyntaxError,
    LocalBrokerTransport,
    MessageNotFoundError,
    OutboundMessage,
    SessionLockedError,
    SessionLockLostError,
    Transport,
    TransportError,
)
from shared.transport.local import SESSION_ID_IS_NULL, LocalBroker, SqlFilter

SUB = "changes/Subscriptions/{}".format


def change(map: str, key: str, n: int = 1, side: str = "dataverse", **kw: object) -> OutboundMessage:
    return OutboundMessage(
        body=f'{{"map":"{map}","key":"{key}","n":{n}}}'.encode(),
        message_id=f"{map}|{key}|{n}",
        session_id=kw.pop("session_id", f"{map}|{key}"),  # type: ignore[arg-type]
        application_properties={"map": map, "side": side, "n": n},
        **kw,  # type: ignore[arg-type]
    )


# --- filters ---------------------------------------------------------------------------------------
def test_sql_filter_language() -> None:
    props = {"map": "projects", "side": "dataverse", "n": 5, "ok": True, "it's": "x", "odd-name": "it's"}
    system = {"subject": "change", "message_id": "m1"}
    assert SqlFilter("map = 'projects'")(props)
    assert SqlFilter("map = 'projects' AND side = 'dataverse'")(props)
    assert SqlFilter("(map='projects') and (n = 5 AND ok = TRUE)")(props)
    assert SqlFilter("user.map = 'projects' AND sys.Label = 'change' AND sys.MessageId = 'm1'")(props, system)
    assert SqlFilter("[odd-name] = 'it''s'")(props)
    assert SqlFilter("1=1")({}) and not SqlFilter("1=0")({})
    assert not SqlFilter("map = 'project_tasks'")(props)
    assert not SqlFilter("map = 'projects' AND side = 'finance'")(props)
    assert not SqlFilter("n = '5'")(props)  # typed comparison, as Service Bus
    assert not SqlFilter("missing = 'x'")(props)
    for bad in [
        "",
        "map",
        "map = ",
        "map = 'x' OR side = 'y'",
        "map != 'x'",
        "map = 'x' AND",
        "(map = 'x'",
        "sys.Nope = 1",
    ]:
        with pytest.raises(FilterSyntaxError):
            SqlFilter(bad)


async def test_topic_fans_out_by_filter(broker: LocalBroker) -> None:
    await broker.create_topic("changes")
    await broker.create_subscription("changes", "projects", filter="map = 'projects'")
    await broker.create_subscription("changes", "finance-side", filter=lambda p: p.get("side") == "finance")
    await broker.create_subscription("changes", "audit")
    await broker.send(
        "changes",
        [
            change("projects", "P1"),
            change("project_tasks", "T1", side="finance"),
            change("projects", "P2", side="finance"),
        ],
    )
    got = {
        name: [m.message_id for m in await broker.receive(SUB(name), 10)]
        for name in ("projects", "finance-side", "audit")
    }
    assert got == {
        "projects": ["projects|P1|1", "projects|P2|1"],
        "finance-side": ["project_tasks|T1|1", "projects|P2|1"],
        "audit": ["projects|P1|1", "project_tasks|T1|1", "projects|P2|1"],
    }
    with pytest.raises(FilterSyntaxError):
        await broker.create_subscription("changes", "bad", filter="map LIKE 'p%'")


async def test_duplicates_dropped_at_the_topic(broker: LocalBroker) -> None:
    await broker.create_topic("changes")
    await broker.create_subscription("changes", "all")
    await broker.send("changes", [change("projects", "P1")])
    await broker.send("changes", [change("projects", "P1")])
    assert len(await broker.receive(SUB("all"), 10)) == 1


# --- sessions --------------------------------------------------------------------------------------
async def _session_topic(broker: LocalBroker) -> str:
    await broker.create_topic("changes")
    return await broker.create_subscription("changes", "projects", requires_session=True)


async def test_session_messages_in_order_to_one_holder(broker: LocalBroker) -> None:
    path = await _session_topic(broker)
    # Interleaved sends: per-session order must survive.
    await broker.send(
        "changes",
        [
            change("projects", "A", 1),
            change("projects", "B", 1),
            change("projects", "A", 2),
            change("projects", "B", 2),
            change("projects", "A", 3),
        ],
    )
    first = await broker.receive(path, 10)  # consumer 1: next available session = A
    assert [(m.session_id, m.application_properties["n"]) for m in first] == [
        ("projects|A", 1),
        ("projects|A", 2),
        ("projects|A", 3),
    ]
    second = await broker.receive(path, 10)  # consumer 2 cannot get A while it is held
    assert [(m.session_id, m.application_properties["n"]) for m in second] == [
        ("projects|B", 1),
        ("projects|B", 2),
    ]
    assert await broker.receive(path, 10) == []  # both sessions held


async def test_session_order_survives_abandon(broker: LocalBroker) -> None:
    path = await _session_topic(broker)
    await broker.send(
        "changes", [change("projects", "A", 1), change("projects", "A", 2), change("projects", "B", 1)]
    )
    (a1,) = await broker.receive(path, 1)
    (b1,) = await broker.receive(path, 1)  # not A#2: session A is held
    assert (a1.application_properties["n"], b1.session_id) == (1, "projects|B")
    await broker.abandon(a1)  # releases the implicit session lock (nothing else locked under it)
    (again,) = await broker.receive(path, 1)
    assert (again.session_id, again.application_properties["n"], again.delivery_count) == ("projects|A", 1, 2)
    await broker.complete(again)
    (a2,) = await broker.receive(path, 1)
    assert a2.application_properties["n"] == 2


async def test_explicit_session_lock(broker: LocalBroker, clock: FakeClock) -> None:
    path = await _session_topic(broker)
    await broker.send("changes", [change("projects", "A", 1), change("projects", "A", 2)])
    lock = await broker.accept_session(path, "projects|A")
    assert lock is not None
    with pytest.raises(SessionLockedError):
        await broker.accept_session(path, "projects|A")
    assert await broker.receive(path, 10) == []  # no other session available
    (m1,) = await broker.receive(path, 1, session=lock)
    await broker.complete(m1)
    (m2,) = await broker.receive(path, 1, session=lock)  # still ours after settling
    assert m2.application_properties["n"] == 2
    clock.advance(20)
    lock = await broker.renew_session_lock(lock)
    clock.advance(20)
    with pytest.raises(SessionLockedError):
        await broker.accept_session(path, "projects|A")  # renewed: still held
    clock.advance(31)  # session and message locks expire
    with pytest.raises(SessionLockLostError):
        await broker.receive(path, 1, session=lock)
    other = await broker.accept_session(path)
    assert other is not None and other.session_id == "projects|A"
    (redelivered,) = await broker.receive(path, 1, session=other)
    assert (redelivered.application_properties["n"], redelivered.delivery_count) == (2, 2)
    await broker.release_session(other)
    assert await broker.accept_session(path, "projects|A") is not None


async def test_message_without_session_id_is_dead_lettered(broker: LocalBroker) -> None:
    path = await _session_topic(broker)
    await broker.create_subscription("changes", "plain")
    await broker.send("changes", [change("projects", "A", session_id=None)])
    assert await broker.receive(path, 10) == []
    (dead,) = await broker.peek(path + "/$deadletterqueue")
    assert dead.dead_letter_reason == SESSION_ID_IS_NULL == "Session id is null."
    assert len(await broker.receive(SUB("plain"), 10)) == 1  # a plain subscription takes it as usual
    await broker.create_queue("sq", requires_session=True)
    await broker.send("sq", [OutboundMessage(b"x")])
    assert (await broker.counts("sq")).dead_letter == 1


# --- transport and replay --------------------------------------------------------------------------
async def test_local_transport_dead_letters_and_replay(broker: LocalBroker, clock: FakeClock) -> None:
    transport = LocalBrokerTransport(broker)
    assert isinstance(transport, Transport)
    await broker.create_topic("changes")
    path = await broker.create_subscription(
        "changes", "projects", filter="map = 'projects'", requires_session=True
    )
    await broker.create_subscription("changes", "tasks", filter="map = 'project_tasks'")
    await transport.publish(
        "changes",
        [change("projects", "A", 1, correlation_id="c-1", subject="upsert"), change("projects", "B", 1)],
    )
    (got,) = await broker.receive(path, 1)
    await broker.dead_letter(got, "dependency-missing", "parent contract C-1 missing")
    assert await transport.dead_letter_count("changes", "projects") == 1
    assert await transport.active_count("changes", "projects") == 1
    (peeked,) = await transport.peek_dead_letters("changes", "projects")
    assert peeked.dead_letter_reason == "dependency-missing" and peeked.lock_token is None

    # Replay by sequence number, within the duplicate-detection window: must not be dropped.
    replayed = await transport.replay_dead_letter("changes", "projects", peeked.sequence_number)
    assert replayed.message_id == "projects|A|1"
    assert await transport.dead_letter_count("changes", "projects") == 0
    (copy,) = await broker.receive(path, 10, session="projects|A")
    assert (copy.body, copy.correlation_id, copy.subject) == (got.body, "c-1", "upsert")
    assert copy.application_properties == {**got.application_properties, REPLAY_OF: "projects|A|1"}
    assert copy.message_id != got.message_id and copy.delivery_count == 1
    assert await broker.receive(SUB("tasks"), 10) == []  # the filter still routes the replay

    # Replay a received dead letter (the holder of its lock), and a second replay keeps the original id.
    await broker.dead_letter(copy, "validation", "bad")
    (locked,) = await transport.receive_dead_letters("changes", "projects")
    again = await transport.replay_dead_letter("changes", "projects", locked)
    assert again.application_properties[REPLAY_OF] == "projects|A|1"
    (third,) = [m for m in await broker.peek(path, 10) if m.session_id == "projects|A"]
    assert third.application_properties[REPLAY_OF] == "projects|A|1"
    with pytest.raises(MessageNotFoundError):
        await transport.replay_dead_letter("changes", "projects", 999_999)


async def test_local_transport_receive_complete_schedule(broker: LocalBroker, clock: FakeClock) -> None:
    transport = LocalBrokerTransport(broker)
    await broker.create_queue("ingress")
    seq = await transport.schedule(
        "ingress", OutboundMessage(b"later", message_id="x"), datetime.fromtimestamp(clock.now + 5, UTC)
    )
    await transport.cancel_scheduled("ingress", seq)
    await transport.publish("ingress", [OutboundMessage(b"now", message_id="y")])
    (m,) = await broker.receive("ingress")
    await broker.dead_letter(m, "bad-message", "not JSON")
    (dead,) = await transport.receive_dead_letters("ingress", None)
    assert await transport.peek_dead_letters("ingress", None) == [
        # peeking shows it, without a lock, while we hold it
        type(dead)(
            **{**{f: getattr(dead, f) for f in dead.__slots__}, "lock_token": None, "locked_until_utc": None}
        )
    ]
    await transport.complete(dead)
    assert await transport.dead_letter_count("ingress", None) == 0
    clock.advance(10)
    assert await transport.active_count("ingress", None) == 0  # the cancelled one never arrived
    await transport.close()


# --- durability ------------------------------------------------------------------------------------
async def test_state_survives_reopen(broker_path: Path, clock: FakeClock) -> None:
    async with LocalBroker(broker_path, clock=clock, lock_duration=30) as b:
        await b.create_topic("changes")
        await b.create_subscription("changes", "projects", filter="map = 'projects'")
        await b.create_subscription("changes", "py", filter=lambda p: True)
        await b.send("changes", [change("projects", "A", 1), change("projects", "B", 1)])
        (locked,) = await b.receive(SUB("projects"), 1)
        await b.dead_letter((await b.receive(SUB("projects"), 1))[0], "r", "d")
    async with LocalBroker(broker_path, clock=clock) as b:
        assert {e.path: e.filter for e in await b.entities()} == {
            "changes": None,
            SUB("projects"): "map = 'projects'",
            SUB("py"): None,
        }
        (dead,) = await b.peek(SUB("projects") + "/$deadletterqueue")
        assert (dead.dead_letter_reason, dead.dead_letter_error_description) == ("r", "d")
        assert await b.receive(SUB("projects"), 1) == []  # still locked by the first process
        await b.complete(locked)  # its lock token survives the restart
        with pytest.raises(TransportError, match="not registered"):
            await b.send("changes", [change("projects", "C", 1)])  # the Python filter died with its process
        await b.create_subscription("changes", "py", filter=lambda p: True)
        assert await b.send("changes", [change("projects", "A", 1)]) == 0  # duplicate detection remembered
        assert await b.send("changes", [change("projects", "C", 1)]) == 1
        assert [m.message_id for m in await b.receive(SUB("projects"), 5)] == ["projects|C|1"]


CONSUMER = textwrap.dedent(
    """
    import asyncio, sys
    from shared.transport.local import LocalBroker

    async def main(path):
        seen = []
        async with LocalBroker(path) as b:
            while True:
                got = await b.receive("q", 3)
                if not got:
                    break
                for m in got:
                    seen.append(m.message_id)
                    await b.complete(m)
        print(",".join(seen))

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_several_processes_never_get_the_same_message(broker_path: Path) -> None:
    async with LocalBroker(broker_path) as b:
        await b.create_queue("q")
        await b.send("q", [OutboundMessage(b"x", message_id=f"m{i}") for i in range(150)])
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONSUMER, str(broker_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    seen: list[str] = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
        seen += [s for s in out.decode().strip().split(",") if s]
    assert sorted(seen) == sorted(f"m{i}" for i in range(150))  # each exactly once
