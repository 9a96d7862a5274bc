"""The state store interface the sync engine uses; implementations live beside it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from .models import (
    Checkpoint,
    ErrorRecord,
    ErrorReport,
    ErrorStatus,
    LedgerEntry,
    MapState,
    RunState,
)


@runtime_checkable
class StateStore(Protocol):
    """Durable state of the sync engine.

    Optimistic concurrency for ledger entries and checkpoints: every read returns an ``etag``; a write
    with ``expected_etag`` succeeds only if the stored record still has it, a write with
    ``only_if_absent=True`` only if there is none; otherwise :class:`ConcurrencyError`. A write with
    neither is unconditional. Writes return the record as stored, with its new etag.
    """

    async def open(self) -> None:
        """Create what the store needs (tables, schema). Idempotent."""

    async def close(self) -> None: ...

    # --- ledger ---------------------------------------------------------------------------------
    async def get_ledger(self, map: str, key: str) -> LedgerEntry | None: ...

    async def get_ledgers(self, map: str, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        """The entries of one map that exist among ``keys``, by key (an absent key is simply not in the
        dict; a key given twice is read once), in as few round trips as the store allows: one call with
        chunked ``IN`` queries in SQLite, partition queries of at most 14 keys each, a few at once, in
        Table Storage. Each entry is what :meth:`get_ledger` would return for its key."""
        ...

    async def put_ledger(
        self, entry: LedgerEntry, *, expected_etag: str | None = None, only_if_absent: bool = False
    ) -> LedgerEntry: ...

    async def put_ledgers(self, entries: Sequence[LedgerEntry]) -> list[LedgerEntry]:
        """Unconditional writes of many entries (any maps) in as few round trips as the store allows:
        one transaction in SQLite, batches of at most 100 per map in Table Storage. Returns one stored
        entry per entry given, in order, with its new etag; the same key twice: the last one wins."""
        ...

    async def delete_ledger(self, map: str, key: str, *, expected_etag: str | None = None) -> bool:
        """True if something was deleted."""
        ...

    def iter_ledger(self, map: str) -> AsyncIterator[LedgerEntry]: ...

    # --- checkpoints ----------------------------------------------------------------------------
    async def get_checkpoint(self, name: str) -> Checkpoint | None: ...

    async def put_checkpoint(
        self,
        name: str,
        data: dict[str, Any],
        *,
        expected_etag: str | None = None,
        only_if_absent: bool = False,
    ) -> Checkpoint: ...

    async def delete_checkpoint(self, name: str, *, expected_etag: str | None = None) -> bool: ...

    # --- error records --------------------------------------------------------------------------
    async def record_error(self, report: ErrorReport, *, seen_at: datetime | None = None) -> ErrorRecord:
        """Upsert: a report with the same map, key, classification and message id as an existing
        record adds an occurrence, refreshes the latest details and re-opens it."""
        ...

    async def list_errors(
        self, map: str | None = None, status: ErrorStatus | str | None = ErrorStatus.OPEN, limit: int = 100
    ) -> list[ErrorRecord]:
        """Newest (by last seen) first. ``status=None`` lists every status."""
        ...

    async def get_error(self, error_id: str) -> ErrorRecord | None: ...

    async def set_error_status(self, error_id: str, status: ErrorStatus | str) -> ErrorRecord:
        """Raises :class:`NotFoundError` for an unknown id."""
        ...

    async def count_errors(
        self, map: str | None = None, status: ErrorStatus | str | None = ErrorStatus.OPEN
    ) -> int: ...

    # --- map run state --------------------------------------------------------------------------
    async def get_map_state(self, map: str) -> MapState: ...

    async def set_map_state(
        self, map: str, state: RunState | str, *, reason: str = "", since: datetime | None = None
    ) -> MapState: ...

    async def list_map_states(self) -> list[MapState]:
        """Every map whose state was ever set, by name."""
        ...
