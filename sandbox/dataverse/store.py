"""SQLite storage for the emulator: one SQL table per Dataverse table, typed columns, a unique
index per alternate key, a global version counter and a log of deletions (for change tracking).

Values are stored in a form SQLite compares correctly: GUIDs lower-case text, date-times
``YYYY-MM-DDTHH:MM:SSZ`` (UTC), dates ``YYYY-MM-DD``, decimals REAL, booleans 0/1, and text with
``COLLATE NOCASE`` because Dataverse compares strings (and alternate keys) case-insensitively.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from sandbox.dataverse.schema import Schema, Table

_SQL_TYPE = {"string": "TEXT COLLATE NOCASE", "memo": "TEXT COLLATE NOCASE", "int": "INTEGER",
             "picklist": "INTEGER", "bigint": "INTEGER", "decimal": "REAL", "money": "REAL", "bool": "INTEGER",
             "datetime": "TEXT", "dateonly": "TEXT", "guid": "TEXT", "lookup": "TEXT"}


def q(name: str) -> str:
    return f'"{name}"'


class UniqueViolation(Exception):
    """An insert/update broke the primary key (``key is None``) or the named alternate key."""

    def __init__(self, key: str | None) -> None:
        super().__init__(key or "primary key")
        self.key = key


class Store:
    def __init__(self, schema: Schema, db: str | Path | None = None) -> None:
        self.schema = schema
        self.path = str(db) if db else ":memory:"
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.lock = threading.RLock()  # the event loop and in-process callers share one connection
        self._depth = 0
        if self.path != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=OFF")  # a sandbox: speed over durability on power loss
        self._columns: dict[str, list[str]] = {}
        self._sql_cache: dict[tuple[str, tuple[str, ...]], str] = {}
        self._create()
        self.version = int(self._meta("version", 0))
        self.token_floor = int(self._meta("token_floor", 0))

    # --- schema ---------------------------------------------------------------------------------
    def _create(self) -> None:
        c = self.conn
        c.execute("CREATE TABLE IF NOT EXISTS _meta (k TEXT PRIMARY KEY, v INTEGER)")
        c.execute("CREATE TABLE IF NOT EXISTS _deleted (tbl TEXT, id TEXT, versionnumber INTEGER)")
        c.execute("CREATE INDEX IF NOT EXISTS _deleted_v ON _deleted (tbl, versionnumber)")
        for t in self.schema.tables.values():
            cols = [c for c in t.columns.values()]
            self._columns[t.logical_name] = [col.name for col in cols]
            defs = ", ".join(
                f"{q(col.name)} {_SQL_TYPE[col.type]}" + (" PRIMARY KEY" if col.name == t.primary_id else "")
                for col in cols)
            c.execute(f"CREATE TABLE IF NOT EXISTS {q(t.logical_name)} ({defs})")
            c.execute(f"CREATE INDEX IF NOT EXISTS {q(t.logical_name + '__v')} "
                      f"ON {q(t.logical_name)} (versionnumber)")
            for kname, kcols in t.keys.items():
                c.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {q(t.logical_name + '__k__' + kname)} "
                          f"ON {q(t.logical_name)} ({', '.join(q(k) for k in kcols)})")
            for col in t.lookups():  # expand and referential checks look rows up by these
                # Partial: most lookups of a row are empty, and an empty one then costs its insert
                # nothing (msdyn_actual has 15). A comparison `col = ?` still uses the index.
                c.execute(f"CREATE INDEX IF NOT EXISTS {q(t.logical_name + '__l__' + col.name)} "
                          f"ON {q(t.logical_name)} ({q(col.name)}) WHERE {q(col.name)} IS NOT NULL")

    def _meta(self, key: str, default: int) -> int:
        row = self.conn.execute("SELECT v FROM _meta WHERE k = ?", (key,)).fetchone()
        return int(row[0]) if row else default

    def _set_meta(self, key: str, value: int) -> None:
        self.conn.execute("INSERT INTO _meta (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
                          (key, value))

    def columns(self, table: Table) -> list[str]:
        return self._columns[table.logical_name]

    # --- transactions ---------------------------------------------------------------------------
    def transaction(self) -> _Transaction:
        """Outermost call is BEGIN/COMMIT; nested calls are savepoints (a changeset inside a batch)."""
        return _Transaction(self)

    def next_version(self) -> int:
        self.version += 1
        return self.version

    # --- rows -----------------------------------------------------------------------------------
    def _row(self, table: Table, values: tuple[Any, ...] | None) -> dict[str, Any] | None:
        return None if values is None else dict(zip(self._columns[table.logical_name], values, strict=True))

    def _by_id_sql(self, table: Table, what: str) -> str:
        sql = self._sql_cache.get((table.logical_name, (what,)))
        if sql is None:
            sql = f"SELECT {what} FROM {q(table.logical_name)} WHERE {q(table.primary_id)} = ?"
            self._sql_cache[(table.logical_name, (what,))] = sql
        return sql

    def get(self, table: Table, record_id: str) -> dict[str, Any] | None:
        cur = self.conn.execute(self._by_id_sql(table, "*"), (record_id,))
        return self._row(table, cur.fetchone())

    def find(self, table: Table, values: dict[str, Any]) -> dict[str, Any] | None:
        # `=` for a value, so the partial lookup indexes serve it; `IS NULL` for an empty one
        where = " AND ".join(f"{q(k)} IS NULL" if v is None else f"{q(k)} = ?" for k, v in values.items())
        cur = self.conn.execute(f"SELECT * FROM {q(table.logical_name)} WHERE {where} LIMIT 1",
                                tuple(v for v in values.values() if v is not None))
        return self._row(table, cur.fetchone())

    def exists(self, table: Table, record_id: str) -> bool:
        return self.conn.execute(self._by_id_sql(table, "1"), (record_id,)).fetchone() is not None

    def _unique_error(self, table: Table, exc: sqlite3.IntegrityError) -> UniqueViolation:
        text = str(exc)
        for kname, kcols in table.keys.items():
            if text.endswith(", ".join(f"{table.logical_name}.{c}" for c in kcols)):
                return UniqueViolation(kname)
        return UniqueViolation(None)

    def insert(self, table: Table, row: dict[str, Any]) -> None:
        names = tuple(row)
        sql = self._sql_cache.get((table.logical_name, names))
        if sql is None:
            sql = (f"INSERT INTO {q(table.logical_name)} ({', '.join(q(n) for n in names)}) "
                   f"VALUES ({', '.join('?' for _ in names)})")
            self._sql_cache[(table.logical_name, names)] = sql
        try:
            self.conn.execute(sql, tuple(row.values()))
        except sqlite3.IntegrityError as exc:
            raise self._unique_error(table, exc) from None

    def insert_many(self, table: Table, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        names = self._columns[table.logical_name]
        sql = (f"INSERT INTO {q(table.logical_name)} ({', '.join(q(n) for n in names)}) "
               f"VALUES ({', '.join('?' for _ in names)})")
        try:
            self.conn.executemany(sql, [tuple(r.get(n) for n in names) for r in rows])
        except sqlite3.IntegrityError as exc:
            raise self._unique_error(table, exc) from None

    def update(self, table: Table, record_id: str, changes: dict[str, Any]) -> None:
        names = tuple(changes)
        sql = self._sql_cache.get((table.logical_name, ("update", *names)))
        if sql is None:
            sets = ", ".join(f"{q(n)} = ?" for n in names)
            sql = f"UPDATE {q(table.logical_name)} SET {sets} WHERE {q(table.primary_id)} = ?"
            self._sql_cache[(table.logical_name, ("update", *names))] = sql
        try:
            self.conn.execute(sql, (*changes.values(), record_id))
        except sqlite3.IntegrityError as exc:
            raise self._unique_error(table, exc) from None

    def delete(self, table: Table, record_id: str, version: int) -> None:
        self.conn.execute(f"DELETE FROM {q(table.logical_name)} WHERE {q(table.primary_id)} = ?", (record_id,))
        self.conn.execute("INSERT INTO _deleted (tbl, id, versionnumber) VALUES (?, ?, ?)",
                          (table.logical_name, record_id, version))

    def select(self, table: Table, where: str = "", params: list[Any] | tuple[Any, ...] = (),
               order: str = "", limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
        sql = f"SELECT * FROM {q(table.logical_name)}"
        if where:
            sql += f" WHERE {where}"
        if order:
            sql += f" ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        names = self._columns[table.logical_name]
        return [dict(zip(names, r, strict=True)) for r in self.conn.execute(sql, tuple(params))]

    def count(self, table: Table, where: str = "", params: list[Any] | tuple[Any, ...] = ()) -> int:
        sql = f"SELECT COUNT(*) FROM {q(table.logical_name)}" + (f" WHERE {where}" if where else "")
        return int(self.conn.execute(sql, tuple(params)).fetchone()[0])

    def deleted_since(self, table: Table, since: int, until: int, after_id: str = "",
                      limit: int = 5000) -> list[tuple[str, int]]:
        cur = self.conn.execute(
            "SELECT id, MAX(versionnumber) AS v FROM _deleted WHERE tbl = ? AND versionnumber > ? "
            "AND versionnumber <= ? AND id > ? GROUP BY id ORDER BY id LIMIT ?",
            (table.logical_name, since, until, after_id, limit))
        return [(r[0], int(r[1])) for r in cur]

    def expire_tokens(self) -> None:
        """Make every delta token issued so far expired (simulates change-history clean-up)."""
        with self.lock:
            self.version += 1  # so tokens issued from now on are newer than the floor
            self.token_floor = self.version
            self._set_meta("version", self.version)
            self._set_meta("token_floor", self.token_floor)

    def reset(self) -> None:
        with self.lock:
            for t in self.schema.tables.values():
                self.conn.execute(f"DELETE FROM {q(t.logical_name)}")
            self.conn.execute("DELETE FROM _deleted")
            self.conn.execute("DELETE FROM _meta")
            self.version = 0
            self.token_floor = 0

    def close(self) -> None:
        self.conn.close()


class _Transaction:
    """``Store.transaction()``: a class rather than a generator, as it runs for every write."""

    __slots__ = ("depth", "store")

    def __init__(self, store: Store) -> None:
        self.store = store
        self.depth = 0

    def __enter__(self) -> None:
        store = self.store
        store.lock.acquire()
        try:
            self.depth = depth = store._depth
            store.conn.execute("BEGIN" if depth == 0 else f"SAVEPOINT sp{depth}")
        except BaseException:
            store.lock.release()
            raise
        store._depth += 1

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        store, depth = self.store, self.depth
        try:
            store._depth -= 1
            if exc_type is not None:
                if depth == 0:
                    store.conn.execute("ROLLBACK")
                else:
                    store.conn.execute(f"ROLLBACK TO sp{depth}")
                    store.conn.execute(f"RELEASE sp{depth}")
            elif depth == 0:
                store._set_meta("version", store.version)
                store.conn.execute("COMMIT")
            else:
                store.conn.execute(f"RELEASE sp{depth}")
        finally:
            store.lock.release()
