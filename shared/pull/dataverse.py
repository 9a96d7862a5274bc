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

The pages are read here rather than through ``DataverseConnector.changes`` because resuming needs
the next link, which ``ChangePage`` does not carry.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

from shared.catalog.models import Side
from shared.connectors.dataverse import MAX_PAGE_SIZE, DataverseConnector
from shared.connectors.errors import DeltaTokenExpired
from shared.connectors.odata import query_string
from shared.connectors.paging import follow_pages
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


@dataclass
class DeltaPage:
    rows: list[dict[str, Any]]
    deleted_ids: list[UUID]
    next_link: str | None
    delta_token: str | None


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
        except DeltaTokenExpired:
            log.warning("pull %s dataverse: the delta token expired; reading every row again. Deletions "
                        "made meanwhile cannot be seen: run `dualsync reconcile --map %s`", cm.name, cm.name)
            after = PullMode.BASELINE if mode is PullMode.BASELINE else PullMode.FULL_REREAD
            current = await self.state.get_checkpoint(name)
            return await self._read(cm, name, after, {}, current.etag if current else None, budget)

    async def _read(self, cm: CompiledMap, name: str, mode: PullMode, data: dict[str, Any],
                    etag: str | None, budget: Budget) -> PullResult:
        table = cm.map.dataverse
        # Change tracking reports whole rows, whatever columns changed: the id and version suffice.
        select = [table.primary_id] if mode is PullMode.BASELINE else [table.primary_id, "versionnumber", "modifiedon"]
        token = data.get("delta_token") if mode is PullMode.INCREMENTAL else None
        start = data.get("resume") or f"{table.entity_set}?{query_string({'$select': ','.join(select), '$deltatoken': token})}"
        published = pages = 0
        async for page in self._pages(start):
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

    async def _pages(self, start: str) -> AsyncIterator[DeltaPage]:
        headers = {"Prefer": f"odata.track-changes,odata.maxpagesize={self.page_size}"}
        http = self.connector.http
        async for body in follow_pages(http, start, headers):
            rows: list[dict[str, Any]] = []
            deleted: list[UUID] = []
            for item in body.get("value", []):
                if item.get("reason") == "deleted" or str(item.get("@odata.context", "")).endswith("$deletedEntity"):
                    deleted.append(UUID(str(item["id"])))
                else:
                    rows.append(item)
            token = None
            if "@odata.deltaLink" in body:
                tokens = parse_qs(urlsplit(http.url(body["@odata.deltaLink"])).query).get("$deltatoken")
                token = tokens[0] if tokens else None
            yield DeltaPage(rows, deleted, body.get("@odata.nextLink"), token)

    @staticmethod
    def _notifications(cm: CompiledMap, page: DeltaPage) -> list[ChangeNotification]:
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
