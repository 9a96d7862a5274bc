"""One way to open the embedded SQLite files (state store, local broker): WAL, shared by processes."""

from __future__ import annotations

import sqlite3
from pathlib import Path


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
