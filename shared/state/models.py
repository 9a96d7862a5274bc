"""Records the state store keeps. Plain dataclasses: the store decides how they are laid out."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


def utcnow() -> datetime:
    return datetime.now(UTC)


class ErrorClassification(StrEnum):
    """Why a change could not be applied; decides what an operator does next."""

    DEPENDENCY_MISSING = "dependency-missing"
    MAPPING = "mapping"
    VALIDATION = "validation"
    AUTH = "auth"
    CONFLICT = "conflict"
    NOT_FOUND = "not-found"
    MAX_DELIVERIES = "max-deliveries"
    TRANSIENT_EXHAUSTED = "transient-exhausted"
    BAD_MESSAGE = "bad-message"
    UNKNOWN = "unknown"


class ErrorStatus(StrEnum):
    OPEN = "open"
    REPLAYED = "replayed"
    DISMISSED = "dismissed"


class RunState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """What was last applied for one record of one map.

    ``etag`` is the store's own concurrency token (set by the store on read/write); ``target_etag`` is
    the ETag the *target system* returned for the row written, when it gave one.
    """

    map: str
    key: str
    source_version: int
    source_side: str
    target_hash: str | None = None
    target_etag: str | None = None
    updated_at: datetime = field(default_factory=utcnow)
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A small JSON document under a name (a map, a map+side, an initial-sync run)."""

    name: str
    data: dict[str, Any]
    updated_at: datetime = field(default_factory=utcnow)
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorReport:
    """What a caller knows about one failure; :meth:`StateStore.record_error` turns it into a record."""

    map: str
    key: str
    classification: ErrorClassification | str
    reason: str
    description: str = ""
    delivery_count: int = 0
    payload: Any = None
    message_id: str | None = None
    session_id: str | None = None

    @property
    def error_id(self) -> str:
        """Same map + key + classification + message id -> same record (occurrences counted)."""
        parts = (self.map, self.key, str(self.classification), self.message_id or "")
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    id: str
    map: str
    key: str
    classification: str
    reason: str
    description: str
    delivery_count: int
    payload: Any
    message_id: str | None
    session_id: str | None
    first_seen: datetime
    last_seen: datetime
    occurrences: int
    status: ErrorStatus


@dataclass(frozen=True, slots=True)
class MapState:
    """Run state of one map. A map never paused reads as running with ``since=None``."""

    map: str
    state: RunState = RunState.RUNNING
    since: datetime | None = None
    reason: str = ""

    @property
    def paused(self) -> bool:
        return self.state is RunState.PAUSED
