"""SQLite state store: the embedded default.

One file, WAL journal so readers never block the writer, ``busy_timeout`` so several processes (the
dev host, the CLI) can share it. Every read-modify-write runs in ``BEGIN IMMEDIATE`` so the check of
an etag and the write that follows are one step even across processes. Calls run on the event loop
while the file is free and in a worker thread when another connection holds its lock
(:mod:`.sqlite_calls`), so the loop never waits on another process's lock.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from shared.sqlite import SqliteFile

from .errorlog import merge_error, payload_json
from .errors import ConcurrencyError, NotFoundError
from .models import (
    Checkpoint,
    ErrorRecord,
    ErrorReport,
    ErrorStatus,
    LedgerEntry,
    MapState,
    RunState,
    utcnow,
)
from .sqlite_calls import SqliteCalls
from .stamps import parse_stamp, stamp_text

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    map TEXT NOT NULL, key TEXT NOT NULL, source_version INTEGER NOT NULL, source_side TEXT NOT NULL,
    target_hash TEXT, target_etag TEXT, updated_at TEXT NOT NULL, etag TEXT NOT NULL,
    PRIMARY KEY (map, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY, data TEXT NOT NULL, updated_at TEXT NOT NULL, etag TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS errors (
    id TEXT PRIMARY KEY, map TEXT NOT NULL, key TEXT NOT NULL, classification TEXT NOT NULL,
    reason TEXT NOT NULL, description TEXT NOT NULL, delivery_count INTEGER NOT NULL, payload TEXT NOT NULL,
    message_id TEXT, session_id TEXT, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
    occurrences INTEGER NOT NULL, status TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS errors_by_status ON errors (status, map, last_seen);
CREATE TABLE IF NOT EXISTS map_states (
    map TEXT PRIMARY KEY, state TEXT NOT NULL, since TEXT, reason TEXT NOT NULL
) WITHOUT ROWID;
"""


_ts = stamp_text
_dt = parse_stamp


_IN_CHUNK = 500  # keys per ``IN (...)`` of a bulk ledger read


def _new_etag() -> str:
    return uuid.uuid4().hex


