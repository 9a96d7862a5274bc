"""Dataverse Web API connector: rows by id or alternate key, paged queries, change tracking,
upserts by key (with ``@odata.bind`` lookups), deletes and batched writes."""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

from shared.connectors import batch, batching, jsoncodec
from shared.connectors.auth import TokenProvider
from shared.connectors.errors import (
    ConnectorError,
    DeltaTokenExpired,
    LookupTargetMissing,
    MessageUnsupported,
    NotFound,
    Service,
    classify,
)
from shared.connectors.http import ServiceClient
from shared.connectors.odata import Key, entity_path, key_segment, query_string
from shared.connectors.paging import follow_pages
from shared.connectors.writes import Delete, Upsert, Write, WriteResult
from shared.settings import Settings

log = logging.getLogger(__name__)

API_PATH = "api/data/v9.2/"
MAX_PAGE_SIZE = 5000
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

BatchMode = Literal["batch", "upsert_multiple"]


def bind(entity_set: str, key: Key) -> str:
    """The ``@odata.bind`` value for a lookup: ``/entity_set(key)``."""
    return "/" + entity_path(entity_set, key)


def singular(entity_set: str) -> str:
    """Logical name from entity set by Dataverse's plural convention (override where it differs)."""
    if entity_set.endswith("ies"):
        return entity_set[:-3] + "y"
    if entity_set.endswith("s"):
        return entity_set[:-1]
    return entity_set


