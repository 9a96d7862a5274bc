"""A map's source rows, streamed page by page with the continuation that resumes after each page.

Dataverse: ``$select`` the columns the map reads, ``$expand`` lookups and the company to their key
columns (the logical row shape), the map's filter, ``Prefer: odata.maxpagesize``. Finance:
cross-company, the map's filter, ``ModifiedDateTime`` for the version. Both ask ``$count=true`` on
the first page for the progress total (Dataverse caps that count at 5,000; then the total is
unknown). The continuation is the service's own ``@odata.nextLink``; it is kept in checkpoints
and followed later only on the environment's origin (the connectors' rule).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from shared.bulk.context import BulkContext
from shared.catalog.models import Side
from shared.connectors.odata import literal, query_string
from shared.connectors.paging import follow_pages
from shared.mapping import CompiledMap
from shared.sync.sides import COMPANY_ID, COMPANY_SET
from shared.sync.sides import _version_from_timestamp as version_from_timestamp

Row = dict[str, Any]
DATAVERSE_COUNT_CAP = 5000
FINANCE_VERSION = "ModifiedDateTime"


@dataclass
class Page:
    rows: list[Row]
    next_link: str | None  # None on the last page
    total: int | None  # from the first page's @odata.count, when the service gave a usable one


def _and(*parts: str | None) -> str | None:
    present = [p for p in parts if p]
    if not present:
        return None
    return " and ".join(f"({p})" for p in present) if len(present) > 1 else present[0]


async def company_guid(ctx: BulkContext, code: str) -> Any:
    return await ctx.dataverse.resolve_id(COMPANY_SET, {"cdm_companycode": code.upper()}, id_attribute=COMPANY_ID)


async def first_url(ctx: BulkContext, cm: CompiledMap, side: Side, *, company: str | None = None,
                    extra_filter: str | None = None, orderby: list[str] | None = None,
                    count: bool = True, select: list[str] | None = None,
                    expand: list[str] | None = None) -> str:
    """The first page's URL (relative to the service root) of ``cm``'s rows on ``side``.

    ``company`` narrows a company-specific map to one legal entity (a distributed work item);
    ``select`` / ``expand`` replace the columns a source read needs (reconcile reads targets too).
    """
    m = cm.map
    if side is Side.DATAVERSE:
        company_filter = None
        if company is not None and m.company is not None:
            company_filter = f"_{m.company.dataverse_lookup}_value eq {literal(await company_guid(ctx, company))}"
        params: dict[str, str | int | None] = {
            "$select": ",".join(select or cm.dataverse_select()),
            "$expand": ",".join(expand if expand is not None else cm.dataverse_expand()) or None,
            "$filter": _and(m.dataverse.filter, company_filter, extra_filter),
            "$orderby": ",".join(orderby) if orderby else None,
            "$count": "true" if count else None,
        }
        return f"{m.dataverse.entity_set}?{query_string(params)}"
    company_filter = None
    if company is not None and m.company is not None:
        company_filter = f"{m.company.finance_field} eq {literal(company.lower())}"
    params = {
        "$select": ",".join(select or sorted({*cm.finance_select(), FINANCE_VERSION})),
        "$filter": _and(m.finance.filter, company_filter, extra_filter),
        "$orderby": ",".join(orderby) if orderby else None,
        "$count": "true" if count else None,
        "cross-company": "true",
    }
    return f"{m.finance.entity_set}?{query_string(params)}"


async def pages(ctx: BulkContext, side: Side, url: str, page_size: int) -> AsyncIterator[Page]:
    """Every page from ``url`` (a first URL or a stored continuation) to the end."""
    http = ctx.dataverse.http if side is Side.DATAVERSE else ctx.finance.http
    headers = {"Prefer": f"odata.maxpagesize={page_size}"}
    first = True
    async for body in follow_pages(http, url, headers):
        total = body.get("@odata.count") if first else None
        if side is Side.DATAVERSE and isinstance(total, int) and total >= DATAVERSE_COUNT_CAP:
            total = None  # Dataverse stops counting at 5,000
        first = False
        yield Page(body.get("value", []), body.get("@odata.nextLink"), total if isinstance(total, int) else None)


def source_version(side: Side, row: Row) -> int | None:
    """The version the live handler records for this source row (versionnumber / ModifiedDateTime)."""
    if side is Side.DATAVERSE:
        v = row.get("versionnumber")
        return int(v) if v is not None else None
    return version_from_timestamp(row.get(FINANCE_VERSION))
