"""Reading and writing one map's rows on each side, in the mapping engine's logical row shape.

This is where logical rows meet the wire: Dataverse lookups become ``@odata.bind`` references and
the company becomes a lookup (or, inside an alternate key, the company row's GUID); Finance rows are
flat. Source reads honour the map's filter; target writes check that parents exist first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from shared.catalog.models import Convert, ConvertType, Side
from shared.connectors.dataverse import DataverseConnector
from shared.connectors.errors import NotFound
from shared.connectors.finance import FinanceConnector
from shared.connectors.odata import entity_path, literal, query_string
from shared.mapping import CompiledMap, ReferenceSpec, key_to_string
from shared.mapping.compiler import COMPANY_KEY_COLUMN
from shared.sync.decisions import DependencyMissing, ReferenceMissing

Row = dict[str, Any]
COMPANY_SET = "cdm_companies"
COMPANY_ID = "cdm_companyid"


class SourceRow:
    """The source record's current state, or ``None`` fields when it is gone or filtered out."""

    __slots__ = ("filtered", "row", "version")

    def __init__(self, row: Row | None, version: int | None, filtered: bool = False):
        self.row = row
        self.version = version
        self.filtered = filtered


class SideAdapter(Protocol):
    side: Side

    async def read(self, cm: CompiledMap, *, key: tuple[Any, ...] | None, record_id: str | None) -> SourceRow: ...

    async def write(self, cm: CompiledMap, key: tuple[Any, ...], row: Row) -> None: ...

    async def delete(self, cm: CompiledMap, key: tuple[Any, ...]) -> bool: ...

    async def current(self, cm: CompiledMap, key: tuple[Any, ...], columns: list[str]) -> Row | None: ...


def _version_from_timestamp(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1_000_000)
    except ValueError:
        return None


class _ExistsCache:
    """Parents seen on a target stay there for the process's life (deletes of parents are rare and
    then surface as the connector's own not-found error)."""

    def __init__(self, size: int = 50_000):
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._size = size

    def __contains__(self, item: tuple[str, str]) -> bool:
        return item in self._seen

    def add(self, item: tuple[str, str]) -> None:
        self._seen[item] = None
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)


