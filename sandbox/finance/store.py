"""SQLite storage for the Finance emulator: one table per entity set, a unique index on its key.

Text columns use ``COLLATE NOCASE`` because F&O (SQL Server collation) compares keys and filters
case-insensitively. Every row carries ``_rv`` (its RecVersion, from which the ETag is derived) and
``ModifiedDateTime``. One connection, guarded by a lock: the server's event loop and a test or loader
thread may both use it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox.finance.schema import MODIFIED_FIELD, Entity, Schema, format_datetime

FIRST_RECVERSION = 5637144576  # F&O RecIds/RecVersions look like this; any increasing number would do
_SQL_TYPES = {"String": "TEXT COLLATE NOCASE", "Enum": "TEXT COLLATE NOCASE", "Int": "INTEGER",
              "Int64": "INTEGER", "Real": "REAL", "Date": "TEXT", "DateTime": "TEXT"}


class DuplicateKey(Exception):
    pass


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Store:
    def __init__(self, schema: Schema, db: str | Path | None = None) -> None:
        self.schema = schema
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(str(db) if db else ":memory:", check_same_thread=False,
                                    isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL" if db else "PRAGMA journal_mode=MEMORY")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self._columns: dict[str, list[str]] = {}
        self._depth = 0
        self._select_cols: dict[str, str] = {}
        self._key_sql: dict[str, str] = {}
        self._now: tuple[int, str] = (0, "")
        self._insert_sql: dict[str, str] = {}
        self._exists_sql: dict[tuple[str, tuple[str, ...]], str] = {}
        self._value_sql: dict[tuple[str, str, tuple[str, ...]], str] = {}
        self._insert_sql_by: dict[tuple[str, tuple[str, ...]], str] = {}
        with self.lock:
            for ent in schema.entities.values():
                self._create(ent)
            self._rv = max([FIRST_RECVERSION] + [self._max_rv(e) for e in schema.entities.values()])

    def _create(self, ent: Entity) -> None:
        cols = [f"{q(f.name)} {_SQL_TYPES[f.type]}" for f in ent.fields.values()]
        self.conn.execute(f"CREATE TABLE IF NOT EXISTS {q(ent.entity_set)} "
                          f"(_id INTEGER PRIMARY KEY, _rv INTEGER NOT NULL, {', '.join(cols)})")
        self.conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {q('ux_' + ent.entity_set)} "
                          f"ON {q(ent.entity_set)} ({', '.join(q(k) for k in ent.key)})")
        self.conn.execute(f"CREATE INDEX IF NOT EXISTS {q('ix_mod_' + ent.entity_set)} "
                          f"ON {q(ent.entity_set)} ({q(MODIFIED_FIELD)})")
        names = list(ent.fields)
        self._columns[ent.entity_set] = names
        self._select_cols[ent.entity_set] = ", ".join(q(n) for n in names)
        self._key_sql[ent.entity_set] = " AND ".join(f"{q(k)} = ?" for k in ent.key)
        self._insert_sql[ent.entity_set] = (
            f"INSERT INTO {q(ent.entity_set)} (_rv, {', '.join(q(n) for n in names)}) "
            f"VALUES (?, {', '.join('?' for _ in names)})")

    def _max_rv(self, ent: Entity) -> int:
        row = self.conn.execute(f"SELECT MAX(_rv) FROM {q(ent.entity_set)}").fetchone()
        return int(row[0] or 0)

    def next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def now_text(self) -> str:
        second = int(time.time())
        if self._now[0] != second:  # formatting is the costly part; reuse it within a second
            self._now = (second, format_datetime(datetime.fromtimestamp(second, UTC)))
        return self._now[1]

    def first_value(self, ent: Entity, column: str, **match: Any) -> Any:
        """One column of the first row matching ``match`` (``=`` comparisons), or None: for checks
        that run on every write and need one value, not the row."""
        names = tuple(match)
        sql = self._value_sql.get((ent.entity_set, column, names))
        if sql is None:
            where = " AND ".join(f"{q(k)} = ?" for k in names)
            sql = self._value_sql[(ent.entity_set, column, names)] = \
                f"SELECT {q(column)} FROM {q(ent.entity_set)} WHERE {where} ORDER BY _id LIMIT 1"
        with self.lock:
            found = self.conn.execute(sql, list(match.values())).fetchone()
        return found[0] if found else None

    # --- transactions ---------------------------------------------------------------------------

    def single_write(self) -> threading.RLock:
        """For reads followed by ONE write statement (a create, an update or a delete by key): the
        lock keeps them together (no other thread writes in between). SQLite makes one statement
        atomic by itself, so no savepoint is needed: a failed statement leaves nothing behind, inside
        a change set or a ``$batch`` as well as alone. A savepoint per part cost about 10 % of a
        batched create."""
        return self.lock

    def transaction(self) -> _Transaction:
        """One SQLite transaction (a changeset, a batch of loaded rows, a single write); nested calls
        become savepoints, so a write inside a changeset rolls back with it."""
        return _Transaction(self)

    # --- rows -----------------------------------------------------------------------------------

    def _row(self, ent: Entity, values: Sequence[Any]) -> dict[str, Any]:
        row = dict(zip(self._columns[ent.entity_set], values[1:], strict=True))
        row["_rv"] = values[0]
        return row

    def _key_where(self, ent: Entity) -> str:
        return self._key_sql[ent.entity_set]

    def get(self, ent: Entity, key: dict[str, Any]) -> dict[str, Any] | None:
        cols = self._select_cols[ent.entity_set]
        with self.lock:
            found = self.conn.execute(
                f"SELECT _rv, {cols} FROM {q(ent.entity_set)} WHERE {self._key_where(ent)}",
                [key[k] for k in ent.key]).fetchone()
        return self._row(ent, found) if found else None

    def exists(self, ent: Entity, values: dict[str, Any]) -> bool:
        names = tuple(values)
        sql = self._exists_sql.get((ent.entity_set, names))
        if sql is None:  # relation checks ask the same few shapes for every row
            where = " AND ".join(f"{q(k)} = ?" for k in names)
            sql = self._exists_sql[(ent.entity_set, names)] = f"SELECT 1 FROM {q(ent.entity_set)} WHERE {where} LIMIT 1"
        with self.lock:
            return self.conn.execute(sql, list(values.values())).fetchone() is not None

    def insert(self, ent: Entity, row: dict[str, Any], modified: str | None = None) -> dict[str, Any]:
        names = self._columns[ent.entity_set]
        stored = dict.fromkeys(names)  # every column, in table order
        stored.update(row)
        if len(stored) != len(names):  # the row named something else: only the columns count
            stored = {n: stored[n] for n in names}
        stored[MODIFIED_FIELD] = modified or self.now_text()
        rv = self.next_rv()
        # Only the columns with a value: binding the other ~35 NULLs of a staging row cost more
        # than the rest of the insert. A column left out is NULL all the same (no defaults).
        present = tuple(n for n, v in stored.items() if v is not None)
        sql = self._insert_sql_by.get((ent.entity_set, present))
        if sql is None:
            if len(self._insert_sql_by) > 512:  # bodies of many shapes: keep the cache bounded
                self._insert_sql_by.clear()
            sql = self._insert_sql_by[(ent.entity_set, present)] = (
                f"INSERT INTO {q(ent.entity_set)} (_rv{''.join(', ' + q(n) for n in present)}) "
                f"VALUES (?{', ?' * len(present)})")
        with self.lock:
            try:
                self.conn.execute(sql, [rv, *(stored[n] for n in present)])
            except sqlite3.IntegrityError as exc:
                raise DuplicateKey(str(exc)) from None
        stored["_rv"] = rv
        return stored

    def insert_many(self, ent: Entity, rows: Iterable[dict[str, Any]]) -> int:
        """Bulk insert inside the caller's transaction; raises ``DuplicateKey`` on the first clash."""
        names = self._columns[ent.entity_set]
        now = self.now_text()
        sql = self._insert_sql[ent.entity_set]
        n = 0

        def params() -> Iterator[list[Any]]:
            nonlocal n
            for row in rows:
                n += 1
                values = [row.get(c) for c in names]
                values[names.index(MODIFIED_FIELD)] = row.get(MODIFIED_FIELD) or now
                yield [self.next_rv(), *values]

        with self.lock:
            try:
                self.conn.executemany(sql, params())
            except sqlite3.IntegrityError as exc:
                raise DuplicateKey(str(exc)) from None
        return n

    def update(self, ent: Entity, key: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        changes = dict(changes)
        changes[MODIFIED_FIELD] = self.now_text()
        rv = self.next_rv()
        sets = ", ".join(f"{q(c)} = ?" for c in changes)
        with self.lock:
            try:
                self.conn.execute(f"UPDATE {q(ent.entity_set)} SET _rv = ?, {sets} WHERE {self._key_where(ent)}",
                                  [rv, *changes.values(), *(key[k] for k in ent.key)])
            except sqlite3.IntegrityError as exc:
                raise DuplicateKey(str(exc)) from None
        changes["_rv"] = rv
        return changes

    def delete(self, ent: Entity, key: dict[str, Any]) -> bool:
        with self.lock:
            cur = self.conn.execute(f"DELETE FROM {q(ent.entity_set)} WHERE {self._key_where(ent)}",
                                    [key[k] for k in ent.key])
        return cur.rowcount > 0

    def select(self, ent: Entity, where: str, params: list[Any], order: str, limit: int | None,
               offset: int) -> list[dict[str, Any]]:
        sql = f"SELECT _rv, {self._select_cols[ent.entity_set]} FROM {q(ent.entity_set)}"
        if where:
            sql += f" WHERE {where}"
        sql += f" ORDER BY {order}" if order else " ORDER BY _id"
        sql += f" LIMIT {int(limit) if limit is not None else -1} OFFSET {int(offset)}"
        with self.lock:
            return [self._row(ent, r) for r in self.conn.execute(sql, params).fetchall()]

    def iterate(self, ent: Entity, chunk: int = 5000) -> Iterator[dict[str, Any]]:
        last = 0
        cols = ", ".join(q(n) for n in self._columns[ent.entity_set])
        while True:
            with self.lock:
                batch = self.conn.execute(
                    f"SELECT _id, _rv, {cols} FROM {q(ent.entity_set)} WHERE _id > ? ORDER BY _id LIMIT ?",
                    [last, chunk]).fetchall()
            if not batch:
                return
            for r in batch:
                yield self._row(ent, r[1:])
            last = batch[-1][0]

    def count(self, ent: Entity, where: str = "", params: Sequence[Any] = ()) -> int:
        sql = f"SELECT COUNT(*) FROM {q(ent.entity_set)}" + (f" WHERE {where}" if where else "")
        with self.lock:
            return int(self.conn.execute(sql, list(params)).fetchone()[0])

    def clear(self) -> None:
        with self.lock:
            for ent in self.schema.entities.values():
                self.conn.execute(f"DELETE FROM {q(ent.entity_set)}")

    def close(self) -> None:
        with self.lock:
            self.conn.close()


class _Transaction:
    """``Store.transaction()``: a class rather than a generator, as it runs for every write."""

    __slots__ = ("name", "nested", "store")

    def __init__(self, store: Store) -> None:
        self.store = store
        self.name = ""
        self.nested = False

    def __enter__(self) -> None:
        store = self.store
        store.lock.acquire()
        try:
            self.nested = store.conn.in_transaction
            store._depth += 1
            self.name = f"sp{store._depth}"
            store.conn.execute(f"SAVEPOINT {self.name}" if self.nested else "BEGIN")
        except BaseException:
            store._depth -= 1
            store.lock.release()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        store, name, nested = self.store, self.name, self.nested
        try:
            store._depth -= 1
            if exc_type is not None:
                store.conn.execute(f"ROLLBACK TO {name}" if nested else "ROLLBACK")
                if nested:
                    store.conn.execute(f"RELEASE {name}")
            else:
                store.conn.execute(f"RELEASE {name}" if nested else "COMMIT")
        finally:
            store.lock.release()
