"""Operator actions on a running integration: status, pause and resume, errors, replay, dismiss.

Used by the admin HTTP API (functions/admin.py) and the operator CLI; knows nothing of either.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from shared.catalog import Catalog
from shared.events.notification import ChangeNotification, Origin
from shared.state.base import StateStore
from shared.state.errors import NotFoundError
from shared.state.models import ErrorRecord, ErrorStatus, RunState
from shared.transport.base import Transport
from shared.transport.messages import OutboundMessage


class UnknownMap(LookupError):
    pass


class NotReplayable(ValueError):
    pass


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def error_view(record: ErrorRecord) -> dict[str, Any]:
    return _jsonable(asdict(record))


class Operations:
    def __init__(self, catalog: Catalog, state: StateStore, transport: Transport, topic: str):
        self.catalog = catalog
        self.state = state
        self.transport = transport
        self.topic = topic

    def _check_map(self, name: str) -> None:
        if name not in self.catalog:
            raise UnknownMap(f"no map named {name!r}")

    async def status(self) -> dict[str, Any]:
        maps: dict[str, Any] = {}
        states = {s.map: s for s in await self.state.list_map_states()}
        for m in self.catalog:
            s = states.get(m.name)
            maps[m.name] = {
                "state": s.state.value if s else RunState.RUNNING.value,
                "since": s.since.isoformat() if s and s.since else None,
                "reason": s.reason if s else "",
                "open_errors": await self.state.count_errors(m.name),
                "backlog": await self.transport.active_count(self.topic, m.name),
                "dead_letters": await self.transport.dead_letter_count(self.topic, m.name),
            }
        return {"maps": maps}

    async def pause(self, name: str, reason: str = "") -> dict[str, Any]:
        self._check_map(name)
        s = await self.state.set_map_state(name, RunState.PAUSED, reason=reason or "paused by an operator")
        return {"map": name, "state": s.state.value}

    async def resume(self, name: str) -> dict[str, Any]:
        self._check_map(name)
        s = await self.state.set_map_state(name, RunState.RUNNING, reason="resumed")
        return {"map": name, "state": s.state.value}

    async def errors(self, map_name: str | None = None, status: str | None = "open",
                     limit: int = 100) -> list[dict[str, Any]]:
        if map_name is not None:
            self._check_map(map_name)
        return [error_view(r) for r in await self.state.list_errors(map_name, status, limit)]

    async def error(self, error_id: str) -> dict[str, Any]:
        record = await self.state.get_error(error_id)
        if record is None:
            raise NotFoundError(error_id)
        return error_view(record)

    async def replay(self, error_id: str) -> dict[str, Any]:
        """Publish the kept notification again; the handler reads the source's current state."""
        record = await self.state.get_error(error_id)
        if record is None:
            raise NotFoundError(error_id)
        if record.status is not ErrorStatus.OPEN:
            raise NotReplayable(f"error {error_id} is {record.status.value}")
        try:
            note = ChangeNotification.from_message(json.dumps(record.payload).encode())
        except Exception as exc:
            raise NotReplayable(f"error {error_id} holds no readable notification: {exc}") from None
        message = note.model_copy(update={"attempt": 0, "origin": Origin.REPLAY}).to_message()
        await self.transport.publish(self.topic, [OutboundMessage(
            body=message.body, message_id=f"{message.message_id}~replay-{record.occurrences}"[:128],
            session_id=message.session_id, application_properties=dict(message.application_properties),
            content_type=message.content_type, correlation_id=message.correlation_id)])
        await self.state.set_error_status(error_id, ErrorStatus.REPLAYED)
        return {"id": error_id, "status": ErrorStatus.REPLAYED.value}

    async def replay_all(self, map_name: str | None = None) -> dict[str, Any]:
        if map_name is not None:
            self._check_map(map_name)
        replayed, skipped = [], []
        for record in await self.state.list_errors(map_name, ErrorStatus.OPEN, limit=10_000):
            try:
                await self.replay(record.id)
                replayed.append(record.id)
            except NotReplayable:
                skipped.append(record.id)
        return {"replayed": replayed, "not_replayable": skipped}

    async def dismiss(self, error_id: str) -> dict[str, Any]:
        record = await self.state.set_error_status(error_id, ErrorStatus.DISMISSED)
        return {"id": record.id, "status": record.status.value}
