"""Distributed initial sync: work items on a queue, processed by the function app's instances.

Planning is cheap (no row is read): a company-specific map gets one item per legal entity (the
companies both sides know: Dataverse ``cdm_companies`` and Finance ``LegalEntities``); a shared map
gets one item. Each item syncs its slice with the local engine under its own checkpoint
``initial-sync:<map>:<company>``, so a redelivered item resumes where the earlier delivery stopped
and writes nothing twice (upserts by key). Finer key ranges inside one legal entity are not planned:
real ranges would need the services to agree on key order (Dataverse collates case-insensitively,
GUIDs in SQL Server order), which a planner cannot check cheaply.

Dependencies: an item of a map whose dependencies (among the maps of the run) are not finished yet
is deferred — scheduled again on the queue after ``DEFER_SECONDS`` — so scale-out never writes a
child before its parents.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.bulk.context import BulkContext
from shared.bulk.engine import InitialSync, checkpoint_name
from shared.bulk.plan import sync_order
from shared.runtime import get_runtime
from shared.transport.messages import OutboundMessage

DEFER_SECONDS = 30.0
RUN_CHECKPOINT = "initial-sync-run:"


@dataclass(frozen=True)
class WorkItem:
    run: str
    map: str
    company: str | None  # legal entity (lower case dataAreaId) of a company-specific map
    maps: list[str] = field(default_factory=list)  # every map of the run: dependencies are judged among them

    @property
    def checkpoint(self) -> str:
        return checkpoint_name(self.map, self.company) + f"@{self.run}"

    def to_message(self) -> OutboundMessage:
        body = json.dumps(asdict(self), separators=(",", ":")).encode()
        item_id = f"{self.run}:{self.map}:{self.company or '*'}"
        return OutboundMessage(body=body, message_id=item_id, session_id=item_id,
                               application_properties={"map": self.map, "kind": "initial-sync"})

    @classmethod
    def from_body(cls, body: bytes | str) -> WorkItem:
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("map"), str) or not isinstance(data.get("run"), str):
            raise ValueError("a work item is a JSON object with run and map")
        company = data.get("company")
        return cls(run=data["run"], map=data["map"], company=company if isinstance(company, str) else None,
                   maps=[m for m in data.get("maps", []) if isinstance(m, str)])


async def legal_entities(ctx: BulkContext) -> list[str]:
    """Lower-case codes of every legal entity known on either side."""
    codes: set[str] = set()
    async for page in ctx.dataverse.query("cdm_companies", select=["cdm_companycode"]):
        codes.update(str(r["cdm_companycode"]).lower() for r in page if r.get("cdm_companycode"))
    async for page in ctx.finance.query("LegalEntities", select=["LegalEntityId"]):
        codes.update(str(r["LegalEntityId"]).lower() for r in page if r.get("LegalEntityId"))
    return sorted(codes)


async def plan_items(ctx: BulkContext, maps: Sequence[str], run: str) -> list[WorkItem]:
    catalog = {name: cm.map for name, cm in ctx.compiled.items()}
    ordered = [name for generation in sync_order(catalog, maps or None) for name in generation]
    companies: list[str] | None = None
    items: list[WorkItem] = []
    for name in ordered:
        if catalog[name].company is None:
            items.append(WorkItem(run, name, None, ordered))
            continue
        if companies is None:
            companies = await legal_entities(ctx)
        items.extend(WorkItem(run, name, code, ordered) for code in companies)
    return items


def _context(service: Any) -> BulkContext:
    return BulkContext.from_service(service, get_runtime().settings)


async def publish_work(service: Any, maps: Sequence[str]) -> dict[str, Any]:
    """Plan work items for ``maps`` (empty: every map) and publish them to the work queue.

    ``service`` is the process's :class:`~shared.sync.service.SyncService` (its connectors, state
    store and transport are used). Returns ``{"run", "queue", "items", "maps": {map: items}}``.
    """
    ctx = _context(service)
    settings = ctx.settings
    run = uuid.uuid4().hex[:12]
    items = await plan_items(ctx, maps, run)
    await ctx.state.put_checkpoint(RUN_CHECKPOINT + run, {
        "maps": sorted({i.map for i in items}),
        "items": {f"{i.map}:{i.company or '*'}": i.checkpoint for i in items},
        "published": datetime.now(UTC).isoformat(),
    })
    if items:
        await service.transport.publish(settings.work_queue, [i.to_message() for i in items])
    per_map: dict[str, int] = {}
    for i in items:
        per_map[i.map] = per_map.get(i.map, 0) + 1
    return {"run": run, "queue": settings.work_queue, "items": len(items), "maps": per_map}


async def _dependencies_done(ctx: BulkContext, item: WorkItem) -> bool:
    run = await ctx.state.get_checkpoint(RUN_CHECKPOINT + item.run)
    if run is None:
        return True  # an item without its run record: nothing to wait for
    wanted = set(ctx.compiled[item.map].map.depends_on) & set(run.data.get("maps", []))
    for slot, cp_name in run.data.get("items", {}).items():
        if slot.split(":", 1)[0] in wanted:
            cp = await ctx.state.get_checkpoint(cp_name)
            if cp is None or not cp.data.get("done"):
                return False
    return True


async def process_work_item(service: Any, body: bytes | str, *, ctx: BulkContext | None = None) -> dict[str, Any]:
    """Sync one work item (idempotent on redelivery: it resumes from its own checkpoint).

    Returns ``{"status": "done" | "deferred", "map", "company", ...counts}``. A deferred item was
    scheduled again on the work queue because a dependency of its map has not finished.
    """
    ctx = ctx or _context(service)
    item = WorkItem.from_body(body)
    if item.map not in ctx.compiled:
        raise ValueError(f"work item for unknown map {item.map!r}")
    if not await _dependencies_done(ctx, item):
        message = item.to_message()
        again = OutboundMessage(body=message.body, message_id=f"{message.message_id}:{uuid.uuid4().hex[:8]}",
                                session_id=message.session_id,
                                application_properties=dict(message.application_properties))
        await service.transport.schedule(ctx.settings.work_queue, again,
                                         datetime.now(UTC) + timedelta(seconds=DEFER_SECONDS))
        return {"status": "deferred", "map": item.map, "company": item.company}
    summary = await InitialSync(ctx).sync_map(item.map, resume=True, company=item.company,
                                             checkpoint=item.checkpoint)
    return {"status": "done", "company": item.company, **summary.as_dict()}
