"""Distributed initial sync: work items on a queue, processed by the function app's instances.

Planning reads no row data: a company-specific map gets items per legal entity (the companies both
sides know: Dataverse ``cdm_companies`` and Finance ``LegalEntities``); a shared map gets items for
the whole table. A slice (legal entity, or the whole shared table) larger than ``range_rows`` rows
(default :data:`RANGE_ROWS`) is cut into key ranges: a keys-only scan of the master side (``$select``
of the range column, ``$orderby`` it, paged) notes a boundary every ``range_rows`` rows, and each
range ``[low, high)`` becomes an item reading ``column ge low and column lt high``. The boundaries
come from the same service, in its own order, as the filters that use them, so the ranges partition
the slice whatever that service's collation or GUID order: no gap, no overlap. The range column is
the Dataverse primary id on Dataverse and the first key field after the company on Finance.

A map synced from both sides in turn (bidirectional, no master) is ranged per pass: the second
pass's items wait until every first-pass item of the same slice is done, because the second pass
skips the rows the first brought over.

Each item syncs its slice with the local engine under its own checkpoint
``initial-sync:<map>:<company>[#<pass>.<part>]@<run>``, so a redelivered item resumes where the
earlier delivery stopped and writes nothing twice (upserts by key), and items may run in any order
on any instance.

Dependencies: an item of a map whose dependencies (among the maps of the run) are not finished yet
is deferred (scheduled again on the queue after ``DEFER_SECONDS``), so scale-out never writes a
child before its parents.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from shared.bulk.context import BulkContext
from shared.bulk.engine import InitialSync, checkpoint_name
from shared.bulk.plan import master_sides, sync_order
from shared.bulk.source import first_url, pages
from shared.catalog.models import Side
from shared.connectors.odata import literal
from shared.mapping import CompiledMap
from shared.runtime import get_runtime
from shared.transport.messages import OutboundMessage

DEFER_SECONDS = 30.0
RUN_CHECKPOINT = "initial-sync-run:"
RANGE_ROWS = 50_000  # rows per key-range work item (the lead may expose it as a setting)
SCAN_PAGE = 5_000  # keys per page of the boundary scan (keys only: small pages of one column)


@dataclass(frozen=True)
class WorkItem:
    run: str
    map: str
    company: str | None  # legal entity (lower case dataAreaId) of a company-specific map
    maps: list[str] = field(default_factory=list)  # every map of the run: dependencies are judged among them
    # a key-range item: the master-side pass it reads, its number within that pass, and its bounds
    # (``low`` included, ``high`` excluded, ``None`` open); an item without ``part`` is the whole slice
    side_pass: int | None = None
    part: int | None = None
    low: Any = None
    high: Any = None

    @property
    def slot(self) -> str:
        """The item's place in its run: ``<map>:<company or *>[:<pass>.<part>]``."""
        return f"{self.map}:{self.company or '*'}" + (f":{self.side_pass}.{self.part}" if self.part is not None else "")

    @property
    def checkpoint(self) -> str:
        ranged = f"#{self.side_pass}.{self.part}" if self.part is not None else ""
        return checkpoint_name(self.map, self.company) + f"{ranged}@{self.run}"

    def to_message(self) -> OutboundMessage:
        body = json.dumps(asdict(self), separators=(",", ":")).encode()
        item_id = f"{self.run}:{self.slot}"
        return OutboundMessage(body=body, message_id=item_id, session_id=item_id,
                               application_properties={"map": self.map, "kind": "initial-sync"})

    @classmethod
    def from_body(cls, body: bytes | str) -> WorkItem:
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("map"), str) or not isinstance(data.get("run"), str):
            raise ValueError("a work item is a JSON object with run and map")
        company = data.get("company")
        side_pass, part = data.get("side_pass"), data.get("part")
        if (part is None) != (side_pass is None) or any(
                v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0) for v in (side_pass, part)):
            raise ValueError("a key-range work item has both side_pass and part, whole numbers")
        return cls(run=data["run"], map=data["map"], company=company if isinstance(company, str) else None,
                   maps=[m for m in data.get("maps", []) if isinstance(m, str)], side_pass=side_pass, part=part,
                   low=data.get("low"), high=data.get("high"))


