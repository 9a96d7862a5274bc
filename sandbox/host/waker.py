"""Wake idle receivers when the broker file changes, so polling can be slow when nothing happens.

SQLite's ``PRAGMA data_version`` changes on a connection whenever another connection commits; this
watcher holds its own connection to the broker file and reads it every few milliseconds (no lock,
no schema knowledge), which catches messages sent by the app, the CLI or another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from pathlib import Path

log = logging.getLogger("dualsync.host")


class BrokerWaker:
    def __init__(self, path: Path, interval: float = 0.02):
        self.path = path
        self.interval = interval
        self._changed = asyncio.Event()
        self.version = 0  # grows with every change seen (or poke), so a waiter misses none between looks
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="broker-waker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def poke(self) -> None:
        """Wake everyone waiting now; later waiters wait for the next change."""
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait(self, timeout: float) -> None:
        """Return on the next change, or after ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    async def wait_change(self, since: int, timeout: float) -> None:
        """Return once :attr:`version` differs from ``since`` (at once if it already does), or after
        ``timeout`` seconds."""
        if self.version == since:
            await self.wait(timeout)

    async def _watch(self) -> None:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                               check_same_thread=False)
        try:
            last = None
            while True:
                try:
                    version = conn.execute("PRAGMA data_version").fetchone()[0]
                except sqlite3.Error as exc:  # busy for a moment; the next tick tries again
                    log.debug("broker watcher: %s", exc)
                    version = last
                if version != last:
                    last = version
                    self.poke()
                await asyncio.sleep(self.interval)
        finally:
            conn.close()
