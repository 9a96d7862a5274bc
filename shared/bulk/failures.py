"""Rows an initial sync could not write go to the error store, replayable like any live failure.

The record's payload is the change notification that the live pipeline would handle for the row
(so ``dualsync errors replay`` re-runs it through the normal path once the cause is fixed); the
description names the failing field or parent and carries the scrubbed source row, truncated.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from shared.catalog.models import Side
from shared.connectors.errors import ConnectorError
from shared.events.notification import ChangeNotification, Origin
from shared.mapping import MappingError
from shared.state.base import StateStore
from shared.state.models import ErrorClassification, ErrorReport
from shared.state.scrub import scrub
from shared.sync.decisions import TABLE, DependencyMissing

Row = dict[str, Any]
MESSAGE_ID = "initial-sync"  # one error record per row and cause, occurrences counted across runs
MAX_ROW_TEXT = 2000
BULK_ORIGIN = Origin.INITIAL_SYNC


def classify(error: BaseException) -> ErrorClassification:
    for kind, classification, _ in TABLE:
        if isinstance(error, kind):
            return ErrorClassification(classification.value)
    return ErrorClassification.UNKNOWN


def describe(error: BaseException) -> str:
    if isinstance(error, MappingError):
        return f"field {error.field}: {error.reason}"
    if isinstance(error, DependencyMissing):
        return f"parent {error.parent_map} {error.parent_key} is missing on the target"
    if isinstance(error, ConnectorError):
        return f"{type(error).__name__} {error.status or ''}: {error.message}".strip()
    return f"{type(error).__name__}: {error}"


def notification(map_name: str, source: Side, key_text: str | None, record_id: str | None,
                 version: int | None) -> ChangeNotification | None:
    try:
        rid = UUID(record_id) if record_id and source is Side.DATAVERSE else None
    except ValueError:
        rid = None
    if key_text is None and rid is None:
        return None
    return ChangeNotification(map=map_name, source=source, record_id=rid, key=key_text, version=version,
                              time=datetime.now(UTC), origin=BULK_ORIGIN)


async def keep(state: StateStore, map_name: str, source: Side, key_text: str | None, record_id: str | None,
               version: int | None, error: BaseException, row: Row | None) -> None:
    note = notification(map_name, source, key_text, record_id, version)
    row_text = json.dumps(scrub(row), default=str, ensure_ascii=False)[:MAX_ROW_TEXT] if row else ""
    await state.record_error(ErrorReport(
        map=map_name,
        key=key_text or record_id or "?",
        classification=classify(error),
        reason=describe(error),
        description=f"initial sync from {source.value}; source row: {row_text}",
        payload=json.loads(note.model_dump_json(exclude_none=True)) if note else None,
        message_id=MESSAGE_ID,
    ))
