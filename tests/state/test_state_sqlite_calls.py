"""Calls on the embedded SQLite files run on the loop while the file is free, and wait for another
connection's write lock in a worker thread (never on the loop, never failing for it)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from shared.state import LedgerEntry, SqliteStateStore
from shared.transport import OutboundMessage
from shared.transport.local import LocalBroker


def hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another connection (as another process would) takes the file's write lock and keeps it."""
    other = sqlite3.connect(str(path), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


async def blocked_until_released(call: asyncio.Task[object], other: sqlite3.Connection) -> object:
    for _ in range(20):  # the loop keeps running while the call waits for the lock
        await asyncio.sleep(0.01)
    assert not call.done()  # it cannot finish: the lock is held until the commit below
    other.execute("COMMIT")
    other.close()
    return await call


async def test_state_store_waits_off_the_loop_for_a_lock_held_elsewhere(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.sqlite")
    await store.open()
    try:
        await store.put_ledger(LedgerEntry("m", "k1", 1, "finance", "h1"))
        assert (store._calls.inline, store._calls.threaded) == (1, 0)
        other = hold_write_lock(store.path)
        assert (await store.get_ledger("m", "k1")) is not None  # a read does not wait for the writer
        call = asyncio.create_task(store.put_ledger(LedgerEntry("m", "k2", 2, "finance", "h2")))
        written = await blocked_until_released(call, other)
        assert isinstance(written, LedgerEntry) and written.key == "k2"
        assert store._calls.threaded == 1
        assert [e.key async for e in store.iter_ledger("m")] == ["k1", "k2"]  # written once
    finally:
        await store.close()


async def test_broker_send_waits_off_the_loop_for_a_lock_held_elsewhere(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path / "broker.sqlite")
    await broker.open()
    try:
        await broker.create_queue("q")
        other = hold_write_lock(broker.path)
        call = asyncio.create_task(broker.send("q", [OutboundMessage(body=b"x", message_id="m1")]))
        assert await blocked_until_released(call, other) == 1
        assert [m.body for m in await broker.receive("q", 10)] == [b"x"]
        assert broker._calls.threaded == 1
    finally:
        await broker.close()


def busy_timeout_ms(store: SqliteStateStore) -> int:
    assert store._conn is not None
    return int(store._conn.execute("PRAGMA busy_timeout").fetchone()[0])


async def test_a_reopened_file_gets_the_loop_timeout_again(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.sqlite", busy_timeout_seconds=30)
    await store.open()
    await store.put_ledger(LedgerEntry("m", "k1", 1, "finance"))
    assert busy_timeout_ms(store) == 0
    await store.close()
    await store.open()  # a new connection, opened with the full timeout
    try:
        assert busy_timeout_ms(store) == 30_000
        await store.get_ledger("m", "k1")
        assert busy_timeout_ms(store) == 0  # a call on the loop never waits for a lock
        other = hold_write_lock(store.path)
        call = asyncio.create_task(store.put_ledger(LedgerEntry("m", "k2", 2, "finance")))
        await blocked_until_released(call, other)
        assert busy_timeout_ms(store) == 30_000  # the worker thread waited with the full timeout
    finally:
        await store.close()