def range_column(cm: CompiledMap, side: Side) -> str:
    """The column a map's rows are ranged by on ``side`` (unique or leading in the key, always present)."""
    if side is Side.DATAVERSE:
        return cm.map.dataverse.primary_id
    company = cm.map.company.finance_field if cm.map.company else None
    return next(k for k in cm.map.finance.keys if k != company)


def _value(cm: CompiledMap, side: Side, value: Any) -> Any:
    # a Dataverse primary id is a GUID: compared as one (bare literal), in the service's GUID order
    return UUID(str(value)) if side is Side.DATAVERSE else value


def range_filter(cm: CompiledMap, side: Side, low: Any, high: Any) -> str | None:
    """``column ge low and column lt high`` (an open end left out); ``None`` for the whole slice."""
    column = range_column(cm, side)
    parts = [f"{column} ge {literal(_value(cm, side, low))}" if low is not None else None,
             f"{column} lt {literal(_value(cm, side, high))}" if high is not None else None]
    present = [p for p in parts if p]
    return " and ".join(present) or None


async def key_boundaries(ctx: BulkContext, cm: CompiledMap, side: Side, company: str | None,
                         every: int) -> list[Any]:
    """The range column's value at every ``every``-th row of the slice, in the service's key order.

    A keys-only scan: one column selected, nothing expanded, no count; only the boundaries are kept.
    """
    column = range_column(cm, side)
    url = await first_url(ctx, cm, side, company=company, select=[column], expand=[], orderby=[column],
                          count=False)
    boundaries: list[Any] = []
    seen = 0
    async for page in pages(ctx, side, url, SCAN_PAGE):
        for row in page.rows:
            value = row.get(column)
            if seen and seen % every == 0 and value is not None and (not boundaries or value != boundaries[-1]):
                boundaries.append(value)
            seen += 1
    return boundaries


async def legal_entities(ctx: BulkContext) -> list[str]:
    """Lower-case codes of every legal entity known on either side."""
    codes: set[str] = set()
    async for page in ctx.dataverse.query("cdm_companies", select=["cdm_companycode"]):
        codes.update(str(r["cdm_companycode"]).lower() for r in page if r.get("cdm_companycode"))
    async for page in ctx.finance.query("LegalEntities", select=["LegalEntityId"]):
        codes.update(str(r["LegalEntityId"]).lower() for r in page if r.get("LegalEntityId"))
    return sorted(codes)


async def _slice_items(ctx: BulkContext, run: str, name: str, company: str | None, ordered: list[str],
                       range_rows: int) -> list[WorkItem]:
    """One item for a small slice; key-range items (per pass) for a slice over ``range_rows`` rows.

    A map whose rows refer to rows of the same map (tasks under a parent task) is never ranged."""
    cm = ctx.compiled[name]
    if any(spec.map == name for spec in cm.lookups.values()):
        # rows under a parent row of the same map (tasks): one item, so parents land before children
        return [WorkItem(run, name, company, ordered)]
    sides = master_sides(cm.map)
    bounds = [await key_boundaries(ctx, cm, side, company, range_rows) for side in sides]
    if not any(bounds):
        return [WorkItem(run, name, company, ordered)]
    items: list[WorkItem] = []
    for index, cuts in enumerate(bounds):
        edges: list[Any] = [None, *cuts, None]
        items.extend(WorkItem(run, name, company, ordered, index, part, low, high)
                     for part, (low, high) in enumerate(itertools.pairwise(edges)))
    return items


async def plan_items(ctx: BulkContext, maps: Sequence[str], run: str, *,
                     range_rows: int = RANGE_ROWS) -> list[WorkItem]:
    if range_rows < 1:
        raise ValueError("range_rows must be at least 1")
    catalog = {name: cm.map for name, cm in ctx.compiled.items()}
    ordered = [name for generation in sync_order(catalog, maps or None) for name in generation]
    companies: list[str] | None = None
    items: list[WorkItem] = []
    for name in ordered:
        if catalog[name].company is None:
            items.extend(await _slice_items(ctx, run, name, None, ordered, range_rows))
            continue
        if companies is None:
            companies = await legal_entities(ctx)
        for code in companies:
            items.extend(await _slice_items(ctx, run, name, code, ordered, range_rows))
    return items


async def record_run(ctx: BulkContext, run: str, items: Sequence[WorkItem]) -> None:
    """The run's record: its maps and each item's checkpoint, which items judge their dependencies by."""
    await ctx.state.put_checkpoint(RUN_CHECKPOINT + run, {
        "maps": sorted({i.map for i in items}),
        "items": {i.slot: i.checkpoint for i in items},
        "published": datetime.now(UTC).isoformat(),
    })


