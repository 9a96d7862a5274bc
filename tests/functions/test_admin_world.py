"""Helpers (no tests here) shared by the admin API and ops CLI tests: a real SQLite state store and a
local broker with the change topic and one session-enabled subscription per catalog map."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from shared.catalog import Catalog
from shared.catalog.models import Side
from shared.events.notification import ChangeNotification, Origin
from shared.state.base import StateStore
from shared.state.models import ErrorClassification, ErrorReport
from shared.transport.local import LocalBroker

TOPIC = "dualsync-changes"


async def build_broker(path: Path, catalog: Catalog, topic: str = TOPIC) -> LocalBroker:
    broker = LocalBroker(path)
    await broker.open()
    await broker.create_topic(topic)
    for m in catalog:
        await broker.create_subscription(topic, m.name, filter=f"map = '{m.name}'", requires_session=True)
    return broker


def notification(map_name: str, n: int) -> ChangeNotification:
    return ChangeNotification(map=map_name, source=Side.DATAVERSE, record_id=UUID(int=n),
                              time=datetime(2025, 5, 1, 9, 30, tzinfo=UTC), origin=Origin.WEBHOOK,
                              attempt=3)


async def seed_error(state: StateStore, map_name: str, n: int,
                     classification: ErrorClassification = ErrorClassification.MAPPING) -> str:
    """Keep one failure the way the sync service does: the notification as payload."""
    note = notification(map_name, n)
    record = await state.record_error(ErrorReport(
        map=map_name, key=note.record, classification=classification, reason=f"bad value in row {n}",
        payload=note.model_dump(mode="json", exclude_none=True), message_id=note.message_id,
        session_id=note.session_id))
    return record.id
