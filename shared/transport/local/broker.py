"""The local broker: Service Bus semantics in one SQLite file (the embedded default).

What it keeps from Service Bus: topics fan out to subscriptions whose filter matches; queues;
peek-lock receive with a lock duration; complete / abandon / dead-letter / renew; a lock that expires
makes the message available again; each delivery counts, and a message delivered ``max_delivery_count``
times and not completed moves to the dead-letter queue with reason ``MaxDeliveryCountExceeded``;
scheduled messages stay invisible until their time; session-enabled entities deliver one session's
messages in order to one lock holder at a time, and dead-letter messages without a session id with
reason ``Session id is null.``; duplicate detection drops a message id already seen within the window;
dead-letter queues can be peeked, received and replayed. The file survives restarts and can be shared
by several processes (WAL, ``BEGIN IMMEDIATE`` for every change).

Time comes from an injectable clock so tests move time instead of sleeping. Python predicate filters
live in this object only (they cannot be stored); SQL filter text is stored with the subscription.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from shared.sqlite import SqliteFile
from shared.state.sqlite_calls import SqliteCalls

from ..errors import (
    EntityNotFoundError,
    MessageLockLostError,
    MessageNotFoundError,
    SessionLockedError,
    SessionLockLostError,
    TransportError,
)
from ..messages import OutboundMessage, PropertyValue, ReceivedMessage, SubQueue, subscription_path
from .filters import Predicate, SqlFilter

T = TypeVar("T")

MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"
SESSION_ID_IS_NULL = "Session id is null."
DEAD_LETTER_SUFFIX = "/$deadletterqueue"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    path TEXT PRIMARY KEY, kind TEXT NOT NULL, topic TEXT, requires_session INTEGER NOT NULL DEFAULT 0,
    lock_duration REAL NOT NULL, max_delivery_count INTEGER NOT NULL, dup_window REAL,
    filter_kind TEXT NOT NULL DEFAULT 'none', filter_sql TEXT
);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, sub_queue TEXT NOT NULL, body BLOB NOT NULL,
    message_id TEXT, session_id TEXT, props TEXT NOT NULL, content_type TEXT, correlation_id TEXT,
    subject TEXT, enqueued_at REAL NOT NULL, visible_at REAL NOT NULL, scheduled_at REAL,
    schedule_id INTEGER, delivery_count INTEGER NOT NULL DEFAULT 0, lock_token TEXT, locked_until REAL,
    session_token TEXT, dl_reason TEXT, dl_description TEXT, dl_source TEXT
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (path, sub_queue, visible_at, seq);
CREATE INDEX IF NOT EXISTS messages_by_lock ON messages (lock_token);
CREATE INDEX IF NOT EXISTS messages_by_session ON messages (path, session_id, seq);
-- what falls due next, and the sweep of expired locks, without reading every message of a backlog
CREATE INDEX IF NOT EXISTS messages_by_visible ON messages (visible_at);
CREATE INDEX IF NOT EXISTS messages_by_lock_expiry ON messages (locked_until) WHERE locked_until IS NOT NULL;
CREATE TABLE IF NOT EXISTS schedules (id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dedup (
    path TEXT NOT NULL, message_id TEXT NOT NULL, seen_at REAL NOT NULL, PRIMARY KEY (path, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_by_age ON dedup (path, seen_at);
CREATE TABLE IF NOT EXISTS sessions (
    path TEXT NOT NULL, session_id TEXT NOT NULL, token TEXT NOT NULL, locked_until REAL NOT NULL,
    implicit INTEGER NOT NULL, PRIMARY KEY (path, session_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (locked_until);
"""


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _token(lock: str | ReceivedMessage) -> str:
    token = lock.lock_token if isinstance(lock, ReceivedMessage) else lock
    if not token:
        raise MessageLockLostError("the message holds no lock (was it peeked rather than received?)")
    return token


def split_path(path: str) -> tuple[str, SubQueue]:
    """``queue`` or ``topic/Subscriptions/sub``, optionally ending in ``/$deadletterqueue``."""
    if path.lower().endswith(DEAD_LETTER_SUFFIX):
        return path[: -len(DEAD_LETTER_SUFFIX)], SubQueue.DEAD_LETTER
    return path, SubQueue.ACTIVE


