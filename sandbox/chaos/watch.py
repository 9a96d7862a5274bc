"""When is the pipeline done? Seen from outside the host: the broker file and the emulators' senders.

The host runs in another process (so it can be killed), so its in-memory ``wait_idle`` is out of reach.
The broker is a SQLite file both processes open: work is left while any queue or subscription holds a
message that is ready, locked or scheduled (a retry waiting its turn), or a dead letter the dead-letter
function has not moved to the error store yet; and while an emulator still has notifications to send.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shared.transport.local.broker import LocalBroker


@dataclass(frozen=True)
class Backlog:
    ready_or_locked: int
    scheduled: int
    dead_letter: int

    @property
    def total(self) -> int:
        return self.ready_or_locked + self.scheduled + self.dead_letter


class BrokerWatch:
    def __init__(self, broker_path: Path, pending_notifications: Callable[[], int]) -> None:
        self.broker = LocalBroker(broker_path)
        self.pending_notifications = pending_notifications
        self.max_backlog = 0

    async def open(self) -> None:
        await self.broker.open()

    async def close(self) -> None:
        await self.broker.close()

    async def backlog(self) -> Backlog:
        ready = scheduled = dead = 0
        for entity in await self.broker.entities():
            if entity.kind == "topic":
                continue
            counts = await self.broker.counts(entity.path)
            ready += counts.active
            scheduled += counts.scheduled
            dead += counts.dead_letter
        backlog = Backlog(ready, scheduled, dead)
        self.max_backlog = max(self.max_backlog, backlog.ready_or_locked)
        return backlog

    async def settle(self, timeout: float, quiet: float = 1.0) -> bool:
        """True once nothing is pending for ``quiet`` seconds in a row; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            idle = self.pending_notifications() == 0 and (await self.backlog()).total == 0
            now = time.monotonic()
            if not idle:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= quiet:
                return True
            await asyncio.sleep(0.1)
        return False
