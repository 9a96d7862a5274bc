"""Calls on one embedded SQLite connection: on the event loop while the file is free, else in a thread.

A call on the state store or the local broker takes a fraction of a millisecond (WAL, no fsync per
commit). Handing each one to a worker thread cost far more than the call itself: two thread switches,
each waiting for the GIL under load, and a queue for the loop's few default workers (the latency bench
measured 10-20 ms per call at 50 changes/s). So a call first runs right here with SQLite's busy timeout
at zero; only when another connection (another process, or another object in this one) holds the file's
write lock does it go to a worker thread, which waits for the lock with the full busy timeout, off the
loop. A call that found the file busy has done nothing yet (it fails on ``BEGIN IMMEDIATE`` or on its
first statement), so running it again in the thread is safe.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def _busy(exc: sqlite3.OperationalError) -> bool:
    return exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class SqliteCalls:
    """Serialises calls on one connection (it is used by one thread at a time) and decides where each runs."""

    def __init__(self, busy_timeout_seconds: float):
        self.busy_timeout_ms = int(busy_timeout_seconds * 1000)
        self._lock = threading.Lock()
        self._timeout: tuple[sqlite3.Connection, int] | None = None  # what the connection is set to now
        self.inline = 0  # calls run on the loop, and ...
        self.threaded = 0  # ... calls that had to wait for another connection's lock (figures for reports)

    async def run(self, conn: sqlite3.Connection, call: Callable[[], T]) -> T:
        if self._lock.acquire(blocking=False):
            try:
                self._set_timeout(conn, 0)
                try:
                    result = call()
                except sqlite3.OperationalError as exc:
                    if not _busy(exc) or conn.in_transaction:
                        raise
                else:
                    self.inline += 1
                    return result
            finally:
                self._lock.release()
        return await asyncio.to_thread(self._waiting, conn, call)

    def _waiting(self, conn: sqlite3.Connection, call: Callable[[], T]) -> T:
        with self._lock:
            self.threaded += 1
            self._set_timeout(conn, self.busy_timeout_ms)
            return call()

    def _set_timeout(self, conn: sqlite3.Connection, ms: int) -> None:
        # a reopened file is a new connection, with the timeout it was opened with
        if self._timeout is None or self._timeout[0] is not conn or self._timeout[1] != ms:
            conn.execute(f"PRAGMA busy_timeout={int(ms)}")
            self._timeout = (conn, ms)
