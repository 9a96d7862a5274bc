"""Mapped rows to target writes (one ``Upsert`` per row, addressed by key), sent as batches.

The wire shape is the live path's (:mod:`shared.sync.sides`): Dataverse alternate keys with the
company and lookups as ``_<nav>_value`` GUIDs, lookups in the body as ``@odata.bind``, plain key
columns also in the body; Finance rows flat with their entity key (``dataAreaId`` and natural key).
Only the GUIDs come from :mod:`shared.bulk.refs` (resolved per page) instead of one read per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from shared.bulk.context import BulkContext
from shared.bulk.refs import DataverseRefs, FinanceParents
from shared.catalog.models import Side
from shared.connectors.writes import Upsert, WriteResult
from shared.mapping import CompiledMap
from shared.mapping.compiler import COMPANY_KEY_COLUMN
from shared.sync.decisions import DependencyMissing
from shared.sync.sides import COMPANY_SET

Row = dict[str, Any]


@dataclass(slots=True)
class Item:
    """One source row on its way: its key, the mapped row and the version to record."""

    key: tuple[Any, ...]
    key_text: str
    row: Row
    version: int | None
    record_id: str | None  # the Dataverse primary id of a Dataverse source row
    parents: list[tuple[str, tuple[Any, ...]]] | None = None  # towards Finance: (parent map, key), once per row


class TargetWriter(Protocol):
    side: Side

    async def prepare(self, cm: CompiledMap, items: Sequence[Item]) -> None: ...

    async def upsert(self, cm: CompiledMap, item: Item) -> Upsert:
        """The write for ``item``; raises :class:`DependencyMissing` when a parent is not there."""
        ...

    async def send(self, cm: CompiledMap, writes: Sequence[Upsert]) -> list[WriteResult]: ...


class DataverseWriter:
    side = Side.DATAVERSE

    def __init__(self, ctx: BulkContext):
        self.ctx = ctx
        self.refs = DataverseRefs(ctx)

    async def prepare(self, cm: CompiledMap, items: Sequence[Item]) -> None:
        await self.refs.resolve(cm, (i.row for i in items))

    def _guid(self, cm: CompiledMap, column: str, value: Row) -> Any:
        if set(value) == {COMPANY_KEY_COLUMN} and (cm.map.company is None or column == cm.map.company.dataverse_lookup
                                                   or column not in cm.lookups):
            guid = self.refs.company(value[COMPANY_KEY_COLUMN])
            if guid is None:
                raise DependencyMissing("legal_entities", f'["{value[COMPANY_KEY_COLUMN]}"]')
            return guid
        spec = cm.lookups[column]
        guid = self.refs.lookup(spec.map, value)
        if guid is None:
            parent = self.ctx.compiled[spec.map]
            shown = [v.get(COMPANY_KEY_COLUMN) if isinstance(v, dict) else v for _, v in sorted(value.items())]
            raise DependencyMissing(spec.map, str(shown) if parent else "?")
        return guid

    async def upsert(self, cm: CompiledMap, item: Item) -> Upsert:
        m = cm.map
        key_columns = list(m.dataverse.keys)
        wire_key: Row = {}
        key_fields = cm.key_fields(Side.DATAVERSE, item.key)
        # only the alternate key's own columns go in the URL: the company can be outside the key
        # (vendor invoice lines: msdyn_owningcompany is striped but not keyed), as on the live path
        for column in key_columns:
            value = key_fields.get(column)
            if isinstance(value, dict):
                wire_key[f"_{column}_value"] = self._guid(cm, column, value)
            else:
                wire_key[column] = value
        address: Any = wire_key
        if key_columns == [m.dataverse.primary_id]:
            address = UUID(str(wire_key[m.dataverse.primary_id]))  # a primary key goes bare in the URL
        body: Row = {}
        lookups: dict[str, tuple[str, Any]] = {}
        company_nav = m.company.dataverse_lookup if m.company else None
        for column, value in item.row.items():
            if column == company_nav:
                lookups[column] = (COMPANY_SET, self._guid(cm, column, value))
            elif column in cm.lookups:
                if value is None:
                    body[f"{column}@odata.bind"] = None
                else:
                    lookups[column] = (cm.lookups[column].entity_set, self._guid(cm, column, value))
            elif column in cm.references:  # reference data (units, vendor accounts): a miss is permanent
                spec = cm.references[column]
                if value is None:
                    body[f"{column}@odata.bind"] = None
                else:
                    lookups[column] = (spec.entity_set,
                                       await self.ctx.dataverse_side.reference_id(cm, item.key, spec, value))
            else:
                body[column] = value
        return Upsert(address, body, lookups)

    async def send(self, cm: CompiledMap, writes: Sequence[Upsert]) -> list[WriteResult]:
        table = cm.map.dataverse
        return await self.ctx.dataverse.write_batch(table.entity_set, writes, logical_name=table.table)


class FinanceWriter:
    side = Side.FINANCE

    def __init__(self, ctx: BulkContext):
        self.ctx = ctx
        self.parents = FinanceParents(ctx)

    async def prepare(self, cm: CompiledMap, items: Sequence[Item]) -> None:
        for item in items:  # computed once, used by the bulk check and again by upsert
            item.parents = self.parents.parent_keys(cm, item.row)
        await self.parents.check_keys(i.parents for i in items if i.parents is not None)

    async def upsert(self, cm: CompiledMap, item: Item) -> Upsert:
        keys = item.parents if item.parents is not None else self.parents.parent_keys(cm, item.row)
        missing = self.parents.missing_of(keys)
        if missing is not None:
            raise missing
        address = await self.ctx.finance_side._address(cm, item.key, item.row)
        assert address is not None  # with the row given, the address is complete
        return Upsert(address, {**item.row, **address})

    async def send(self, cm: CompiledMap, writes: Sequence[Upsert]) -> list[WriteResult]:
        # initial sync mostly creates: POST first, PATCH only the rows that already exist
        return await self.ctx.finance.write_batch(cm.map.finance.entity_set, writes, expect="new")


def writer_for(ctx: BulkContext, target: Side) -> TargetWriter:
    return DataverseWriter(ctx) if target is Side.DATAVERSE else FinanceWriter(ctx)
