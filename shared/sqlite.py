"""One way to open the embedded SQLite files (state store, local broker): WAL, shared by processes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import ClassVar, Self


def connect_wal(path: Path, *, busy_timeout: float, schema: str) -> sqlite3.Connection:
    """Open ``path`` (``:memory:`` allowed) in autocommit mode with WAL, and apply ``schema``.

    WAL lets several processes (function host, CLI, tests) read while one writes; transactions are
    begun explicitly by the callers.
    """
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(schema)
    return conn


class SqliteFile:
    """An embedded SQLite file opened once, off the event loop, and closed the same way.

    Subclasses set ``SCHEMA`` and, in ``__init__``, ``path`` and ``_busy_timeout``."""

    SCHEMA: ClassVar[str]
    path: Path
    _busy_timeout: float
    _conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        if self._conn is not None:
            return
        self._conn = connect_wal(self.path, busy_timeout=self._busy_timeout, schema=self.SCHEMA)

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.to_thread(conn.close)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