class DataverseSide:
    side = Side.DATAVERSE

    def __init__(self, connector: DataverseConnector, compiled: Mapping[str, CompiledMap]):
        self.connector = connector
        self.compiled = compiled
        # reference rows found (units, vendor accounts): few, read-mostly; a row deleted later fails
        # the write itself (the connector's LookupTargetMissing), so a stale entry is not silent
        self._references: OrderedDict[tuple[str, str], UUID] = OrderedDict()

    async def _company_id(self, code: str) -> UUID:
        try:
            return await self.connector.resolve_id(COMPANY_SET, {COMPANY_KEY_COLUMN: code}, id_attribute=COMPANY_ID)
        except NotFound:
            raise DependencyMissing("legal_entities", key_to_string((code,))) from None

    async def _wire_key(self, cm: CompiledMap, key_fields: Row, key_columns: list[str]) -> dict[str, Any]:
        """Alternate key in URL form: nested company -> ``_msdyn_company_value=<guid>``."""
        out: dict[str, Any] = {}
        for column in key_columns:
            value = key_fields.get(column)
            if isinstance(value, dict) and COMPANY_KEY_COLUMN in value and len(value) == 1:
                out[f"_{column}_value"] = await self._company_id(value[COMPANY_KEY_COLUMN])
            elif isinstance(value, dict):
                spec = cm.lookups[column]
                out[f"_{column}_value"] = await self._lookup_id(spec.map, value)
            else:
                out[column] = value
        return out

    async def _lookup_id(self, map_name: str, ref: Row) -> UUID:
        """The GUID of a referenced row, from the lookup's key columns (and company)."""
        parent = self.compiled[map_name]
        m = parent.map
        columns = list(m.dataverse.keys)
        if columns == [m.dataverse.primary_id]:
            return UUID(str(ref[columns[0]]))
        fields = dict(ref)
        if m.company is not None and m.company.dataverse_lookup not in fields:
            fields[m.company.dataverse_lookup] = None
        try:
            wire = await self._wire_key(parent, fields, columns)
            return await self.connector.resolve_id(m.dataverse.entity_set, wire, id_attribute=m.dataverse.primary_id)
        except NotFound:
            parent_key = [v for k, v in sorted(ref.items()) if not isinstance(v, dict)]
            raise DependencyMissing(map_name, key_to_string(tuple(parent_key))) from None

    async def reference_id(self, cm: CompiledMap, key: tuple[Any, ...], spec: ReferenceSpec, ref: Row) -> UUID:
        """The GUID of a reference row (no map writes it) from its alternate key; a miss is permanent."""
        wire: dict[str, Any] = {}
        shown: list[str] = []
        for column in spec.all_key_columns:
            value = ref.get(column)
            if column == spec.company_navigation:
                code = value.get(COMPANY_KEY_COLUMN) if isinstance(value, dict) else None
                wire[f"_{column}_value"] = await self._company_id(str(code))
                shown.append(f"in company {code}")
            else:
                wire[column] = value
                shown.append(repr(value))  # the company comes last in all_key_columns
        cache_key = (spec.entity_set, key_to_string(tuple(sorted((k, str(v)) for k, v in wire.items()))))
        found = self._references.get(cache_key)
        if found is not None:
            return found
        try:
            guid = await self.connector.resolve_id(spec.entity_set, wire, id_attribute=spec.primary_id)
        except NotFound:
            raise ReferenceMissing(cm.name, " / ".join(str(k) for k in key), spec.field, spec.label,
                                   " ".join(shown), spec.entity_set, spec.all_key_columns,
                                   "create it in Dataverse or correct the record at its source, then replay"
                                   ) from None
        self._references[cache_key] = guid
        if len(self._references) > 10_000:
            self._references.popitem(last=False)
        return guid

    async def read(self, cm: CompiledMap, *, key: tuple[Any, ...] | None, record_id: str | None) -> SourceRow:
        m = cm.map
        params = {"$select": ",".join(cm.dataverse_select()), "$expand": ",".join(cm.dataverse_expand()) or None}
        if record_id is not None:
            address: Any = UUID(record_id)
        elif key is not None:
            address = await self._wire_key(cm, cm.key_fields(Side.DATAVERSE, key), list(m.dataverse.keys))
        else:
            raise ValueError("a Dataverse read needs a record id or an integration key")
        path = entity_path(m.dataverse.entity_set, address)
        try:
            response = await self.connector.http.request("GET", f"{path}?{query_string(params)}")
        except NotFound:
            return SourceRow(None, None)
        row: Row = response.json()
        if m.dataverse.filter and not await self._matches_filter(cm, row):
            return SourceRow(row, row.get("versionnumber"), filtered=True)
        version = row.get("versionnumber")
        return SourceRow(row, int(version) if version is not None else None)

    async def _matches_filter(self, cm: CompiledMap, row: Row) -> bool:
        m = cm.map
        pk = m.dataverse.primary_id
        expr = f"{pk} eq {literal(UUID(str(row[pk])))} and ({m.dataverse.filter})"
        async for page in self.connector.query(m.dataverse.entity_set, select=[pk], filter=expr, page_size=1):
            return bool(page)
        return False

    async def _body(self, cm: CompiledMap, row: Row, key_columns: set[str],
                    key: tuple[Any, ...] = ()) -> tuple[Row, dict[str, tuple[str, Any]]]:
        body: Row = {}
        lookups: dict[str, tuple[str, Any]] = {}
        company_nav = cm.map.company.dataverse_lookup if cm.map.company else None
        for column, value in row.items():
            if column in key_columns:
                continue  # the key travels in the URL
            if column == company_nav:
                lookups[column] = (COMPANY_SET, await self._company_id(value[COMPANY_KEY_COLUMN]))
            elif column in cm.lookups:
                spec = cm.lookups[column]
                if value is None:
                    body[f"{column}@odata.bind"] = None
                else:
                    lookups[column] = (spec.entity_set, await self._lookup_id(spec.map, value))
            elif column in cm.references:
                ref_spec = cm.references[column]
                if value is None:
                    body[f"{column}@odata.bind"] = None
                else:
                    lookups[column] = (ref_spec.entity_set, await self.reference_id(cm, key, ref_spec, value))
            else:
                body[column] = value
        return body, lookups

    async def write(self, cm: CompiledMap, key: tuple[Any, ...], row: Row) -> None:
        m = cm.map
        key_columns = list(m.dataverse.keys)
        wire_key = await self._wire_key(cm, cm.key_fields(Side.DATAVERSE, key), key_columns)
        body, lookups = await self._body(cm, row, set(key_columns), key)
        # key columns that are plain values must be in the body on create (Dataverse takes them
        # from the URL too; sending both is allowed and keeps create and update the same call)
        for column in key_columns:
            value = row.get(column)
            if column not in cm.lookups and not isinstance(value, dict) and column in row:
                body[column] = value
        await self.connector.upsert(m.dataverse.entity_set, wire_key, body, lookups=lookups)

    async def delete(self, cm: CompiledMap, key: tuple[Any, ...]) -> bool:
        m = cm.map
        try:
            wire_key = await self._wire_key(cm, cm.key_fields(Side.DATAVERSE, key), list(m.dataverse.keys))
        except DependencyMissing:
            return False  # the company is gone, so is the row
        return await self.connector.delete(m.dataverse.entity_set, wire_key, missing_ok=True)

    async def current(self, cm: CompiledMap, key: tuple[Any, ...], columns: list[str]) -> Row | None:
        m = cm.map
        try:
            wire_key = await self._wire_key(cm, cm.key_fields(Side.DATAVERSE, key), list(m.dataverse.keys))
            return await self.connector.get(m.dataverse.entity_set, wire_key)
        except (NotFound, DependencyMissing):
            return None


