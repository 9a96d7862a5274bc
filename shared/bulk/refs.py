"""Lookups resolved in bulk: one query per referenced map (and legal entity) per page, cached.

Writing to Dataverse needs the GUID of every referenced row (``nav@odata.bind`` and alternate keys
holding lookups). The live path resolves one reference per request; a page of thousands of rows
would make thousands of requests. Here the distinct references of a page are gathered per referenced
map and asked for with one ``$filter`` of ``or``-ed key conditions (chunked to keep URLs short).

Writing to Finance, references are plain key fields; the parents are checked the same way, so a
child whose parent is missing is reported with the parent's name instead of failing on write.

Caches are bounded (least recently used out), so memory stays flat whatever the table size.
"""

from __future__ import annotations

import contextlib
import json
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import Any
from uuid import UUID

from shared.bulk.context import BulkContext
from shared.catalog.models import Side
from shared.connectors.odata import literal
from shared.mapping import CompiledMap, key_to_string
from shared.mapping.compiler import COMPANY_KEY_COLUMN
from shared.sync.decisions import DependencyMissing
from shared.sync.sides import COMPANY_ID, COMPANY_SET, FinanceSide

Row = dict[str, Any]
CHUNK = 25  # key conditions per query: keeps the URL well under the services' limits
COMPANY = "$company"


class _Lru:
    def __init__(self, size: int):
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._size = size

    def get(self, key: Hashable) -> Any:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: Hashable, value: Any) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items


def _norm(value: Any) -> Any:
    # Dataverse alternate keys match case-insensitively
    return value.casefold() if isinstance(value, str) else value


def _chunks(items: list[Any], size: int = CHUNK) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _seen_key(map_name: str, key: tuple[Any, ...]) -> Hashable:
    # the key tuple itself (scalars) instead of its JSON text: this is looked up several times per row
    try:
        hash(key)
    except TypeError:
        return map_name, key_to_string(key)
    return map_name, key


class DataverseRefs:
    """GUIDs of referenced Dataverse rows (and companies) for the rows of one page."""

    def __init__(self, ctx: BulkContext, cache_size: int = 200_000):
        self.ctx = ctx
        self._ids = _Lru(cache_size)

    # --- identity of a reference ------------------------------------------------------------------
    def ref_id(self, map_name: str, ref: Row) -> tuple[str, str]:
        parent = self.ctx.compiled[map_name]
        m = parent.map
        company_nav = m.company.dataverse_lookup if m.company else None
        company = ref.get(company_nav) if company_nav else None
        code = company.get(COMPANY_KEY_COLUMN) if isinstance(company, dict) else None
        cols = [k for k in m.dataverse.keys if k != company_nav]
        return map_name, json.dumps([_norm(code), *(_norm(ref.get(c)) for c in cols)], default=str)

    def company(self, code: str) -> UUID | None:
        guid: UUID | None = self._ids.get((COMPANY, _norm(code)))
        return guid

    def lookup(self, map_name: str, ref: Row) -> UUID | None:
        parent = self.ctx.compiled[map_name].map
        if list(parent.dataverse.keys) == [parent.dataverse.primary_id]:
            try:
                return UUID(str(ref[parent.dataverse.primary_id]))
            except (KeyError, ValueError):
                return None
        guid: UUID | None = self._ids.get(self.ref_id(map_name, ref))
        return guid

    # --- bulk resolution --------------------------------------------------------------------------
    async def resolve(self, cm: CompiledMap, rows: Iterable[Row]) -> None:
        """Look up every company and reference in ``rows`` (mapped towards Dataverse) not cached yet."""
        companies: set[str] = set()
        wanted: dict[str, dict[tuple[str, str], Row]] = {}
        company_nav = cm.map.company.dataverse_lookup if cm.map.company else None
        for row in rows:
            if company_nav and isinstance(row.get(company_nav), dict):
                code = row[company_nav].get(COMPANY_KEY_COLUMN)
                if isinstance(code, str) and (COMPANY, _norm(code)) not in self._ids:
                    companies.add(code)
            for nav, spec in cm.lookups.items():
                ref = row.get(nav)
                if not isinstance(ref, dict):
                    continue
                parent = self.ctx.compiled[spec.map].map
                if list(parent.dataverse.keys) == [parent.dataverse.primary_id]:
                    continue  # addressed by its GUID: nothing to ask
                if parent.company is not None:
                    c = ref.get(parent.company.dataverse_lookup)
                    if isinstance(c, dict) and isinstance(c.get(COMPANY_KEY_COLUMN), str):
                        code = c[COMPANY_KEY_COLUMN]
                        if (COMPANY, _norm(code)) not in self._ids:
                            companies.add(code)
                rid = self.ref_id(spec.map, ref)
                if rid not in self._ids:
                    wanted.setdefault(spec.map, {})[rid] = ref
        if companies:
            await self._resolve_companies(sorted(companies))
        for map_name, refs in wanted.items():
            await self._resolve_map(map_name, refs)

    async def _resolve_companies(self, codes: list[str]) -> None:
        for chunk in _chunks(codes):
            expr = " or ".join(f"cdm_companycode eq {literal(c)}" for c in chunk)
            async for page in self.ctx.dataverse.query(COMPANY_SET, select=[COMPANY_ID, "cdm_companycode"],
                                                       filter=expr):
                for r in page:
                    self._ids.put((COMPANY, _norm(r["cdm_companycode"])), UUID(str(r[COMPANY_ID])))

    async def _resolve_map(self, map_name: str, refs: dict[tuple[str, str], Row]) -> None:
        parent = self.ctx.compiled[map_name]
        m = parent.map
        company_nav = m.company.dataverse_lookup if m.company else None
        cols = [k for k in m.dataverse.keys if k != company_nav]
        if any(c in parent.lookups for c in cols):
            # a key that itself holds a lookup: rare; resolved one by one through the live path
            for rid, ref in refs.items():
                with contextlib.suppress(DependencyMissing):
                    self._ids.put(rid, await self.ctx.dataverse_side._lookup_id(map_name, ref))
            return
        by_company: dict[str | None, list[Row]] = {}
        for ref in refs.values():
            c = ref.get(company_nav) if company_nav else None
            by_company.setdefault(c.get(COMPANY_KEY_COLUMN) if isinstance(c, dict) else None, []).append(ref)
        pk = m.dataverse.primary_id
        for code, group in by_company.items():
            company_filter = None
            if company_nav:
                guid = self.company(code) if code else None
                if guid is None:
                    continue  # the company itself is missing: every reference stays unresolved
                company_filter = f"_{company_nav}_value eq {literal(guid)}"
            for chunk in _chunks(group):
                ors = " or ".join(
                    "(" + " and ".join(f"{c} eq {literal(r.get(c))}" for c in cols) + ")" for r in chunk)
                expr = f"{company_filter} and ({ors})" if company_filter else ors
                async for page in self.ctx.dataverse.query(m.dataverse.entity_set, select=[pk, *cols], filter=expr):
                    for r in page:
                        found = {c: r.get(c) for c in cols}
                        if company_nav:
                            found[company_nav] = {COMPANY_KEY_COLUMN: code}
                        self._ids.put(self.ref_id(map_name, found), UUID(str(r[pk])))


