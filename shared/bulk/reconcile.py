"""Reconcile: compare both sides of a map by integration key, streaming, and repair the drift.

Both sides are read in pages ordered by the key (Dataverse ``$orderby`` on the key columns, Finance
cross-company ``$orderby`` on the matching fields) and merge-joined, so memory holds a page per side
whatever the table size. Company-specific maps are compared one legal entity at a time (a filter on
the company lookup / ``dataAreaId``), because the Dataverse company lookup orders by GUID, not code.
Key columns that do not order the same on both sides (lookups, value maps) end the ordered prefix:
rows with an equal prefix form a group, matched inside the group by the full key.

Each source row is mapped towards the target (the compiled map, as the handler does) and compared
with the target row on the fields the map writes towards that side, with values normalised (numbers
by value, Finance's empty string as null, lookups by their key columns, text case-insensitively for
keys). Result per map: missing (source row, no target row), extra (target row, no source row),
different (both, some field differs) with up to N examples naming keys and field names only.

``fix`` publishes a change notification (origin ``reconcile``) per missing or different row, after
removing its ledger entry (the ledger says the row was written as it should be; the target says
otherwise, so the ledger is stale), and the normal pipeline repairs them. Extra rows are reported,
never deleted.

Order caveat: the merge assumes both services order keys the same way. The emulators order text
ordinally; a stream found out of order raises :class:`ReconcileOrderError` instead of reporting
false drift.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from shared.bulk.context import BulkContext
from shared.bulk.distributed import legal_entities
from shared.bulk.plan import master_sides, sync_order
from shared.bulk.source import first_url, pages
from shared.catalog.models import Convert, ConvertType, Copy, Side
from shared.events.notification import ChangeNotification, Operation, Origin
from shared.mapping import CompiledMap, key_to_string
from shared.sync.handler import ledger_key
from shared.transport.base import Transport

Row = dict[str, Any]
_ORDERABLE = (ConvertType.STRING, ConvertType.INT, ConvertType.DATE, ConvertType.DATETIME_UTC)


class ReconcileOrderError(RuntimeError):
    """A side did not return rows in key order; the comparison would be wrong."""


@dataclass
class Drift:
    map: str
    source: str
    target: str
    compared: int = 0
    missing: int = 0
    extra: int = 0
    different: int = 0
    examples: dict[str, list[Any]] = field(default_factory=lambda: {"missing": [], "extra": [], "different": []})
    fixed: int = 0

    @property
    def drift(self) -> int:
        return self.missing + self.extra + self.different

    def as_dict(self) -> dict[str, Any]:
        return {"map": self.map, "source": self.source, "target": self.target, "compared": self.compared,
                "missing": self.missing, "extra": self.extra, "different": self.different,
                "fixed": self.fixed, "examples": self.examples}


# --- reading ----------------------------------------------------------------------------------------

def _ordered_prefix(cm: CompiledMap) -> tuple[list[str], list[str]]:
    """Key columns (Dataverse, Finance) that order the same on both sides, in key order."""
    m = cm.map
    company_nav = m.company.dataverse_lookup if m.company else None
    by_dv = {fm.dataverse: fm for fm in m.fields if fm.dataverse}
    dv_cols, fo_cols = [], []
    for column in (k for k in m.dataverse.keys if k != company_nav):
        fm = by_dv.get(column)
        t = fm.transform if fm else None
        if fm is None or column in cm.lookups or not (
                isinstance(t, Copy) or (isinstance(t, Convert) and t.to in _ORDERABLE)) or not fm.finance:
            break
        dv_cols.append(column)
        fo_cols.append(fm.finance)
    return dv_cols, fo_cols


def _columns(cm: CompiledMap, side: Side) -> tuple[list[str], list[str] | None]:
    """Every column the map touches on ``side`` (as source or target), lookups expanded to their keys."""
    m = cm.map
    if side is Side.DATAVERSE:
        cols = {m.dataverse.primary_id, "versionnumber"}
        cols.update(fm.dataverse for fm in m.fields
                    if fm.dataverse and fm.dataverse not in cm.lookups and fm.dataverse not in cm.references)
        expand = [f"{m.company.dataverse_lookup}($select=cdm_companycode)"] if m.company else []
        expand += [f"{nav}($select={','.join(spec.key_columns)})" for nav, spec in sorted(cm.lookups.items())]
        expand += [f"{nav}($select={','.join(spec.expand_columns)})" for nav, spec in sorted(cm.references.items())
                   if spec.expand_columns]  # reference lookups (units, vendor accounts)
        return sorted(cols), expand
    fo = set(cm.finance_select())
    fo.update(fm.finance for fm in m.fields if fm.finance)
    fo.update(f for spec in cm.lookups.values() for f in spec.finance_fields)
    fo.update(f for spec in cm.references.values() for f in spec.finance_fields)
    return sorted(fo), None


async def _side_url(ctx: BulkContext, cm: CompiledMap, side: Side, company: str | None) -> str:
    dv_cols, fo_cols = _ordered_prefix(cm)
    orderby = dv_cols if side is Side.DATAVERSE else fo_cols
    select, expand = _columns(cm, side)
    return await first_url(ctx, cm, side, company=company, orderby=orderby or None, count=False,
                           select=select, expand=expand)


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float | Decimal):
        return (1, value)
    return (2, str(value))


async def _groups(ctx: BulkContext, cm: CompiledMap, side: Side, company: str | None,
                  page_size: int) -> AsyncIterator[tuple[tuple[Any, ...], dict[str, Row]]]:
    """Rows of one side grouped by the ordered key prefix, in order: (prefix, {key text: row})."""
    n = len(_ordered_prefix(cm)[0])
    offset = 1 if cm.map.company else 0
    url = await _side_url(ctx, cm, side, company)
    current: tuple[Any, ...] | None = None
    group: dict[str, Row] = {}
    async for page in pages(ctx, side, url, page_size):
        for row in page.rows:
            key = cm.integration_key(side, row)
            prefix = tuple(_sort_key(v) for v in key[offset:offset + n])
            if current is not None and prefix != current:
                if prefix < current:
                    raise ReconcileOrderError(f"map {cm.name}: {side.value} rows are not in key order")
                yield current, group
                group = {}
            current = prefix
            group[key_to_string(key)] = row
    if current is not None:
        yield current, group


# --- comparing --------------------------------------------------------------------------------------

def _moment(text: str) -> Any:
    """ISO dates and datetimes as values: a datetime at midnight UTC equals its date (Finance stores
    date-only values as midnight UTC)."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
        if moment.time() == time(0) or moment.year <= 1900:
            return moment.date()
    return moment