@dataclass
class ChangePage:
    """One page of changes. ``delta_token`` is set on the last page: store it for next time.
    ``next_link`` is set on every other page: a read cut short goes on from it (``resume``).
    ``full_reread`` is True when the stored token had expired and this is a full read instead."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    deleted_ids: list[UUID] = field(default_factory=list)
    delta_token: str | None = None
    full_reread: bool = False
    next_link: str | None = None


class DataverseConnector:
    service = Service.DATAVERSE

    def __init__(
        self, http: ServiceClient, *, batch_size: int = 100, resolve_cache_size: int = 4096,
        bulk_write: BatchMode = "upsert_multiple",
    ) -> None:
        self.http = http
        self.batch_size = batch_size
        self.bulk_write: BatchMode = bulk_write
        self.no_bulk_messages: set[str] = set()  # entity sets that answered MessageUnsupported
        self._ids: OrderedDict[tuple[str, str], UUID] = OrderedDict()
        self._ids_max = resolve_cache_size

    @classmethod
    def from_settings(cls, settings: Settings, *, tokens: TokenProvider | None = None) -> DataverseConnector:
        """The connector for the process: shared pooled client and limiter for this environment."""
        http = ServiceClient.from_settings(
            settings, Service.DATAVERSE, settings.dataverse_url, API_PATH, tokens=tokens,
            headers={"If-None-Match": "null"},  # always read the current row, never a cached one
        )
        return cls(http, batch_size=settings.batch_size, bulk_write=settings.dataverse_bulk_write.value)

    # --- reads ------------------------------------------------------------------------------------

    async def get(self, entity_set: str, key: Key, *, select: Sequence[str] | None = None) -> dict[str, Any]:
        """The row at ``key`` (GUID or alternate key); :class:`NotFound` if there is none."""
        qs = query_string({"$select": ",".join(select) if select else None})
        response = await self.http.request("GET", entity_path(entity_set, key) + (f"?{qs}" if qs else ""))
        row: dict[str, Any] = jsoncodec.loads(response.content)
        return row

    async def query(
        self,
        entity_set: str,
        *,
        select: Sequence[str] | None = None,
        filter: str | None = None,
        orderby: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of rows; build ``filter`` with :func:`odata.filter_expr` so values are escaped."""
        qs = query_string({
            "$select": ",".join(select) if select else None, "$filter": filter, "$orderby": orderby,
        })
        headers = {"Prefer": f"odata.maxpagesize={min(page_size, MAX_PAGE_SIZE)}"}
        async for page in follow_pages(self.http, entity_set + (f"?{qs}" if qs else ""), headers):
            yield page.get("value", [])

    async def changes(
        self,
        entity_set: str,
        *,
        select: Sequence[str],
        delta_token: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        resume: str | None = None,
    ) -> AsyncIterator[ChangePage]:
        """Changes since ``delta_token``; without one, the initial full read that yields one.

        An expired token (Dataverse forgets changes after its retention, 7 days by default) restarts
        as a full read, flagged ``full_reread`` so the caller can reconcile deletions it missed.
        ``resume``: a page's ``next_link`` from a read cut short; the read goes on from there. Its token
        is inside the link, so an expired one raises :class:`DeltaTokenExpired` for the caller to start over.
        """
        if resume is not None:
            async for page in self._follow_changes(resume, page_size, False):
                yield page
            return
        full_reread = False
        if delta_token is not None:
            try:
                async for page in self._change_pages(entity_set, select, delta_token, page_size, False):
                    yield page
                return
            except DeltaTokenExpired:
                full_reread = True
        async for page in self._change_pages(entity_set, select, None, page_size, full_reread):
            yield page

    async def _change_pages(
        self, entity_set: str, select: Sequence[str], token: str | None, page_size: int, full_reread: bool
    ) -> AsyncIterator[ChangePage]:
        qs = query_string({"$select": ",".join(select), "$deltatoken": token})
        async for page in self._follow_changes(f"{entity_set}?{qs}", page_size, full_reread):
            yield page

    async def _follow_changes(self, url: str, page_size: int, full_reread: bool) -> AsyncIterator[ChangePage]:
        headers = {"Prefer": f"odata.track-changes,odata.maxpagesize={min(page_size, MAX_PAGE_SIZE)}"}
        async for body in follow_pages(self.http, url, headers):
            page = ChangePage(full_reread=full_reread, next_link=body.get("@odata.nextLink"))
            for item in body.get("value", []):
                if item.get("reason") == "deleted" or str(item.get("@odata.context", "")).endswith("$deletedEntity"):
                    page.deleted_ids.append(UUID(str(item["id"])))
                else:
                    page.rows.append(item)
            if "@odata.deltaLink" in body:
                link = self.http.url(body["@odata.deltaLink"])  # same origin rule as next links
                tokens = parse_qs(urlsplit(link).query).get("$deltatoken")
                page.delta_token = tokens[0] if tokens else None
            yield page

    async def resolve_id(self, entity_set: str, alternate_key: Mapping[str, Any], *, id_attribute: str | None = None) -> UUID:
        """The GUID of the row with ``alternate_key`` (cached; a miss raises :class:`NotFound`)."""
        cache_key = (entity_set, key_segment(alternate_key))
        if cache_key in self._ids:
            self._ids.move_to_end(cache_key)
            return self._ids[cache_key]
        attribute = id_attribute or singular(entity_set) + "id"
        row = await self.get(entity_set, alternate_key, select=[attribute])
        guid = UUID(str(row[attribute]))
        self._ids[cache_key] = guid
        if len(self._ids) > self._ids_max:
            self._ids.popitem(last=False)
        return guid

    # --- writes -----------------------------------------------------------------------------------

    @staticmethod
    def _body(write: Upsert) -> dict[str, Any]:
        body = dict(write.row)
        for nav, (target_set, target_key) in write.lookups.items():
            body[f"{nav}@odata.bind"] = bind(target_set, target_key)
        return body

    @staticmethod
    def _conditions(write: Upsert | Delete) -> dict[str, str]:
        headers: dict[str, str] = {}
        if write.if_match is not None:
            headers["If-Match"] = write.if_match
        if isinstance(write, Upsert) and write.create_only:
            headers["If-None-Match"] = "*"
        return headers

    def _lookup_error(self, error: ConnectorError, write: Write) -> ConnectorError:
        """A not-found answer to an upsert with lookups names a missing lookup target.

        Dataverse words it ``<logical name> With Id = <id> Does Not Exist`` or ``... does not exist
        in <logical name> entity``; the table named there picks the lookup. A plain upsert (no
        ``If-Match``) can't be "not found" itself, so then a lookup is missing even if unnamed.
        """
        if not isinstance(write, Upsert) or not write.lookups or type(error) is not NotFound:
            return error
        chosen = None
        for target_set, target_key in write.lookups.values():
            if re.search(rf"\b{re.escape(singular(target_set))}\b", error.message, re.IGNORECASE):
                chosen = (target_set, target_key)
                break
        if chosen is None:
            if write.if_match is not None:
                return error
            chosen = next(iter(write.lookups.values()))
        return LookupTargetMissing(
            entity_set=chosen[0], key=key_segment(chosen[1]), service=error.service, method=error.method,
            path=error.path, status=error.status, code=error.code, message=error.message,
        )

    async def upsert(
        self,
        entity_set: str,
        key: Key,
        row: Mapping[str, Any],
        *,
        lookups: Mapping[str, tuple[str, Key]] | None = None,
        if_match: str | None = None,
        create_only: bool = False,
    ) -> UUID | None:
        """PATCH by key: create or update (``if_match='*'`` update only, ``create_only`` create only,
        an ETag for optimistic concurrency). Returns the row's GUID from ``OData-EntityId``."""
        write = Upsert(key, row, lookups or {}, if_match, create_only)
        try:
            response = await self.http.request(
                "PATCH", entity_path(entity_set, key), json_body=self._body(write), headers=self._conditions(write)
            )
        except ConnectorError as exc:
            raise self._lookup_error(exc, write) from None
        match = _GUID.findall(response.headers.get("OData-EntityId", ""))
        return UUID(match[-1]) if match else None

    async def delete(self, entity_set: str, key: Key, *, if_match: str | None = None, missing_ok: bool = False) -> bool:
        """Delete the row; False when it was already gone and ``missing_ok``."""
        headers = {"If-Match": if_match} if if_match else {}
        try:
            await self.http.request("DELETE", entity_path(entity_set, key), headers=headers)
        except NotFound:
            if missing_ok:
                return False
            raise
        return True

    def _part(self, entity_set: str, write: Write) -> batch.Part:
        url = self.http.service_root + entity_path(entity_set, write.key)
        if isinstance(write, Delete):
            return batch.Part("DELETE", url, headers=self._conditions(write))
        return batch.Part("PATCH", url, self._body(write), self._conditions(write))

    def _part_error(self, write: Write, part: batch.Part, response: batch.PartResponse) -> ConnectorError:
        error = classify(
            service=self.service, method=part.method, path=urlsplit(part.url).path,
            status=response.status, body=response.body, headers=response.headers,
        )
        return self._lookup_error(error, write)

    async def write_batch(
        self, entity_set: str, writes: Sequence[Write], *, mode: BatchMode | None = None,
        logical_name: str | None = None,
    ) -> list[WriteResult]:
        """Many writes, chunked by ``batch_size`` and sent concurrently; one result per write.

        ``mode`` (default: the ``bulk_write`` setting):
        ``upsert_multiple``: ``UpsertMultiple`` per chunk (one JSON request; far less to build and
        parse than a ``$batch`` of the same rows, on both ends). It is all-or-nothing on standard
        tables, so a chunk that fails is re-sent as ``$batch`` to find which rows are bad. It only
        carries plain upserts: a call with deletes or conditions (``If-Match``, create-only) goes
        through ``$batch``, as does a table that doesn't support the message.
        ``batch``: ``$batch`` with continue-on-error, each row succeeds or fails alone.
        """
        if ((mode or self.bulk_write) == "upsert_multiple" and entity_set not in self.no_bulk_messages
                and all(isinstance(w, Upsert) and w.if_match is None and not w.create_only for w in writes)):
            return await self._upsert_multiple(entity_set, writes, logical_name or singular(entity_set))
        return await self._batches(entity_set, writes)

    async def _batches(self, entity_set: str, writes: Sequence[Write]) -> list[WriteResult]:
        return await batching.write_batches(
            self.http, writes, lambda w: self._part(entity_set, w), batch_size=self.batch_size,
            part_error=self._part_error,
        )

    async def _upsert_multiple(self, entity_set: str, writes: Sequence[Write], logical_name: str) -> list[WriteResult]:
        odata_type = f"Microsoft.Dynamics.CRM.{logical_name}"
        path = f"{entity_set}/Microsoft.Dynamics.CRM.UpsertMultiple"

        async def one_chunk(chunk: Sequence[Write]) -> list[WriteResult]:
            if entity_set in self.no_bulk_messages:  # learned from a chunk that went before
                return await self._batches(entity_set, chunk)
            targets = [
                {"@odata.type": odata_type, "@odata.id": entity_path(entity_set, w.key), **self._body(w)}
                for w in chunk if isinstance(w, Upsert)
            ]
            try:
                await self.http.request("POST", path, json_body={"Targets": targets})
            except ConnectorError as exc:
                if exc.retryable:
                    return [WriteResult(w, exc, exc.status) for w in chunk]
                if isinstance(exc, MessageUnsupported):  # not every table takes the bulk messages
                    self.no_bulk_messages.add(entity_set)
                    log.info("dataverse: %s does not support UpsertMultiple; writing it through $batch",
                             entity_set, extra={"entity_set": entity_set})
                # All-or-nothing: nothing of this chunk landed; $batch says row by row what fails.
                return await self._batches(entity_set, chunk)
            return [WriteResult(w, None, 204) for w in chunk]

        per_chunk = await batching.pooled(
            batching.chunks(writes, self.batch_size), self.http.limiter.ceiling, one_chunk
        )
        return [r for results in per_chunk for r in results]