class FinanceParents:
    """Which referenced parents exist on Finance, checked in bulk per page."""

    def __init__(self, ctx: BulkContext, cache_size: int = 200_000):
        self.ctx = ctx
        self._seen = _Lru(cache_size)
        self._plans: dict[str, list[tuple[str, tuple[str, ...], bool, int]]] = {}

    def _plan(self, cm: CompiledMap) -> list[tuple[str, tuple[str, ...], bool, int]]:
        """Per lookup of ``cm``: parent map, Finance fields, whether the parent is striped by company,
        and the parent key's length (computed once per map: this runs for every row)."""
        plan = self._plans.get(cm.name)
        if plan is None:
            plan = []
            for spec in cm.lookups.values():
                parent = self.ctx.compiled[spec.map].map
                striped = 1 if parent.company and parent.company.dataverse_lookup not in parent.dataverse.keys else 0
                plan.append((spec.map, tuple(spec.finance_fields), parent.company is not None,
                             len(parent.dataverse.keys) + striped))
            self._plans[cm.name] = plan
        return plan

    def parent_keys(self, cm: CompiledMap, row: Row) -> list[tuple[str, tuple[Any, ...]]]:
        """(parent map, parent integration key) of each reference in a row mapped towards Finance;
        the same rule as the live path's parent check (references not addressable by key are left to
        Finance's own validation)."""
        out = []
        company_field = cm.map.company.finance_field if cm.map.company else None
        for map_name, fields, companied, length in self._plan(cm):
            values = [row.get(f) for f in fields]
            if all(v is None or v == "" for v in values):
                continue
            key: tuple[Any, ...] = tuple(values)
            if companied:
                company = row.get(company_field) if company_field else None
                key = (company.upper() if isinstance(company, str) else company, *key)
            if len(key) != length:
                continue
            out.append((map_name, key))
        return out

    async def check(self, cm: CompiledMap, rows: Iterable[Row]) -> None:
        await self.check_keys(self.parent_keys(cm, row) for row in rows)

    async def check_keys(self, per_row: Iterable[list[tuple[str, tuple[Any, ...]]]]) -> None:
        """:meth:`check` from each row's :meth:`parent_keys`, when the caller keeps them for :meth:`missing_of`."""
        wanted: dict[str, set[tuple[Any, ...]]] = {}
        for row_keys in per_row:
            for map_name, key in row_keys:
                if _seen_key(map_name, key) not in self._seen:
                    wanted.setdefault(map_name, set()).add(key)
        for map_name, keys in wanted.items():
            await self._check_map(map_name, sorted(keys, key=key_to_string))

    async def _check_map(self, map_name: str, keys: list[tuple[Any, ...]]) -> None:
        parent = self.ctx.compiled[map_name]
        fields_of = [parent.key_fields(Side.FINANCE, k) for k in keys]
        if any(f not in fields for fields in fields_of for f in parent.map.finance.keys):
            # keyed by more than the integration key: found by query one at a time (live path rule)
            for k in keys:
                if await self.ctx.finance_side._exists(parent, k):
                    self._seen.put(_seen_key(map_name, k), True)
            return
        select = sorted({*parent.finance_select()})
        for chunk in _chunks(fields_of):
            expr = " or ".join(f"({FinanceSide._condition(parent, f)})" for f in chunk)
            async for page in self.ctx.finance.query(parent.map.finance.entity_set, select=select, filter=expr):
                for r in page:
                    self._seen.put(_seen_key(map_name, parent.integration_key(Side.FINANCE, r)), True)

    def missing(self, cm: CompiledMap, row: Row) -> DependencyMissing | None:
        return self.missing_of(self.parent_keys(cm, row))

    def missing_of(self, keys: list[tuple[str, tuple[Any, ...]]]) -> DependencyMissing | None:
        for map_name, key in keys:
            if _seen_key(map_name, key) not in self._seen:
                return DependencyMissing(map_name, key_to_string(key))
        return None