class FinanceSide:
    side = Side.FINANCE

    def __init__(self, connector: FinanceConnector, compiled: Mapping[str, CompiledMap]):
        self.connector = connector
        self.compiled = compiled
        self._parents = _ExistsCache()

    @staticmethod
    def _condition(cm: CompiledMap, key_fields: Row) -> str:
        """``$filter`` for key fields; date fields are typed literals, not strings."""
        dates = {fm.finance for fm in cm.map.fields
                 if isinstance(fm.transform, Convert) and fm.transform.to in (ConvertType.DATE, ConvertType.DATETIME_UTC)}
        parts = []
        for k, v in key_fields.items():
            if k in dates and isinstance(v, str):
                v = datetime.fromisoformat(v.replace("Z", "+00:00"))
            parts.append(f"{k} eq {literal(v)}")
        return " and ".join(parts)

    async def _address(self, cm: CompiledMap, key: tuple[Any, ...], row: Row | None = None) -> Row | None:
        """The entity key of the record. Some Finance keys hold more than the integration key (a task
        is keyed by project and task): those fields come from the mapped row, or are looked up."""
        fields = cm.key_fields(Side.FINANCE, key)
        missing = [f for f in cm.map.finance.keys if f not in fields]
        if not missing:
            return fields
        if row is not None:
            return {**fields, **{f: row.get(f) for f in missing}}
        select = [*fields, *missing]
        async for page in self.connector.query(cm.map.finance.entity_set, select=select,
                                               filter=self._condition(cm, fields), page_size=2):
            return {k: page[0].get(k) for k in select} if page else None
        return None

    async def read(self, cm: CompiledMap, *, key: tuple[Any, ...] | None, record_id: str | None) -> SourceRow:
        m = cm.map
        if key is None:
            raise ValueError("a Finance read needs an integration key")
        key_fields = cm.key_fields(Side.FINANCE, key)
        conditions = self._condition(cm, key_fields)
        expr = f"{conditions} and ({m.finance.filter})" if m.finance.filter else conditions
        select = sorted({*cm.finance_select(), "ModifiedDateTime"})
        async for page in self.connector.query(m.finance.entity_set, select=select, filter=expr, page_size=2):
            if page:
                row = page[0]
                return SourceRow(row, _version_from_timestamp(row.get("ModifiedDateTime")))
            break
        if m.finance.filter:
            address = await self._address(cm, key)
            if address is not None:
                return SourceRow(dict(address), None, filtered=True)
        return SourceRow(None, None)

    async def _check_parents(self, cm: CompiledMap, row: Row) -> None:
        company_field = cm.map.company.finance_field if cm.map.company else None
        for spec in cm.lookups.values():
            values = [row.get(f) for f in spec.finance_fields]
            if all(v in (None, "") for v in values):
                continue
            parent = self.compiled[spec.map]
            parent_key: tuple[Any, ...] = tuple(values) if len(values) > 1 else (values[0],)
            if parent.map.company is not None:
                company = row.get(company_field) if company_field else None
                parent_key = (company.upper() if isinstance(company, str) else company, *parent_key)
            if len(parent_key) != len(parent.map.dataverse.keys) + (
                    1 if parent.map.company and parent.map.company.dataverse_lookup not in parent.map.dataverse.keys
                    else 0):
                continue  # a reference we cannot address by key alone; Finance validates it on write
            seen = (spec.map, key_to_string(parent_key))
            if seen in self._parents:
                continue
            if not await self._exists(parent, parent_key):
                raise DependencyMissing(spec.map, key_to_string(parent_key))
            self._parents.add(seen)

    async def _exists(self, cm: CompiledMap, key: tuple[Any, ...]) -> bool:
        fields = cm.key_fields(Side.FINANCE, key)
        if any(f not in fields for f in cm.map.finance.keys):
            return await self._address(cm, key) is not None  # found by query, so it exists
        try:
            await self.connector.get(cm.map.finance.entity_set, fields)
        except NotFound:
            return False
        return True

    async def write(self, cm: CompiledMap, key: tuple[Any, ...], row: Row) -> None:
        await self._check_parents(cm, row)
        address = await self._address(cm, key, row)
        assert address is not None  # with the row given, the address is complete
        await self.connector.upsert(cm.map.finance.entity_set, address, {**row, **address})

    async def delete(self, cm: CompiledMap, key: tuple[Any, ...]) -> bool:
        address = await self._address(cm, key)
        if address is None:
            return False
        return await self.connector.delete(cm.map.finance.entity_set, address, missing_ok=True)

    async def current(self, cm: CompiledMap, key: tuple[Any, ...], columns: list[str]) -> Row | None:
        address = await self._address(cm, key)
        if address is None:
            return None
        try:
            return await self.connector.get(cm.map.finance.entity_set, address)
        except NotFound:
            return None
