"""How an error report becomes (or updates) an error record; shared by every store."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from .models import ErrorRecord, ErrorReport, ErrorStatus
from .scrub import scrub


def payload_json(payload: Any) -> str:
    """The scrubbed payload as JSON text; anything JSON cannot hold is stored as its ``str``."""
    return json.dumps(scrub(payload), default=str, ensure_ascii=False, separators=(",", ":"))


def merge_error(existing: ErrorRecord | None, report: ErrorReport, seen_at: datetime) -> ErrorRecord:
    """A new record, or ``existing`` with one more occurrence and the latest details.

    A recurrence re-opens a replayed or dismissed record: the failure is back, so it needs eyes again.
    """
    payload = json.loads(payload_json(report.payload))
    if existing is None:
        return ErrorRecord(
            id=report.error_id,
            map=report.map,
            key=report.key,
            classification=str(report.classification),
            reason=str(scrub(report.reason)),
            description=str(scrub(report.description)),
            delivery_count=report.delivery_count,
            payload=payload,
            message_id=report.message_id,
            session_id=report.session_id,
            first_seen=seen_at,
            last_seen=seen_at,
            occurrences=1,
            status=ErrorStatus.OPEN,
        )
    return ErrorRecord(
        id=existing.id,
        map=existing.map,
        key=existing.key,
        classification=existing.classification,
        reason=str(scrub(report.reason)),
        description=str(scrub(report.description)),
        delivery_count=max(existing.delivery_count, report.delivery_count),
        payload=payload,
        message_id=existing.message_id,
        session_id=report.session_id or existing.session_id,
        first_seen=min(existing.first_seen, seen_at),
        last_seen=max(existing.last_seen, seen_at),
        occurrences=existing.occurrences + 1,
        status=ErrorStatus.OPEN,
    )