@dataclass(frozen=True, slots=True)
class SessionLock:
    path: str
    session_id: str
    token: str
    locked_until_utc: datetime


@dataclass(frozen=True, slots=True)
class EntityCounts:
    active: int  # available or locked, not scheduled
    scheduled: int
    dead_letter: int


@dataclass(frozen=True, slots=True)
class Readiness:
    paths: frozenset[str]  # receive paths holding a message a receiver would get now
    next_in: float | None  # seconds until a scheduled message is due or a lock expires; None: nothing pending


@dataclass(frozen=True, slots=True)
class EntityInfo:
    path: str
    kind: str  # queue | topic | subscription
    topic: str | None
    requires_session: bool
    lock_duration: float
    max_delivery_count: int
    duplicate_detection_window: float | None
    filter: str | None


class LocalBroker(SqliteFile):
    SCHEMA = _SCHEMA

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        lock_duration: float | timedelta = 60.0,
        max_delivery_count: int = 10,
        duplicate_detection_window: float | timedelta | None = 600.0,
        busy_timeout_seconds: float = 30.0,
    ):
        self.path = Path(path)
        self.clock = clock
        self.default_lock_duration = _seconds(lock_duration)
        self.default_max_delivery_count = max_delivery_count
        self.default_dup_window = (
            None if duplicate_detection_window is None else _seconds(duplicate_detection_window)
        )
        self._busy_timeout = busy_timeout_seconds
        self._conn: sqlite3.Connection | None = None
        self._calls = SqliteCalls(busy_timeout_seconds)  # on the loop while the file is free
        self._predicates: dict[str, Predicate] = {}
        self._sql_filters: dict[str, SqlFilter] = {}

    # --- plumbing -----------------------------------------------------------------------------------

    async def _run(self, fn: Callable[[sqlite3.Connection, float], T], *, write: bool = True) -> T:
        if self._conn is None:
            await self.open()
        conn = self._conn
        assert conn is not None

        def call() -> T:
            if not write:
                return fn(conn, self.clock())
            with self._tx(conn):
                return fn(conn, self.clock())

        return await self._calls.run(conn, call)

    @staticmethod
    @contextmanager
    def _tx(conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # --- entities -----------------------------------------------------------------------------------
    async def create_queue(
        self,
        name: str,
        *,
        requires_session: bool = False,
        lock_duration: float | timedelta | None = None,
        max_delivery_count: int | None = None,
        duplicate_detection_window: float | timedelta | bool | None = True,
    ) -> str:
        """Create or update a queue; ``duplicate_detection_window=True`` means the broker default."""
        await self._put_entity(
            name,
            "queue",
            None,
            requires_session,
            lock_duration,
            max_delivery_count,
            duplicate_detection_window,
        )
        return name

    async def create_topic(
        self, name: str, *, duplicate_detection_window: float | timedelta | bool | None = True
    ) -> str:
        await self._put_entity(name, "topic", None, False, None, None, duplicate_detection_window)
        return name

    async def create_subscription(
        self,
        topic: str,
        name: str,
        *,
        filter: str | Predicate | None = None,
        requires_session: bool = False,
        lock_duration: float | timedelta | None = None,
        max_delivery_count: int | None = None,
    ) -> str:
        """Create or update a subscription; returns its path (``topic/Subscriptions/name``)."""
        path = subscription_path(topic, name)
        sql = None
        if isinstance(filter, str):
            self._sql_filters[path] = SqlFilter(filter)  # parse now: a bad filter fails here, not on send
            sql = filter
            self._predicates.pop(path, None)
        elif filter is not None:
            self._predicates[path] = filter
        kind = "sql" if sql is not None else "predicate" if filter is not None else "none"

        def q(conn: sqlite3.Connection, now: float) -> None:
            if self._entity_row(conn, topic, "topic") is None:
                raise EntityNotFoundError(f"no topic {topic!r}")

        await self._run(q)
        await self._put_entity(
            path, "subscription", topic, requires_session, lock_duration, max_delivery_count, None, kind, sql
        )
        return path

    async def _put_entity(
        self,
        path: str,
        kind: str,
        topic: str | None,
        requires_session: bool,
        lock_duration: float | timedelta | None,
        max_delivery_count: int | None,
        dup_window: float | timedelta | bool | None,
        filter_kind: str = "none",
        filter_sql: str | None = None,
    ) -> None:
        window = (
            self.default_dup_window if dup_window is True else None if dup_window is False else dup_window
        )
        values = (
            path,
            kind,
            topic,
            int(requires_session),
            _seconds(lock_duration) if lock_duration is not None else self.default_lock_duration,
            max_delivery_count or self.default_max_delivery_count,
            None if window is None else _seconds(window),
            filter_kind,
            filter_sql,
        )

        def q(conn: sqlite3.Connection, now: float) -> None:
            existing = conn.execute("SELECT kind FROM entities WHERE path=?", (path,)).fetchone()
            if existing is not None and existing["kind"] != kind:
                raise TransportError(f"{path!r} already exists as a {existing['kind']}")
            conn.execute("INSERT OR REPLACE INTO entities VALUES (?,?,?,?,?,?,?,?,?)", values)

        await self._run(q)

    @staticmethod
    def _info(row: sqlite3.Row) -> EntityInfo:
        return EntityInfo(
            row["path"],
            row["kind"],
            row["topic"],
            bool(row["requires_session"]),
            row["lock_duration"],
            row["max_delivery_count"],
            row["dup_window"],
            row["filter_sql"],
        )

    async def entities(self) -> list[EntityInfo]:
        return await self._run(
            lambda conn, now: [self._info(r) for r in conn.execute("SELECT * FROM entities ORDER BY path")],
            write=False,
        )

    @staticmethod
    def _entity_row(conn: sqlite3.Connection, path: str, *kinds: str) -> sqlite3.Row | None:
        row = conn.execute("SELECT * FROM entities WHERE path=?", (path,)).fetchone()
        return row if row is not None and (not kinds or row["kind"] in kinds) else None

    def _entity(self, conn: sqlite3.Connection, path: str, *kinds: str) -> sqlite3.Row:
        row = self._entity_row(conn, path, *kinds)
        if row is None:
            raise EntityNotFoundError(f"no {' or '.join(kinds) or 'entity'} {path!r}")
        return row

    def _matches(self, sub: sqlite3.Row, message: OutboundMessage, message_id: str) -> bool:
        path = sub["path"]
        props = message.application_properties
        if sub["filter_kind"] == "none":
            return True
        if sub["filter_kind"] == "predicate":
            predicate = self._predicates.get(path)
            if predicate is None:
                raise TransportError(
                    f"subscription {path!r} has a Python filter that was not registered in this process; "
                    "call create_subscription with it again"
                )
            return bool(predicate(props))
        sql = self._sql_filters.get(path)
        if sql is None or sql.text != sub["filter_sql"]:
            sql = self._sql_filters[path] = SqlFilter(sub["filter_sql"])
        system: dict[str, PropertyValue] = {
            "message_id": message_id,
            "session_id": message.session_id,
            "subject": message.subject,
            "correlation_id": message.correlation_id,
            "content_type": message.content_type,
        }
        return sql(props, system)

    # --- sending ------------------------------------------------------------------------------------
    async def send(self, entity: str, messages: Sequence[OutboundMessage]) -> int:
        """Send to a queue or topic; returns how many were accepted (duplicates are dropped)."""
        return await self._run(
            lambda conn, now: sum(self._send_one(conn, now, entity, m, None) for m in messages)
        )

    async def schedule(self, entity: str, message: OutboundMessage, at: datetime) -> int:
        """Enqueue at ``at``; returns the number to :meth:`cancel_scheduled` with."""

        def q(conn: sqlite3.Connection, now: float) -> int:
            self._entity(conn, entity, "queue", "topic")
            schedule_id = int(
                conn.execute("INSERT INTO schedules (path) VALUES (?)", (entity,)).lastrowid or 0
            )
            self._send_one(conn, now, entity, message, schedule_id, at.timestamp())
            return schedule_id

        return await self._run(q)

    async def cancel_scheduled(self, entity: str, sequence_number: int) -> None:
        def q(conn: sqlite3.Connection, now: float) -> None:
            row = conn.execute("SELECT path FROM schedules WHERE id=?", (sequence_number,)).fetchone()
            if row is None or row["path"] != entity:
                raise MessageNotFoundError(f"no scheduled message {sequence_number} on {entity!r}")
            conn.execute("DELETE FROM messages WHERE schedule_id=? AND visible_at>?", (sequence_number, now))
            conn.execute("DELETE FROM schedules WHERE id=?", (sequence_number,))

        await self._run(q)

    def _send_one(
        self,
        conn: sqlite3.Connection,
        now: float,
        entity: str,
        message: OutboundMessage,
        schedule_id: int | None,
        at: float | None = None,
    ) -> int:
        row = self._entity(conn, entity, "queue", "topic")
        message_id = message.message_id or uuid.uuid4().hex
        window = row["dup_window"]
        if window is not None:
            conn.execute("DELETE FROM dedup WHERE path=? AND seen_at<=?", (entity, now - window))
            if conn.execute(
                "SELECT 1 FROM dedup WHERE path=? AND message_id=?", (entity, message_id)
            ).fetchone():
                return 0  # a duplicate: accepted and silently dropped, as Service Bus does
            conn.execute("INSERT INTO dedup VALUES (?,?,?)", (entity, message_id, now))
        if at is None and message.scheduled_enqueue_time_utc is not None:
            at = message.scheduled_enqueue_time_utc.timestamp()
        if row["kind"] == "queue":
            targets = [row]
        else:
            subs = conn.execute(
                "SELECT * FROM entities WHERE kind='subscription' AND topic=? ORDER BY path", (entity,)
            )
            targets = [s for s in subs if self._matches(s, message, message_id)]
        for target in targets:
            no_session = bool(target["requires_session"]) and not message.session_id
            conn.execute(
                "INSERT INTO messages (path, sub_queue, body, message_id, session_id, props, content_type,"
                " correlation_id, subject, enqueued_at, visible_at, scheduled_at, schedule_id, dl_reason,"
                " dl_description, dl_source) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    target["path"],
                    SubQueue.DEAD_LETTER.value if no_session else SubQueue.ACTIVE.value,
                    bytes(message.body),
                    message_id,
                    message.session_id,
                    json.dumps(dict(message.application_properties)),
                    message.content_type,
                    message.correlation_id,
                    message.subject,
                    now,
                    max(now, at) if at is not None else now,
                    at,
                    schedule_id,
                    SESSION_ID_IS_NULL if no_session else None,
                    "The message was sent to a session-enabled entity without a session id."
                    if no_session
                    else None,
                    target["path"] if no_session else None,
                ),
            )
        return 1

    # --- housekeeping: expired locks ----------------------------------------------------------------
    def _sweep(self, conn: sqlite3.Connection, now: float, path: str | None = None) -> None:
        """Release expired locks; a message out of deliveries goes to its dead-letter queue."""
        # ``+m.path``: find the few locked messages by lock expiry, not every message of the entity
        where, args = ("AND +m.path=?", (path,)) if path else ("", ())
        conn.execute(
            f"""UPDATE messages AS m SET sub_queue='deadletter', dl_reason=?, dl_description=
                'Message could not be consumed after ' || m.delivery_count || ' delivery attempts.',
                dl_source=m.path, lock_token=NULL, locked_until=NULL, session_token=NULL
                WHERE m.locked_until<=? AND m.sub_queue='active' {where} AND m.delivery_count>=
                (SELECT max_delivery_count FROM entities e WHERE e.path=m.path)""",
            (MAX_DELIVERY_COUNT_EXCEEDED, now, *args),
        )
        conn.execute(
            f"UPDATE messages AS m SET lock_token=NULL, locked_until=NULL, session_token=NULL"
            f" WHERE m.locked_until<=? {where}",
            (now, *args),
        )
        conn.execute(f"DELETE FROM sessions WHERE locked_until<=? {where.replace('+m.', '')}", (now, *args))

    # --- receiving ----------------------------------------------------------------------------------
    async def receive(
        self,
        path: str,
        max_count: int = 1,
        *,
        session: SessionLock | str | None = None,
        sub_queue: SubQueue | str | None = None,
        max_wait: float = 0.0,
    ) -> list[ReceivedMessage]:
        """Peek-lock up to ``max_count`` messages from a queue or subscription (or its dead-letter queue).

        Session-enabled entities: pass a :class:`SessionLock` from :meth:`accept_session`, a session
        id, or nothing for the next available session. A lock taken implicitly here is released once
        every message received under it is settled (or when it expires).
        ``max_wait`` polls (real time) until something arrives.
        """
        entity, dlq = split_path(path)
        queue = SubQueue(sub_queue) if sub_queue is not None else dlq
        deadline = time.monotonic() + max_wait
        while True:
            got = await self._run(
                lambda conn, now: self._receive(conn, now, entity, queue, max_count, session)
            )
            if got or time.monotonic() >= deadline:
                return got
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _receive(
        self,
        conn: sqlite3.Connection,
        now: float,
        path: str,
        queue: SubQueue,
        max_count: int,
        session: SessionLock | str | None,
    ) -> list[ReceivedMessage]:
        ent = self._entity(conn, path, "queue", "subscription")
        self._sweep(conn, now, path)
        base = "SELECT * FROM messages WHERE path=? AND sub_queue=? AND visible_at<=? AND lock_token IS NULL"
        session_token = None
        if ent["requires_session"] and queue is SubQueue.ACTIVE:
            held = self._hold_session(conn, now, ent, session)
            if held is None:
                return []
            session_id, session_token = held
            rows = conn.execute(
                base + " AND session_id=? ORDER BY seq LIMIT ?",
                (path, queue.value, now, session_id, max_count),
            ).fetchall()
            if not rows:
                self._release_if_idle(conn, path, session_id, session_token)
        else:
            rows = conn.execute(
                base + " ORDER BY seq LIMIT ?", (path, queue.value, now, max_count)
            ).fetchall()
        out = []
        for row in rows:
            token = uuid.uuid4().hex
            until = now + ent["lock_duration"]
            conn.execute(
                "UPDATE messages SET lock_token=?, locked_until=?, session_token=?, delivery_count=delivery_count+1"
                " WHERE seq=?",
                (token, until, session_token, row["seq"]),
            )
            out.append(self._message(row, token, until, row["delivery_count"] + 1))
        return out

    def _hold_session(
        self, conn: sqlite3.Connection, now: float, ent: sqlite3.Row, session: SessionLock | str | None
    ) -> tuple[str, str] | None:
        path = ent["path"]
        if isinstance(session, SessionLock):
            row = conn.execute(
                "SELECT * FROM sessions WHERE path=? AND session_id=?", (path, session.session_id)
            ).fetchone()
            if row is None or row["token"] != session.token:
                raise SessionLockLostError(
                    f"session {session.session_id!r} on {path!r} is no longer locked by you"
                )
            return session.session_id, session.token
        lock = self._accept(conn, now, ent, session, implicit=True)
        return None if lock is None else (lock.session_id, lock.token)

    def _accept(
        self,
        conn: sqlite3.Connection,
        now: float,
        ent: sqlite3.Row,
        session_id: str | None,
        *,
        implicit: bool,
    ) -> SessionLock | None:
        path = ent["path"]
        if session_id is None:
            row = conn.execute(
                "SELECT session_id FROM messages WHERE path=? AND sub_queue='active' AND visible_at<=?"
                " AND lock_token IS NULL AND session_id IS NOT NULL"
                " AND session_id NOT IN (SELECT session_id FROM sessions WHERE path=?) ORDER BY seq LIMIT 1",
                (path, now, path),
            ).fetchone()
            if row is None:
                return None
            session_id = str(row["session_id"])
        elif conn.execute(
            "SELECT 1 FROM sessions WHERE path=? AND session_id=?", (path, session_id)
        ).fetchone():
            raise SessionLockedError(f"session {session_id!r} on {path!r} is locked by another receiver")
        token = uuid.uuid4().hex
        until = now + ent["lock_duration"]
        conn.execute(
            "INSERT INTO sessions VALUES (?,?,?,?,?)", (path, session_id, token, until, int(implicit))
        )
        return SessionLock(path, session_id, token, datetime.fromtimestamp(until, UTC))

    async def accept_session(self, path: str, session_id: str | None = None) -> SessionLock | None:
        """Lock a session (the next available one if ``session_id`` is None; None if there is none)."""

        def q(conn: sqlite3.Connection, now: float) -> SessionLock | None:
            ent = self._entity(conn, path, "queue", "subscription")
            if not ent["requires_session"]:
                raise TransportError(f"{path!r} is not session-enabled")
            self._sweep(conn, now, path)
            return self._accept(conn, now, ent, session_id, implicit=False)

        return await self._run(q)

    async def renew_session_lock(self, lock: SessionLock) -> SessionLock:
        def q(conn: sqlite3.Connection, now: float) -> SessionLock:
            self._sweep(conn, now, lock.path)
            ent = self._entity(conn, lock.path)
            until = now + ent["lock_duration"]
            n = conn.execute(
                "UPDATE sessions SET locked_until=? WHERE path=? AND session_id=? AND token=?",
                (until, lock.path, lock.session_id, lock.token),
            ).rowcount
            if n == 0:
                raise SessionLockLostError(
                    f"session {lock.session_id!r} on {lock.path!r} is no longer locked by you"
                )
            return SessionLock(lock.path, lock.session_id, lock.token, datetime.fromtimestamp(until, UTC))

        return await self._run(q)

    async def release_session(self, lock: SessionLock) -> None:
        await self._run(
            lambda conn, now: conn.execute(
                "DELETE FROM sessions WHERE path=? AND session_id=? AND token=?",
                (lock.path, lock.session_id, lock.token),
            )
        )

    @staticmethod
    def _release_if_idle(conn: sqlite3.Connection, path: str, session_id: str, token: str | None) -> None:
        if token is None:
            return
        busy = conn.execute("SELECT 1 FROM messages WHERE session_token=? LIMIT 1", (token,)).fetchone()
        if busy is None:
            conn.execute(
                "DELETE FROM sessions WHERE path=? AND session_id=? AND token=? AND implicit=1",
                (path, session_id, token),
            )

    # --- settling -----------------------------------------------------------------------------------
    def _locked(self, conn: sqlite3.Connection, now: float, token: str) -> sqlite3.Row:
        self._sweep(conn, now)
        row = conn.execute("SELECT * FROM messages WHERE lock_token=?", (token,)).fetchone()
        if row is None:
            raise MessageLockLostError("the lock expired or the message was already settled")
        return row

    def _after_settle(self, conn: sqlite3.Connection, row: sqlite3.Row) -> None:
        if row["session_token"]:
            self._release_if_idle(conn, row["path"], row["session_id"], row["session_token"])

    async def complete(self, lock: str | ReceivedMessage) -> None:
        token = _token(lock)

        def q(conn: sqlite3.Connection, now: float) -> None:
            row = self._locked(conn, now, token)
            conn.execute("DELETE FROM messages WHERE seq=?", (row["seq"],))
            self._after_settle(conn, row)

        await self._run(q)

    async def abandon(self, lock: str | ReceivedMessage) -> None:
        """Give the message back now; out of deliveries it goes to the dead-letter queue."""
        token = _token(lock)

        def q(conn: sqlite3.Connection, now: float) -> None:
            row = self._locked(conn, now, token)
            conn.execute(
                "UPDATE messages SET lock_token=NULL, locked_until=NULL, session_token=NULL WHERE seq=?",
                (row["seq"],),
            )
            ent = self._entity(conn, row["path"])
            if (
                row["sub_queue"] == SubQueue.ACTIVE.value
                and row["delivery_count"] >= ent["max_delivery_count"]
            ):
                self._to_dead_letter(
                    conn,
                    row["seq"],
                    MAX_DELIVERY_COUNT_EXCEEDED,
                    f"Message could not be consumed after {row['delivery_count']} delivery attempts.",
                )
            self._after_settle(conn, row)

        await self._run(q)

    async def dead_letter(self, lock: str | ReceivedMessage, reason: str, description: str = "") -> None:
        token = _token(lock)

        def q(conn: sqlite3.Connection, now: float) -> None:
            row = self._locked(conn, now, token)
            if row["sub_queue"] == SubQueue.DEAD_LETTER.value:
                raise TransportError("a message in a dead-letter queue cannot be dead-lettered again")
            self._to_dead_letter(conn, row["seq"], reason, description)
            self._after_settle(conn, row)

        await self._run(q)

    @staticmethod
    def _to_dead_letter(conn: sqlite3.Connection, seq: int, reason: str, description: str) -> None:
        conn.execute(
            "UPDATE messages SET sub_queue='deadletter', dl_reason=?, dl_description=?, dl_source=path,"
            " lock_token=NULL, locked_until=NULL, session_token=NULL WHERE seq=?",
            (reason, description, seq),
        )

    async def renew_lock(self, lock: str | ReceivedMessage) -> datetime:
        token = _token(lock)

        def q(conn: sqlite3.Connection, now: float) -> datetime:
            row = self._locked(conn, now, token)
            until = now + self._entity(conn, row["path"])["lock_duration"]
            conn.execute("UPDATE messages SET locked_until=? WHERE seq=?", (until, row["seq"]))
            if row["session_token"]:
                conn.execute(
                    "UPDATE sessions SET locked_until=MAX(locked_until, ?) WHERE token=?",
                    (until, row["session_token"]),
                )
            return datetime.fromtimestamp(until, UTC)

        return await self._run(q)

    # --- looking without locking --------------------------------------------------------------------
    async def peek(
        self,
        path: str,
        max_count: int = 10,
        *,
        sub_queue: SubQueue | str | None = None,
        from_sequence: int = 0,
    ) -> list[ReceivedMessage]:
        """Messages in order without locking them (scheduled ones included, as Service Bus does)."""
        entity, dlq = split_path(path)
        queue = SubQueue(sub_queue) if sub_queue is not None else dlq

        def q(conn: sqlite3.Connection, now: float) -> list[ReceivedMessage]:
            self._entity(conn, entity, "queue", "subscription")
            self._sweep(conn, now, entity)
            rows = conn.execute(
                "SELECT * FROM messages WHERE path=? AND sub_queue=? AND seq>=? ORDER BY seq LIMIT ?",
                (entity, queue.value, from_sequence, max_count),
            ).fetchall()
            return [self._message(r, None, None, r["delivery_count"]) for r in rows]

        return await self._run(q)

    async def counts(self, path: str) -> EntityCounts:
        """What ``path`` holds now. A read: it never waits for a writer nor makes one wait."""

        def q(conn: sqlite3.Connection, now: float) -> EntityCounts:
            self._entity(conn, path, "queue", "subscription")
            return self._counts(conn, now, path).get(path, EntityCounts(0, 0, 0))

        return await self._run(q, write=False)

    async def all_counts(self) -> dict[str, EntityCounts]:
        """:meth:`counts` of every queue and subscription, in one read (what a backlog monitor samples)."""
        return await self._run(lambda conn, now: self._counts(conn, now, None), write=False)

    @staticmethod
    def _counts(conn: sqlite3.Connection, now: float, path: str | None) -> dict[str, EntityCounts]:
        # Counted as a sweep would leave them, without writing: a message whose lock expired after its
        # last delivery is a dead letter already.
        expired_out = ("(m.locked_until IS NOT NULL AND m.locked_until<=:now"
                       " AND m.delivery_count>=e.max_delivery_count)")
        rows = conn.execute(
            "SELECT e.path AS path,"
            f" SUM(m.sub_queue='active' AND m.visible_at<=:now AND NOT {expired_out}) AS active,"
            " SUM(m.sub_queue='active' AND m.visible_at>:now) AS scheduled,"
            f" SUM(m.sub_queue='deadletter' OR (m.sub_queue='active' AND {expired_out})) AS dead"
            " FROM entities e LEFT JOIN messages m ON m.path=e.path"
            " WHERE e.kind IN ('queue', 'subscription') AND (:path IS NULL OR e.path=:path) GROUP BY e.path",
            {"now": now, "path": path},
        ).fetchall()
        return {r["path"]: EntityCounts(r["active"] or 0, r["scheduled"] or 0, r["dead"] or 0) for r in rows}

    async def ready(self) -> Readiness:
        """Which receive paths (``entity`` or ``entity/$deadletterqueue``) hold a message a receiver
        would get now, and in how many seconds something else may become receivable (a scheduled
        message due, a lock expiring). One read, so a host can watch every entity without polling each."""
        return await self._run(self._ready, write=False)

    @staticmethod
    def _ready(conn: sqlite3.Connection, now: float) -> Readiness:
        # One probe per entity and sub-queue that stops at its first receivable message: the cost stays
        # flat as a backlog grows (a scan of every ready message took 3 ms at 5,000, on every change).
        rows = conn.execute(
            "SELECT e.path AS path, q.sub_queue AS sub_queue FROM entities e"
            " CROSS JOIN (SELECT 'active' AS sub_queue UNION ALL SELECT 'deadletter') q"
            " WHERE e.kind IN ('queue', 'subscription') AND EXISTS ("
            "  SELECT 1 FROM messages m WHERE m.path=e.path AND m.sub_queue=q.sub_queue AND m.visible_at<=:now"
            "  AND (m.lock_token IS NULL OR m.locked_until<=:now)"
            "  AND (q.sub_queue='deadletter' OR e.requires_session=0 OR NOT EXISTS ("
            "   SELECT 1 FROM sessions s WHERE s.path=m.path AND s.session_id=m.session_id"
            "   AND s.locked_until>:now)))",
            {"now": now},
        ).fetchall()
        paths = frozenset(r["path"] + (DEAD_LETTER_SUFFIX if r["sub_queue"] == SubQueue.DEAD_LETTER.value else "")
                          for r in rows)
        due = conn.execute(
            "SELECT MIN(t) AS t FROM (SELECT MIN(visible_at) AS t FROM messages WHERE visible_at>:now"
            " UNION ALL SELECT MIN(locked_until) FROM messages WHERE locked_until>:now"
            " UNION ALL SELECT MIN(locked_until) FROM sessions WHERE locked_until>:now)",
            {"now": now},
        ).fetchone()["t"]
        return Readiness(paths, None if due is None else max(0.0, due - now))

    # --- replay -------------------------------------------------------------------------------------
    async def replay_dead_letter(
        self, path: str, message: int | ReceivedMessage, to_entity: str
    ) -> ReceivedMessage:
        """Send a dead letter's replay copy to ``to_entity`` and remove it from ``path``'s dead-letter
        queue, in one transaction. A dead letter locked by someone else cannot be replayed, unless
        ``message`` is the locked message itself."""
        entity, _ = split_path(path)
        seq = message if isinstance(message, int) else message.sequence_number
        token = None if isinstance(message, int) else message.lock_token

        def q(conn: sqlite3.Connection, now: float) -> ReceivedMessage:
            self._sweep(conn, now, entity)
            row = conn.execute(
                "SELECT * FROM messages WHERE seq=? AND path=? AND sub_queue='deadletter'", (seq, entity)
            ).fetchone()
            if row is None:
                raise MessageNotFoundError(f"no dead letter {seq} in {entity!r}")
            if row["lock_token"] is not None and row["lock_token"] != token:
                raise MessageLockLostError(f"dead letter {seq} is locked by another receiver")
            dead = self._message(row, None, None, row["delivery_count"])
            self._send_one(conn, now, to_entity, dead.replay_copy(), None)
            conn.execute("DELETE FROM messages WHERE seq=?", (seq,))
            return dead

        return await self._run(q)

    # --- conversion ---------------------------------------------------------------------------------
    @staticmethod
    def _message(
        row: sqlite3.Row, token: str | None, until: float | None, delivery_count: int
    ) -> ReceivedMessage:
        props: Mapping[str, PropertyValue] = json.loads(row["props"])
        path = row["path"]
        return ReceivedMessage(
            body=bytes(row["body"]),
            message_id=row["message_id"],
            session_id=row["session_id"],
            application_properties=props,
            content_type=row["content_type"],
            correlation_id=row["correlation_id"],
            subject=row["subject"],
            sequence_number=row["seq"],
            delivery_count=delivery_count,
            enqueued_time_utc=_utc(row["enqueued_at"]),
            scheduled_enqueue_time_utc=_utc(row["scheduled_at"]),
            lock_token=token,
            locked_until_utc=_utc(until),
            dead_letter_reason=row["dl_reason"],
            dead_letter_error_description=row["dl_description"],
            dead_letter_source=row["dl_source"],
            entity=path + (DEAD_LETTER_SUFFIX if row["sub_queue"] == SubQueue.DEAD_LETTER.value else ""),
        )
