"""Dataverse change tracking per map: what changed since the map's delta token, as notifications.

Checkpoint ``pull:dataverse:<map>`` holds ``delta_token`` (where the last complete read ended) and,
while a read is cut short by the budget, ``resume`` (the ``@odata.nextLink`` to go on from) and
``mode``. Each page is published before the checkpoint moves past it (at least once).

- First run (no checkpoint): a baseline read that only takes the token and publishes nothing;
  rows that exist already are the initial sync's job (``dualsync initial-sync``).
- Later runs: changed rows -> one notification each (version = ``versionnumber``, so a webhook and a
  pull of the same version share a message id); removed entries -> delete notifications.
- Expired token (Dataverse keeps change history for a limited time): a full re-read announces every
  row again (the handler skips unchanged ones); deletions in the gap cannot be seen, so a warning
  asks for ``dualsync reconcile``.

Pages come from ``DataverseConnector.changes``: a fresh read passes the stored token (an expired one
comes back as a full read, flagged ``full_reread``); a read cut short resumes from the stored link.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from shared.catalog.models import Side
from shared.connectors.dataverse import MAX_PAGE_SIZE, ChangePage, DataverseConnector
from shared.connectors.errors import DeltaTokenExpired
from shared.events.notification import ChangeNotification, Operation, Origin
from shared.mapping import CompiledMap
from shared.pull.budget import Budget
from shared.pull.publishing import publish
from shared.pull.result import PullMode, PullResult
from shared.state.base import StateStore
from shared.state.models import Checkpoint
from shared.transport.base import Transport

log = logging.getLogger("dualsync.pull")

DELETED_CHANGE = "deleted"  # a record is deleted once: every announcement of it may share one id


def checkpoint_name(map_name: str) -> str:
    return f"pull:dataverse:{map_name}"


def _warn_expired(cm: CompiledMap) -> None:
    log.warning("pull %s dataverse: the delta token expired; reading every row again. Deletions "
                "made meanwhile cannot be seen: run `dualsync reconcile --map %s`", cm.name, cm.name)


class DataversePuller:
    def __init__(self, connector: DataverseConnector, state: StateStore, transport: Transport, topic: str,
                 *, page_size: int = MAX_PAGE_SIZE):
        self.connector = connector
        self.state = state
        self.transport = transport
        self.topic = topic
        self.page_size = min(page_size, MAX_PAGE_SIZE)

    async def pull(self, cm: CompiledMap, budget: Budget) -> PullResult:
        name = checkpoint_name(cm.name)
        checkpoint = await self.state.get_checkpoint(name)
        data: dict[str, Any] = dict(checkpoint.data) if checkpoint else {}
        etag = checkpoint.etag if checkpoint else None
        mode = PullMode.BASELINE if checkpoint is None else PullMode(data.get("mode", PullMode.INCREMENTAL))
        try:
            return await self._read(cm, name, mode, data, etag, budget)
        except DeltaTokenExpired:  # in a stored resume link; a fresh read falls back in the connector
            _warn_expired(cm)
            after = PullMode.BASELINE if mode is PullMode.BASELINE else PullMode.FULL_REREAD
            current = await self.state.get_checkpoint(name)
            return await self._read(cm, name, after, {}, current.etag if current else None, budget)

    async def _read(self, cm: CompiledMap, name: str, mode: PullMode, data: dict[str, Any],
                    etag: str | None, budget: Budget) -> PullResult:
        table = cm.map.dataverse
        # Change tracking reports whole rows, whatever columns changed: the id and version suffice.
        select = [table.primary_id] if mode is PullMode.BASELINE else [table.primary_id, "versionnumber", "modifiedon"]
        token = data.get("delta_token") if mode is PullMode.INCREMENTAL else None
        published = pages = 0
        async for page in self.connector.changes(table.entity_set, select=select, delta_token=token,
                                                 page_size=self.page_size, resume=data.get("resume")):
            if page.full_reread and mode is PullMode.INCREMENTAL:
                _warn_expired(cm)  # the connector fell back to reading every row
                mode, token = PullMode.FULL_REREAD, None
            pages += 1
            notes = [] if mode is PullMode.BASELINE else self._notifications(cm, page)
            if notes:
                published += await publish(notes, self.transport, self.topic)
            budget.take(len(page.rows) + len(page.deleted_ids))
            if page.next_link is None:
                state = {"delta_token": page.delta_token, "mode": PullMode.INCREMENTAL.value}
            else:
                state = {"delta_token": token, "mode": mode.value, "resume": page.next_link}
            etag = (await self._save(name, state, etag)).etag
            log.info("pull %s dataverse %s: page %d, %d rows, %d deleted, %d published so far",
                     cm.name, mode.value, pages, len(page.rows), len(page.deleted_ids), published)
            if page.next_link is not None and budget.spent:
                log.info("pull %s dataverse: budget spent after %d pages; the next run resumes", cm.name, pages)
                return PullResult(cm.name, Side.DATAVERSE, mode, published, pages, complete=False)
        return PullResult(cm.name, Side.DATAVERSE, mode, published, pages, complete=True)

    async def _save(self, name: str, data: dict[str, Any], etag: str | None) -> Checkpoint:
        # Conditional: a concurrent run (the dev host and a CLI, say) fails here instead of racing.
        if etag is None:
            return await self.state.put_checkpoint(name, data, only_if_absent=True)
        return await self.state.put_checkpoint(name, data, expected_etag=etag)

    @staticmethod
    def _notifications(cm: CompiledMap, page: ChangePage) -> list[ChangeNotification]:
        now = datetime.now(UTC)
        primary = cm.map.dataverse.primary_id
        notes = []
        for row in page.rows:
            version = row.get("versionnumber")
            notes.append(ChangeNotification(
                map=cm.name, source=Side.DATAVERSE, record_id=UUID(str(row[primary])),
                operation=Operation.UNKNOWN,  # change tracking does not tell a create from an update
                version=int(version) if version is not None else None,
                time=_time(row.get("modifiedon")) or now, origin=Origin.TIMER,
            ))
        notes.extend(
            ChangeNotification(map=cm.name, source=Side.DATAVERSE, record_id=rid, operation=Operation.DELETE,
                               change_id=DELETED_CHANGE, time=now, origin=Origin.TIMER)
            for rid in page.deleted_ids
        )
        return notes


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