def _norm(value: Any) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value)).normalize()
    if isinstance(value, str) and len(value) >= 10 and value[4:5] == "-" and value[7:8] == "-":
        return _moment(value)
    return value


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return False
        # a lookup: its key columns; the referenced company (not expanded on reads) comes from the row
        return all(_same_key(v, actual.get(k)) for k, v in expected.items()
                   if not (isinstance(v, dict) and k not in actual))
    if isinstance(actual, dict):
        return False
    a, b = _norm(expected), _norm(actual)
    if isinstance(a, date) and isinstance(b, date) and isinstance(a, datetime) != isinstance(b, datetime):
        # one side keeps only the date (Finance date fields): compare what both can hold
        return (a.date() if isinstance(a, datetime) else a) == (b.date() if isinstance(b, datetime) else b)
    return a == b


def _same_key(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return _same(expected, actual)
    if isinstance(expected, str) and isinstance(actual, str):
        return expected.casefold() == actual.casefold()
    return _norm(expected) == _norm(actual)


def differing_fields(mapped: Row, target: Row) -> list[str]:
    return sorted(k for k, v in mapped.items() if not _same(v, target.get(k)))


# --- the run ----------------------------------------------------------------------------------------

class Reconciler:
    def __init__(self, ctx: BulkContext, *, examples: int = 5, page_size: int | None = None):
        self.ctx = ctx
        self.examples = examples
        self.page_size = page_size or ctx.settings.page_size
        self.run_id = uuid.uuid4().hex[:12]

    async def run(self, maps: Sequence[str] | None = None, *, fix: bool = False,
                  transport: Transport | None = None) -> list[Drift]:
        catalog = {name: cm.map for name, cm in self.ctx.compiled.items()}
        results = []
        for generation in sync_order(catalog, maps):
            for name in generation:
                results.append(await self.reconcile_map(name, fix=fix, transport=transport))
        return results

    async def reconcile_map(self, name: str, *, fix: bool = False, transport: Transport | None = None) -> Drift:
        cm = self.ctx.compiled[name]
        source = master_sides(cm.map)[0]
        target = source.other
        drift = Drift(name, source.value, target.value)
        companies: list[str | None] = [None]
        if cm.map.company is not None:
            companies = list(await legal_entities(self.ctx))
        to_fix: list[ChangeNotification] = []
        for company in companies:
            await self._partition(cm, source, company, drift, to_fix)
            if fix and transport is not None and len(to_fix) >= 500:
                drift.fixed += await self._publish(cm, target, to_fix, transport)
                to_fix = []
        if fix and transport is not None and to_fix:
            drift.fixed += await self._publish(cm, target, to_fix, transport)
        return drift

    async def _partition(self, cm: CompiledMap, source: Side, company: str | None, drift: Drift,
                         to_fix: list[ChangeNotification]) -> None:
        target = source.other
        src = _groups(self.ctx, cm, source, company, self.page_size)
        dst = _groups(self.ctx, cm, target, company, self.page_size)
        s = await anext(src, None)
        t = await anext(dst, None)
        while s is not None or t is not None:
            if t is None or (s is not None and s[0] < t[0]):
                assert s is not None
                self._compare(cm, source, s[1], {}, drift, to_fix)
                s = await anext(src, None)
            elif s is None or t[0] < s[0]:
                self._compare(cm, source, {}, t[1], drift, to_fix)
                t = await anext(dst, None)
            else:
                self._compare(cm, source, s[1], t[1], drift, to_fix)
                s, t = await anext(src, None), await anext(dst, None)

    def _example(self, drift: Drift, kind: str, value: Any) -> None:
        if len(drift.examples[kind]) < self.examples:
            drift.examples[kind].append(value)

    def _compare(self, cm: CompiledMap, source: Side, src: dict[str, Row], dst: dict[str, Row], drift: Drift,
                 to_fix: list[ChangeNotification]) -> None:
        target = source.other
        to_target = cm.to_side(target)
        for key_text, row in src.items():
            drift.compared += 1
            other = dst.pop(key_text, None)
            if other is None:
                drift.missing += 1
                self._example(drift, "missing", key_text)
                to_fix.append(self._note(cm, source, key_text, row))
                continue
            try:
                mapped = to_target(row)
            except Exception:  # a row that does not map is the error store's business, not drift
                continue
            fields = differing_fields(mapped, other)
            if fields:
                drift.different += 1
                self._example(drift, "different", {"key": key_text, "fields": fields})
                to_fix.append(self._note(cm, source, key_text, row))
        for key_text in dst:
            drift.extra += 1
            self._example(drift, "extra", key_text)

    def _note(self, cm: CompiledMap, source: Side, key_text: str, row: Row) -> ChangeNotification:
        record_id = None
        if source is Side.DATAVERSE and row.get(cm.map.dataverse.primary_id):
            record_id = uuid.UUID(str(row[cm.map.dataverse.primary_id]))
        return ChangeNotification(map=cm.name, source=source, record_id=record_id, key=key_text,
                                  operation=Operation.UPDATE, time=datetime.now(UTC), origin=Origin.RECONCILE,
                                  change_id=f"reconcile-{self.run_id}")

    async def _publish(self, cm: CompiledMap, target: Side, notes: list[ChangeNotification],
                       transport: Transport) -> int:
        for note in notes:
            assert note.key is not None
            # the ledger says this row was written as mapped; the target disagrees, so forget it
            await self.ctx.state.delete_ledger(cm.name, ledger_key(note.key, target))
        await transport.publish(self.ctx.settings.change_topic, [n.to_message() for n in notes])
        return len(notes)