class SqliteStateStore(SqliteFile):
    """:class:`~shared.state.base.StateStore` in one SQLite file."""

    SCHEMA = _SCHEMA

    def __init__(self, path: str | Path, *, busy_timeout_seconds: float = 30.0):
        self.path = Path(path)
        self._busy_timeout = busy_timeout_seconds
        self._conn: sqlite3.Connection | None = None
        self._calls = SqliteCalls(busy_timeout_seconds)  # one connection, used by one caller at a time

    # --- plumbing ---------------------------------------------------------------------------------

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            await self.open()
        conn = self._conn
        assert conn is not None
        return await self._calls.run(conn, lambda: fn(conn))

    @staticmethod
    @contextmanager
    def _write(conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def _check(kind: str, name: str, current: str | None, expected: str | None, only_if_absent: bool) -> None:
        if only_if_absent and current is not None:
            raise ConcurrencyError(kind, name, "already exists")
        if expected is not None and current != expected:
            raise ConcurrencyError(kind, name, "etag mismatch" if current else "does not exist")

    # --- ledger -----------------------------------------------------------------------------------
    @staticmethod
    def _ledger(row: sqlite3.Row) -> LedgerEntry:
        return LedgerEntry(
            map=row["map"],
            key=row["key"],
            source_version=row["source_version"],
            source_side=row["source_side"],
            target_hash=row["target_hash"],
            target_etag=row["target_etag"],
            updated_at=_dt(row["updated_at"]),
            etag=row["etag"],
        )

    async def get_ledger(self, map: str, key: str) -> LedgerEntry | None:
        def q(conn: sqlite3.Connection) -> LedgerEntry | None:
            row = conn.execute("SELECT * FROM ledger WHERE map=? AND key=?", (map, key)).fetchone()
            return self._ledger(row) if row else None

        return await self._run(q)

    async def get_ledgers(self, map: str, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        wanted = list(dict.fromkeys(keys))  # each key once
        if not wanted:
            return {}

        def q(conn: sqlite3.Connection) -> dict[str, LedgerEntry]:
            found: dict[str, LedgerEntry] = {}
            # chunked so one statement stays under SQLite's bound-parameter limit (999 before 3.32)
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                rows = conn.execute(
                    f"SELECT * FROM ledger WHERE map=? AND key IN ({','.join('?' * len(chunk))})",
                    (map, *chunk),
                ).fetchall()
                for row in rows:
                    found[row["key"]] = self._ledger(row)
            return found

        return await self._run(q)  # one thread hop for the whole call

    async def put_ledger(
        self, entry: LedgerEntry, *, expected_etag: str | None = None, only_if_absent: bool = False
    ) -> LedgerEntry:
        def q(conn: sqlite3.Connection) -> LedgerEntry:
            name = f"{entry.map}/{entry.key}"
            with self._write(conn):
                row = conn.execute(
                    "SELECT etag FROM ledger WHERE map=? AND key=?", (entry.map, entry.key)
                ).fetchone()
                self._check("ledger", name, row["etag"] if row else None, expected_etag, only_if_absent)
                etag = _new_etag()
                conn.execute(
                    "INSERT OR REPLACE INTO ledger VALUES (?,?,?,?,?,?,?,?)",
                    (
                        entry.map,
                        entry.key,
                        entry.source_version,
                        str(entry.source_side),
                        entry.target_hash,
                        entry.target_etag,
                        _ts(entry.updated_at),
                        etag,
                    ),
                )
            return replace(entry, etag=etag)

        return await self._run(q)

    async def put_ledgers(self, entries: Sequence[LedgerEntry]) -> list[LedgerEntry]:
        if not entries:
            return []
        # One random etag stem per call, numbered per entry: etags stay unique, without a uuid4 and a
        # dataclasses.replace per row (8 us each, ~5% of an initial sync's CPU)
        stem = _new_etag()[:24]
        stored = [LedgerEntry(e.map, e.key, e.source_version, e.source_side, e.target_hash, e.target_etag,
                              e.updated_at, f"{stem}{i:08x}") for i, e in enumerate(entries)]

        def q(conn: sqlite3.Connection) -> None:
            with self._write(conn):
                conn.executemany(
                    "INSERT OR REPLACE INTO ledger VALUES (?,?,?,?,?,?,?,?)",
                    [(e.map, e.key, e.source_version, str(e.source_side), e.target_hash, e.target_etag,
                      _ts(e.updated_at), e.etag) for e in stored],
                )

        await self._run(q)
        return stored

    async def delete_ledger(self, map: str, key: str, *, expected_etag: str | None = None) -> bool:
        def q(conn: sqlite3.Connection) -> bool:
            with self._write(conn):
                row = conn.execute("SELECT etag FROM ledger WHERE map=? AND key=?", (map, key)).fetchone()
                self._check("ledger", f"{map}/{key}", row["etag"] if row else None, expected_etag, False)
                return conn.execute("DELETE FROM ledger WHERE map=? AND key=?", (map, key)).rowcount > 0

        return await self._run(q)

    async def iter_ledger(self, map: str, *, page_size: int = 500) -> AsyncIterator[LedgerEntry]:
        # Keyset paging: no long-lived read transaction, and writers may run in between pages.
        after: str | None = None  # None: from the start (an empty string is a valid key)
        while True:

            def q(conn: sqlite3.Connection, after: str | None = after) -> list[LedgerEntry]:
                rows = conn.execute(
                    "SELECT * FROM ledger WHERE map=? AND (? IS NULL OR key>?) ORDER BY key LIMIT ?",
                    (map, after, after, page_size),
                ).fetchall()
                return [self._ledger(r) for r in rows]

            page = await self._run(q)
            for entry in page:
                yield entry
            if len(page) < page_size:
                return
            after = page[-1].key

    # --- checkpoints ------------------------------------------------------------------------------
    async def get_checkpoint(self, name: str) -> Checkpoint | None:
        def q(conn: sqlite3.Connection) -> Checkpoint | None:
            row = conn.execute("SELECT * FROM checkpoints WHERE name=?", (name,)).fetchone()
            if row is None:
                return None
            return Checkpoint(name, json.loads(row["data"]), _dt(row["updated_at"]), row["etag"])

        return await self._run(q)

    async def put_checkpoint(
        self,
        name: str,
        data: dict[str, Any],
        *,
        expected_etag: str | None = None,
        only_if_absent: bool = False,
    ) -> Checkpoint:
        text = json.dumps(data, separators=(",", ":"))
        now = utcnow()

        def q(conn: sqlite3.Connection) -> Checkpoint:
            with self._write(conn):
                row = conn.execute("SELECT etag FROM checkpoints WHERE name=?", (name,)).fetchone()
                self._check("checkpoint", name, row["etag"] if row else None, expected_etag, only_if_absent)
                etag = _new_etag()
                conn.execute(
                    "INSERT OR REPLACE INTO checkpoints VALUES (?,?,?,?)", (name, text, _ts(now), etag)
                )
            return Checkpoint(name, json.loads(text), now, etag)

        return await self._run(q)

    async def delete_checkpoint(self, name: str, *, expected_etag: str | None = None) -> bool:
        def q(conn: sqlite3.Connection) -> bool:
            with self._write(conn):
                row = conn.execute("SELECT etag FROM checkpoints WHERE name=?", (name,)).fetchone()
                self._check("checkpoint", name, row["etag"] if row else None, expected_etag, False)
                return conn.execute("DELETE FROM checkpoints WHERE name=?", (name,)).rowcount > 0

        return await self._run(q)

    # --- error records ----------------------------------------------------------------------------
    @staticmethod
    def _error(row: sqlite3.Row) -> ErrorRecord:
        return ErrorRecord(
            id=row["id"],
            map=row["map"],
            key=row["key"],
            classification=row["classification"],
            reason=row["reason"],
            description=row["description"],
            delivery_count=row["delivery_count"],
            payload=json.loads(row["payload"]),
            message_id=row["message_id"],
            session_id=row["session_id"],
            first_seen=_dt(row["first_seen"]),
            last_seen=_dt(row["last_seen"]),
            occurrences=row["occurrences"],
            status=ErrorStatus(row["status"]),
        )

    async def record_error(self, report: ErrorReport, *, seen_at: datetime | None = None) -> ErrorRecord:
        when = seen_at or utcnow()

        def q(conn: sqlite3.Connection) -> ErrorRecord:
            with self._write(conn):
                row = conn.execute("SELECT * FROM errors WHERE id=?", (report.error_id,)).fetchone()
                rec = merge_error(self._error(row) if row else None, report, when)
                conn.execute(
                    "INSERT OR REPLACE INTO errors VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        rec.id,
                        rec.map,
                        rec.key,
                        rec.classification,
                        rec.reason,
                        rec.description,
                        rec.delivery_count,
                        payload_json(rec.payload),
                        rec.message_id,
                        rec.session_id,
                        _ts(rec.first_seen),
                        _ts(rec.last_seen),
                        rec.occurrences,
                        rec.status.value,
                    ),
                )
            return rec

        return await self._run(q)

    @staticmethod
    def _where(map: str | None, status: ErrorStatus | str | None) -> tuple[str, list[Any]]:
        clauses, args = [], []
        if status is not None:
            clauses.append("status=?")
            args.append(ErrorStatus(status).value)
        if map is not None:
            clauses.append("map=?")
            args.append(map)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args

    async def list_errors(
        self, map: str | None = None, status: ErrorStatus | str | None = ErrorStatus.OPEN, limit: int = 100
    ) -> list[ErrorRecord]:
        where, args = self._where(map, status)

        def q(conn: sqlite3.Connection) -> list[ErrorRecord]:
            rows = conn.execute(
                f"SELECT * FROM errors{where} ORDER BY last_seen DESC, id LIMIT ?", (*args, limit)
            ).fetchall()
            return [self._error(r) for r in rows]

        return await self._run(q)

    async def get_error(self, error_id: str) -> ErrorRecord | None:
        def q(conn: sqlite3.Connection) -> ErrorRecord | None:
            row = conn.execute("SELECT * FROM errors WHERE id=?", (error_id,)).fetchone()
            return self._error(row) if row else None

        return await self._run(q)

    async def set_error_status(self, error_id: str, status: ErrorStatus | str) -> ErrorRecord:
        value = ErrorStatus(status)

        def q(conn: sqlite3.Connection) -> ErrorRecord:
            with self._write(conn):
                if (
                    conn.execute("UPDATE errors SET status=? WHERE id=?", (value.value, error_id)).rowcount
                    == 0
                ):
                    raise NotFoundError(f"no error record {error_id!r}")
                return self._error(conn.execute("SELECT * FROM errors WHERE id=?", (error_id,)).fetchone())

        return await self._run(q)

    async def count_errors(
        self, map: str | None = None, status: ErrorStatus | str | None = ErrorStatus.OPEN
    ) -> int:
        where, args = self._where(map, status)
        return await self._run(
            lambda conn: int(conn.execute(f"SELECT COUNT(*) FROM errors{where}", args).fetchone()[0])
        )

    # --- map run state ----------------------------------------------------------------------------
    @staticmethod
    def _map_state(row: sqlite3.Row) -> MapState:
        since = _dt(row["since"]) if row["since"] else None
        return MapState(row["map"], RunState(row["state"]), since, row["reason"])

    async def get_map_state(self, map: str) -> MapState:
        def q(conn: sqlite3.Connection) -> MapState:
            row = conn.execute("SELECT * FROM map_states WHERE map=?", (map,)).fetchone()
            return self._map_state(row) if row else MapState(map)

        return await self._run(q)

    async def set_map_state(
        self, map: str, state: RunState | str, *, reason: str = "", since: datetime | None = None
    ) -> MapState:
        result = MapState(map, RunState(state), since or utcnow(), reason)

        def q(conn: sqlite3.Connection) -> None:
            with self._write(conn):
                conn.execute(
                    "INSERT OR REPLACE INTO map_states VALUES (?,?,?,?)",
                    (map, result.state.value, _ts(result.since or utcnow()), reason),
                )

        await self._run(q)
        return result

    async def list_map_states(self) -> list[MapState]:
        return await self._run(
            lambda conn: [self._map_state(r) for r in conn.execute("SELECT * FROM map_states ORDER BY map")]
        )