def _context(service: Any) -> BulkContext:
    return BulkContext.from_service(service, get_runtime().settings)


async def publish_work(service: Any, maps: Sequence[str], *, range_rows: int = RANGE_ROWS) -> dict[str, Any]:
    """Plan work items for ``maps`` (empty: every map) and publish them to the work queue.

    ``service`` is the process's :class:`~shared.sync.service.SyncService` (its connectors, state
    store and transport are used); ``range_rows``: rows per key-range item. Returns ``{"run",
    "queue", "items", "maps": {map: items}, "ranged": {map: key-range items}}``.
    """
    ctx = _context(service)
    settings = ctx.settings
    run = uuid.uuid4().hex[:12]
    items = await plan_items(ctx, maps, run, range_rows=range_rows)
    await record_run(ctx, run, items)
    if items:
        await service.transport.publish(settings.work_queue, [i.to_message() for i in items])
    per_map: dict[str, int] = {}
    ranged: dict[str, int] = {}
    for i in items:
        per_map[i.map] = per_map.get(i.map, 0) + 1
        if i.part is not None:
            ranged[i.map] = ranged.get(i.map, 0) + 1
    return {"run": run, "queue": settings.work_queue, "items": len(items), "maps": per_map, "ranged": ranged}


def _waits_for(item: WorkItem, slot: str, wanted: set[str]) -> bool:
    """Whether ``item`` must wait for the item in ``slot``: a dependency's item, or an earlier pass of
    its own slice (the second pass skips what the first brought over)."""
    parts = slot.split(":")
    if parts[0] in wanted:
        return True
    if item.side_pass and parts[0] == item.map and parts[1] == (item.company or "*") and len(parts) > 2:
        return int(parts[2].split(".", 1)[0]) < item.side_pass
    return False


async def _dependencies_done(ctx: BulkContext, item: WorkItem) -> bool:
    run = await ctx.state.get_checkpoint(RUN_CHECKPOINT + item.run)
    if run is None:
        return True  # an item without its run record: nothing to wait for
    wanted = set(ctx.compiled[item.map].map.depends_on) & set(run.data.get("maps", [])) - {item.map}
    for slot, cp_name in run.data.get("items", {}).items():
        if _waits_for(item, slot, wanted):
            cp = await ctx.state.get_checkpoint(cp_name)
            if cp is None or not cp.data.get("done"):
                return False
    return True


async def process_work_item(service: Any, body: bytes | str, *, ctx: BulkContext | None = None) -> dict[str, Any]:
    """Sync one work item (idempotent on redelivery: it resumes from its own checkpoint).

    Returns ``{"status": "done" | "deferred", "map", "company", "part", ...counts}``. A deferred item
    was scheduled again on the work queue because a dependency of its map (or an earlier pass of its
    slice) has not finished.
    """
    ctx = ctx or _context(service)
    item = WorkItem.from_body(body)
    if item.map not in ctx.compiled:
        raise ValueError(f"work item for unknown map {item.map!r}")
    cm = ctx.compiled[item.map]
    sides = master_sides(cm.map)
    if item.side_pass is not None and item.side_pass >= len(sides):
        raise ValueError(f"work item for pass {item.side_pass} of {item.map!r}, which has {len(sides)}")
    if not await _dependencies_done(ctx, item):
        message = item.to_message()
        again = OutboundMessage(body=message.body, message_id=f"{message.message_id}:{uuid.uuid4().hex[:8]}",
                                session_id=message.session_id,
                                application_properties=dict(message.application_properties))
        await service.transport.schedule(ctx.settings.work_queue, again,
                                         datetime.now(UTC) + timedelta(seconds=DEFER_SECONDS))
        return {"status": "deferred", "map": item.map, "company": item.company, "part": item.part}
    key_filter = (range_filter(cm, sides[item.side_pass], item.low, item.high)
                  if item.side_pass is not None else None)
    summary = await InitialSync(ctx).sync_map(item.map, resume=True, company=item.company,
                                             checkpoint=item.checkpoint, only_pass=item.side_pass,
                                             key_filter=key_filter)
    return {"status": "done", "company": item.company, "part": item.part, **summary.as_dict()}
